"""The tabular policy stepped lean: the trainer's step for ``--model tabular``, without its overhead, and with
both algorithms' updates measured on the same batch.

:func:`prm_probe.training.trainer.train` runs any model through the Hugging Face interface, writes rollout logs,
overlap statistics and checkpoints; on a 15-row table that overhead is nearly all of its ~17 ms a step. A
:class:`LockstepRun` takes the same step directly on the table: the same sampler calls on the same generator
(so the same samples), the same advantages, process sets, weights, loss aggregation (``training.losses``) and
optimiser (``trainer.build_optimizer``), so a run gives the trainer's trajectory. ``tests/test_lockstep.py``
checks it against ``train`` step by step, and the toy-tree summary checks every committed seed the trainer ran.

It also measures what the trainer cannot: with ``shadow=True`` each step computes, from the same batch, the
gradient of the *other* weighting too (GRPO's for a λ-GRPO run and vice versa) and feeds it to a shadow copy of
the optimiser that has seen the other weighting's gradients all along this trajectory, so the two algorithms'
actual updates (after SGD's or Adam's scaling) can be compared step by step: their cosine, their per-row norms.

Scope (refused otherwise, with the setting named): a task the tabular policy can hold (allowed actions, fixed
length, one prompt), μ = 1, β = 0. Shapes: ``N`` completions (prompts × G), ``d`` actions each, ``R`` table rows,
``k`` actions per row.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from prm_probe.core.weightings import PROCESS_SET, UNIFORM
from prm_probe.errors import ConfigError
from prm_probe.training.config import TrainConfig

__all__ = ["LockstepRun", "StepUpdates", "train_lockstep"]


@dataclass
class StepUpdates:
    """Both weightings' gradients and optimiser updates of one step, from the same batch (``shadow=True``).

    Attributes:
        grad: weighting -> (R, k) gradient of its loss at the step's parameters.
        update: weighting -> (R, k) parameter change its optimiser makes (the run's own is the real one).
        before: (R, k) the table before the step.
    """

    grad: dict[str, np.ndarray]
    update: dict[str, np.ndarray]
    before: np.ndarray


class LockstepRun:
    """One run of the tabular policy, stepped like :func:`~prm_probe.training.trainer.train` steps it.

    Args:
        config: the run's config (``model.name`` must be ``tabular``).
        shadow: also compute the other weighting's gradient and update every step (:class:`StepUpdates`).
    """

    def __init__(self, config: TrainConfig, *, shadow: bool = False) -> None:
        import torch

        from prm_probe.training.collect import check_policy_task, get_task_from, score_completion
        from prm_probe.training.models import load_policy
        from prm_probe.training.trainer import build_optimizer

        if config.model.name != "tabular":
            raise ConfigError(f"the lockstep engine steps the tabular policy; got model.name = {config.model.name!r}; "
                              "use prm_probe.training.trainer.train for a network")
        if config.loss.mu != 1 or config.loss.beta != 0:
            raise ConfigError(f"the lockstep engine needs loss.mu = 1 and loss.beta = 0; got {config.loss.mu} and "
                              f"{config.loss.beta}; use prm_probe.training.trainer.train")
        self.config = config
        self.task = get_task_from(config.task, config.seed)
        self.policy, self.tokenizer = load_policy("tabular", seed=config.seed, task=self.task)
        check_policy_task(self.policy, self.task, self.tokenizer)
        self.problem = self.task.problems("train")[0]
        self.prompt = self.task.prompt_ids(self.problem, self.tokenizer, config.sampling.chat_template)
        self.table = self.policy.table  # (R, k) the parameters
        self.actions = torch.as_tensor(self.policy.actions)
        self.allowed = tuple(int(a) for a in self.task.allowed_token_ids(self.tokenizer))
        self.vocab = self.policy.vocab_size
        self.depth = self.policy.depth
        self.k = len(self.policy.actions)
        self.optimizer, self.scheduler = build_optimizer([self.table], config.optim, config.steps)
        self.other = {UNIFORM: PROCESS_SET, PROCESS_SET: UNIFORM}[config.loss.weighting]
        self.shadow = None
        if shadow:
            self.shadow = torch.nn.Parameter(self.table.detach().clone())
            self.shadow_optimizer, self.shadow_scheduler = build_optimizer([self.shadow], config.optim, config.steps)
        # every completion the policy can produce, scored once (the trainer's exact expectations)
        listed = self.task.enumerate_completions(self.tokenizer)
        self.paths = torch.as_tensor([ids for ids, _ in listed])  # (P, d)
        scores = [score_completion(self.task, self.problem, text, ids) for ids, text in listed]
        self.path_reward = np.array([s.reward for s in scores])
        self.path_target = (np.array([s.components["target"] for s in scores])
                            if all("target" in s.components for s in scores) else None)
        self._score = score_completion
        self.last: StepUpdates | None = None

    # -- the policy ----------------------------------------------------------------------------------------------

    def _states(self, ids):
        """(…, d) the table row each action of ``ids`` (…, d) is taken at (the k-ary heap numbering)."""
        import torch

        col = (ids.unsqueeze(-1) == self.actions).int().argmax(-1)  # (…, d) the table column of each action
        rows = [torch.zeros_like(ids[..., 0])]
        for t in range(ids.shape[-1] - 1):
            rows.append(rows[-1] * self.k + 1 + col[..., t])
        return torch.stack(rows, dim=-1)

    def _token_logps(self, table, ids):
        """(…, d) log π of each action of ``ids`` under ``table``, by the trainer's ops (``token_log_probs``)."""
        import torch

        states = self._states(ids)
        sub = table[states] / self.config.sampling.temperature  # (…, d, k)
        lse = torch.logsumexp(sub, dim=-1)
        col = (ids.unsqueeze(-1) == self.actions).int().argmax(-1)
        return sub.gather(-1, col.unsqueeze(-1)).squeeze(-1) - lse

    def exact(self) -> dict[str, float]:
        """Exact expectations under the current table (the trainer's ``exact_expectations``)."""
        import torch

        with torch.no_grad():
            logp = self._token_logps(self.table, self.paths)  # (P, d)
        prob = torch.exp(logp.double().sum(dim=1)).numpy()
        out = {"expected_reward": float(prob @ self.path_reward), "exact_probability_total": float(prob.sum())}
        if self.path_target is not None:
            out["target_probability"] = float(prob @ self.path_target)
        return out

    def sample(self, step: int):
        """(N, d) action ids of the step's groups: the trainer's sampler calls, on the step's generator."""
        import torch

        from prm_probe.training.distribution import policy_log_probs, truncate
        from prm_probe.training.trainer import step_seed

        s = self.config.sampling
        n = s.group_size * s.prompts_per_step
        gen = torch.Generator().manual_seed(step_seed(self.config.seed, step))
        state = torch.zeros(n, dtype=torch.long)
        out = torch.empty((n, self.depth), dtype=torch.long)
        allowed = torch.as_tensor(self.allowed)
        with torch.no_grad():
            for t in range(self.depth):
                logits = torch.full((n, self.vocab), float("-inf")).index_copy(-1, self.actions, self.table[state])
                draw = truncate(policy_log_probs(logits, s.temperature, allowed), s.top_k, s.top_p)
                tok = torch.multinomial(draw.exp(), 1, generator=gen).squeeze(1)
                out[:, t] = tok
                col = (tok.unsqueeze(-1) == self.actions).int().argmax(-1)
                state = state * self.k + 1 + col
        return out

    def process_set_sizes(self, ids):
        """(N, d) |λ(i, t)|: completions of i's group that share i's first t + 1 actions.

        Every completion has the same length and no end token, so the process set of (i, t) is the set of
        group members at the same table row after action t; counting rows per group gives the trie's sizes
        (``core.trie.process_sets``, which ``tests/test_lockstep.py`` compares) without building the trie.
        """
        import torch

        g = self.config.sampling.group_size
        col = (ids.unsqueeze(-1) == self.actions).int().argmax(-1)  # (N, d)
        after = self._states(ids) * self.k + 1 + col  # (N, d) the row reached after each action
        key = after + (torch.arange(ids.shape[0]) // g).unsqueeze(1) * (after.max() + 1)  # rows of one group only
        sizes = torch.empty(ids.shape, dtype=torch.float32)
        for t in range(ids.shape[1]):
            _, inverse, counts = torch.unique(key[:, t], return_inverse=True, return_counts=True)
            sizes[:, t] = counts[inverse].float()
        return sizes

    # -- one step ------------------------------------------------------------------------------------------------

    def step(self, step: int) -> dict[str, Any]:
        """Sample, score, update; return the step's metrics (the trainer's names)."""
        import torch

        from prm_probe.training.losses import BatchNorms, aggregate, group_advantages, per_token_terms, token_weights

        t0 = time.perf_counter()
        cfg, s = self.config, self.config.sampling
        exact = self.exact()  # before the update, as the trainer logs it
        ids = self.sample(step)  # (N, d)
        n, d = ids.shape
        rows = ids.tolist()
        scores = [self._score(self.task, self.problem, "", r) for r in rows]
        reward = np.array([sc.reward for sc in scores])
        comps = {key: np.array([sc.components[key] for sc in scores]) for key in scores[0].components}
        adv = torch.as_tensor(group_advantages(torch.as_tensor(reward, dtype=torch.float64), s.group_size,
                                               scale=cfg.loss.scale_rewards).numpy(), dtype=torch.float32)
        sizes = self.process_set_sizes(ids)  # (N, d)
        mask = torch.ones((n, d))
        logp = self._token_logps(self.table, ids)  # (N, d)
        terms = per_token_terms(logp, logp.detach(), adv, None, cfg.loss.eps_low, cfg.loss.eps_high, 0.0)

        def loss_of(weighting: str):
            w = token_weights(weighting, mask, sizes)
            norms = BatchNorms(n_sequences=n, n_tokens=n * d, max_new_tokens=s.max_new_tokens,
                               weight_sum=float(w.sum()))
            return aggregate(cfg.loss.aggregation, terms["loss"], w, mask, norms, cfg.loss.renormalise)

        loss = loss_of(cfg.loss.weighting)
        before = self.table.detach().clone()
        if self.shadow is not None:
            (grad,) = torch.autograd.grad(loss, self.table, retain_graph=True)
            (other,) = torch.autograd.grad(loss_of(self.other), self.table)
            self.table.grad = grad
        else:
            loss.backward()
        if cfg.optim.max_grad_norm > 0:
            norm = torch.nn.utils.clip_grad_norm_([self.table], cfg.optim.max_grad_norm)
        else:
            norm = torch.linalg.vector_norm(self.table.grad)
        grad_now = self.table.grad.detach().clone()
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.scheduler.step()
        if self.shadow is not None:
            with torch.no_grad():
                self.shadow.copy_(before)
            self.shadow.grad = other
            if cfg.optim.max_grad_norm > 0:
                torch.nn.utils.clip_grad_norm_([self.shadow], cfg.optim.max_grad_norm)
            other_now = self.shadow.grad.detach().clone()
            self.shadow_optimizer.step()
            self.shadow_optimizer.zero_grad(set_to_none=True)
            self.shadow_scheduler.step()
            w = cfg.loss.weighting
            self.last = StepUpdates(grad={w: grad_now.numpy(), self.other: other_now.numpy()},
                                    update={w: (self.table.detach() - before).numpy(),
                                            self.other: (self.shadow.detach() - before).numpy()},
                                    before=before.numpy())
        groups = reward.reshape(-1, s.group_size)
        return {"step": step, "loss": float(loss.detach()), "grad_norm": float(norm),
                "reward_mean": float(reward.mean()), "reward_std": float(reward.std(ddof=1)),
                "zero_std_fraction": float(np.mean(groups.max(axis=1) == groups.min(axis=1))),
                **{f"reward_{k}_mean": float(v.mean()) for k, v in sorted(comps.items())},
                "gradient_mass_ratio": float((1.0 / sizes.double()).sum() / (n * d)),
                "lr": float(self.scheduler.get_last_lr()[0]), **exact, "time_step": time.perf_counter() - t0}


def train_lockstep(config: TrainConfig, out: str | os.PathLike,
                   on_step: Callable[[dict[str, Any], LockstepRun], None] | None = None,
                   shadow: bool = False) -> Path:
    """Run ``config`` with :class:`LockstepRun` into run folder ``out`` (``config.json``, ``task.json``,
    ``metrics.jsonl``; no rollouts, no checkpoints). The metrics file is written whole at the end, so an
    interrupted run leaves no partial metrics and is simply run again (it takes about a second).

    Args:
        on_step: called with each step's record and the run (e.g. to read :attr:`LockstepRun.last`).
    """
    from prm_probe.core.files import write_text_atomic
    from prm_probe.core.runs import RunFolder
    from prm_probe.training.config import config_from_dict, save_config_json
    from prm_probe.training.tasks.identity import write_run_identity

    folder = RunFolder(out)
    if not config.run_id:
        config = config_from_dict({**json.loads(save_config_json(config)), "run_id": folder.path.name})
    run = LockstepRun(config, shadow=shadow)
    records = []
    for step in range(config.steps):
        record = run.step(step)
        records.append(record)
        if on_step is not None:
            on_step(record, run)
    folder.path.mkdir(parents=True, exist_ok=True)
    write_text_atomic(folder.config, save_config_json(config))
    write_run_identity(folder.path, run.task.identity())
    write_text_atomic(folder.metrics, "".join(json.dumps(r) + "\n" for r in records))
    return folder.path
