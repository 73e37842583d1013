"""The authors' code (coli-saar/grpo-prm): its ``stats.json`` as rows of a rollout log, with its validation calls
kept in the metadata."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import numpy as np
import pandas as pd

from prm_probe.errors import LogReadError, SchemaError
from prm_probe.integrations.records import STEP_MEANING, require_fields

__all__ = ["read_grpo_prm"]

logger = logging.getLogger(__name__)


def read_grpo_prm(source, *, group_size=None, fields=None, **_) -> tuple[pd.DataFrame, dict]:
    path = Path(os.fspath(source))
    path = path / "stats.json" if path.is_dir() else path
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise LogReadError(f"'{path}' does not exist; expected a grpo-prm stats.json; check the path") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise LogReadError(f"'{path}' is not JSON ({exc}); expected a grpo-prm stats.json; re-create it") from None
    if not isinstance(data, dict):
        raise SchemaError(f"'{path}' holds a JSON {type(data).__name__}; expected an object with 'epochs'; "
                          "use format 'jsonl-ids', 'verl' or 'generic' for per-line logs")
    require_fields("grpo-prm", data.keys(), ["epochs"], str(path))
    size = group_size or (data.get("args") or {}).get("group_size")
    if not size:
        logger.warning("grpo-prm: args.group_size missing; assuming the default 6")
        size = 6
    sep = (fields or {}).get("prompt_sep")
    if sep is None:
        logger.warning("grpo-prm: query_response holds prompt + completion and no prompt_sep was given; the "
                       "whole text is the completion, so overlap statistics include the prompt")
    rows, step = [], 0
    for e, epoch in enumerate(data["epochs"]):
        for st in epoch.get("steps", []):
            for inst in st.get("instances", []):
                require_fields("grpo-prm", inst.keys(), ["idx", "query_response", "reward"], f"{path} step {step}")
                text = inst["query_response"]
                prompt, comp = "", text
                if sep is not None:
                    cut = text.rfind(sep)
                    if cut < 0:
                        raise SchemaError(f"step {step} instance idx {inst['idx']} of '{path}' lacks prompt_sep "
                                          f"{sep!r}; expected it in every query_response; fix prompt_sep")
                    prompt, comp = text[:cut + len(sep)], text[cut + len(sep):]
                rows.append({"step": step, "epoch": e, "prompt": prompt, "completion": comp,
                             "reward": inst["reward"], "prompt_id": str(inst["idx"]), "_key": inst["idx"]})
            step += 1
    if not rows:
        raise SchemaError(f"'{path}' holds no instances; expected epochs[*].steps[*].instances; "
                          "point at a stats.json written after at least one checkpoint")
    if sep is not None:
        _check_separator_whitespace([r["completion"] for r in rows], sep, str(path))
    return pd.DataFrame(rows), {"mode": "block", "group_size": int(size), "text_source": "grpo-prm",
                                "metadata": {"grpo_prm.validation": _grpo_prm_validation(data),
                                             "prm_probe.step_origin": "0",
                                             "prm_probe.step_meaning": STEP_MEANING["grpo-prm"]}}


def _check_separator_whitespace(completions: list[str], sep: str, where: str) -> None:
    """Refuse a ``prompt_sep`` that probably lost its trailing whitespace: every completion then starts with the
    same whitespace (e.g. the newline after ``assistant``), which belongs to the prompt and would become each
    completion's first token."""
    lead = [c[: len(c) - len(c.lstrip())] for c in completions]
    if len(lead) > 1 and lead[0] and all(x == lead[0] for x in lead):
        raise SchemaError(f"every completion of '{where}' after prompt_sep {sep!r} starts with {lead[0]!r}: the "
                          f"separator probably lost its trailing whitespace; expected the prompt to end where the "
                          f"completion starts; pass --field prompt_sep={sep + lead[0]!r}")


def _grpo_prm_validation(data: dict) -> str:
    """The run's validation record as JSON: ``init_val``, and per epoch its first step, the raw entries and,
    when the entries are ``{"reward": ...}`` objects, their mean reward."""
    epochs, first = [], 0
    for e, epoch in enumerate(data["epochs"]):
        entries = epoch.get("validation")
        calls = [_validation_reward(call) for call in entries] if isinstance(entries, list) else []
        means = [m for m in calls if m is not None]
        epochs.append({"epoch": e, "first_step": first, "entries": entries, "call_reward_means": calls,
                       "reward_mean": means[-1] if means else None})
        first += len(epoch.get("steps", []))
    return json.dumps({"init_val": data.get("init_val"), "init_val_reward_mean": _validation_reward(
        data.get("init_val")), "epochs": epochs})


def _validation_reward(call) -> float | None:
    """Mean reward of one validation call as the authors' code stores it: ``LambdaGRPOTrainer.validate`` returns
    ``[(text, reward), ...]`` (JSON lists; lambda_grpo/trainer.py:65-90 at 6bc58b1), appended once per validation
    to ``epochs[-1]['validation']`` (train_utils.py:97). ``{"reward": r}`` objects are accepted too."""
    if not isinstance(call, list):
        return None
    rewards = []
    for item in call:
        if isinstance(item, list | tuple) and len(item) == 2 and isinstance(item[1], int | float):
            rewards.append(float(item[1]))
        elif isinstance(item, dict) and isinstance(item.get("reward"), int | float):
            rewards.append(float(item["reward"]))
    return float(np.mean(rewards)) if rewards else None
