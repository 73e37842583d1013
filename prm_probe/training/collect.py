"""Collecting scored groups: prompts → G sampled completions each → rewards → a canonical rollout table.

Shared by the trainer (one batch per step) and ``prm-probe sample`` (probing a checkpoint without
training). A reward function that raises or returns NaN/inf stops the run with the prompt named
(:class:`~prm_probe.errors.RewardError`): a silently skipped completion would bias the group's advantages.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from prm_probe.errors import ConfigError, RewardError

__all__ = ["GroupBatch", "batch_table", "check_policy_task", "collect_groups", "get_task_from",
           "log_settings", "sample_log", "score_completion"]


@dataclass
class GroupBatch:
    """K groups of G scored completions, rows prompt-major (row ``k*G + i`` is sample i of group k).

    Attributes:
        problems: (K,) the task problems.
        prompt_ids: (K*G,) prompt token ids per row.
        completion_ids: (K*G,) completion token ids per row.
        logps: (K*G,) sampler log-probs per completion token.
        finish_reason: (K*G,) "stop" or "length".
        completion_text: (K*G,) decoded completions (special tokens skipped).
        reward: (K*G,) float64 rewards.
        components: reward component name -> (K*G,) float64.
    """

    problems: list
    group_size: int
    prompt_ids: list[list[int]]
    completion_ids: list[list[int]]
    logps: list[list[float]]
    finish_reason: list[str]
    completion_text: list[str]
    reward: np.ndarray
    components: dict[str, np.ndarray] = field(default_factory=dict)


def score_completion(task, problem, text: str, ids: list[int]):
    """``task.score`` with its failures as :class:`RewardError` (the prompt named), its values checked finite and
    the task's ``accuracy_component`` checked present."""
    try:
        score = task.score(problem, text, ids)
    except Exception as exc:  # a user's reward function: report it with the prompt named
        raise RewardError(f"reward function of task {task.name!r} raised {type(exc).__name__}: {exc} on prompt "
                          f"{problem.id!r}; expected a Score; fix the reward function") from exc
    values = {"reward": score.reward, **{f"reward_{k}": v for k, v in score.components.items()}}
    for key, value in values.items():
        if not isinstance(value, (int, float)) or not math.isfinite(float(value)):
            raise RewardError(f"reward function of task {task.name!r} returned {key} = {value!r} on prompt "
                              f"{problem.id!r}; expected a finite number; fix the reward function")
    accuracy = getattr(task, "accuracy_component", None)
    if accuracy is not None and accuracy not in score.components:
        raise RewardError(f"reward function of task {task.name!r} returned components "
                          f"{sorted(score.components) or 'none'} on prompt {problem.id!r}; expected the task's "
                          f"accuracy_component {accuracy!r}; return it in every Score, or set accuracy_component to "
                          "None (or to the component that says whether a completion is right)")
    return score


