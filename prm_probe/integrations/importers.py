"""Importers: convert other GRPO systems' rollout logs into prm_probe's canonical rollout table.

Formats:

``trl``
    TRL completions Parquet (``completions/completions_*.parquet``; a file, a folder or a glob), read by
    :mod:`prm_probe.integrations.trl.log` (what TRL writes, in detail): text or chat messages, one column per reward
    function, ``log_extra`` columns, ``advantage``. Groups are consecutive blocks of ``group_size``
    (``num_generations``) rows within a step; without ``group_size`` rows are grouped by identical prompt within
    a step (with a warning). Repeated generation batches are kept once. Reward = TRL's ``nansum`` of the
    ``reward_columns`` times ``reward_weights`` (default every numeric column, weight 1), each column kept as
    ``reward_<name>``, checked against the logged ``advantage``. Token ids from a ``completion_ids`` column
    (:func:`prm_probe.record_completion_ids`), else the text re-tokenised (needs a tokenizer).
``verl``
    ``trainer.rollout_data_dir`` JSONL dumps (``{global_step}.jsonl``, written by ``_dump_generations`` in
    ``verl/trainer/ppo/ray_trainer.py``): ``input``, ``output``, ``score``, ``step`` (+ ``gts`` and extra-info
    keys, ignored). ``prompt``/``response`` and ``reward`` are accepted as aliases (OpenRLHF batch_inference
    wrote ``input``/``output``/``reward``). The step is the ``step`` field, else the file name. verl reorders the
    batch before dumping it and dumps no group id, so groups = identical ``input`` text within a step; with
    ``group_size`` (``rollout.n``) a prompt with several groups' rows is split into groups in file order,
    without it they merge (warned, and recorded). Text only: needs a tokenizer.
``grpo-prm``
    coli-saar/grpo-prm ``stats.json`` (a file, or the folder holding it), as ``train.py`` writes it: steps are
    numbered 0, 1, ... over ``epochs[*].steps`` in file order (the epoch is kept in an ``epoch`` column);
    ``instances`` are prompt-major blocks of ``args.group_size`` rows with equal ``idx`` (``group_size=``
    overrides; default 6); ``prompt_id`` = ``idx``; ``init_val`` and each epoch's ``validation`` calls (lists
    of ``[text, reward]``) are kept as JSON in metadata ``grpo_prm.validation``, with the epoch's first step
    and each call's mean reward. ``query_response`` holds prompt + completion decoded with special tokens:
    pass ``fields={"prompt_sep": TEXT}`` to split after the last occurrence of TEXT (the assistant header of
    the chat template, e.g. ``"<|im_start|>assistant\\n"``); otherwise the whole text is the completion (a
    warning says overlap statistics then include the prompt).
``jsonl-ids``
    open-instruct style JSONL with token ids: ``prompt_tokens``, ``response_tokens``, ``prompt_idx``,
    ``reward`` (or ``scores``), ``step``; optional ``sample_idx``, ``advantage``, ``finish_reason``. Ids are
    kept (token source "sampled"); groups = ``prompt_idx`` within a step (unequal sizes recorded: filtering
    may drop samples).
``generic``
    JSONL or CSV with field names given by ``fields={"step", "prompt", "completion", "completion_ids",
    "reward", "group", "sample", "prompt_id"}`` (defaults: the same names). Groups: ``group`` field, else
    blocks of ``group_size``, else identical prompt text.

Text re-tokenised with ``tokenizer.encode(text, add_special_tokens=False)`` (batched: :func:`encode_texts`); rows whose
``decode(encode(text)) != text`` are counted in metadata ``prm_probe.retokenization_text_changed``, and
``prm_probe.retokenization_note`` says what such ids cannot tell (the EOS TRL and verl strip, other splits).
Every import records its step numbering (``prm_probe.step_origin``, ``prm_probe.step_meaning``).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa

from prm_probe.core.rollouts import log_metadata, rollout_table, write_rollouts
from prm_probe.errors import SchemaError, UnknownNameError, close_matches
from prm_probe.integrations import tokens
from prm_probe.integrations.generic import read_generic
from prm_probe.integrations.grpo_prm import read_grpo_prm
from prm_probe.integrations.jsonl_ids import read_jsonl_ids
from prm_probe.integrations.records import STEP_MEANING, assign_groups, sniff_format, text_hash
from prm_probe.integrations.tokens import decode_ids, encode_texts
from prm_probe.integrations.trl.completions import read_trl
from prm_probe.integrations.verl import read_verl

__all__ = ["IMPORTERS", "decode_ids", "encode_texts", "import_log", "import_to_parquet", "sniff_format"]

logger = logging.getLogger(__name__)

#: The importers by format name; each reads a source into rows and a grouping plan (see the module docstring).
IMPORTERS: dict[str, Callable[..., tuple[pd.DataFrame, dict]]] = {
    "trl": read_trl, "verl": read_verl, "grpo-prm": read_grpo_prm, "jsonl-ids": read_jsonl_ids,
    "generic": read_generic,
}


def import_log(fmt: str, source, *, tokenizer=None, group_size: int | None = None,
               fields: dict[str, str] | None = None, run_id: str | None = None,
               reward_columns: list[str] | None = None, reward_weights: list[float] | None = None) -> pa.Table:
    """Import a foreign rollout log as a table in the canonical schema (see the module docstring).

    Args:
        reward_columns, reward_weights: TRL only: the reward functions' columns and the run's ``reward_weights``
            (default: every numeric column, weight 1; checked against TRL's logged advantage).

    Raises:
        UnknownNameError: ``fmt`` is not in :data:`IMPORTERS`.
        SchemaError: wrong format, missing fields, unequal groups where not allowed, no tokenizer for text, a
            reward that does not reproduce the logged advantage.
        LogReadError: the source cannot be read.
    """
    if fmt not in IMPORTERS:
        raise UnknownNameError(f"unknown import format {fmt!r}; expected one of {', '.join(IMPORTERS)}; "
                               f"{close_matches(fmt, IMPORTERS)}pick one of those")
    if group_size is not None and int(group_size) < 1:
        raise SchemaError(f"group_size {group_size}; expected a positive number; pass the run's num_generations")
    if fmt != "trl" and (reward_columns or reward_weights):
        raise SchemaError(f"--reward-columns/--reward-weights apply to format 'trl', not {fmt!r}; expected a TRL "
                          "completions log; drop them")
    df, plan = IMPORTERS[fmt](source, group_size=group_size, fields=fields, tokenizer=tokenizer,
                              reward_columns=reward_columns, reward_weights=reward_weights)
    if df["reward"].isna().any() or not pd.api.types.is_numeric_dtype(df["reward"]):
        raise SchemaError(f"'{source}' has missing or non-numeric rewards ({int(df['reward'].isna().sum())} "
                          "missing); expected a number per row; score every completion")
    df, meta = assign_groups(df, plan, str(source))
    if "check" in plan:
        plan["check"](df)
    meta.update({"prm_probe.import_format": fmt, "prm_probe.import_source": os.fspath(source)})
    meta.setdefault("prm_probe.step_meaning", STEP_MEANING[fmt])
    meta.update(plan.get("metadata", {}))
    if "completion_ids" in df:
        ids = df["completion_ids"].tolist()
        meta["prm_probe.token_source"] = "sampled"
        if tokenizer is not None and "completion" in df:  # both: measure how wrong a text-only import would be
            retok, _ = tokens.retokenize(df, tokenizer, fmt, warn=False)
            differ = sum(list(a) != list(b) for a, b in zip(ids, retok, strict=True))
            meta["prm_probe.retokenization_ids_differ"] = f"{differ} of {len(ids)}"
    else:
        ids, changed = tokens.retokenize(df, tokenizer, fmt)
        note = tokens.RETOKENIZATION_NOTES.get(plan.get("text_source", ""), "") + tokens.RETOKENIZATION_TAIL
        meta.update({"prm_probe.token_source": "retokenized", "prm_probe.retokenization_text_changed": str(changed),
                     "prm_probe.retokenization_note": note})
    if tokenizer is not None:
        meta["tokenizer"] = str(getattr(tokenizer, "name_or_path", "") or type(tokenizer).__name__)
        eos = getattr(tokenizer, "eos_token_id", None)
        if eos is not None:
            meta["eos_token_id"] = str(eos)
    if "prompt_id" in df:
        pid = df["prompt_id"].astype(str)
    elif "prompt" in df and df["prompt"].notna().all() and (df["prompt"] != "").any():
        pid = df["prompt"].map(text_hash)
    elif "prompt_ids" in df:
        pid = df["prompt_ids"].map(text_hash)
    else:
        pid = df["step"].astype(str) + ":" + df["group"].astype(str)
    pid = pid.groupby([df["step"], df["group"]], sort=False).transform("first")  # one prompt_id per group
    cols: dict[str, Any] = {
        "run_id": run_id or f"{fmt}:{Path(os.fspath(source)).name}", "step": df["step"].to_numpy(),
        "group": df["group"].to_numpy(), "sample": df["sample"].to_numpy(), "prompt_id": pid.tolist(),
        "completion_ids": ids, "reward": df["reward"].astype(float).to_numpy(),
    }
    for name in ("prompt", "prompt_ids", "completion", "finish_reason"):
        if name in df:
            cols[name] = df[name].tolist()
    if "advantage" in df:
        cols["advantage"] = df["advantage"].astype(float).to_numpy()
    if "epoch" in df:
        cols["epoch"] = df["epoch"].to_numpy()
    for c in sorted(c for c in df.columns if c.startswith("reward_")):
        cols[c] = df[c].astype(float).to_numpy()
    table = rollout_table(cols, num_rows=len(df))
    fixed = {k: meta.pop(k) for k in ("tokenizer", "eos_token_id") if k in meta}
    meta = log_metadata(token_source=meta.pop("prm_probe.token_source"), **fixed, **meta)
    return table.replace_schema_metadata({k.encode(): v.encode() for k, v in meta.items()})


def import_to_parquet(fmt: str, source, out: str | os.PathLike, **kw) -> Path:
    """Import ``source`` (see :func:`import_log`) and write it atomically as a Parquet rollout log."""
    table = import_log(fmt, source, **kw)
    meta = {k.decode(): v.decode() for k, v in (table.schema.metadata or {}).items()}
    return write_rollouts(table, out, metadata=meta)
