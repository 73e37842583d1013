"""Training-run folders, the one owner of their format: paths (:class:`RunFolder`), what counts as a run, and
reading ``config.json`` / ``metrics.jsonl`` / ``validation.jsonl`` and their settings.

Layout of a run folder::

    config.json          the resolved config (``prm_probe.training.config``)
    task.json            the task's identity: name and options, seed-drawn ones filled in
                         (``prm_probe.training.tasks.identity``)
    metrics.jsonl        one JSON object per optimiser step (``step`` first)
    validation.jsonl     one object per validation
    rollouts/step-000001.parquet ...   the rollout log, one part per step
    checkpoints/step-000020/ ...       checkpoints (complete once ``state.json`` is in place)

A run folder is what :func:`prm_probe.training.trainer.train` writes (and what
:class:`~prm_probe.integrations.trl.record.RunRecordCallback` writes for TRL runs). :func:`load_run` reads one into a
:class:`Run` (config, algorithm label, seed, per-step metrics, validation records);
:func:`config_differences` lists the settings on which runs disagree. Comparing runs is
:mod:`prm_probe.views.compare`'s job.
"""

from __future__ import annotations

import fnmatch
import json
import logging
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from prm_probe.core.files import read_jsonl_lines
from prm_probe.core.weightings import ALGORITHM_LABELS, UNIFORM
from prm_probe.errors import CheckpointError

__all__ = ["MATCHED_SETTINGS", "Labels", "Run", "RunFolder", "algorithm_label", "checkpoint_dirs",
           "config_differences", "describe_differences", "flat_settings", "is_run_dir", "latest_checkpoint",
           "load_run", "model_source", "part_name", "part_step", "run_of", "setting_of", "task_differences"]

log = logging.getLogger(__name__)

MATCHED_SETTINGS = ("task.name", "task.options", "sampling.group_size", "sampling.prompts_per_step", "steps",
                    "model.name", "sampling.max_new_tokens")
Labels = Mapping[str, str] | Iterable[tuple[str, str]]


def part_name(step: int) -> str:
    """The file name of a step's rollout part (and, without the suffix, of its checkpoint folder)."""
    return f"step-{step:06d}.parquet"


def part_step(name: str) -> int | None:
    """The step of a ``step-NNNNNN[.parquet]`` name, or None for any other name."""
    stem = name.removesuffix(".parquet")
    head, _, digits = stem.partition("-")
    return int(digits) if head == "step" and digits.isdigit() else None


@dataclass(frozen=True)
class RunFolder:
    """The paths of one run folder (nothing is created until a writer writes)."""

    path: Path

    def __init__(self, path: str | os.PathLike) -> None:
        object.__setattr__(self, "path", Path(path))

    @property
    def config(self) -> Path:
        return self.path / "config.json"

    @property
    def task(self) -> Path:
        return self.path / "task.json"

    @property
    def metrics(self) -> Path:
        return self.path / "metrics.jsonl"

    @property
    def validation(self) -> Path:
        return self.path / "validation.jsonl"

    @property
    def rollouts(self) -> Path:
        return self.path / "rollouts"

    @property
    def checkpoints(self) -> Path:
        return self.path / "checkpoints"

    def part(self, step: int) -> Path:
        """The rollout part of ``step``."""
        return self.rollouts / part_name(step)

    def checkpoint(self, step: int) -> Path:
        """The checkpoint folder of ``step``."""
        return self.checkpoints / part_name(step).removesuffix(".parquet")

    def parts(self) -> list[Path]:
        """The rollout parts written so far, by step."""
        found = [p for p in self.rollouts.glob("step-*.parquet") if part_step(p.name) is not None]
        return sorted(found, key=lambda p: part_step(p.name) or 0)