def collect_groups(model, tokenizer, task, problems, *, group_size: int, generator, max_new_tokens: int,
                   temperature: float = 1.0, top_p: float = 1.0, top_k: int = 0, chat_template: bool = True,
                   greedy: bool = False) -> GroupBatch:
    """Sample ``group_size`` completions for each problem with ``model`` and score them with ``task``."""
    from prm_probe.training.models import completion_end_token_ids
    from prm_probe.training.sampling import sample_completions

    prompts = [task.prompt_ids(p, tokenizer, chat_template) for p in problems]
    allowed = task.allowed_token_ids(tokenizer)
    was_training = model.training
    model.eval()
    try:
        out = sample_completions(
            model, prompts, group_size, max_new_tokens=max_new_tokens, end_ids=completion_end_token_ids(tokenizer),
            pad_id=int(tokenizer.pad_token_id), generator=generator, temperature=temperature, top_k=top_k,
            top_p=top_p, allowed_token_ids=allowed, exact_new_tokens=task.exact_new_tokens, greedy=greedy)
    finally:
        model.train(was_training)
    texts = tokenizer.batch_decode(out.completion_ids, skip_special_tokens=True)
    rewards = np.zeros(len(texts))
    comps: dict[str, np.ndarray] = {}
    for row, (text, ids) in enumerate(zip(texts, out.completion_ids, strict=True)):
        problem = problems[row // group_size]
        score = score_completion(task, problem, text, ids)
        rewards[row] = float(score.reward)
        for k, v in score.components.items():
            comps.setdefault(k, np.zeros(len(texts)))[row] = float(v)
    return GroupBatch(list(problems), group_size, out.prompt_ids, out.completion_ids, out.logps, out.finish_reason,
                      texts, rewards, comps)


def check_policy_task(policy, task, tokenizer) -> None:
    """Refuse a tabular policy with a task whose actions are not its table's columns (one line, what to do)."""
    from prm_probe.training.tabular import TabularPolicy

    if not isinstance(policy, TabularPolicy):
        return
    allowed = task.allowed_token_ids(tokenizer)
    if allowed is None or [int(a) for a in allowed] != policy.actions or task.exact_new_tokens != policy.depth:
        raise ConfigError(f"the tabular policy's table is over actions {policy.actions} of depth {policy.depth}; "
                          f"task {task.name!r} has allowed tokens {allowed} and length {task.exact_new_tokens}; "
                          "use the task it was trained on (e.g. --task toy-tree with the same options)")


def batch_table(batch: GroupBatch, *, run_id: str, step: int, advantages: np.ndarray | None = None,
                prompt_text: bool = True, first_group: int = 0):
    """The batch as a canonical rollout table (one row per completion); groups are numbered from
    ``first_group``."""
    from prm_probe.core.rollouts import rollout_table

    n = len(batch.completion_ids)
    g = batch.group_size
    rows = np.arange(n)
    cols: dict[str, Any] = {
        "run_id": run_id, "step": step, "group": first_group + rows // g, "sample": rows % g,
        "prompt_id": [batch.problems[i // g].id for i in range(n)],
        "completion_ids": batch.completion_ids, "reward": batch.reward,
        "completion": batch.completion_text, "finish_reason": batch.finish_reason,
        "logps": batch.logps, "prompt_ids": batch.prompt_ids,
    }
    if prompt_text:
        cols["prompt"] = [batch.problems[i // g].prompt for i in range(n)]
    if advantages is not None:
        cols["advantage"] = np.asarray(advantages, dtype=np.float32)
    for name, values in sorted(batch.components.items()):
        cols[f"reward_{name}"] = values
    return rollout_table(cols, num_rows=n)


def sample_log(model: str, task_name: str | None = None, out="samples.parquet", *, groups: int = 64,
               group_size: int | None = None, split: str = "validation", seed: int | None = None,
               max_new_tokens: int | None = None, temperature: float | None = None, top_p: float | None = None,
               top_k: int | None = None, chat_template: bool | None = None, device: str = "auto",
               prompts_per_batch: int = 8, task_options: dict | None = None, allow_task_override: bool = False,
               progress: bool = False):
    """Sample ``groups`` groups from a checkpoint without training; write a rollout log.

    When ``model`` is a run folder or one of its checkpoints, the run's settings travel with the sample: its task
    (name and options, the seed-drawn ones such as the toy tree's target included), task sizes, seed, group size
    and sampling settings are the defaults. A task setting that differs from the run's changes the rewards and
    is refused, unless ``allow_task_override`` (the log's metadata then says what differs); the seed and the
    sampling settings may differ (the seed then only draws samples and problems, never the task's rewards).
    Without a run, ``task_name`` is needed and the defaults are those of a fresh ``TrainConfig``.

    Args:
        model: a model folder, a run folder (its newest checkpoint), a run's checkpoint, or a built-in name.
        task_name: a task name (see ``prm_probe.training.tasks``); problems come from its ``split``, cycling if
            needed. Default: the run's.
        out: the Parquet log to write (atomically).
        task_options: task options over the run's (or the task's defaults).

    Returns:
        The path written.

    Raises:
        ConfigError: no task for a checkpoint outside a run, a task setting that differs from the run's, or a bad
            setting (checked as a run config is).
    """
    import torch

    from prm_probe.core.rollouts import RolloutWriter, log_metadata
    from prm_probe.core.runs import model_source, run_of
    from prm_probe.errors import CheckpointError
    from prm_probe.training.config import config_from_dict, config_to_dict
    from prm_probe.training.models import load_policy, pick_device
    from prm_probe.training.tasks.identity import METADATA_KEY, TaskIdentity, run_task_identity

    run = run_of(model)
    source = model_source(model)
    extra: dict[str, str] = {}
    if run is not None:
        base = config_to_dict(config_from_dict(json.loads((run / "config.json").read_text(encoding="utf-8"))))
        run_identity = run_task_identity(run)
        base["task"]["options"] = dict(run_identity.options)  # the seed-drawn options, pinned
        extra["prm_probe.sampled_from"] = str(run)
    elif task_name is None:
        raise ConfigError(f"'{model}' is not a run folder or a run's checkpoint, so its task is unknown; expected "
                          "a task; pass --task (and --option for its options)")
    else:
        base = config_to_dict(config_from_dict({"task": {"name": task_name}}))
        base["task"].update(train_size=max(groups, 1), val_size=max(groups, 1))
        run_identity = None
    wanted = {"task.name": task_name, "seed": seed, "sampling.group_size": group_size,
              "sampling.max_new_tokens": max_new_tokens, "sampling.temperature": temperature,
              "sampling.top_p": top_p, "sampling.top_k": top_k, "sampling.chat_template": chat_template}
    for dotted, value in wanted.items():
        if value is not None:
            section, _, key = dotted.rpartition(".")
            (base[section] if section else base)[key] = value
    if run_identity is not None and task_name is not None and task_name != run_identity.name:
        base["task"]["options"] = {}  # another task: its own defaults
    base["task"]["options"] = {**base["task"]["options"], **(task_options or {})}
    base["model"] = {**base["model"], "name": source}
    base["steps"] = 0  # a sample trains nothing
    base["sampling"]["prompts_per_step"] = prompts_per_batch
    settings = config_from_dict(base)  # every value checked as a run's would be
    t, s = settings.task, settings.sampling
    dev = pick_device(device)
    task = get_task_from(t, settings.seed)
    identity: TaskIdentity = task.identity()
    if run_identity is not None and identity != run_identity:
        what = run_identity.describe(identity, ("the run", "this sample"))
        if not allow_task_override:
            raise ConfigError(f"sampling run '{run}' with other task settings changes its rewards: {what}; expected "
                              "the run's task; drop the override, or pass --allow-task-override to record it in "
                              "the log")
        extra["prm_probe.task_override"] = what
    policy, tokenizer = load_policy(source, seed=settings.seed, task=task)
    policy.to(dev).eval()
    check_policy_task(policy, task, tokenizer)
    problems = task.problems(split)
    if not problems:
        raise CheckpointError(f"task {t.name!r} has no {split} problems; expected at least one; try --split train")
    chosen = [problems[i % len(problems)] for i in range(groups)]
    gen = torch.Generator(device=dev).manual_seed(settings.seed)
    recorded = config_to_dict(settings)
    recorded["task"]["options"] = dict(identity.options)
    meta = log_metadata(token_source="sampled", model=source, tokenizer=source,
                        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
                        config=recorded, vocab_size=str(len(tokenizer)),
                        **{METADATA_KEY: identity.to_json(), "prm_probe.sample": {"split": split, "groups": groups}},
                        **extra)
    starts = range(0, groups, prompts_per_batch)
    if progress:
        from tqdm.auto import tqdm

        starts = tqdm(starts, desc="sample", unit="batch")
    with RolloutWriter(out, metadata=meta) as writer:
        for start in starts:
            batch = collect_groups(policy, tokenizer, task, chosen[start:start + prompts_per_batch],
                                   group_size=s.group_size, generator=gen, max_new_tokens=s.max_new_tokens,
                                   temperature=s.temperature, top_p=s.top_p, top_k=s.top_k,
                                   chat_template=s.chat_template)
            adv = _advantages(batch.reward, s.group_size)
            writer.write(batch_table(batch, run_id=Path(str(out)).stem, step=0, advantages=adv, first_group=start))
    return Path(str(out))


def log_settings(meta: dict[str, str]):
    """The task and sampling settings a rollout log was written with, as a ``TrainConfig`` whose task options are
    the log's recorded task identity (seed-drawn options pinned).

    Reads the ``config`` metadata every log carries: a run config, as the trainer, ``prm-probe sample`` and the TRL
    integration write it.

    Raises:
        ConfigError: the log records no task and sampling settings, or its recorded task identity is not what its
            settings build.
    """
    from prm_probe.training.config import config_from_dict
    from prm_probe.training.tasks.identity import log_task_identity

    raw = meta.get("config")
    try:
        cfg = json.loads(raw) if raw else None
    except ValueError:
        cfg = None
    if isinstance(cfg, dict) and isinstance(cfg.get("task"), str):
        raise ConfigError("the log's metadata has the flat settings of an early `prm-probe sample` (task "
                          f"{cfg['task']!r} by name); expected a run config; re-sample the log with `prm-probe sample`")
    if not (isinstance(cfg, dict) and isinstance(cfg.get("task"), dict) and isinstance(cfg.get("sampling"), dict)):
        raise ConfigError("the log's metadata has no task and sampling settings (key 'config'); expected a log "
                          "written by `prm-probe train` or `prm-probe sample`; sample one with `prm-probe sample "
                          "CHECKPOINT --task TASK`")
    known = {"seed", "steps", "model", "task", "sampling"}
    settings = config_from_dict({k: v for k, v in cfg.items() if k in known})
    identity = log_task_identity(meta)
    built = get_task_from(settings.task, settings.seed).identity()
    if identity is not None and identity != built:
        raise ConfigError(f"the log records task {identity} but its settings build {built} "
                          f"({identity.describe(built, ('the record', 'the settings'))}); expected the two to agree; "
                          "re-sample the log")
    return config_from_dict({**{k: v for k, v in cfg.items() if k in known},
                             "task": {**cfg["task"], "options": built.options}})


def get_task_from(task_config, seed: int):
    """The task a ``TaskConfig`` section describes, drawn with ``seed``."""
    from prm_probe.training.tasks import get_task

    return get_task(task_config.name, seed=seed, options=dict(task_config.options),
                    train_size=task_config.train_size, val_size=task_config.val_size)


def _advantages(reward: np.ndarray, group_size: int) -> np.ndarray:
    from prm_probe.core.prm import outcome_advantages

    return outcome_advantages(reward, np.arange(0, len(reward) + 1, group_size, dtype=np.int64))
