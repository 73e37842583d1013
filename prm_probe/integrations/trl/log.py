"""TRL's completions log: what a plain ``GRPOTrainer`` writes, how prm_probe reads it, and how to make it exact.

What TRL 1.16 writes with ``log_completions=True`` (``GRPOTrainer.log``, read in its source and checked by
running it, ``tests/test_trl_import.py``): at every **logging** step, ``{output_dir}/completions/
completions_{global_step:05d}.parquet`` holding the **last generation batch** (a deque of
``generation_batch_size`` rows, all processes gathered, prompt-major: G consecutive rows per prompt), with

* ``step``: the global step at logging time, counted from 1 (the update that consumed the batch);
* ``prompt`` / ``completion``: text, or for conversational data ``list<struct<role, content>>`` messages (the
  completion is one assistant message). Completion text is decoded with ``skip_special_tokens=True``, so the
  EOS that ended a completion is not in it;
* one float column per reward function (NaN where it returned None), **unweighted**;
* the numeric or text columns reward functions added with ``log_extra``;
* ``advantage``: the advantage TRL trained with (group-normalised weighted reward).

Consequences the reader handles: with ``num_iterations > 1`` (or ``steps_per_generation > 1``) consecutive files
repeat one generation batch (kept once); with ``logging_steps = k > 1`` only every k-th step is in the log (a
sample of the run, said in the metadata); with ``eval_strategy`` the evaluation writes its own completions over
the training batch's file of the same step (``GRPOTrainer.log`` in eval mode, right after the training log), so
those files are left out, found from the run's ``trainer_state.json`` (:func:`run_state`, :func:`evaluation_steps`)
or declared with ``--field eval_steps``; the reward is TRL's ``nansum`` of the weighted reward columns, which
needs the run's ``reward_weights`` and the names of the reward columns (``log_extra`` columns are not rewards):
the reader checks the imported reward against the logged ``advantage`` and refuses when they disagree.

:func:`record_completion_ids` is a reward function that rewards nothing and logs the sampled token ids, so a
plain TRL run's own files carry exact ids (no re-tokenisation).
"""

from __future__ import annotations

import itertools
import json
import logging
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from prm_probe.errors import ConfigError, SchemaError

__all__ = ["ID_COLUMN", "RECORDER", "check_advantages", "evaluation_steps", "read_trl_frames", "record_completion_ids",
           "run_state", "weight_scale_check"]

logger = logging.getLogger("prm_probe.integrations.importers")

#: The name of the recorder's reward column, and of the column of sampled ids it writes.
RECORDER = "record_completion_ids"
ID_COLUMN = "completion_ids"
_NOT_REWARDS = {"step", "advantage", RECORDER, ID_COLUMN}


def record_completion_ids(prompts: Sequence[Any] | None = None, completions: Sequence[Any] | None = None,
                          completion_ids: Sequence[Sequence[int]] | None = None, log_extra=None,
                          **_: Any) -> list[None]:
    """A TRL reward function that rewards nothing and logs each completion's sampled token ids.

    Add it to ``reward_funcs`` of a ``GRPOTrainer`` run with ``log_completions=True`` (give it any weight in
    ``reward_weights``: it returns None for every completion, which TRL leaves out of the reward). Each
    completions file then holds a ``completion_ids`` column with the ids TRL sampled (EOS included), and
    ``prm-probe import trl`` uses them instead of re-tokenising the text (``prm_probe.token_source = sampled``).

    Returns:
        ``[None] * len(completion_ids)``.
    """
    if log_extra is None or completion_ids is None:
        raise ConfigError("record_completion_ids got no log_extra or completion_ids from the trainer; expected "
                          "TRL's GRPOTrainer (1.16 or later) to pass both to reward functions; use it as one of "
                          "GRPOTrainer's reward_funcs")
    log_extra(ID_COLUMN, [[int(t) for t in ids] for ids in completion_ids])
    return [None] * len(completion_ids)


def _messages(value) -> list[dict] | None:
    """A conversational cell (numpy array or list of {role, content}) as a list of dicts; None for text."""
    if isinstance(value, str) or value is None:
        return None
    return [dict(m) for m in list(value)]


