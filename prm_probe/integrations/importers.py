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

from prm_probe.core.files import read_jsonl_strict
from prm_probe.core.rollouts import log_metadata, resolve_log, rollout_table, write_rollouts
from prm_probe.errors import LogReadError, SchemaError, UnknownNameError, close_matches

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
    rows = [record for _, record in read_jsonl_strict(path, LogReadError)]
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


def _read_trl(source, *, group_size=None, tokenizer=None, reward_columns=None, reward_weights=None, fields=None,
              **_) -> tuple[pd.DataFrame, dict]:
    from prm_probe.integrations.trl import log as trl_log

    frames = []
    for f in _files(source, (".parquet", ".pq"), "trl"):
        try:
            frames.append((str(f), pq.read_table(f).to_pandas()))
        except (pa.ArrowInvalid, OSError) as exc:
            raise LogReadError(f"'{f}' is not a readable Parquet file ({str(exc).splitlines()[0]}); expected a TRL "
                               "completions_*.parquet; re-create it") from None
    for name, frame in frames:
        _require("trl", frame.columns, ["step", "prompt", "completion"], name)
    frames.sort(key=lambda item: int(item[1]["step"].min()) if len(item[1]) else -1)
    settings, group_size, reward_weights, chat_kwargs, settings_meta = _trl_settings(
        [name for name, _ in frames], group_size, reward_weights, fields or {})
    frames, eval_meta = _drop_evaluation_files(frames, fields or {}, settings)
    df, facts = trl_log.read_trl_frames(frames, tokenizer=tokenizer, chat_template_kwargs=chat_kwargs)
    candidates = trl_log.reward_columns(df)
    columns = list(reward_columns) if reward_columns else candidates
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise SchemaError(f"--reward-columns names {', '.join(missing)}, not in '{source}' (numeric columns: "
                          f"{', '.join(candidates) or 'none'}); expected the run's reward function names; fix the list")
    if not columns:
        raise SchemaError(f"'{source}' has no numeric reward column (found: {', '.join(map(str, df.columns))}); "
                          "expected one column per reward function; log completions with at least one reward function")
    weights = [1.0] * len(columns) if reward_weights is None else [float(w) for w in reward_weights]
    if len(weights) != len(columns):
        raise SchemaError(f"--reward-weights has {len(weights)} value(s) for {len(columns)} reward column(s) "
                          f"({', '.join(columns)}); expected one weight per column, in the same order; pass "
                          "--reward-columns with them")
    reward, partial, unscorable = trl_log.weighted_reward(df, columns, weights)
    scale_meta = _check_weight_scale(frames, settings, columns, weights, bool(partial or unscorable))
    if unscorable:
        raise SchemaError(f"{unscorable} completion(s) of '{source}' have no reward from any of {', '.join(columns)} "
                          "(every reward function returned None: TRL gives them advantage 0 and no reward); expected "
                          "a reward per completion; pass --reward-columns naming a function that scored them")
    if partial:
        logger.warning("trl: %d completion(s) lack some reward components (a reward function returned None); their "
                       "reward sums the others, as TRL's nansum does", partial)
    out = pd.DataFrame({"step": df["step"], "prompt": df["prompt"], "completion": df["completion"],
                        "reward": reward, "_key": df["_key"]})
    for r in columns:
        out[f"reward_{r}"] = df[r].astype(float)
    for r in candidates:  # for the advantage check's suggestions; not written
        out[f"_cand_{r}"] = df[r].astype(float)
    for extra in ("advantage", "prompt_ids"):
        if extra in df:
            out[extra] = df[extra]
    if trl_log.ID_COLUMN in df:
        out["completion_ids"] = df[trl_log.ID_COLUMN].map(_ids)
    every = None
    if settings is not None:  # one generation batch serves steps_per_generation × num_iterations optimiser steps
        every = int(settings.get("steps_per_generation") or 1) * int(settings.get("num_iterations") or 1)
    coverage, sample = trl_log.step_coverage(facts["steps"] + facts["repeated"], generation_every=every)
    if "prm_probe.trl_eval_steps_dropped" in eval_meta:  # those steps' training batches are not in the log
        lost = json.loads(eval_meta["prm_probe.trl_eval_steps_dropped"])
        coverage += (f"; the training batches of steps {trl_log._compact(lost)} are not in the log (TRL's evaluation "
                     "wrote over them)")
        sample = True
    meta = {"prm_probe.step_origin": "1", "prm_probe.step_meaning": STEP_MEANING["trl"],
            "prm_probe.step_coverage": coverage, "prm_probe.step_sample": str(sample).lower(),
            "prm_probe.trl_reward": " + ".join(f"{w:g}*{c}" for c, w in zip(columns, weights, strict=True))}
    meta.update(eval_meta)
    meta.update(settings_meta)
    meta.update(scale_meta)
    if facts["repeated"]:
        meta["prm_probe.trl_repeated_batches"] = json.dumps(facts["repeated"])
    if partial:
        meta["prm_probe.trl_partial_rewards"] = str(partial)
    if facts["conversational"]:
        meta["prm_probe.trl_prompt_ids"] = facts["prompt_ids"]

    normalised_first = settings is not None and settings.get("multi_objective_aggregation") == "normalize_then_sum"
    if normalised_first:
        meta["prm_probe.trl_advantage_check"] = ("skipped: the run normalised each reward function before summing "
                                                 "(multi_objective_aggregation 'normalize_then_sum'), so its "
                                                 "advantage is not the centred weighted reward")

    def check(grouped: pd.DataFrame) -> None:
        if "advantage" in grouped and not normalised_first:
            trl_log.check_advantages(grouped, columns=columns, weights=weights, user_columns=bool(reward_columns),
                                     candidates=candidates, group_size=group_size,
                                     unscaled=settings is not None and settings.get("scale_rewards") in ("none", False))
        elif group_size:
            _check_adjacent_blocks(grouped, group_size, str(source))

    plan = {"metadata": meta, "check": check, "text_source": "trl"}
    if group_size:
        return out, {**plan, "mode": "block", "group_size": group_size}
    logger.warning("trl: no group_size (num_generations) given; grouping by identical prompt text within a step")
    return out, {**plan, "mode": "key", "allow_unequal": True}


