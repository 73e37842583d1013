"""Any JSONL or CSV log whose fields are named by a mapping (``--field NAME=COLUMN``) as rows of a rollout log."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pandas as pd

from prm_probe.core.rollouts import resolve_log
from prm_probe.errors import SchemaError, close_matches
from prm_probe.integrations.records import read_records, require_fields, token_ids

__all__ = ["read_generic"]

logger = logging.getLogger(__name__)


_GENERIC = ("step", "prompt", "completion", "completion_ids", "reward", "group", "sample", "prompt_id")


def read_generic(source, *, group_size=None, fields=None, **_) -> tuple[pd.DataFrame, dict]:
    names = {k: k for k in _GENERIC} | dict(fields or {})
    unknown = set(names) - set(_GENERIC)
    if unknown:
        raise SchemaError(f"unknown fields key(s) {sorted(unknown)}; expected some of {', '.join(_GENERIC)}; "
                          f"{close_matches(sorted(unknown)[0], _GENERIC)}fix the fields mapping")
    csv = all(f.suffix.lower() == ".csv" for f in resolve_log(source).files) if not Path(
        os.fspath(source)).is_dir() else any(Path(os.fspath(source)).rglob("*.csv"))
    df = read_records(source, "generic", csv=csv)
    text = names["completion"] in df
    needed = [names["step"], names["reward"], names["completion"] if text else names["completion_ids"]]
    require_fields("generic", [c for c in df.columns if c != "_file"], needed, str(source))
    num = (lambda c: pd.to_numeric(df[c], errors="coerce")) if csv else (lambda c: df[c])
    out = pd.DataFrame({"step": num(names["step"]), "reward": num(names["reward"])})
    if names["completion_ids"] in df:
        out["completion_ids"] = df[names["completion_ids"]].map(token_ids)
    if text:
        out["completion"] = df[names["completion"]]
    for key in ("prompt", "sample", "prompt_id"):
        if names[key] in df:
            out[key] = num(names[key]) if key == "sample" else df[names[key]]
    if names["group"] in df:
        return out.assign(_key=df[names["group"]]), {"mode": "key", "allow_unequal": True}
    if group_size:
        return out, {"mode": "block", "group_size": group_size}
    if "prompt" not in out:
        require_fields("generic", df.columns, [names["group"]], str(source))
    logger.warning("generic: no group field or group_size; grouping by identical prompt text within a step")
    return out.assign(_key=out["prompt"]), {"mode": "key", "allow_unequal": True, "text_source": "generic"}
