"""How good is GRPO's implicit PRM? The measurement: each shared node's implied step reward R̂(λ) against a
Monte-Carlo estimate of the true value V(prefix) of its prefix (docs/science.md §3.1).

For the shared nodes (|λ| > 1) of a log's groups, :func:`measure_prm_quality` samples ``rollouts`` fresh continuations
of prompt + prefix from a checkpoint with the log's sampling settings, scores them with the log's task, and
reports one row per node; where the task enumerates its completions (the toy tree) it also gives the exact
value below the prefix under the checkpoint's policy. The table and the
numbers computed from it live in :mod:`prm_probe.core.prm_quality`; ``prm_probe.prm_quality(...)`` returns them as
a :class:`~prm_probe.views.prm_quality.PrmQuality`.

The output is written after every batch of nodes (atomically), and a rerun with the same output skips the
nodes already there, so a killed run keeps what it finished.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from prm_probe.core.files import check_table_path, write_table
from prm_probe.core.prm_quality import NODE_COLUMNS, shared_nodes
from prm_probe.errors import ConfigError

__all__ = ["measure_prm_quality"]

logger = logging.getLogger(__name__)

def _check_tokenizer(meta: dict[str, str], tokenizer, table) -> None:
    """Refuse a checkpoint whose tokenizer cannot be the log's: other EOS/pad ids than the metadata's, another
    logged vocabulary size, or token ids in the log beyond the tokenizer's vocabulary."""
    vocab = len(tokenizer)
    logged_vocab = meta.get("vocab_size")
    if logged_vocab not in (None, "", "None") and int(logged_vocab) != vocab:
        raise ConfigError(f"the checkpoint's tokenizer has {vocab} tokens but the log was written with "
                          f"{logged_vocab}; expected the tokenizer the log was sampled with; pass the matching "
                          "checkpoint")
    import pyarrow.compute as pc

    for column in ("prompt_ids", "completion_ids"):
        if column in table.column_names and table.num_rows:
            top = pc.max(pc.list_flatten(table.column(column))).as_py()
            if top is not None and int(top) >= vocab:
                raise ConfigError(f"the log's {column} hold token id {top} but the checkpoint's tokenizer has only "
                                  f"{vocab} tokens; expected the tokenizer the log was sampled with; pass the "
                                  "matching checkpoint")
    for key in ("eos_token_id", "pad_token_id"):
        logged = meta.get(key)
        mine = getattr(tokenizer, key, None)
        if logged not in (None, "", "None") and mine is not None and int(logged) != int(mine):
            raise ConfigError(f"the checkpoint's tokenizer has {key} {mine} but the log was written with {logged}; "
                              "expected the tokenizer the log was sampled with; pass the matching checkpoint")