def _assistant_text(messages: list[dict]) -> str:
    parts = []
    for m in messages:
        if m.get("role") not in (None, "assistant"):
            continue
        content = m.get("content")
        if isinstance(content, str):
            parts.append(content)
        elif content is not None:  # multimodal content: a list of {type, text}
            parts += [c.get("text", "") for c in content if isinstance(c, dict)]
    return "".join(parts)


def _batch_signature(frame: pd.DataFrame) -> tuple:
    cols = [c for c in ("prompt", "completion", "advantage") if c in frame]
    return tuple(json.dumps(frame[c].map(_plain).tolist(), default=str) for c in cols)


def _plain(v):
    if isinstance(v, np.ndarray):
        return [_plain(x) for x in v.tolist()]
    if isinstance(v, list):
        return [_plain(x) for x in v]
    if isinstance(v, float) and math.isnan(v):
        return None
    return v


def read_trl_frames(frames: list[tuple[str, pd.DataFrame]], *, tokenizer=None,
                    chat_template_kwargs: dict[str, Any] | None = None) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Concatenate TRL completions files (``(name, frame)`` in step order), dropping repeated generation batches
    and turning conversational cells into text.

    Args:
        chat_template_kwargs: the run's ``GRPOConfig.chat_template_kwargs`` (TRL passes them to every
            ``apply_chat_template``); None: not known (the prompt ids are rebuilt without them, and said so).

    Returns:
        The rows (``step, prompt, completion`` text, ``_key`` the prompt identity, ``prompt_ids`` when a chat
        template was applied, the reward and extra columns as TRL wrote them), and facts for the metadata:
        ``repeated`` (steps dropped as repeats), ``steps`` (steps kept), ``conversational``.
    """
    kept, repeated, last = [], [], None
    for name, frame in frames:
        missing = [c for c in ("step", "prompt", "completion") if c not in frame]
        if missing:
            raise SchemaError(f"'{name}' lacks {', '.join(missing)}; expected TRL's completions table (step, prompt, "
                              "completion, reward columns, advantage); check the path")
        sig = _batch_signature(frame)
        if last is not None and sig == last:
            repeated += sorted(set(frame["step"].astype(int)))
            continue
        kept.append(frame)
        last = sig
    df = pd.concat(kept, ignore_index=True)
    if repeated:
        logger.warning("trl: %d completions file(s) repeat the previous file's generation batch (num_iterations or "
                       "steps_per_generation > 1: TRL logs the batch at every optimiser step); kept once, steps %s "
                       "dropped", len(repeated), _compact(repeated))
    prompts = df["prompt"].map(_messages)
    conversational = prompts.map(lambda m: m is not None).any()
    facts: dict[str, Any] = {"repeated": repeated, "steps": sorted(set(df["step"].astype(int))),
                             "conversational": bool(conversational)}
    if conversational:
        df["completion"] = df["completion"].map(lambda c: c if isinstance(c, str) else _assistant_text(_messages(c)))
        df["_key"] = prompts.map(lambda m: json.dumps(m, sort_keys=True, default=str))
        if tokenizer is not None and getattr(tokenizer, "chat_template", None):
            kwargs = dict(chat_template_kwargs or {})
            rendered = {k: m for k, m in zip(df["_key"], prompts, strict=True)}
            text = {k: tokenizer.apply_chat_template(m, tokenize=False, add_generation_prompt=True, **kwargs)
                    for k, m in rendered.items()}
            ids = {k: _chat_ids(tokenizer, m, kwargs) for k, m in rendered.items()}
            df["prompt"] = df["_key"].map(text)
            df["prompt_ids"] = df["_key"].map(ids)
            facts["prompt_ids"] = "chat template of the given tokenizer applied to the logged messages"
            if chat_template_kwargs is None:
                note = ("the run's chat_template_kwargs are not known (no training_args.bin beside the log): the "
                        "prompt ids are rebuilt without them")
                logger.warning("trl: %s; pass --field chat_template_kwargs=JSON if the run set them", note)
                facts["prompt_ids"] += f"; {note}"
            elif kwargs:
                facts["prompt_ids"] += f", with the run's chat_template_kwargs {json.dumps(kwargs, sort_keys=True)}"
        else:
            df["prompt"] = df["_key"]
            facts["prompt_ids"] = "not rebuilt (no tokenizer with a chat template given)"
    else:
        df["_key"] = df["prompt"]
    return df, facts


def _chat_ids(tokenizer, messages: list[dict], kwargs: dict[str, Any] | None = None) -> list[int]:
    out = tokenizer.apply_chat_template(messages, tokenize=True, add_generation_prompt=True, **(kwargs or {}))
    if isinstance(out, dict) or hasattr(out, "keys"):
        out = out["input_ids"]
    out = list(out)
    if out and isinstance(out[0], list | tuple):
        out = list(out[0])
    return [int(i) for i in out]


def reward_columns(df: pd.DataFrame) -> list[str]:
    """The numeric columns that may be rewards: all but ``step``, ``advantage``, the recorder's and id columns."""
    return [c for c in df.columns if c not in _NOT_REWARDS and not c.startswith("_")
            and pd.api.types.is_numeric_dtype(df[c]) and not pd.api.types.is_bool_dtype(df[c])]


