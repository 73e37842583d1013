"""Validate a whole rollout log and report every problem (``prm-probe validate``).

Reads the log step by step (memory bounded by one step), runs :func:`prm_probe.core.schema.find_problems` on
each, and merges repeated findings across steps into one line each. Fatal problems (unreadable file,
missing column, wrong type) stop the check and are reported as a single error.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import pyarrow.compute as pc

from prm_probe.core.rollouts import LogSource, iter_steps, read_metadata, resolve_log
from prm_probe.core.schema import LogProblem, find_problems
from prm_probe.errors import PrmProbeError

__all__ = ["ValidationReport", "validate_log"]


@dataclass
class ValidationReport:
    """What :func:`validate_log` found.

    Attributes:
        source: the log as given.
        rows, groups, steps: counts read before any fatal problem.
        problems: errors (the log breaks the schema) and notes (legal but unusual data).
        metadata: the log's key-value metadata.
    """

    source: str
    rows: int = 0
    groups: int = 0
    steps: int = 0
    problems: list[LogProblem] = field(default_factory=list)
    metadata: dict[str, str] = field(default_factory=dict)

    @property
    def errors(self) -> list[LogProblem]:
        return [p for p in self.problems if p.severity == "error"]

    @property
    def notes(self) -> list[LogProblem]:
        return [p for p in self.problems if p.severity != "error"]

    @property
    def ok(self) -> bool:
        """True when the log has no errors (notes allowed)."""
        return not self.errors


def _merge(found: list[tuple[int, LogProblem]]) -> list[LogProblem]:
    """Merge findings with the same severity, column and fix that occur in several steps."""
    merged: dict[tuple[str, str, str], list[tuple[int, LogProblem]]] = {}
    for step_index, p in found:
        merged.setdefault((p.severity, p.column, p.fix), []).append((step_index, p))
    out = []
    for items in merged.values():
        first = items[0][1]
        steps = {s for s, _ in items}
        if len(steps) > 1:
            first = LogProblem(first.column, f"in {len(steps)} steps; first: {first.where}", first.message,
                            first.fix, first.severity)
        out.append(first)
    out.sort(key=lambda p: p.severity != "error")
    return out


def validate_log(source: str | os.PathLike | LogSource) -> ValidationReport:
    """Check a rollout log against the schema and the group rules; never raises for bad data.

    Example:
        >>> report = validate_log("data/sample_rollouts.parquet")  # doctest: +SKIP
        >>> report.ok, len(report.errors)                           # doctest: +SKIP
        (True, 0)
    """
    report = ValidationReport(source=os.fspath(source) if not isinstance(source, LogSource) else str(source))
    found: list[tuple[int, LogProblem]] = []
    try:
        log = source if isinstance(source, LogSource) else resolve_log(source)
        report.metadata = read_metadata(log)
        for i, table in enumerate(iter_steps(log, columns=["finish_reason", "logps"])):
            found.extend((i, p) for p in find_problems(table, row_offset=report.rows))
            report.rows += table.num_rows
            report.steps += 1
            report.groups += len(pc.unique(table.column("group")))
    except PrmProbeError as exc:
        report.problems = [*_merge(found), LogProblem("-", "whole log", str(exc), "", "error")]
        return report
    if report.rows == 0:
        found.append((0, LogProblem("-", "whole log", f"log '{report.source}' has no rows; expected at least one "
                                 "completion; check that the run wrote its rollouts", "")))
    report.problems = _merge(found)
    return report
