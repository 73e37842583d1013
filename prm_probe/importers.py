"""Importers: convert other GRPO systems' rollout logs into prm_probe's canonical rollout table.

Formats (see ``docs/PEERS.md`` §1.5, §2.4, §4, §7):

``trl``
    TRL completions Parquet (``completions/completions_*.parquet``; a file, a folder or a glob): ``step``,
    ``prompt``, ``completion``, one column per reward function, optional ``advantage`` and ``log_extra``
    columns. Groups are consecutive blocks of ``group_size`` (``num_generations``) rows within a step; without
    ``group_size`` rows are grouped by identical prompt text within a step (with a warning). Reward = sum of
    the reward columns (each kept as ``reward_<name>``; reward columns are the numeric columns other than
    ``step``/``advantage``). Text only: needs a tokenizer.
``verl``
    ``trainer.rollout_data_dir`` JSONL dumps (``{global_step}.jsonl``): ``input``, ``output``, ``score``,
    ``step`` (+ ``gts`` and extra-info keys, ignored). ``prompt``/``response`` and ``reward`` are accepted as
    aliases (OpenRLHF batch_inference wrote ``input``/``output``/``reward``). The step is the ``step`` field,
    else the file name. Groups = identical ``input`` text within a step (identical prompts in one batch merge;
    unequal group sizes are recorded, not an error). Text only: needs a tokenizer.
``grpo-prm``
    coli-saar/grpo-prm ``stats.json`` (a file, or the folder holding it). Assumptions (PEERS.md §4 gives only
    this much): steps are numbered 0, 1, ... over ``epochs[*].steps`` in file order (the epoch is kept in an
    ``epoch`` column); ``instances`` are prompt-major blocks of ``args.group_size`` rows with equal ``idx``
    (``group_size=`` overrides; default 6); ``prompt_id`` = ``idx``; ``init_val`` and each epoch's
    ``validation`` entries (structure undocumented) are kept as JSON in metadata ``grpo_prm.validation``,
    with the epoch's first step and, for ``{"reward": ...}`` entries, their mean reward. ``query_response``
    holds prompt + completion: pass ``fields={"prompt_sep": TEXT}`` to split after the last occurrence of
    TEXT (e.g. the assistant header); otherwise the whole text is the completion (a warning says overlap
    statistics then include the prompt).
``jsonl-ids``
    open-instruct style JSONL with token ids: ``prompt_tokens``, ``response_tokens``, ``prompt_idx``,
    ``reward`` (or ``scores``), ``step``; optional ``sample_idx``, ``advantage``, ``finish_reason``. Ids are
    kept (token source "sampled"); groups = ``prompt_idx`` within a step (unequal sizes recorded: filtering
    may drop samples).
``generic``
    JSONL or CSV with field names given by ``fields={"step", "prompt", "completion", "completion_ids",
    "reward", "group", "sample", "prompt_id"}`` (defaults: the same names). Groups: ``group`` field, else
    blocks of ``group_size``, else identical prompt text.

Text re-tokenised with ``tokenizer.encode(text, add_special_tokens=False)``; rows whose
``decode(encode(text)) != text`` are counted in metadata ``prm_probe.retokenization_changed``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from prm_probe.errors import LogReadError, SchemaError, UnknownNameError, close_matches
from prm_probe.rollouts import resolve_log, write_rollouts
from prm_probe.schema import conform

__all__ = ["IMPORTERS", "import_log", "import_to_parquet", "sniff_format"]

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


def _require(fmt: str, keys, needed: list[str], where: str) -> None:
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


def _files(source, suffixes: tuple[str, ...], fmt: str) -> list[Path]:
    folder = Path(os.fspath(source))
    known = (*suffixes, ".parquet", ".pq", ".jsonl", ".ndjson", ".json", ".csv")
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in known
                   and not p.name.endswith(".meta.json")) if folder.is_dir() else list(resolve_log(source).files)
    if any(f.suffix.lower() in suffixes for f in files):
        files = [f for f in files if f.suffix.lower() in suffixes]
    wrong = [f for f in files if f.suffix.lower() not in suffixes]
    if wrong and wrong[0].suffix.lower() in (".parquet", ".pq"):  # say what the Parquet file looks like
        names = pq.read_schema(wrong[0]).names
        _require(fmt, names, [f"one of {'/'.join(suffixes)} files"], str(wrong[0]))
    if not files or wrong:
        shown = wrong[0] if wrong else source
        raise LogReadError(f"'{shown}' is not a {'/'.join(suffixes)} file; expected format '{fmt}' input; "
                           "check the path and the format name")
    return files


def _read_jsonl(path: Path) -> list[dict]:
    rows = []
    with open(path, encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise LogReadError(f"line {n} of '{path}' is not JSON ({exc.msg}); expected one JSON object per "
                                   "line; fix or remove that line") from None
            if not isinstance(obj, dict):
                raise LogReadError(f"line {n} of '{path}' holds a {type(obj).__name__}; expected a JSON object; "
                                   "write one object per line")
            rows.append(obj)
    if not rows:
        raise LogReadError(f"'{path}' holds no records; expected one JSON object per line; re-create it")
    return rows


def _records(source, fmt: str, csv: bool = False) -> pd.DataFrame:
    """All records of JSONL (or CSV) files as one DataFrame, with the file stem in ``_file``."""
    frames = []
    for f in _files(source, (".csv",) if csv else (".jsonl", ".ndjson", ".json"), fmt):
        df = pd.read_csv(f, dtype=str, keep_default_na=False) if csv else pd.DataFrame(_read_jsonl(f))
        frames.append(df.assign(_file=f.stem))
    return pd.concat(frames, ignore_index=True)


def _pick(keys, names: tuple[str, ...]) -> str | None:
    return next((n for n in names if n in keys), None)


def _ids(value) -> list[int]:
    if isinstance(value, str):
        value = json.loads(value)
    return [int(v) for v in value]


def _hash(value) -> str:
    text = value if isinstance(value, str) else json.dumps(value)
    return hashlib.sha1(text.encode("utf-8")).hexdigest()[:16]


# ----------------------------------------------------------------------------------------------- readers


def _read_trl(source, *, group_size=None, fields=None) -> tuple[pd.DataFrame, dict]:
    files = _files(source, (".parquet", ".pq"), "trl")
    frames = []
    for f in files:
        try:
            frames.append(pq.read_table(f).to_pandas())
        except (pa.ArrowInvalid, OSError) as exc:
            raise LogReadError(f"'{f}' is not a readable Parquet file ({str(exc).splitlines()[0]}); expected a TRL "
                               "completions_*.parquet; re-create it") from None
    df = pd.concat(frames, ignore_index=True)
    _require("trl", df.columns, ["step", "prompt", "completion"], str(source))
    if df["prompt"].map(lambda p: not isinstance(p, str)).any():  # structured chat prompts
        df["prompt"] = df["prompt"].map(lambda p: p if isinstance(p, str) else json.dumps(p, default=str))
    skip = {"step", "advantage"}
    rewards = [c for c in df.columns if c not in skip and pd.api.types.is_numeric_dtype(df[c])
               and not pd.api.types.is_bool_dtype(df[c])]
    if not rewards:
        raise SchemaError(f"'{source}' has no numeric reward column (found: {', '.join(df.columns)}); expected one "
                          "column per reward function; log completions with at least one reward function")
    out = pd.DataFrame({"step": df["step"], "prompt": df["prompt"], "completion": df["completion"],
                        "reward": df[rewards].sum(axis=1, min_count=len(rewards))})
    for r in rewards:
        out[f"reward_{r}"] = df[r].astype(float)
    if "advantage" in df:
        out["advantage"] = df["advantage"]
    out["_key"] = df["prompt"]
    if group_size:
        return out, {"mode": "block", "group_size": group_size}
    logger.warning("trl: no group_size (num_generations) given; grouping by identical prompt text within a step "
                   "(identical prompts in one batch merge)")
    return out, {"mode": "key", "allow_unequal": True}


def _read_verl(source, *, group_size=None, fields=None) -> tuple[pd.DataFrame, dict]:
    df = _records(source, "verl")
    keys = [c for c in df.columns if c != "_file"]
    p, c, r = _pick(keys, ("input", "prompt")), _pick(keys, ("output", "response")), _pick(keys, ("score", "reward"))
    if None in (p, c, r):
        _require("verl", keys, ["input", "output", "score"], str(source))
    step = pd.to_numeric(df["_file"], errors="coerce")
    if "step" in df:
        step = df["step"].fillna(step)
    if step.isna().any():
        raise SchemaError(f"'{source}' has no 'step' field and file '{df['_file'][step.isna()].iloc[0]}' is not "
                          "named {global_step}.jsonl; expected either; rename the file to its step")
    out = pd.DataFrame({"step": step, "prompt": df[p], "completion": df[c], "reward": df[r], "_key": df[p]})
    logger.warning("verl: groups rebuilt from identical prompt text within a step; identical prompts in one "
                   "batch merge into one group")
    return out, {"mode": "key", "allow_unequal": True}


def _read_grpo_prm(source, *, group_size=None, fields=None) -> tuple[pd.DataFrame, dict]:
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
    _require("grpo-prm", data.keys(), ["epochs"], str(path))
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
                _require("grpo-prm", inst.keys(), ["idx", "query_response", "reward"], f"{path} step {step}")
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
    return pd.DataFrame(rows), {"mode": "block", "group_size": int(size),
                                "metadata": {"grpo_prm.validation": _grpo_prm_validation(data)}}


def _grpo_prm_validation(data: dict) -> str:
    """The run's validation record as JSON: ``init_val``, and per epoch its first step, the raw entries and,
    when the entries are ``{"reward": ...}`` objects, their mean reward."""
    epochs, first = [], 0
    for e, epoch in enumerate(data["epochs"]):
        entries = epoch.get("validation")
        rewards = [v["reward"] for v in entries if isinstance(v, dict) and isinstance(v.get("reward"), int | float)] \
            if isinstance(entries, list) else []
        epochs.append({"epoch": e, "first_step": first, "entries": entries,
                       "reward_mean": float(np.mean(rewards)) if rewards else None})
        first += len(epoch.get("steps", []))
    return json.dumps({"init_val": data.get("init_val"), "epochs": epochs})


def _read_jsonl_ids(source, *, group_size=None, fields=None) -> tuple[pd.DataFrame, dict]:
    df = _records(source, "jsonl-ids")
    keys = [c for c in df.columns if c != "_file"]
    r = _pick(keys, ("reward", "scores"))
    _require("jsonl-ids", keys, ["step", "prompt_idx", "prompt_tokens", "response_tokens", r or "reward"],
             str(source))
    reward = df[r].map(lambda v: float(sum(v)) if isinstance(v, list) else v)
    out = pd.DataFrame({"step": df["step"], "prompt_ids": df["prompt_tokens"].map(_ids),
                        "completion_ids": df["response_tokens"].map(_ids), "reward": reward,
                        "_key": df["prompt_idx"]})
    for col, name in (("sample_idx", "sample"), ("advantage", "advantage"), ("finish_reason", "finish_reason")):
        if col in df:
            out[name] = df[col]
    return out, {"mode": "key", "allow_unequal": True}


_GENERIC = ("step", "prompt", "completion", "completion_ids", "reward", "group", "sample", "prompt_id")


def _read_generic(source, *, group_size=None, fields=None) -> tuple[pd.DataFrame, dict]:
    names = {k: k for k in _GENERIC} | dict(fields or {})
    unknown = set(names) - set(_GENERIC)
    if unknown:
        raise SchemaError(f"unknown fields key(s) {sorted(unknown)}; expected some of {', '.join(_GENERIC)}; "
                          f"{close_matches(sorted(unknown)[0], _GENERIC)}fix the fields mapping")
    csv = all(f.suffix.lower() == ".csv" for f in resolve_log(source).files) if not Path(
        os.fspath(source)).is_dir() else any(Path(os.fspath(source)).rglob("*.csv"))
    df = _records(source, "generic", csv=csv)
    text = names["completion"] in df
    needed = [names["step"], names["reward"], names["completion"] if text else names["completion_ids"]]
    _require("generic", [c for c in df.columns if c != "_file"], needed, str(source))
    num = (lambda c: pd.to_numeric(df[c], errors="coerce")) if csv else (lambda c: df[c])
    out = pd.DataFrame({"step": num(names["step"]), "reward": num(names["reward"])})
    if names["completion_ids"] in df:
        out["completion_ids"] = df[names["completion_ids"]].map(_ids)
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
        _require("generic", df.columns, [names["group"]], str(source))
    logger.warning("generic: no group field or group_size; grouping by identical prompt text within a step")
    return out.assign(_key=out["prompt"]), {"mode": "key", "allow_unequal": True}


IMPORTERS: dict[str, Callable[..., tuple[pd.DataFrame, dict]]] = {
    "trl": _read_trl, "verl": _read_verl, "grpo-prm": _read_grpo_prm, "jsonl-ids": _read_jsonl_ids,
    "generic": _read_generic,
}


# ------------------------------------------------------------------------------------------- assembling


def _groups(df: pd.DataFrame, plan: dict, where: str) -> tuple[pd.DataFrame, dict[str, str]]:
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
    keys = df["_key"].map(lambda k: k if isinstance(k, (str, int, float)) else json.dumps(k, default=str))
    df["group"] = keys.groupby(df["step"], sort=False).transform(lambda s: pd.factorize(s)[0]).astype(np.int64)
    order = ["step", "group"] + (["sample"] if "sample" in df else [])
    df = df.sort_values(order, kind="stable").reset_index(drop=True)
    df["sample"] = df.groupby(["step", "group"]).cumcount()
    sizes = df.groupby(["step", "group"]).size()
    if sizes.nunique() > 1:
        counts = {int(k): int(v) for k, v in sizes.value_counts().sort_index().items()}
        msg = f"groups of unequal size in '{where}': {counts} (size: number of groups)"
        if not plan.get("allow_unequal"):
            raise SchemaError(f"{msg}; expected equal groups; fix the grouping")
        logger.warning("%s; recorded in metadata prm_probe.unequal_groups, not padded", msg)
        meta["prm_probe.unequal_groups"] = json.dumps(counts)
    return df, meta


def _retokenize(df: pd.DataFrame, tokenizer, fmt: str) -> tuple[list[list[int]], int]:
    if tokenizer is None:
        raise SchemaError(f"format '{fmt}' holds text, not token ids; it needs --tokenizer (tokenizer=) to "
                          "re-tokenise the completions; pass the policy's tokenizer")
    ids, changed = [], 0
    decode = getattr(tokenizer, "decode", None)
    for text in df["completion"].fillna("").astype(str):
        enc = [int(i) for i in tokenizer.encode(text, add_special_tokens=False)]
        if decode is not None and decode(enc) != text:
            changed += 1
        ids.append(enc)
    if changed:
        logger.warning("%s: re-tokenisation changed the text of %d of %d completion(s) (decode(encode(text)) != "
                       "text); statistics are approximate", fmt, changed, len(ids))
    return ids, changed


def import_log(fmt: str, source, *, tokenizer=None, group_size: int | None = None,
               fields: dict[str, str] | None = None, run_id: str | None = None) -> pa.Table:
    """Import a foreign rollout log as a table in the canonical schema (see the module docstring).

    Raises:
        UnknownNameError: ``fmt`` is not in :data:`IMPORTERS`.
        SchemaError: wrong format, missing fields, unequal groups where not allowed, no tokenizer for text.
        LogReadError: the source cannot be read.
    """
    if fmt not in IMPORTERS:
        raise UnknownNameError(f"unknown import format {fmt!r}; expected one of {', '.join(IMPORTERS)}; "
                               f"{close_matches(fmt, IMPORTERS)}pick one of those")
    if group_size is not None and int(group_size) < 1:
        raise SchemaError(f"group_size {group_size}; expected a positive number; pass the run's num_generations")
    df, plan = IMPORTERS[fmt](source, group_size=group_size, fields=fields)
    if df["reward"].isna().any() or not pd.api.types.is_numeric_dtype(df["reward"]):
        raise SchemaError(f"'{source}' has missing or non-numeric rewards ({int(df['reward'].isna().sum())} "
                          "missing); expected a number per row; score every completion")
    df, meta = _groups(df, plan, str(source))
    meta.update({"prm_probe.import_format": fmt, "prm_probe.import_source": os.fspath(source)})
    meta.update(plan.get("metadata", {}))
    if "completion_ids" in df:
        ids = df["completion_ids"].tolist()
        meta["prm_probe.token_source"] = "sampled"
    else:
        ids, changed = _retokenize(df, tokenizer, fmt)
        meta.update({"prm_probe.token_source": "retokenized", "prm_probe.retokenization_changed": str(changed)})
    if tokenizer is not None:
        meta["tokenizer"] = str(getattr(tokenizer, "name_or_path", "") or type(tokenizer).__name__)
        eos = getattr(tokenizer, "eos_token_id", None)
        if eos is not None:
            meta["eos_token_id"] = str(eos)
    if "prompt_id" in df:
        pid = df["prompt_id"].astype(str)
    elif "prompt" in df and df["prompt"].notna().all() and (df["prompt"] != "").any():
        pid = df["prompt"].map(_hash)
    elif "prompt_ids" in df:
        pid = df["prompt_ids"].map(_hash)
    else:
        pid = df["step"].astype(str) + ":" + df["group"].astype(str)
    pid = pid.groupby([df["step"], df["group"]], sort=False).transform("first")  # one prompt_id per group
    cols: dict[str, Any] = {
        "run_id": pa.array([run_id or f"{fmt}:{Path(os.fspath(source)).name}"] * len(df), pa.string()),
        "step": pa.array(df["step"].to_numpy(), pa.int32()),
        "group": pa.array(df["group"].to_numpy(), pa.int32()),
        "sample": pa.array(df["sample"].to_numpy(), pa.int16()),
        "prompt_id": pa.array(pid.tolist(), pa.string()),
        "completion_ids": pa.array(ids, pa.list_(pa.int32())),
        "reward": pa.array(df["reward"].astype(float).to_numpy(), pa.float64()),
    }
    if "prompt" in df:
        cols["prompt"] = pa.array(df["prompt"].tolist(), pa.string())
    if "prompt_ids" in df:
        cols["prompt_ids"] = pa.array(df["prompt_ids"].tolist(), pa.list_(pa.int32()))
    if "completion" in df:
        cols["completion"] = pa.array(df["completion"].tolist(), pa.string())
    if "finish_reason" in df:
        cols["finish_reason"] = pa.array(df["finish_reason"].tolist(), pa.string())
    if "advantage" in df:
        cols["advantage"] = pa.array(df["advantage"].astype(float).to_numpy(), pa.float32())
    if "epoch" in df:
        cols["epoch"] = pa.array(df["epoch"].to_numpy(), pa.int32())
    for c in sorted(c for c in df.columns if c.startswith("reward_")):
        cols[c] = pa.array(df[c].astype(float).to_numpy(), pa.float64())
    table = conform(pa.table(cols))
    return table.replace_schema_metadata({k.encode(): v.encode() for k, v in meta.items()})


def import_to_parquet(fmt: str, source, out: str | os.PathLike, **kw) -> Path:
    """Import ``source`` (see :func:`import_log`) and write it atomically as a Parquet rollout log."""
    table = import_log(fmt, source, **kw)
    meta = {k.decode(): v.decode() for k, v in (table.schema.metadata or {}).items()}
    return write_rollouts(table, out, metadata=meta)
