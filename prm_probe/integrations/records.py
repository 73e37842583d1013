"""Reading other trainers' records, shared by the importers: finding a source's files, reading JSONL and CSV
records, naming missing fields (and the format the data looks like), and rebuilding groups within a step."""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from prm_probe.core.files import read_jsonl_strict
from prm_probe.core.rollouts import resolve_log
from prm_probe.errors import LogReadError, SchemaError

__all__ = ["STEP_MEANING", "assign_groups", "check_adjacent_blocks", "pick", "read_records", "require_fields",
           "sniff_format", "source_files", "text_hash", "token_ids"]

logger = logging.getLogger(__name__)


#: Fields that identify a format, used to tell the user which format a file looks like.
_SIGNATURES: list[tuple[str, tuple[str, ...], str]] = [
    ("grpo-prm", ("epochs",), "a grpo-prm stats.json"),
    ("jsonl-ids", ("prompt_tokens", "response_tokens"), "an open-instruct style token-id JSONL"),
    ("verl", ("input", "output", "score"), "a verl dump"),
    ("trl", ("step", "prompt", "completion"), "a TRL completions table"),
    ("", ("run_id", "completion_ids", "reward"), "a prm_probe rollout log already"),
]


def sniff_format(keys) -> tuple[str, str, tuple[str, ...]] | None:
    """Return ``(format, description, fields)`` of the first format whose fields all appear in ``keys``."""
    keys = set(keys)
    for fmt, need, desc in _SIGNATURES:
        if set(need) <= keys:
            return fmt, desc, need
    return None


def require_fields(fmt: str, keys, needed: list[str], where: str) -> None:
    """Raise SchemaError naming the missing fields, and the format the data looks like, if any."""
    missing = [k for k in needed if k not in set(keys)]
    if not missing:
        return
    found = ", ".join(sorted(map(str, keys))) or "none"
    guess = sniff_format(keys)
    if guess and guess[0] != fmt:
        how = f"use format '{guess[0]}'" if guess[0] else "use it directly, without importing"
        raise SchemaError(f"'{where}' has fields {found}, not the {', '.join(needed)} of format '{fmt}'; this looks "
                          f"like {guess[1]} (fields {'/'.join(guess[2])}); {how}")
    raise SchemaError(f"'{where}' lacks field(s) {', '.join(repr(m) for m in missing)} (found: {found}); expected "
                      f"{', '.join(needed)} for format '{fmt}'; pick the right format or map names with fields=")


def source_files(source, suffixes: tuple[str, ...], fmt: str) -> list[Path]:
    folder = Path(os.fspath(source))
    known = (*suffixes, ".parquet", ".pq", ".jsonl", ".ndjson", ".json", ".csv")
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in known
                   and not p.name.endswith(".meta.json")) if folder.is_dir() else list(resolve_log(source).files)
    if any(f.suffix.lower() in suffixes for f in files):
        files = [f for f in files if f.suffix.lower() in suffixes]
    wrong = [f for f in files if f.suffix.lower() not in suffixes]
    if wrong and wrong[0].suffix.lower() in (".parquet", ".pq"):  # say what the Parquet file looks like
        names = pq.read_schema(wrong[0]).names
        require_fields(fmt, names, [f"one of {'/'.join(suffixes)} files"], str(wrong[0]))
    if not files or wrong:
        shown = wrong[0] if wrong else source
        raise LogReadError(f"'{shown}' is not a {'/'.join(suffixes)} file; expected format '{fmt}' input; "
                           "check the path and the format name")
    return files


def _read_jsonl(path: Path) -> list[dict]:
    rows = [record for _, record in read_jsonl_strict(path, LogReadError)]
    if not rows:
        raise LogReadError(f"'{path}' holds no records; expected one JSON object per line; re-create it")
    return rows


def read_records(source, fmt: str, csv: bool = False) -> pd.DataFrame:
    """All records of JSONL (or CSV) files as one DataFrame, with the file stem in ``_file``."""
    frames = []
    for f in source_files(source, (".csv",) if csv else (".jsonl", ".ndjson", ".json"), fmt):
        df = pd.read_csv(f, dtype=str, keep_default_na=False) if csv else pd.DataFrame(_read_jsonl(f))
        frames.append(df.assign(_file=f.stem))
    return pd.concat(frames, ignore_index=True)


def pick(keys, names: tuple[str, ...]) -> str | None:
    return next((n for n in names if n in keys), None)


def token_ids(value) -> list[int]:
    if isinstance(value, str):
        value = json.loads(value)
    return [int(v) for v in value]


def text_hash(value) -> str:
    text = value if isinstance(value, str) else json.dumps(value)
    return hashlib.sha1(text.encode("utf-8")).hexdigest()[:16]


#: What the ``step`` column of an imported log counts, per format (kept in metadata ``prm_probe.step_meaning``).
STEP_MEANING = {
    "trl": "TRL's global_step when the completions file was written: the optimiser step (from 1) that used the batch",
    "verl": "verl's global_steps (from 1): the training step that generated the batch",
    "grpo-prm": "steps numbered from 0 over the stats.json's epochs (the authors' loop counts from 0 in each epoch)",
    "jsonl-ids": "the step field as logged",
    "generic": "the step field as logged",
}