def measure_prm_quality(checkpoint: str | os.PathLike, log: str | os.PathLike, *, rollouts: int = 16,
                max_nodes: int = 200, step: int | None = None, seed: int = 0, device: str = "auto",
                out: str | os.PathLike | None = None, batch_nodes: int = 8, allow_task_override: bool = False,
                progress: bool | Callable[[Iterable[Any]], Iterable[Any]] | None = None) -> pd.DataFrame:
    """R̂(λ) of each shared node of one step of ``log`` beside a Monte-Carlo estimate of V(prefix).

    Args:
        checkpoint: a model folder, a run folder (its newest checkpoint), a run's checkpoint or a built-in model
            name, as for ``prm-probe sample``; the log should have been sampled from it (a warning says when the
            log's model differs; the comparison is still made). When it belongs to a run, the log's task must be
            the run's (name and options, seed-drawn ones such as the toy tree's target included).
        log: a rollout log with ``prompt_ids`` and its task and sampling settings in the metadata. Its task is
            rebuilt from them and checked against the log itself: every problem must give the log's prompt ids,
            and every completion of the analysed step must score the log's reward.
        rollouts: K, continuations sampled per node.
        max_nodes: at most this many nodes (a seeded random subset when there are more).
        step: the log's step to analyse (default: its first).
        seed: fixes the node subset and the sampling.
        allow_task_override: analyse a log whose task differs from the checkpoint's run (logged as a warning).
        out: a ``.csv`` or ``.parquet`` file written after every ``batch_nodes`` nodes; a rerun skips the nodes
            already in it.
        progress: True for a tqdm bar on stderr, or a wrapper of the node-batch iterator that shows progress.

    Returns:
        One row per node with the columns of :data:`NODE_COLUMNS` (``exact_value`` and ``exact_std``, the value
        and the standard deviation of the reward below the prefix under the policy, NaN where the task does not
        enumerate its completions).

    Raises:
        ConfigError: a log without prompt ids or settings, a log of another task than the checkpoint's run, a log
            whose prompts or rewards are not its recorded task's, a tokenizer that does not match the log, or a
            bad step.
    """
    import torch

    from prm_probe.core.rollouts import read_metadata, read_rollouts
    from prm_probe.core.runs import model_source
    from prm_probe.training.collect import get_task_from, log_settings, score_completion
    from prm_probe.training.models import completion_end_token_ids, load_policy, pick_device
    from prm_probe.training.sampling import sample_completions

    if out is not None:
        check_table_path(out)
    if rollouts < 2:
        raise ConfigError(f"--rollouts {rollouts}; expected K >= 2 (the standard error needs two); raise it")
    meta = read_metadata(log)
    table = read_rollouts(log)
    if "prompt_ids" not in table.column_names or table.column("prompt_ids").null_count:
        raise ConfigError(f"log '{log}' has no prompt_ids; expected the prompt token ids to continue from; "
                          "sample the log with `prm-probe sample` or `prm-probe train`")
    settings = log_settings(meta)
    task = get_task_from(settings.task, settings.seed)
    _check_run_task(checkpoint, task.identity(), allow_task_override)
    s = settings.sampling
    source = model_source(checkpoint)
    if meta.get("model") and meta["model"] not in (str(checkpoint), source):
        logger.warning("the log was sampled from %r, not from %r: V is the value under the given checkpoint",
                       meta["model"], str(checkpoint))
    dev = pick_device(device)
    policy, tokenizer = load_policy(source, seed=seed, task=task)
    policy.to(dev).eval()
    _check_tokenizer(meta, tokenizer, table)
    problems = {p.id: p for split in ("train", "validation") for p in task.problems(split)}
    nodes = shared_nodes(table, step)
    missing = {n["prompt_id"] for n in nodes} - set(problems)
    if missing:
        raise ConfigError(f"prompt ids {sorted(missing)[:3]} of the log are not problems of task "
                          f"{settings.task.name!r} with the log's settings; expected a log of this task; check the log")
    _check_log_against_task(table, nodes, task, problems, tokenizer, s.chat_template, score_completion)
    rng = np.random.default_rng(seed)
    if len(nodes) > max_nodes:
        keep = np.sort(rng.choice(len(nodes), size=max_nodes, replace=False))
        nodes = [nodes[i] for i in keep]
    done = _read_done(out)
    todo = [n for n in nodes if (n["run_id"], n["step"], n["group"], n["node"]) not in done]
    from prm_probe.training.distribution import PolicyDistribution

    enumerable = task.enumerate_completions(tokenizer)
    end_ids = completion_end_token_ids(tokenizer)
    allowed = task.allowed_token_ids(tokenizer)
    dist = PolicyDistribution(temperature=s.temperature,
                              allowed=tuple(int(a) for a in allowed) if allowed is not None else None)
    rows = list(done.values())
    batches = [todo[i:i + batch_nodes] for i in range(0, len(todo), batch_nodes)]
    if progress is True:
        from tqdm.auto import tqdm

        def progress(items):
            return tqdm(items, desc="prm-quality", unit="batch")
    for batch in (progress(batches) if callable(progress) else batches):
        for n in batch:
            problem = problems[n["prompt_id"]]
            gen = torch.Generator(device=dev).manual_seed(seed * 1_000_003 + n["group"] * 4099 + n["node"])
            values = _mc_values(policy, tokenizer, task, problem, n, rollouts, s, gen, end_ids, allowed,
                                score_completion, sample_completions)
            exact, exact_std = (_exact_value(policy, tokenizer, task, problem, n, enumerable, dist, dev,
                                             score_completion)
                                if enumerable is not None else (float("nan"), float("nan")))
            rows.append({**{k: n[k] for k in NODE_COLUMNS if k in n}, "mc_value": float(values.mean()),
                         "mc_stderr": float(values.std(ddof=1) / np.sqrt(len(values))), "K": len(values),
                         "exact_value": exact, "exact_std": exact_std})
        if out is not None:
            write_table(pd.DataFrame(rows, columns=list(NODE_COLUMNS)), out)
    frame = pd.DataFrame(rows, columns=list(NODE_COLUMNS))
    return frame.sort_values(["run_id", "step", "group", "node"]).reset_index(drop=True)