def _check_weight_scale(frames, settings, columns: list[str], weights: list[float], has_none: bool) -> dict[str, str]:
    """Where the reward weights' scale can be checked, check it; say in the metadata (and in one line) where not.

    Sources, in order: the run's saved ``reward_weights`` (already compared with what was passed), an unscaled
    advantage (``scale_rewards = "none"``: the advantage check is then exact), the per-function and total reward
    means in the run's ``trainer_state.json``.

    Raises:
        SchemaError: the logged means say the weights are a multiple of the run's.
    """
    from prm_probe.integrations.trl import log as trl_log

    if settings is not None and settings.get("reward_weights") is not None:
        return {"prm_probe.trl_weight_check": "the run's reward_weights (training_args.bin)"}
    if settings is not None and settings.get("scale_rewards") in ("none", False):
        return {"prm_probe.trl_weight_check": "exact: the run's advantages are unscaled (scale_rewards 'none')"}
    state, where = trl_log.run_state([name for name, _ in frames])
    if state is not None and not has_none:
        verdict, factor = trl_log.weight_scale_check(state, columns, weights)
        if verdict == "checked":
            return {"prm_probe.trl_weight_check": f"the logged reward means ({where})"}
        if verdict == "off":
            likely = ",".join(f"{w * factor:g}" for w in weights)
            raise SchemaError(f"the reward TRL logged ({where}) is {factor:.4g} times Σ weight × the logged mean of "
                              f"each reward function with --reward-weights {','.join(f'{w:g}' for w in weights)}: the "
                              f"run's weights are probably {likely}; expected the run's reward_weights; pass "
                              f"--reward-weights {likely}")
    note = ("not checked: the advantage is normalised and no training_args.bin or usable trainer_state.json is "
            "beside the log, so a constant factor on every weight cannot be seen (it scales every reward)")
    logger.warning("trl: reward weights' scale %s", note)
    return {"prm_probe.trl_weight_check": note}