def weighted_reward(df: pd.DataFrame, columns: Sequence[str], weights: Sequence[float]) -> tuple[pd.Series, int, int]:
    """TRL's reward: ``nansum_f w_f·r_f`` (a reward function's None counts as nothing).

    Returns:
        The reward (NaN where every column is NaN: TRL's unscorable rows), the number of rows with some but not
        all components missing, and the number of unscorable rows.
    """
    values = df[list(columns)].astype(float).to_numpy()  # (N, F)
    nan = np.isnan(values)
    reward = np.nansum(values * np.asarray(weights, dtype=float)[None, :], axis=1)
    unscorable = nan.all(axis=1)
    reward[unscorable] = np.nan
    return pd.Series(reward, index=df.index), int((nan.any(axis=1) & ~unscorable).sum()), int(unscorable.sum())


def _reproduces(reward: np.ndarray, adv: np.ndarray, groups: np.ndarray,
                unscaled: bool = False) -> tuple[bool, tuple[int, float]]:
    """Whether, within every group, the centred reward is a positive multiple of the advantage (TRL's scaling is
    a positive number per group: the group std + 1e-4, the batch std + 1e-4, or 1), or, ``unscaled``
    (``scale_rewards = "none"``), exactly the advantage. Returns the worst group."""
    worst = (-1, 0.0)
    for g in np.unique(groups):
        sel = groups == g
        r, a = reward[sel], adv[sel]
        c = r - r.mean()
        scale = max(1.0, float(np.abs(a).max()))
        if unscaled:
            err = float(np.abs(a - c).max()) / scale
        elif np.abs(c).max() < 1e-9:
            err = float(np.abs(a).max()) / scale
        else:
            k = float(a @ c) / float(c @ c)
            err = float(np.abs(a - k * c).max()) / scale if k > 0 else float("inf")
        if err > worst[1]:
            worst = (int(g), err)
    return worst[1] <= 2e-3, worst


