"""Error types of prm_probe and the did-you-mean helper used by every registry.

Every message says (1) what was found, (2) what was expected and (3) how to fix it, in one line, so the
CLI can print it as is and exit with status 2. Anything that is not a :class:`PrmProbeError` is a bug.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

__all__ = [
    "CheckpointError",
    "ConfigError",
    "LogReadError",
    "PrmProbeError",
    "RewardError",
    "SchemaError",
    "UnknownNameError",
    "close_matches",
]


class PrmProbeError(Exception):
    """Base class of every error a user can cause (bad input, bad flags, missing files)."""


class SchemaError(PrmProbeError, ValueError):
    """A rollout log breaks the schema: a missing column, a wrong type, a bad value or a bad group."""


class LogReadError(PrmProbeError, OSError):
    """A rollout log cannot be read at all: missing, empty, truncated or not Parquet/JSONL."""


class ConfigError(PrmProbeError, ValueError):
    """A configuration value or combination of values is invalid."""


class UnknownNameError(PrmProbeError, LookupError):
    """A name looked up in a registry does not exist: a task (or its module or reasoning-gym dataset), a model or
    an import format. A config value outside its choices (weighting, aggregation, ...) is a :class:`ConfigError`."""


class CheckpointError(PrmProbeError):
    """A checkpoint or run folder is missing, incomplete or incompatible."""


class RewardError(PrmProbeError):
    """A task's reward function raised, or returned a value that is not a finite number."""


def close_matches(name: str, candidates: Iterable[str], n: int = 3) -> str:
    """Return a ``did you mean ...?`` fragment for ``name``, or an empty string.

    Example:
        >>> close_matches("proces_set", ["uniform", "process_set"])
        "did you mean 'process_set'? "
    """
    found = difflib.get_close_matches(name, list(candidates), n=n, cutoff=0.6)
    if not found:
        return ""
    return "did you mean " + " or ".join(repr(f) for f in found) + "? "