def check_adjacent_blocks(df: pd.DataFrame, size: int, where: str) -> None:
    """Blocks of one step that follow each other with the same prompt: the block size is smaller than the group."""
    keys = df["_key"].map(lambda k: k if isinstance(k, str | int | float) else json.dumps(k, default=str))
    first = df.assign(_k=keys).groupby(["step", "group"], sort=True)["_k"].first().reset_index()
    same = (first["_k"] == first["_k"].shift()) & (first["step"] == first["step"].shift())
    if same.any():
        row = first[same].iloc[0]
        run = int(keys[(df["step"] == row["step"]) & (keys == row["_k"])].size)
        raise SchemaError(f"blocks {int(row['group']) - 1} and {int(row['group'])} of step {int(row['step'])} in "
                          f"'{where}' share one prompt ({run} consecutive rows have it); --group-size {size} looks "
                          f"smaller than the run's groups; expected one block per prompt; pass --group-size {run} "
                          "(TRL's num_generations)")


def assign_groups(df: pd.DataFrame, plan: dict, where: str) -> tuple[pd.DataFrame, dict[str, str]]:
    """Assign ``group`` and ``sample`` per step; check or record group sizes."""
    df = df.reset_index(drop=True)
    if df["step"].isna().any():
        raise SchemaError(f"'{where}' has {int(df['step'].isna().sum())} row(s) without a step; expected a step "
                          "in every row; fill it in")
    df["step"] = df["step"].astype(np.int64)
    df = df.iloc[np.argsort(df["step"].to_numpy(), kind="stable")].reset_index(drop=True)
    meta: dict[str, str] = {}
    if plan["mode"] == "block":
        size = int(plan["group_size"])
        pos = df.groupby("step", sort=False).cumcount().to_numpy()
        counts = df.groupby("step", sort=False)["step"].size()
        bad = counts[counts % size != 0]
        if len(bad):
            raise SchemaError(f"step {int(bad.index[0])} of '{where}' has {int(bad.iloc[0])} rows, not a multiple "
                              f"of group_size {size} (unequal groups in {len(bad)} step(s)); expected whole groups; "
                              "pass the run's num_generations/group_size")
        df["group"], df["sample"] = pos // size, pos % size
        if "_key" in df:
            keys = df["_key"].map(lambda k: k if isinstance(k, (str, int, float)) else json.dumps(k, default=str))
            mixed = keys.groupby([df["step"], df["group"]]).nunique()
            if (mixed > 1).any():
                s, g = mixed[mixed > 1].index[0]
                raise SchemaError(f"block {g} of step {s} in '{where}' mixes {int(mixed.max())} prompts; expected "
                                  f"blocks of {size} rows with one prompt; check group_size")
        return df, meta
    keys = df["_key"].map(lambda k: k if isinstance(k, (str, int, float)) else json.dumps(k, default=str)).astype(str)
    size = plan.get("group_size")
    if size:  # a known group size: a prompt that came in several groups has a multiple of its rows
        counts = keys.groupby(df["step"]).value_counts()
        bad = counts[counts % size != 0]
        if len(bad):
            (s, _), n = bad.index[0], int(bad.iloc[0])
            raise SchemaError(f"a prompt of step {s} in '{where}' has {n} rows, not a multiple of --group-size {size}; "
                              "expected whole groups per prompt; pass the run's group size (verl: rollout.n)")
        multi = counts[counts > size]
        if len(multi) and len(multi) == len(counts):  # every prompt came in several groups: the size is too small
            likely = int(np.gcd.reduce(counts.to_numpy()))
            raise SchemaError(f"every prompt of '{where}' has a multiple of --group-size {size} rows "
                              f"({', '.join(map(str, sorted(set(counts.tolist()))[:4]))}): the group size is probably "
                              f"{likely}, not {size}; expected one group per prompt; pass --group-size {likely} "
                              "(verl: actor_rollout_ref.rollout.n)")
        if len(multi):
            logger.warning("%d prompt(s) came in several groups within a step (%d rows each at most); their rows "
                           "were split into groups of %d in file order: the log does not record which rows shared a "
                           "group, so those groups' membership is arbitrary", len(multi), int(multi.max()), size)
            meta["prm_probe.split_prompts"] = str(len(multi))
        keys = keys + "\x00" + (keys.groupby([df["step"], keys]).cumcount() // size).astype(str)
    df["group"] = keys.groupby(df["step"], sort=False).transform(lambda s: pd.factorize(s)[0]).astype(np.int64)
    order = ["step", "group"] + (["sample"] if "sample" in df else [])
    df = df.sort_values(order, kind="stable").reset_index(drop=True)
    df["sample"] = df.groupby(["step", "group"]).cumcount()
    sizes = df.groupby(["step", "group"]).size()
    if not size and sizes.nunique() > 1:
        modal = int(sizes.mode().iloc[0])
        merged = sizes[(sizes > modal) & (sizes % modal == 0)]
        if len(merged):
            logger.warning("%d group(s) are a multiple of the usual size %d: identical prompts in one batch merged "
                           "into one group; pass --group-size to split them", len(merged), modal)
            meta["prm_probe.merged_groups"] = str(len(merged))
    if sizes.nunique() > 1:
        counts = {int(k): int(v) for k, v in sizes.value_counts().sort_index().items()}
        msg = f"groups of unequal size in '{where}': {counts} (size: number of groups)"
        if not plan.get("allow_unequal"):
            raise SchemaError(f"{msg}; expected equal groups; fix the grouping")
        logger.warning("%s; recorded in metadata prm_probe.unequal_groups, not padded", msg)
        meta["prm_probe.unequal_groups"] = json.dumps(counts)
    return df, meta