def check_advantages(df: pd.DataFrame, *, columns: Sequence[str], weights: Sequence[float],
                     user_columns: bool, candidates: Sequence[str], group_size: int | None,
                     unscaled: bool = False) -> None:
    """Refuse when TRL's logged advantage is not reproduced by the imported reward within the imported groups.

    Args:
        df: grouped rows (``step``, ``group``, ``reward``, ``advantage`` and the candidate columns).
        columns, weights: the reward columns and weights used.
        user_columns: whether the user named the columns (else the suggestion lists matching subsets).
        candidates: every numeric column that could be a reward.
        group_size: the block size used, if any (named in the message).
        unscaled: the run's ``scale_rewards`` is ``"none"``: the advantage is the centred reward exactly, which
            also checks the weights' scale (a scaled advantage cannot tell weights 2,1 from 1,0.5).
    """
    df = df.rename(columns={f"_cand_{c}": c for c in candidates})
    keys = (df["step"].astype(np.int64) * 1_000_003 + df["group"].astype(np.int64)).to_numpy()
    adv = df["advantage"].astype(float).to_numpy()
    ok, (bad, err) = _reproduces(df["reward"].astype(float).to_numpy(), adv, keys, unscaled)
    if ok:
        return
    step, group = int(bad // 1_000_003), int(bad % 1_000_003)
    if group_size is None:  # groups rebuilt from prompt text: identical prompts may have merged several groups
        sizes = df.groupby(["step", "group"]).size()
        common = int(np.gcd.reduce(sizes.to_numpy()))
        reward = df["reward"].astype(float).to_numpy()
        block = df.groupby(["step", "group"]).cumcount().to_numpy()
        for g in (d for d in range(common - 1, 1, -1) if common % d == 0):
            if _reproduces(reward, adv, keys * 1_000 + block // g, unscaled)[0]:
                raise SchemaError(
                    f"the groups rebuilt from prompt text hold {int(sizes.max())} rows (identical prompts in one step "
                    f"merged), and TRL's logged advantage is reproduced by consecutive blocks of {g} rows; expected "
                    f"one group per num_generations completions; pass --group-size {g} (the run's num_generations)")
    matching = []
    if not user_columns:
        for k in range(1, min(len(candidates), 6) + 1):
            for subset in itertools.combinations(candidates, k):
                r, _, unscorable = weighted_reward(df, subset, [1.0] * len(subset))
                if not unscorable and _reproduces(r.to_numpy(), adv, keys, unscaled)[0]:
                    matching.append(subset)
    used = " + ".join(f"{w:g}·{c}" for c, w in zip(columns, weights, strict=True))
    hint = ""
    if matching:
        hint = (" the columns " + " or ".join(",".join(m) for m in matching[:3]) + " with unit weights do reproduce "
                f"it: pass --reward-columns {','.join(matching[0])} (with --reward-weights if the run set "
                "reward_weights);")
    size = f"--group-size {group_size} may also be wrong (pass the run's num_generations); " if group_size else ""
    raise SchemaError(
        f"the imported reward {used} does not reproduce the advantage TRL logged (step {step}, group {group}: off by "
        f"{err:.2g} of its scale); expected the reward TRL trained with (the weighted sum of its reward functions, "
        f"log_extra columns excluded);{hint} otherwise pass --reward-columns NAME,... and --reward-weights W,... as "
        f"in the run's GRPOConfig; {size}see the README's import section")


def weight_scale_check(state: dict[str, Any], columns: Sequence[str], weights: Sequence[float]) -> tuple[str, float]:
    """Check the reward weights' scale against the means TRL logged at each logging step of training.

    TRL logs ``rewards/<func>/mean`` (each function's mean over a batch) and ``reward`` (the mean of the weighted
    sum); without None rewards, ``reward = Σ_f w_f · rewards/<f>/mean`` at every logging step, which an advantage
    normalised by the group std cannot tell (weights 2,1 and 1,0.5 give the same advantages).

    Returns:
        ``(verdict, factor)``: ``checked`` (factor 1), ``off`` (every logged step says the run's weights are
        ``factor`` times these), or ``unchecked`` (no such entries, or entries that disagree among themselves, as
        None rewards make them).
    """
    ratios = []
    for entry in state.get("log_history") or []:
        keys = [f"rewards/{c}/mean" for c in columns]
        if not isinstance(entry, dict) or "reward" not in entry or any(k not in entry for k in keys):
            continue
        values = [entry[k] for k in keys]
        if entry["reward"] is None or any(v is None for v in values):
            continue
        implied = float(sum(w * float(v) for w, v in zip(weights, values, strict=True)))
        if abs(implied) > 1e-6:
            ratios.append(float(entry["reward"]) / implied)
    if not ratios:
        return "unchecked", float("nan")
    r = np.asarray(ratios)
    if np.all(np.abs(r - 1.0) <= 1e-3):
        return "checked", 1.0
    if np.all(np.abs(r - r.mean()) <= 1e-3 * abs(r.mean())):
        return "off", float(r.mean())
    return "unchecked", float("nan")


def run_state(completions: Sequence[str]) -> tuple[dict[str, Any] | None, str | None]:
    """The newest ``trainer_state.json`` of the TRL run that wrote these completions files (in ``output_dir`` or its
    ``checkpoint-*/`` folders; the files live in ``output_dir/completions/``), and its path; (None, None) if none.
    """
    from pathlib import Path

    dirs = {Path(f).resolve().parent for f in completions}
    found = []
    for d in dirs:
        root = d.parent if d.name == "completions" else d
        found += [root / "trainer_state.json", *root.glob("checkpoint-*/trainer_state.json")]
    best, where = None, None
    for f in found:
        if not f.is_file():
            continue
        try:
            state = json.loads(f.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(state, dict) and (best is None or state.get("global_step", 0) > best.get("global_step", 0)):
            best, where = state, str(f)
    return best, where


def evaluation_steps(state: dict[str, Any], last_step: int) -> tuple[set[int], str]:
    """The global steps at which the run evaluated, up to ``last_step``: at those steps TRL's evaluation wrote its
    own completions over the file of the training batch (``GRPOTrainer.log`` in eval mode writes
    ``completions_{global_step}.parquet``, and ``Trainer`` evaluates right after it logs).

    Read from the state's ``log_history`` (entries with ``eval_`` keys) up to the state's ``global_step``; beyond it
    (a checkpoint older than the log), extrapolated from its ``eval_steps`` when the run evaluated at all.
    Returns the steps and a sentence saying how they were found.
    """
    history = state.get("log_history") or []
    seen = {int(e["step"]) for e in history if isinstance(e, dict) and "step" in e
            and any(str(k).startswith("eval_") for k in e)}
    upto = int(state.get("global_step") or 0)
    every = int(state.get("eval_steps") or 0)
    how = f"{len(seen)} evaluation(s) in trainer_state.json up to step {upto}"
    if seen and every > 0 and last_step > upto:
        extra = set(range(every * (upto // every + 1), last_step + 1, every))
        seen |= extra
        how += f", and every {every}th step after it (eval_steps; the state ends before the log)"
    return seen, how


def _compact(steps: Sequence[int]) -> str:
    steps = sorted(steps)
    if len(steps) > 6:
        return f"{', '.join(map(str, steps[:3]))}, …, {', '.join(map(str, steps[-2:]))}"
    return ", ".join(map(str, steps))


def step_coverage(steps: Sequence[int], generation_every: int | None = None) -> tuple[str, bool]:
    """A sentence saying which steps a log holds, and whether they are a sample of the run's generation batches.

    Args:
        steps: the logged steps (repeated batches included).
        generation_every: optimiser steps per generation batch (``steps_per_generation × num_iterations``) when
            known: a log that holds every generation batch is then complete although not every step has a file.
    """
    steps = sorted(set(int(s) for s in steps))
    if len(steps) <= 1:
        return (f"step {steps[0]} only" if steps else "no steps"), False
    if generation_every and generation_every > 1:
        batches = sorted({(s - 1) // generation_every for s in steps})
        if batches == list(range(batches[0], batches[-1] + 1)):
            return (f"every generation batch from step {steps[0]} to {steps[-1]} ({len(batches)} batches of "
                    f"{generation_every} optimiser steps each: steps_per_generation × num_iterations)"), False
        return (f"{len(batches)} of the {batches[-1] - batches[0] + 1} generation batches from step {steps[0]} to "
                f"{steps[-1]} ({generation_every} optimiser steps each): a sample of the run; the other batches were "
                "not logged"), True
    gaps = np.diff(steps)
    every = int(np.gcd.reduce(gaps))
    if (gaps == 1).all():
        return f"every step from {steps[0]} to {steps[-1]} ({len(steps)} steps)", False
    if (gaps == every).all():
        nth = {2: "2nd", 3: "3rd"}.get(every, f"{every}th")
        unknown = "" if generation_every else (" (if the run reused a generation batch for several steps, pass the "
                                               "run folder so its training_args.bin says so)")
        return (f"every {nth} step from {steps[0]} to {steps[-1]} ({len(steps)} steps): a sample of the run; the "
                f"steps in between were not logged (TRL: logging_steps = {every}){unknown}"), True
    return (f"{len(steps)} irregular steps from {steps[0]} to {steps[-1]} ({_compact(steps)}): a sample of the run; "
            "the other steps were not logged"), True