def is_run_dir(path: str | os.PathLike) -> bool:
    """True when ``path`` is a prm_probe run folder: ``config.json`` beside ``metrics.jsonl``, ``rollouts/`` or
    ``checkpoints/`` (a Hugging Face model folder also has a ``config.json``, and none of the others)."""
    f = RunFolder(path)
    return f.config.is_file() and (_readable(f.metrics).is_file() or f.rollouts.is_dir() or f.checkpoints.is_dir())


def _readable(path: Path) -> Path:
    """``path``, or its gzipped archive ``path.gz`` when only that exists (a finished run kept in a repository)."""
    archived = path.with_name(path.name + ".gz")
    return archived if not path.is_file() and archived.is_file() else path


def run_of(path: str | os.PathLike) -> Path | None:
    """The run folder a ``CHECKPOINT`` argument belongs to: the folder itself when it is a run, the run around a
    checkpoint (``RUN/checkpoints/step-N`` or its ``model/``), else None (a model folder, a built-in name)."""
    p = Path(path)
    candidates = [p]
    if p.name == "model":
        p = p.parent
    if part_step(p.name) is not None and p.parent.name == "checkpoints":
        candidates.append(p.parent.parent)
    return next((c for c in candidates if is_run_dir(c)), None)


def checkpoint_dirs(run_dir: str | os.PathLike) -> list[Path]:
    """Complete checkpoints of a run, oldest first (complete = renamed into place with its state.json)."""
    root = RunFolder(run_dir).checkpoints
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if p.is_dir() and part_step(p.name) is not None
             and (p / "state.json").is_file()]
    return sorted(found, key=lambda p: part_step(p.name) or 0)


def latest_checkpoint(run_dir: str | os.PathLike) -> Path | None:
    """The newest complete checkpoint of a run, or None."""
    dirs = checkpoint_dirs(run_dir)
    return dirs[-1] if dirs else None


def model_source(path: str | os.PathLike) -> str:
    """What a ``CHECKPOINT`` argument names: a run folder means the model of its newest complete checkpoint, a
    checkpoint folder (``RUN/checkpoints/step-N``) its ``model/``; anything else (a model folder, a built-in
    name) is returned as given.

    Raises:
        CheckpointError: a run folder without a complete checkpoint.
    """
    p = Path(path)
    if part_step(p.name) is not None and p.parent.name == "checkpoints" and (p / "model").is_dir():
        return str(p / "model")
    if not is_run_dir(path):
        return str(path)
    ckpt = latest_checkpoint(path)
    if ckpt is None:
        raise CheckpointError(f"run '{path}' has no complete checkpoint; expected checkpoints/step-*/; "
                              "train longer or point at a model folder")
    return str(ckpt / "model")


def setting_of(config: Mapping[str, Any], dotted: str) -> Any:
    """The value of a dotted key (``"sampling.group_size"``) in a run's config; None where it is missing.

    Example:
        >>> setting_of({"sampling": {"group_size": 8}}, "sampling.group_size"), setting_of({}, "steps")
        (8, None)
    """
    value: Any = config
    for part in dotted.split("."):
        value = value.get(part) if isinstance(value, Mapping) else None
    return value


