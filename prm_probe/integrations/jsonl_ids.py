"""open-instruct style JSONL with token ids (``prompt_tokens``, ``response_tokens``, ``prompt_idx``) as rows of a
rollout log; the ids are kept."""

from __future__ import annotations

import pandas as pd

from prm_probe.integrations.records import pick, read_records, require_fields, token_ids

__all__ = ["read_jsonl_ids"]


def read_jsonl_ids(source, **_) -> tuple[pd.DataFrame, dict]:
    df = read_records(source, "jsonl-ids")
    keys = [c for c in df.columns if c != "_file"]
    r = pick(keys, ("reward", "scores"))
    require_fields("jsonl-ids", keys, ["step", "prompt_idx", "prompt_tokens", "response_tokens", r or "reward"],
             str(source))
    reward = df[r].map(lambda v: float(sum(v)) if isinstance(v, list) else v)
    out = pd.DataFrame({"step": df["step"], "prompt_ids": df["prompt_tokens"].map(token_ids),
                        "completion_ids": df["response_tokens"].map(token_ids), "reward": reward,
                        "_key": df["prompt_idx"]})
    for col, name in (("sample_idx", "sample"), ("advantage", "advantage"), ("finish_reason", "finish_reason")):
        if col in df:
            out[name] = df[col]
    return out, {"mode": "key", "allow_unequal": True}