def _trl_settings(files: list[str], group_size, reward_weights, fields: dict[str, str]):
    """The run's saved ``GRPOConfig`` (its newest checkpoint's ``training_args.bin``) against what the user passed.

    Returns ``(settings or None, group_size, reward_weights, chat_template_kwargs, metadata)``: the saved group size
    and weights where none were passed; a passed value that differs from the saved one is refused.

    Raises:
        SchemaError: ``--group-size`` or ``--reward-weights`` differ from the run's, or ``--field
            chat_template_kwargs`` is not a JSON object.
    """
    from prm_probe.integrations.trl.args import run_args

    settings, where = run_args(files)
    meta: dict[str, str] = {}
    kwargs_field = fields.get("chat_template_kwargs")
    chat_kwargs = None
    if kwargs_field is not None:
        try:
            chat_kwargs = json.loads(kwargs_field)
        except ValueError:
            chat_kwargs = None
        if not isinstance(chat_kwargs, dict):
            raise SchemaError(f"--field chat_template_kwargs={kwargs_field!r}; expected a JSON object, as in the "
                              "run's GRPOConfig; fix the value, e.g. '{\"enable_thinking\": false}'")
    if settings is None:
        return None, group_size, reward_weights, chat_kwargs, meta
    meta["prm_probe.trl_settings"] = where
    saved_g = settings.get("num_generations")
    if group_size is not None and saved_g is not None and int(group_size) != int(saved_g):
        raise SchemaError(f"--group-size {group_size} but the run's num_generations is {saved_g} ({where}); expected "
                          f"the run's; drop --group-size or pass {saved_g}")
    saved_w = settings.get("reward_weights")
    if reward_weights is not None and saved_w is not None and \
            [float(w) for w in reward_weights] != [float(w) for w in saved_w]:
        raise SchemaError(f"--reward-weights {','.join(f'{w:g}' for w in reward_weights)} but the run's reward_weights "
                          f"are {','.join(f'{float(w):g}' for w in saved_w)} ({where}); expected the run's; drop "
                          "--reward-weights or pass the run's")
    saved_kwargs = settings.get("chat_template_kwargs")
    if isinstance(saved_kwargs, str):
        try:
            saved_kwargs = json.loads(saved_kwargs)
        except ValueError:
            saved_kwargs = None
    if chat_kwargs is not None and saved_kwargs and chat_kwargs != saved_kwargs:
        raise SchemaError(f"--field chat_template_kwargs={json.dumps(chat_kwargs)} but the run's are "
                          f"{json.dumps(saved_kwargs)} ({where}); expected the run's; drop the field")
    return (settings, group_size if group_size is not None else saved_g,
            reward_weights if reward_weights is not None else saved_w,
            chat_kwargs if chat_kwargs is not None else (saved_kwargs or {}), meta)


