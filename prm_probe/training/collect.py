"""Collecting scored groups: prompts → G sampled completions each → rewards → a canonical rollout table.

Shared by the trainer (one batch per step) and ``prm-probe sample`` (probing a checkpoint without
training). A reward function that raises or returns NaN/inf stops the run with the prompt named
(:class:`RewardError`): a silently skipped completion would bias the group's advantages.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from prm_probe.errors import ConfigError, PrmProbeError

__all__ = ["GroupBatch", "RewardError", "batch_table", "check_policy_task", "collect_groups", "sample_log",
           "score_completion"]


class RewardError(PrmProbeError):
    """A task's reward function raised, or returned a value that is not a finite number."""


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
    """``task.score`` with its failures as :class:`RewardError` (the prompt named) and its values checked finite."""
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


def sample_log(model: str, task_name: str, out, *, groups: int, group_size: int, split: str = "validation",
               seed: int = 0, max_new_tokens: int = 128, temperature: float = 1.0, top_p: float = 1.0,
               top_k: int = 0, chat_template: bool = True, device: str = "auto", prompts_per_batch: int = 8,
               task_options: dict | None = None, progress: bool = False):
    """Sample ``groups`` groups of ``group_size`` from a checkpoint without training; write a rollout log.

    Args:
        model: a model folder, a run folder (its newest checkpoint is used) or a built-in model name.
        task_name: a task name (see ``prm_probe.training.tasks``); problems come from its ``split``, cycling if needed.
        out: the Parquet log to write (atomically).

    Returns:
        The path written.
    """
    import torch

    from prm_probe.core.rollouts import RolloutWriter, log_metadata
    from prm_probe.core.runs import model_source
    from prm_probe.errors import CheckpointError
    from prm_probe.training.models import load_policy, pick_device
    from prm_probe.training.tasks import get_task

    source = model_source(model)
    dev = pick_device(device)
    task = get_task(task_name, seed=seed, options=task_options or {}, train_size=max(groups, 1),
                    val_size=max(groups, 1))
    policy, tokenizer = load_policy(source, seed=seed, task=task)
    policy.to(dev).eval()
    check_policy_task(policy, task, tokenizer)
    problems = task.problems(split)
    if not problems:
        raise CheckpointError(f"task {task_name!r} has no {split} problems; expected at least one; try --split train")
    chosen = [problems[i % len(problems)] for i in range(groups)]
    gen = torch.Generator(device=dev).manual_seed(seed)
    meta = log_metadata(token_source="sampled", model=source, tokenizer=source,
                        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
                        config={"task": task_name, "groups": groups, "group_size": group_size, "split": split,
                                "seed": seed, "max_new_tokens": max_new_tokens, "temperature": temperature,
                                "top_p": top_p, "top_k": top_k, "chat_template": chat_template,
                                "task_options": task_options or {}})
    starts = range(0, groups, prompts_per_batch)
    if progress:
        from tqdm.auto import tqdm

        starts = tqdm(starts, desc="sample", unit="batch")
    with RolloutWriter(out, metadata=meta) as writer:
        for start in starts:
            batch = collect_groups(policy, tokenizer, task, chosen[start:start + prompts_per_batch],
                                   group_size=group_size, generator=gen, max_new_tokens=max_new_tokens,
                                   temperature=temperature, top_p=top_p, top_k=top_k, chat_template=chat_template)
            adv = _advantages(batch.reward, group_size)
            writer.write(batch_table(batch, run_id=Path(str(out)).stem, step=0, advantages=adv, first_group=start))
    return Path(str(out))


def _advantages(reward: np.ndarray, group_size: int) -> np.ndarray:
    from prm_probe.core.prm import outcome_advantages

    return outcome_advantages(reward, np.arange(0, len(reward) + 1, group_size, dtype=np.int64))