def _mc_values(policy, tokenizer, task, problem, node, k, s, gen, end_ids, allowed, score, sample) -> np.ndarray:
    prefix = node["prefix"]
    remaining = s.max_new_tokens - len(prefix)
    exact_new = task.exact_new_tokens - len(prefix) if task.exact_new_tokens is not None else None
    if (prefix and prefix[-1] in end_ids) or remaining <= 0 or exact_new == 0:  # nothing left to sample
        text = tokenizer.decode(prefix, skip_special_tokens=True)
        return np.full(k, float(score(task, problem, text, prefix).reward))
    out = sample(policy, [node["prompt_ids"] + prefix], k, max_new_tokens=remaining, end_ids=end_ids,
                 pad_id=int(tokenizer.pad_token_id), generator=gen, temperature=s.temperature, top_k=s.top_k,
                 top_p=s.top_p, allowed_token_ids=allowed, exact_new_tokens=exact_new)
    full = [prefix + list(c) for c in out.completion_ids]
    texts = tokenizer.batch_decode(full, skip_special_tokens=True)
    return np.array([float(score(task, problem, t, ids).reward) for t, ids in zip(texts, full, strict=True)])


def _exact_value(policy, tokenizer, task, problem, node, enumerable, dist, device, score) -> tuple[float, float]:
    """V = Σ over the enumerable completions through the prefix of π(continuation | prefix)·r under the policy
    distribution ``dist`` (the sampler's temperature and allowed tokens), and the standard deviation of r below
    the prefix (0 where every continuation scores alike: there any estimate of V is exact)."""
    from prm_probe.training.trainer import completion_logps

    prefix = node["prefix"]
    through = [(ids, text) for ids, text in enumerable if list(ids[:len(prefix)]) == prefix]
    if not through:
        return float("nan"), float("nan")
    import torch

    with torch.no_grad():
        logp, _mask, _ = completion_logps(policy, [node["prompt_ids"]] * len(through), [ids for ids, _ in through],
                                          int(tokenizer.pad_token_id), device, dist=dist)
    cont = logp[:, len(prefix):].double().sum(dim=1).exp().cpu().numpy()
    reward = np.array([score(task, problem, text, ids).reward for ids, text in through])
    p = cont / cont.sum()
    value = float(p @ reward)
    return value, float(np.sqrt(max(float(p @ (reward - value) ** 2), 0.0)))


def _check_run_task(checkpoint, identity, allow: bool) -> None:
    """Refuse a log whose task is not the task of the run the checkpoint belongs to (if it belongs to one)."""
    from prm_probe.core.runs import run_of
    from prm_probe.training.tasks.identity import run_task_identity

    run = run_of(checkpoint)
    if run is None:
        return
    mine = run_task_identity(run)
    if mine == identity:
        return
    what = mine.describe(identity, ("the run", "the log"))
    if allow:
        logger.warning("the log's task differs from run '%s': %s; V is the value under the log's task", run, what)
        return
    raise ConfigError(f"the log was scored with another task than run '{run}' trained on: {what}; expected a log "
                      f"of the run's task; sample one with `prm-probe sample {run}` (or pass "
                      "--allow-task-override)")


def _check_log_against_task(table, nodes, task, problems, tokenizer, chat_template: bool, score) -> None:
    """The mechanism check of the rebuilt task: each measured node's problem must give the log's prompt ids, and
    every completion of the analysed groups must score the reward the log holds."""
    for n in nodes:
        ids = [int(i) for i in task.prompt_ids(problems[n["prompt_id"]], tokenizer, chat_template)]
        if ids != [int(i) for i in n["prompt_ids"]]:
            raise ConfigError(f"problem {n['prompt_id']!r} of the log's task gives prompt ids {ids[:8]}… but the log "
                              f"holds {list(n['prompt_ids'])[:8]}… (group {n['group']}); expected the task the log "
                              "was sampled with; check the log's metadata or re-sample it")
    if not nodes:
        return
    steps = np.asarray(table.column("step").to_numpy(zero_copy_only=False))
    groups = np.asarray(table.column("group").to_numpy(zero_copy_only=False))
    wanted = {(n["step"], n["group"]) for n in nodes}
    rows = [i for i in range(table.num_rows) if (int(steps[i]), int(groups[i])) in wanted]
    part = table.take(rows).select(["prompt_id", "completion_ids", "reward", "step", "group", "sample"]).to_pylist()
    for r in part:
        ids = [int(i) for i in r["completion_ids"]]
        got = float(score(task, problems[r["prompt_id"]], tokenizer.decode(ids, skip_special_tokens=True),
                          ids).reward)
        if not np.isclose(got, float(r["reward"]), rtol=1e-6, atol=1e-6):
            raise ConfigError(f"the log's reward {r['reward']} of step {r['step']} group {r['group']} sample "
                              f"{r['sample']} is {got} under its recorded task {task.identity()}; expected the task "
                              "that scored the log; check the log's metadata or re-sample it")


def _read_done(out) -> dict[tuple, dict]:
    if out is None or not Path(out).exists():
        return {}
    frame = pd.read_parquet(out) if str(out).endswith(".parquet") else pd.read_csv(out)
    return {(str(r["run_id"]), int(r["step"]), int(r["group"]), int(r["node"])): r for r in frame.to_dict("records")}