def _drop_evaluation_files(frames: list[tuple[str, pd.DataFrame]], fields: dict[str, str],
                           settings: dict[str, Any] | None = None
                           ) -> tuple[list[tuple[str, pd.DataFrame]], dict[str, str]]:
    """Leave out the completions files TRL's evaluation wrote over a training step's file (never training data).

    The evaluation steps come from the run's ``trainer_state.json`` (:func:`~prm_probe.integrations.trl.log.
    run_state`), or from ``--field eval_steps=N`` (every N-th step) / ``--field eval_steps=none`` (no evaluation).
    Without either the log is imported with metadata ``prm_probe.trl_eval_check`` saying it could not be checked.
    """
    from prm_probe.integrations.trl import log as trl_log

    steps = {name: int(frame["step"].max()) for name, frame in frames if len(frame)}
    last = max(steps.values(), default=0)
    declared = fields.get("eval_steps")
    if declared is not None:
        if declared.strip().lower() == "none":
            return frames, {"prm_probe.trl_eval_check": "no evaluation (declared with --field eval_steps=none)"}
        if not declared.strip().isdigit() or int(declared) < 1:
            raise SchemaError(f"--field eval_steps={declared!r}; expected a positive integer (the run's eval_steps) "
                              "or 'none'; fix the field")
        every = int(declared)
        evals, how = set(range(every, last + 1, every)), f"every {every}th step (declared with --field eval_steps)"
    else:
        state, where = trl_log.run_state([name for name, _ in frames])
        if state is not None:
            evals, how = trl_log.evaluation_steps(state, last)
            how += f" ({where})"
        elif settings is not None:  # no state, but the saved GRPOConfig says whether and how often it evaluated
            every = int(settings.get("eval_steps") or 0)
            if settings.get("eval_strategy") != "steps" or every < 1:
                return frames, {"prm_probe.trl_eval_check": f"no evaluation by steps (eval_strategy "
                                                            f"{settings.get('eval_strategy')!r} in the run's "
                                                            "training_args.bin)"}
            evals, how = set(range(every, last + 1, every)), f"every {every}th step (eval_steps, training_args.bin)"
        else:
            note = ("not checked: no trainer_state.json or training_args.bin beside the log, so completions files "
                    "that an evaluation (eval_strategy) wrote over a training step's file cannot be told apart")
            logger.warning("trl: %s; pass --field eval_steps=N (the run's eval_steps) or --field eval_steps=none",
                           note)
            return frames, {"prm_probe.trl_eval_check": note}
    dropped = sorted(s for s in steps.values() if s in evals)
    if not dropped:
        return frames, {"prm_probe.trl_eval_check": f"no completions file at an evaluation step; {how}"}
    if len(dropped) == len(steps):
        raise SchemaError(f"every completions file of the log is at an evaluation step ({how}): they hold "
                          "evaluation completions, not training batches; expected training steps; point at the "
                          "run's completions folder or log with logging_steps that differ from eval_steps")
    logger.warning("trl: left out %d completions file(s) written at evaluation steps %s (%s): TRL's evaluation "
                   "overwrote their training batches", len(dropped), trl_log._compact(dropped), how)
    kept = [(n, f) for n, f in frames if not (len(f) and int(f["step"].max()) in dropped)]
    return kept, {"prm_probe.trl_eval_check": how, "prm_probe.trl_eval_steps_dropped": json.dumps(dropped)}


def _check_adjacent_blocks(df: pd.DataFrame, size: int, where: str) -> None:
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


#: What the ``step`` column of an imported log counts, per format (kept in metadata ``prm_probe.step_meaning``).
STEP_MEANING = {
    "trl": "TRL's global_step when the completions file was written: the optimiser step (from 1) that used the batch",
    "verl": "verl's global_steps (from 1): the training step that generated the batch",
    "grpo-prm": "steps numbered from 0 over the stats.json's epochs (the authors' loop counts from 0 in each epoch)",
    "jsonl-ids": "the step field as logged",
    "generic": "the step field as logged",
}
STEP_ORIGIN = {"trl": "1", "verl": "1", "grpo-prm": "0"}


def _read_verl(source, *, group_size=None, **_) -> tuple[pd.DataFrame, dict]:
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
    # verl reorders the batch (trainer.balance_batch) before dumping it, so a group's rows are not contiguous and
    # its uid is not dumped: groups can only be rebuilt from the prompt text.
    plan = {"mode": "key", "allow_unequal": True, "text_source": "verl", "group_size": group_size,
            "metadata": {"prm_probe.step_origin": "1", "prm_probe.step_meaning": STEP_MEANING["verl"]}}
    return out, plan


def _read_grpo_prm(source, *, group_size=None, fields=None, **_) -> tuple[pd.DataFrame, dict]:
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


def _read_jsonl_ids(source, **_) -> tuple[pd.DataFrame, dict]:
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


def _read_generic(source, *, group_size=None, fields=None, **_) -> tuple[pd.DataFrame, dict]:
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
    return out.assign(_key=out["prompt"]), {"mode": "key", "allow_unequal": True, "text_source": "generic"}


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


#: What a re-tokenised log cannot tell, per source format (metadata ``prm_probe.retokenization_note``).
_DROPPED_EOS = ("{who} decodes completions with skip_special_tokens=True, so the EOS that ended a completion is not in "
                "the text and is missing from every re-tokenised completion that stopped; ")
