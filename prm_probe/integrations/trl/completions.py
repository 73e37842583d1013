"""TRL's completions Parquet files (``completions/completions_*.parquet``) as rows of a rollout log: the reward
rebuilt from the reward columns and weights and checked against TRL's logged advantage and reward means, the run's
saved arguments applied, evaluation batches left out. What TRL writes is described in
:mod:`prm_probe.integrations.trl.log`."""

from __future__ import annotations

import json
import logging
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from prm_probe.errors import LogReadError, SchemaError
from prm_probe.integrations.records import (
    STEP_MEANING,
    check_adjacent_blocks,
    require_fields,
    source_files,
    token_ids,
)

__all__ = ["read_trl"]

logger = logging.getLogger(__name__)


def read_trl(source, *, group_size=None, tokenizer=None, reward_columns=None, reward_weights=None, fields=None,
              **_) -> tuple[pd.DataFrame, dict]:
    from prm_probe.integrations.trl import log as trl_log

    frames = []
    for f in source_files(source, (".parquet", ".pq"), "trl"):
        try:
            frames.append((str(f), pq.read_table(f).to_pandas()))
        except (pa.ArrowInvalid, OSError) as exc:
            raise LogReadError(f"'{f}' is not a readable Parquet file ({str(exc).splitlines()[0]}); expected a TRL "
                               "completions_*.parquet; re-create it") from None
    for name, frame in frames:
        require_fields("trl", frame.columns, ["step", "prompt", "completion"], name)
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
        out["completion_ids"] = df[trl_log.ID_COLUMN].map(token_ids)
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
            check_adjacent_blocks(grouped, group_size, str(source))

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
