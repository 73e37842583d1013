"""What several verbs share: progress bars, ``KEY=VALUE`` pairs, text tables, and the flags generated from the
settings model (:mod:`prm_probe.training.config`)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from prm_probe.errors import ConfigError

__all__ = ["add_setting_flags", "format_columns", "parse_sets", "progress", "setting_values", "step_bar"]


def progress(args: argparse.Namespace) -> bool:
    """Whether to draw progress bars: not with ``-q``, only on a terminal, and only where tqdm is installed (the
    core install has no tqdm)."""
    import importlib.util

    return not args.quiet and sys.stderr.isatty() and importlib.util.find_spec("tqdm") is not None


def step_bar(desc: str, unit: str = "step") -> Callable[[Iterable], Iterable]:
    """A progress-bar wrapper for the iterators a library call takes as ``progress=``."""
    from tqdm.auto import tqdm

    return lambda items: tqdm(items, desc=desc, unit=unit, leave=False)


def parse_sets(pairs: list[str] | None, strip_values: bool = True, flag: str = "--set") -> dict[str, str]:
    """``KEY=VALUE`` pairs; values keep their whitespace with ``strip_values=False`` (e.g. a separator that ends in
    a newline).

    Raises:
        ConfigError: a pair without ``=``.
    """
    out = {}
    for pair in pairs or []:
        if "=" not in pair:
            raise ConfigError(f"{flag} {pair!r} has no '='; expected KEY=VALUE; fix the flag")
        key, value = pair.split("=", 1)
        out[key.strip()] = value.strip() if strip_values else value
    return out


def add_setting_flags(group: argparse._ArgumentGroup, specs: list, default_note: str = "") -> None:
    """One flag per :class:`~prm_probe.training.config.FlagSpec`: the settings model is the single source of each
    flag's name, type, choices and help. The flag's value is None when not given, so the caller's source of
    defaults (the config file, or the run being sampled) decides; ``default_note`` replaces the shown default."""
    for spec in specs:
        shown = default_note.format(default=spec.default) if default_note else (
            f" (default {spec.default})" if spec.default not in ("", None) else "")
        group.add_argument(spec.flag, dest=spec.key.replace(".", "__"), type=spec.type, choices=spec.choices,
                           help=spec.help + shown)


def setting_values(args: argparse.Namespace, specs: list) -> dict[str, Any]:
    """The settings given on the command line, by dotted config key (flags left out are not in the result)."""
    values = {spec.key: getattr(args, spec.key.replace(".", "__")) for spec in specs}
    return {key: value for key, value in values.items() if value is not None}


def _cell(value: Any) -> str:
    if isinstance(value, float) or type(value).__name__.startswith("float"):
        return "nan" if value != value else f"{value:.3f}"
    return str(value)


def format_columns(cols: Mapping[str, Any], names: list[str], max_rows: int = 20) -> str:
    """A right-aligned text table of the first ``max_rows`` rows of numpy columns."""
    n = len(next(iter(cols.values()))) if cols else 0
    rows = [[_cell(cols[k][i].item() if hasattr(cols[k][i], "item") else cols[k][i]) for k in names]
            for i in range(min(n, max_rows))]
    widths = [max([len(k)] + [len(r[j]) for r in rows]) for j, k in enumerate(names)]
    lines = ["  ".join(k.rjust(w) for k, w in zip(names, widths, strict=True))]
    lines += ["  ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    if n > max_rows:
        lines.append(f"... {n - max_rows} more rows (write them all with -o FILE)")
    return "\n".join(lines)
