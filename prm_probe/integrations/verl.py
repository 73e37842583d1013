"""verl's ``trainer.rollout_data_dir`` JSONL dumps (``{global_step}.jsonl``, written by ``_dump_generations`` in
``verl/trainer/ppo/ray_trainer.py``) as rows of a rollout log; OpenRLHF's batch-inference names are accepted."""

from __future__ import annotations

import pandas as pd

from prm_probe.errors import SchemaError
from prm_probe.integrations.records import STEP_MEANING, pick, read_records, require_fields

__all__ = ["read_verl"]


def read_verl(source, *, group_size=None, **_) -> tuple[pd.DataFrame, dict]:
    df = read_records(source, "verl")
    keys = [c for c in df.columns if c != "_file"]
    p, c, r = pick(keys, ("input", "prompt")), pick(keys, ("output", "response")), pick(keys, ("score", "reward"))
    if None in (p, c, r):
        require_fields("verl", keys, ["input", "output", "score"], str(source))
    step = pd.to_numeric(df["_file"], errors="coerce")
    if "step" in df:
        step = df["step"].fillna(step)
    if step.isna().any():
        raise SchemaError(f"'{source}' has no 'step' field and file '{df['_file'][step.isna()].iloc[0]}' is not "
                          "named {global_step}.jsonl; expected either; rename the file to its step")
    out = pd.DataFrame({"step": step, "prompt": df[p], "completion": df[c], "reward": df[r], "_key": df[p]})
    # verl reorders the batch (trainer.balance_batch) before dumping it, so a group's rows are not contiguous and
    # its uid is not dumped: groups can only be rebuilt from the prompt text.
    plan = {"mode": "key", "allow_unequal": True, "text_source": "verl", "group_size": group_size,
            "metadata": {"prm_probe.step_origin": "1", "prm_probe.step_meaning": STEP_MEANING["verl"]}}
    return out, plan