RETOKENIZATION_NOTES = {
    "trl": _DROPPED_EOS.format(who="TRL"),
    "verl": _DROPPED_EOS.format(who="verl"),
    "grpo-prm": "the authors' code decodes prompt + completion with special tokens kept, so the EOS survives; ",
}
_RETOKENIZATION_TAIL = ("encoding text can also split it differently from the sampler (e.g. '\\n\\n' as one token or "
                        "two), so ids can differ where the text round-trips: shared prefixes and depths are close, "
                        "|λ| near the ends of completions and exact duplicates are not reliable")


def _backend(tokenizer):
    """The Rust ``tokenizers.Tokenizer`` behind a Hugging Face fast tokenizer, or None."""
    return getattr(tokenizer, "backend_tokenizer", None) if getattr(tokenizer, "is_fast", False) else None


def encode_texts(tokenizer, texts: list[str]) -> list[list[int]]:
    """``tokenizer.encode(text, add_special_tokens=False)`` for every text, the same ids in one batched call where
    the tokenizer is a Hugging Face fast tokenizer (its Rust backend encodes the batch, in parallel)."""
    backend = _backend(tokenizer)
    if backend is not None:
        return [enc.ids for enc in backend.encode_batch(texts, add_special_tokens=False)]
    return [[int(i) for i in tokenizer.encode(text, add_special_tokens=False)] for text in texts]


def decode_ids(tokenizer, ids: list[list[int]]) -> list[str] | None:
    """``tokenizer.decode(ids)`` for every id list (batched where the tokenizer allows it; the same text: the
    Rust backend is used only where the tokenizer adds no clean-up of its own); None without a decoder."""
    backend = _backend(tokenizer)
    if backend is not None and not getattr(tokenizer, "clean_up_tokenization_spaces", False):
        return backend.decode_batch(ids, skip_special_tokens=False)
    if hasattr(tokenizer, "batch_decode"):
        return list(tokenizer.batch_decode(ids))
    decode = getattr(tokenizer, "decode", None)
    return None if decode is None else [decode(i) for i in ids]


def _retokenize(df: pd.DataFrame, tokenizer, fmt: str, warn: bool = True) -> tuple[list[list[int]], int]:
    if tokenizer is None:
        raise SchemaError(f"format '{fmt}' holds text, not token ids; it needs --tokenizer (tokenizer=) to "
                          "re-tokenise the completions; pass the policy's tokenizer")
    texts = df["completion"].fillna("").astype(str).tolist()
    unique = list(dict.fromkeys(texts))  # a converged policy repeats its completions: encode each text once
    enc = encode_texts(tokenizer, unique)
    back = decode_ids(tokenizer, enc)
    by_text = dict(zip(unique, enc, strict=True))
    ids = [list(by_text[t]) for t in texts]
    survives = {} if back is None else {t: b == t for t, b in zip(unique, back, strict=True)}
    changed = 0 if back is None else sum(not survives[t] for t in texts)
    if changed and warn:
        logger.warning("%s: re-tokenisation changed the text of %d of %d completion(s) (decode(encode(text)) != "
                       "text); statistics are approximate", fmt, changed, len(ids))
    return ids, changed


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
    df, meta = _groups(df, plan, str(source))
    if "check" in plan:
        plan["check"](df)
    meta.update({"prm_probe.import_format": fmt, "prm_probe.import_source": os.fspath(source)})
    meta.setdefault("prm_probe.step_meaning", STEP_MEANING[fmt])
    meta.update(plan.get("metadata", {}))
    if "completion_ids" in df:
        ids = df["completion_ids"].tolist()
        meta["prm_probe.token_source"] = "sampled"
        if tokenizer is not None and "completion" in df:  # both: measure how wrong a text-only import would be
            retok, _ = _retokenize(df, tokenizer, fmt, warn=False)
            differ = sum(list(a) != list(b) for a, b in zip(ids, retok, strict=True))
            meta["prm_probe.retokenization_ids_differ"] = f"{differ} of {len(ids)}"
    else:
        ids, changed = _retokenize(df, tokenizer, fmt)
        note = RETOKENIZATION_NOTES.get(plan.get("text_source", ""), "") + _RETOKENIZATION_TAIL
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
        pid = df["prompt"].map(_hash)
    elif "prompt_ids" in df:
        pid = df["prompt_ids"].map(_hash)
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