def flat_settings(config: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """A nested config as one level of dotted keys (empty tables kept as values)."""
    out: dict[str, Any] = {}
    for key, value in config.items():
        nested = isinstance(value, Mapping) and value
        out.update(flat_settings(value, f"{prefix}{key}.") if nested else {f"{prefix}{key}": value})
    return out


def _show(value: Any) -> str:
    return json.dumps(value, sort_keys=True) if isinstance(value, (dict, list)) else str(value)


def describe_differences(differences: Mapping[str, list[Any]]) -> str:
    """``key (a vs b); ...`` for settings that differ between runs (as :func:`config_differences` gives them)."""
    return "; ".join(f"{k} ({' vs '.join(map(_show, v))})" for k, v in differences.items())


def algorithm_label(config: Mapping[str, Any]) -> str:
    """Name a run's algorithm from its config: ``GRPO`` (uniform), ``λ-GRPO`` (process_set), ``+ (renormalised)``.

    Example:
        >>> algorithm_label({"loss": {"weighting": "process_set", "renormalise": True}})
        'λ-GRPO (renormalised)'
    """
    weighting = setting_of(config, "loss.weighting") or UNIFORM
    name = ALGORITHM_LABELS.get(weighting, str(weighting))
    return name + (" (renormalised)" if setting_of(config, "loss.renormalise") else "")


@dataclass
class Run:
    """One run folder: its config, algorithm label, seed, per-step metrics and validation records.

    ``metrics`` has one row per step (``step`` plus every key of ``metrics.jsonl``); ``validation`` one row per
    validation (``step``, ``val_accuracy``, ``val_reward_mean``, ...), taken from ``validation.jsonl`` or, when
    that file is missing, from the ``val_*`` keys of ``metrics.jsonl``.
    """

    path: Path
    config: dict[str, Any] = field(repr=False)
    algorithm: str
    seed: int
    metrics: pd.DataFrame = field(repr=False)
    validation: pd.DataFrame = field(repr=False)
    #: the run's ``task.json`` (name and options, seed-drawn ones filled in), None for runs written before it
    task: dict[str, Any] | None = field(default=None, repr=False)

    @property
    def name(self) -> str:
        """The run id from the config, or the folder name."""
        return str(self.config.get("run_id") or self.path.name)

    def columns(self) -> set[str]:
        """Names of the numeric metrics this run holds."""
        cols = set(self.metrics.select_dtypes("number").columns) | set(self.validation.select_dtypes("number").columns)
        return cols - {"step"}

    def values(self, metric: str) -> pd.DataFrame:
        """The curve of ``metric``: columns ``step`` (int) and ``value`` (float), missing values dropped."""
        source = self.validation if metric in self.validation.columns else self.metrics
        if metric not in source.columns:
            return pd.DataFrame({"step": pd.Series(dtype="int64"), "value": pd.Series(dtype="float64")})
        frame = pd.DataFrame({"step": source["step"].astype("int64"),
                              "value": pd.to_numeric(source[metric], errors="coerce").astype("float64")})
        return frame.dropna().sort_values("step").reset_index(drop=True)


def _read_jsonl(path: Path) -> tuple[pd.DataFrame, list[int]]:
    """Records of a JSONL file that are objects with an integer ``step``, and the numbers of the other lines."""
    try:
        records, bad = read_jsonl_lines(path, keep=lambda r: isinstance(r.get("step"), int))
    except OSError as exc:
        raise CheckpointError(f"'{path}' cannot be read ({exc.strerror}); expected a readable JSONL file; "
                              "check its permissions") from None
    frame = pd.DataFrame.from_records(records)
    if len(frame):
        frame = frame.drop_duplicates("step", keep="last").sort_values("step").reset_index(drop=True)
    return frame, bad


def load_run(path: str | os.PathLike, labels: Labels | None = None) -> Run:
    """Read one run folder; unreadable JSONL lines (e.g. a last line cut mid-JSON) are dropped with a warning.

    Args:
        path: a folder written by ``prm-probe train``.
        labels: ``NAME -> GLOB`` pairs; the first glob matching the path string (or the folder name, with
            :func:`fnmatch.fnmatch`) names the run's algorithm instead of :func:`algorithm_label`.

    Raises:
        CheckpointError: the folder, ``config.json`` or ``metrics.jsonl`` is missing or unreadable, or
            ``metrics.jsonl`` holds no valid line.
    """
    folder = RunFolder(path)
    run_dir = folder.path
    hint = "expected a folder written by `prm-probe train`"
    if not run_dir.is_dir():
        raise CheckpointError(f"run '{run_dir}' is not a folder; {hint}; check the path")
    try:
        config = json.loads(folder.config.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CheckpointError(f"run '{run_dir}' has no config.json; {hint}; check the path") from None
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"run '{run_dir}' has an unreadable config.json ({str(exc).splitlines()[0]}); "
                              f"{hint}; restore or remove the run") from None
    if not isinstance(config, dict):
        raise CheckpointError(f"run '{run_dir}' has a config.json that is not an object; {hint}; restore it")
    metrics_path, validation_path = _readable(folder.metrics), _readable(folder.validation)
    if not metrics_path.is_file():
        raise CheckpointError(f"run '{run_dir}' has no metrics.jsonl; {hint}; check the path or rerun it")
    metrics, bad = _read_jsonl(metrics_path)
    if metrics.empty:
        raise CheckpointError(f"run '{run_dir}' has no valid line in metrics.jsonl; expected one JSON object per "
                              "step; rerun or resume it")
    if bad:
        log.warning("run '%s': dropped %d unreadable line(s) of metrics.jsonl (line %s; truncated?); using %d",
                    run_dir, len(bad), ", ".join(map(str, bad[:5])), len(metrics))
    validation = pd.DataFrame({"step": pd.Series(dtype="int64")})
    if validation_path.is_file():
        validation, bad = _read_jsonl(validation_path)
        if bad:
            log.warning("run '%s': dropped %d unreadable line(s) of validation.jsonl", run_dir, len(bad))
    val_cols = [c for c in metrics.columns if c.startswith("val_")]
    if validation.empty and val_cols:
        validation = metrics[["step", *val_cols]].dropna(how="all", subset=val_cols).reset_index(drop=True)
    pairs = list(labels.items()) if isinstance(labels, Mapping) else list(labels or [])
    label = next((str(name) for name, pattern in pairs
                  if fnmatch.fnmatch(str(run_dir), pattern) or fnmatch.fnmatch(run_dir.name, pattern)),
                 algorithm_label(config))
    seed = config.get("seed")
    task = None
    if folder.task.is_file():
        try:
            task = json.loads(folder.task.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise CheckpointError(f"run '{run_dir}' has an unreadable task.json ({exc}); expected the run's task "
                                  "record; restore or delete it") from None
    return Run(path=run_dir, config=config, algorithm=label, seed=int(seed) if isinstance(seed, (int, float)) else 0,
               metrics=metrics, validation=validation, task=task)


def config_differences(runs: Sequence[Run], keys: Sequence[str] = MATCHED_SETTINGS) -> dict[str, list[Any]]:
    """Settings among ``keys`` on which ``runs`` disagree, each with its distinct values in order of appearance."""
    out = {}
    for key in keys:
        values = list({_show(setting_of(r.config, key)): setting_of(r.config, key) for r in runs}.values())
        if len(values) > 1:
            out[key] = values
    return out


def task_differences(runs: Sequence[Run]) -> dict[str, list[Any]]:
    """Task options on which runs **of one seed** disagree (from their ``task.json``): the runs a comparison pairs
    must score alike, seed-drawn options (the toy tree's target) included; runs of different seeds may differ in
    those. Keys read ``task.options.<key> (seed S)``."""
    out: dict[str, list[Any]] = {}
    by_seed: dict[int, list[dict[str, Any]]] = {}
    for r in runs:
        if isinstance(r.task, Mapping):
            by_seed.setdefault(r.seed, []).append(r.task)
    for seed, tasks in sorted(by_seed.items()):
        names = list(dict.fromkeys(str(t.get("name")) for t in tasks))
        if len(names) > 1:
            out[f"task.name (seed {seed})"] = names
            continue
        keys = sorted(set().union(*(t.get("options") or {} for t in tasks)))
        for key in keys:
            values = list({_show((t.get("options") or {}).get(key)): (t.get("options") or {}).get(key)
                           for t in tasks}.values())
            if len(values) > 1:
                out[f"task.options.{key} (seed {seed})"] = values
    return out
