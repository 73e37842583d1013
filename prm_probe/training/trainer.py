"""The built-in GRPO / λ-GRPO trainer: one code path for CUDA (bf16 autocast) and CPU (fp32).

Each step: take ``prompts_per_step`` problems in a seeded order → sample G completions each
(``collect``) → rewards → outcome advantages → process sets of the completion ids (``trie``, numpy) →
per-token objective, weights and aggregation (``losses``) → backward (micro-batches, exact accumulation)
→ clip → optimiser step → rollout part + metrics line → validation and checkpoint when due.

Determinism: the seed fixes initialisation (built-in models), data order (a permutation per epoch from
``(seed, epoch)``) and sampling (a ``torch.Generator`` seeded from ``(seed, step)``). Dropout is disabled
in every forward (``model.eval()``), so on CPU a run is bit-for-bit reproducible and a resumed run ends
with the same metrics as an uninterrupted one. Old log-probs for μ > 1 are recorded once, before any
update, in eval mode (docs/science.md §9.6). Reward functions that fail stop the run
(:class:`~prm_probe.errors.RewardError`).

Not here: loading models (``models``), tasks (``tasks``), the loss algebra (``losses``).
"""

from __future__ import annotations

import functools
import json
import logging
import math
import os
import time
from collections.abc import Callable
from contextlib import ExitStack, nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from prm_probe.core.files import append_jsonl, truncate_jsonl
from prm_probe.core.runs import RunFolder, part_step
from prm_probe.errors import CheckpointError, ConfigError
from prm_probe.training.config import OptimConfig, TrainConfig, config_from_dict, save_config_json

__all__ = ["build_optimizer", "completion_logps", "lr_factor", "problem_order", "step_seed", "train"]

if TYPE_CHECKING:
    from prm_probe.training.distribution import PolicyDistribution

logger = logging.getLogger(__name__)


def step_seed(seed: int, step: int) -> int:
    """The sampling seed of one step, independent of how the run got there (resume-safe)."""
    return int(np.random.SeedSequence([seed, step, 0x5A17]).generate_state(1)[0])


@functools.lru_cache(maxsize=4)
def _epoch_permutation(n_problems: int, seed: int, epoch: int) -> np.ndarray:
    perm = np.random.default_rng([seed, epoch]).permutation(n_problems)
    perm.flags.writeable = False  # shared by every caller through the cache
    return perm


def problem_order(n_problems: int, seed: int, step: int, per_step: int) -> list[int]:
    """Indices of the problems of ``step``: a fresh permutation of the training split each epoch."""
    out = []
    for j in range(per_step):
        epoch, k = divmod(step * per_step + j, n_problems)
        out.append(int(_epoch_permutation(n_problems, seed, epoch)[k]))
    return out


def completion_logps(model, prompt_ids, completion_ids, pad_id: int, device, with_entropy: bool = False,
                     dist: PolicyDistribution | None = None):
    """Per-token log π(y_t | x, y_<t) of each completion under the policy distribution ``dist``.

    ``dist`` (temperature, allowed tokens) must be the sampler's (:mod:`prm_probe.training.distribution`); the default
    is the plain full-vocabulary softmax at temperature 1. Prompts are left-padded, completions right-padded.

    Returns:
        ``logp`` (B, T) float32 (float64 for a float64 model; 0 on padding), ``mask`` (B, T) float32, and
        ``entropy`` (B, T) of the policy distribution (zeros unless asked).
    """
    import torch

    from prm_probe.training.distribution import PolicyDistribution
    from prm_probe.training.sampling import last_logits_kwargs, left_pad

    dist = dist or PolicyDistribution()
    p_ids, p_mask = left_pad(prompt_ids, pad_id, device)  # (B, P)
    width = max((len(c) for c in completion_ids), default=0)
    c_ids = torch.full((len(completion_ids), max(width, 1)), pad_id, dtype=torch.long)
    c_mask = torch.zeros_like(c_ids)
    for i, c in enumerate(completion_ids):
        if len(c):
            c_ids[i, : len(c)] = torch.as_tensor(c, dtype=torch.long)
            c_mask[i, : len(c)] = 1
    c_ids, c_mask = c_ids.to(device), c_mask.to(device)  # (B, T)
    ids = torch.cat([p_ids, c_ids], dim=1)  # (B, P + T)
    attn = torch.cat([p_mask, c_mask], dim=1)  # (B, P + T)
    pos = (attn.cumsum(dim=1) - 1).clamp(min=0)  # (B, P + T)
    plen, width = p_ids.shape[1], c_ids.shape[1]
    # Token t of a completion is predicted at position P - 1 + t: the last T + 1 positions, minus the final one.
    keep = last_logits_kwargs(model, width + 1)
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else nullcontext()
    with autocast:
        logits = model(input_ids=ids, attention_mask=attn, position_ids=pos, **keep).logits  # (B, P + T or T + 1, V)
    start = 0 if keep else plen - 1
    logits = logits[:, start: start + width, :]  # (B, T, V)
    logp, entropy = dist.token_log_probs(logits, c_ids, with_entropy=with_entropy)  # (B, T), (B, T) | None
    real = c_mask.bool()
    logp = torch.where(real, logp, torch.zeros_like(logp))  # padding: 0 (an allowed-set forward gives -inf there)
    entropy = torch.zeros_like(logp.detach()) if entropy is None else torch.where(real, entropy, 0.0)
    return logp, c_mask.float(), entropy


def lr_factor(optim: OptimConfig, total_steps: int, step: int) -> float:
    """The learning-rate multiplier at optimiser ``step``: linear warm-up, then constant or cosine."""
    total = max(total_steps, 1)
    if step < optim.warmup_steps:
        return (step + 1) / (optim.warmup_steps + 1)
    if optim.lr_schedule == "cosine":
        frac = (step - optim.warmup_steps) / max(total - optim.warmup_steps, 1)
        return 0.5 * (1 + math.cos(math.pi * min(frac, 1.0)))
    return 1.0


def build_optimizer(params, optim: OptimConfig, total_steps: int):
    """The run's ``(optimizer, scheduler)`` over ``params``, as ``optim`` says (the one place they are built)."""
    import torch

    o = optim
    if o.optimizer == "sgd":
        optimizer = torch.optim.SGD(params, lr=o.lr, weight_decay=o.weight_decay)
    elif o.optimizer == "adam":
        optimizer = torch.optim.Adam(params, lr=o.lr, betas=(o.beta1, o.beta2))
    else:
        optimizer = torch.optim.AdamW(params, lr=o.lr, betas=(o.beta1, o.beta2), weight_decay=o.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, functools.partial(lr_factor, o, total_steps))
    return optimizer, scheduler


class _Run:
    """State of one training run (model, optimiser, task, folders); built by :func:`train`."""

    def __init__(self, config: TrainConfig, out: Path, start_model: str | None) -> None:

        from prm_probe.training.distribution import PolicyDistribution
        from prm_probe.training.models import load_policy, pick_device
        from prm_probe.training.tasks import get_task

        self.config, self.out = config, out
        self.device = pick_device(config.device)
        t = config.task
        self.task = get_task(t.name, seed=config.seed, options=dict(t.options), train_size=t.train_size,
                             val_size=t.val_size)
        self.train_problems = self.task.problems("train")
        self.val_problems = self.task.problems("validation")
        m = config.model
        if start_model is not None and m.lora_rank > 0:
            # LoRA: rebuild the base as at the start, then load the checkpoint's adapter weights.
            self.model, self.tokenizer = load_policy(m.name, seed=config.seed, lora_rank=m.lora_rank,
                                                     lora_alpha=m.lora_alpha, lora_dropout=m.lora_dropout)
            _load_adapter_weights(self.model, Path(start_model))
        else:
            self.model, self.tokenizer = load_policy(start_model or m.name, seed=config.seed,
                                                     lora_rank=0 if start_model else m.lora_rank,
                                                     lora_alpha=m.lora_alpha, lora_dropout=m.lora_dropout,
                                                     task=self.task)
        self.model.to(self.device)
        if m.gradient_checkpointing and hasattr(self.model, "gradient_checkpointing_enable"):
            self.model.gradient_checkpointing_enable()
        self.model.eval()  # dropout off in every forward; gradients still flow
        self.reference = None
        if config.loss.beta > 0 and not hasattr(self.model, "disable_adapter"):
            ref, _ = load_policy(m.name, seed=config.seed, task=self.task)
            self.reference = ref.to(self.device).eval().requires_grad_(False)
        from prm_probe.training.collect import check_policy_task

        check_policy_task(self.model, self.task, self.tokenizer)
        # The policy's distribution, shared by the sampler and every forward of the update.
        allowed = self.task.allowed_token_ids(self.tokenizer)
        self.dist = PolicyDistribution(temperature=config.sampling.temperature,
                                       allowed=None if allowed is None else tuple(allowed))
        self.exact = _enumerated(self.task, self.tokenizer, self.train_problems[0])  # finite tasks: all completions
        self.mismatch_warned = False
        self.optimizer, self.scheduler = build_optimizer(
            [p for p in self.model.parameters() if p.requires_grad], config.optim, config.steps)

    def reference_logps(self, prompts, completions, chunks: list[slice]):
        """(N, T) reference log-probs (None when β = 0), computed micro-batch by micro-batch."""
        if self.config.loss.beta == 0:
            return None
        pad = int(self.tokenizer.pad_token_id)
        if self.reference is not None:
            return chunked_logps(self.reference, prompts, completions, chunks, pad, self.device, self.dist)
        with self.model.disable_adapter():  # LoRA: the reference is the adapter-disabled base model
            return chunked_logps(self.model, prompts, completions, chunks, pad, self.device, self.dist)


def chunked_logps(model, prompt_ids, completion_ids, chunks: list[slice], pad_id: int, device,
                  dist: PolicyDistribution | None = None):
    """(N, T) log-probs under ``dist`` without gradient, one micro-batch at a time, padded to the batch's longest
    completion.

    Each micro-batch is only as wide as its own longest completion; its columns are placed in an (N, T)
    tensor of zeros, so micro-batches of unequal widths combine.
    """
    import torch

    width = max(max((len(c) for c in completion_ids), default=0), 1)
    out = None
    with torch.no_grad():
        for c in chunks:
            logp = completion_logps(model, prompt_ids[c], completion_ids[c], pad_id, device, dist=dist)[0]  # (b, T_c)
            if out is None:  # the dtype of the log-probs (fp32, or fp64 for a float64 model)
                out = torch.zeros((len(completion_ids), width), dtype=logp.dtype, device=device)  # (N, T)
            out[c, : logp.shape[1]] = logp
    return out


def _load_adapter_weights(model, folder: Path) -> None:
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    file = folder / "adapter_model.safetensors"
    if not file.is_file():
        raise CheckpointError(f"checkpoint '{folder}' has no adapter_model.safetensors; expected a LoRA adapter "
                              "saved by the trainer; delete the checkpoint to resume from the previous one")
    set_peft_model_state_dict(model, load_file(str(file)))


def _clock(device) -> Callable[[], float]:
    """``time.perf_counter`` that first waits for queued CUDA work, so phase times are real on a GPU."""
    if getattr(device, "type", "cpu") != "cuda":
        return time.perf_counter

    import torch

    def now() -> float:
        torch.cuda.synchronize(device)
        return time.perf_counter()

    return now


def _micro_batches(n: int, size: int) -> list[slice]:
    size = n if size <= 0 else size
    return [slice(i, min(i + size, n)) for i in range(0, n, size)]


def _optimise(run: _Run, batch, advantages, packed, packed_sizes, times: dict[str, float]) -> dict[str, float]:
    """μ passes of micro-batched forward/backward and optimiser steps on one batch; returns loss metrics."""
    import torch

    from prm_probe.training.losses import BatchNorms, aggregate, per_token_terms, token_weights

    cfg, device = run.config, run.device
    now = _clock(device)
    pad = int(run.tokenizer.pad_token_id)
    n = len(batch.completion_ids)
    width = max(max((len(c) for c in batch.completion_ids), default=0), 1)
    sizes = torch.as_tensor(packed.to_padded(packed_sizes, width, fill=1), dtype=torch.float32).to(device)  # (N, T)
    adv = torch.as_tensor(advantages, dtype=torch.float32, device=device)  # (N,)
    lengths = torch.as_tensor([len(c) for c in batch.completion_ids], dtype=torch.float32)
    mask_all = (torch.arange(width)[None, :] < lengths[:, None]).float().to(device)  # (N, T)
    weights_all = token_weights(cfg.loss.weighting, mask_all, sizes)  # (N, T)
    norms = BatchNorms(n_sequences=n, n_tokens=int(lengths.sum()), max_new_tokens=cfg.sampling.max_new_tokens,
                       weight_sum=float(weights_all.sum()))
    chunks = _micro_batches(n, cfg.optim.micro_batch_size)
    t0 = now()
    ref = run.reference_logps(batch.prompt_ids, batch.completion_ids, chunks)
    times["reference"] = now() - t0
    old = None
    if cfg.loss.mu > 1:  # log π_old, recorded once before any update of this batch
        old = chunked_logps(run.model, batch.prompt_ids, batch.completion_ids, chunks, pad, device, run.dist)
    sampler = torch.zeros((n, width), dtype=torch.float64)  # (N, T) the sampler's recorded log-probs
    for i, lp in enumerate(batch.logps):
        sampler[i, : len(lp)] = torch.as_tensor(lp, dtype=torch.float64)
    sampler = sampler.to(device)
    stats = {"loss": 0.0, "kl": 0.0, "clip_fraction": 0.0, "entropy": 0.0, "grad_norm": 0.0,
             "logp_mismatch_max": 0.0}
    fwd = bwd = opt = 0.0
    for mu_pass in range(cfg.loss.mu):
        total_loss = 0.0
        for c in chunks:
            t1 = now()
            logp, mask, ent = completion_logps(run.model, batch.prompt_ids[c], batch.completion_ids[c], pad, device,
                                               with_entropy=mu_pass == 0, dist=run.dist)
            cols = logp.shape[1]
            old_c = logp.detach() if old is None else old[c][:, :cols]
            ref_c = None if ref is None else ref[c][:, :cols]
            terms = per_token_terms(logp, old_c, adv[c], ref_c, cfg.loss.eps_low, cfg.loss.eps_high, cfg.loss.beta)
            w = weights_all[c][:, :cols]
            loss = aggregate(cfg.loss.aggregation, terms["loss"], w, mask, norms, cfg.loss.renormalise)
            t2 = now()
            loss.backward()
            t3 = now()
            fwd, bwd = fwd + (t2 - t1), bwd + (t3 - t2)
            total_loss += float(loss.detach())
            if mu_pass == 0:  # before any optimiser step: the policy that sampled this batch
                gap = (logp.detach().double() - sampler[c][:, :cols]).abs() * mask  # (b, T_c)
                stats["logp_mismatch_max"] = max(stats["logp_mismatch_max"], float(gap.max()) if gap.numel() else 0.0)
                tok = max(norms.n_tokens, 1)
                stats["kl"] += float((terms["kl"].detach() * mask).sum()) / tok
                stats["clip_fraction"] += float((terms["clipped"].float() * mask).sum()) / tok
                stats["entropy"] += float((ent * mask).sum()) / tok
        t4 = now()
        params = [p for p in run.model.parameters() if p.requires_grad]
        if cfg.optim.max_grad_norm > 0:
            norm = torch.nn.utils.clip_grad_norm_(params, cfg.optim.max_grad_norm)
        else:
            norm = torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in params if p.grad is not None]))
        run.optimizer.step()
        run.optimizer.zero_grad(set_to_none=True)
        opt += now() - t4
        if mu_pass == 0:
            stats["loss"], stats["grad_norm"] = total_loss, float(norm)
    run.scheduler.step()
    times.update(policy_forward=fwd, backward=bwd, optimizer=opt)
    _check_mismatch(run, stats["logp_mismatch_max"])
    return stats


#: ``logp_mismatch_max`` above which a run warns (once): fp32 CPU forwards agree to ~1e-6; bf16 CUDA ones round
#: differently in the KV-cache and the full forward, so their threshold is looser (not yet measured here).
MISMATCH_WARNING = {"cpu": 1e-3, "cuda": 0.1}


def _check_mismatch(run: _Run, value: float) -> None:
    limit = MISMATCH_WARNING.get(getattr(run.device, "type", "cpu"), 1e-3)
    if run.mismatch_warned or not value > limit:
        return
    run.mismatch_warned = True
    logger.warning("logp_mismatch_max = %.3g > %g: the sampler's log-probs differ from the training forward's, so "
                   "the update is not the policy gradient of the sampled policy; likely causes: a model whose "
                   "forward depends on padding or on its KV cache (custom attention, active dropout), "
                   "non-deterministic kernels, or a sampler and trainer with different temperature or allowed "
                   "tokens (warned once per run)", value, limit)


def _validate(run: _Run, step: int) -> dict[str, float]:
    import torch

    from prm_probe.training.collect import collect_groups

    if not run.val_problems:
        return {}
    s = run.config.sampling
    gen = torch.Generator(device=run.device).manual_seed(0)
    batch = collect_groups(run.model, run.tokenizer, run.task, run.val_problems, group_size=1, generator=gen,
                           max_new_tokens=s.max_new_tokens, chat_template=s.chat_template, greedy=True)
    key = run.task.accuracy_component  # declared by the task; score_completion checked every score has it
    acc = float(np.mean(batch.components[key])) if key is not None else float("nan")
    return {"step": step, "val_accuracy": acc, "val_reward_mean": float(np.mean(batch.reward)),
            "val_problems": len(run.val_problems)}


def _one_step(run: _Run, step: int) -> dict[str, Any]:
    import torch

    from prm_probe.core.rollouts import write_rollouts
    from prm_probe.core.stats import live_overlap_metrics
    from prm_probe.core.trie import PackedGroups, process_sets
    from prm_probe.training.collect import batch_table, collect_groups
    from prm_probe.training.losses import group_advantages

    cfg, s = run.config, run.config.sampling
    times: dict[str, float] = {}
    now = _clock(run.device)
    t0 = now()
    idx = problem_order(len(run.train_problems), cfg.seed, step, s.prompts_per_step)
    problems = [run.train_problems[i] for i in idx]
    gen = torch.Generator(device=run.device).manual_seed(step_seed(cfg.seed, step))
    batch = collect_groups(run.model, run.tokenizer, run.task, problems, group_size=s.group_size, generator=gen,
                           max_new_tokens=s.max_new_tokens, temperature=s.temperature, top_p=s.top_p,
                           top_k=s.top_k, chat_template=s.chat_template)
    times["generate_and_score"] = now() - t0
    t1 = now()
    advantages = group_advantages(torch.as_tensor(batch.reward, dtype=torch.float64), s.group_size,
                                  scale=cfg.loss.scale_rewards).numpy()
    lengths = [len(c) for c in batch.completion_ids]
    offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    tokens = np.fromiter((t for c in batch.completion_ids for t in c), dtype=np.int32, count=int(offsets[-1]))
    packed = PackedGroups(tokens, offsets, np.arange(0, len(lengths) + 1, s.group_size, dtype=np.int64))
    ps = process_sets(packed)
    times["process_sets"] = now() - t1
    exact = exact_expectations(run, problems[0]) if run.exact is not None else {}  # before the update
    loss_stats = _optimise(run, batch, advantages, packed, ps.size, times)
    t2 = now()
    every = cfg.schedule.rollouts_every
    if every and (step % every == 0 or step + 1 == cfg.steps):
        table = batch_table(batch, run_id=cfg.run_id, step=step, advantages=advantages)
        write_rollouts(table, RunFolder(run.out).part(step), metadata=_log_metadata(run))
    times["write"] = now() - t2
    groups = batch.reward.reshape(-1, s.group_size)
    record = {
        "step": step,
        **loss_stats,
        "reward_mean": float(batch.reward.mean()),
        "reward_std": float(batch.reward.std(ddof=1)) if batch.reward.size > 1 else float("nan"),
        "zero_std_fraction": float(np.mean(groups.max(axis=1) == groups.min(axis=1))),
        **{f"reward_{k}_mean": float(v.mean()) for k, v in sorted(batch.components.items())},
        "completion_length_mean": float(np.mean(lengths)),
        "completion_length_min": int(np.min(lengths)),
        "completion_length_max": int(np.max(lengths)),
        "stop_fraction": float(np.mean([f == "stop" for f in batch.finish_reason])),
        "lr": float(run.scheduler.get_last_lr()[0]),
        **live_overlap_metrics(ps, batch.reward),
        **exact,
        **{f"time_{k}": v for k, v in times.items()},
        "time_step": now() - t0,
    }
    return record


def _enumerated(task, tokenizer, problem):
    """``[(completion ids, Score)]`` of every completion of a task that can list them (scored like samples)."""
    from prm_probe.training.collect import score_completion

    listed = task.enumerate_completions(tokenizer)
    if listed is None:
        return None
    return [(ids, score_completion(task, problem, text, ids)) for ids, text in listed]


def exact_expectations(run: _Run, problem) -> dict[str, float]:
    """Exact expectations under the current policy for a task that enumerates its completions (the toy tree).

    Every completion's probability is the product of its token probabilities under the policy distribution
    (one batched forward, no gradient), so the curves need not be estimated from the step's G samples.

    Returns:
        ``expected_reward`` = Σ_y π(y)·r(y); ``target_probability`` = Σ_y π(y)·target(y) when the task scores a
        ``target`` component; ``exact_probability_total`` = Σ_y π(y), which is 1 up to rounding when the
        enumeration covers everything the sampler can produce (a check of the restricted distribution).
    """
    import torch

    paths = [ids for ids, _ in run.exact]
    prompt = run.task.prompt_ids(problem, run.tokenizer, run.config.sampling.chat_template)
    chunks = _micro_batches(len(paths), 1024)
    logp = chunked_logps(run.model, [prompt] * len(paths), paths, chunks, int(run.tokenizer.pad_token_id),
                         run.device, run.dist)  # (P, depth)
    prob = torch.exp(logp.double().sum(dim=1)).cpu().numpy()  # (P,)
    reward = np.array([score.reward for _, score in run.exact])
    out = {"expected_reward": float(prob @ reward), "exact_probability_total": float(prob.sum())}
    if all("target" in score.components for _, score in run.exact):
        target = np.array([score.components["target"] for _, score in run.exact])
        out["target_probability"] = float(prob @ target)
    return out


def _log_metadata(run: _Run) -> dict[str, str]:
    from prm_probe.core.rollouts import log_metadata
    from prm_probe.training.tasks.identity import METADATA_KEY

    tok = run.tokenizer
    return log_metadata(token_source="sampled", model=run.config.model.name,
                        tokenizer=getattr(tok, "name_or_path", "") or run.config.model.name,
                        eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,
                        config=save_config_json(run.config), seed=str(run.config.seed),
                        **{METADATA_KEY: run.task.identity().to_json()})


def train(config: TrainConfig | None = None, out: str | os.PathLike | None = None, *,
          resume: bool | str | os.PathLike = False, steps: int | None = None, progress: bool = False,
          on_step: Callable[[dict[str, Any]], None] | None = None) -> Path:
    """Train (or resume) a run into folder ``out``; return the folder.

    ``train(config, "runs/a")`` starts a run; ``train(resume="runs/a", steps=200)`` continues it (from its newest
    complete checkpoint, with its saved config) up to 200 steps, or up to its saved step count without ``steps``.

    Args:
        config: the run configuration (not needed to resume: the saved one is used).
        out: the run folder; it must not hold another run unless resuming.
        resume: the run folder to continue (or True with ``out``).
        steps: the step count to reach (default: the config's; on resume, the saved config's).
        progress: show a tqdm bar (step, reward, step time) on stderr.
        on_step: called with each step's metrics record.

    Raises:
        ConfigError: no config or folder, a resume folder that differs from ``out``, or a new run of 0 steps.
        CheckpointError: a new run in a folder that holds one, or a resume folder that holds none.
    """
    from prm_probe.training.checkpoint import training_lock

    if resume not in (False, True):  # a folder
        if out is not None and Path(out).resolve() != Path(resume).resolve():
            raise ConfigError(f"resume={resume} and out={out} differ; expected one run folder; drop out (--out) "
                              "when resuming")
        out, resume = resume, True
    if out is None:
        raise ConfigError("no run folder given; expected out (--out RUN_DIR) or resume (--resume RUN_DIR); add one")
    out = Path(out)
    with ExitStack() as held:
        # lock an existing folder before reading its checkpoint: another process may be training it
        lock = held.enter_context(training_lock(out)) if out.is_dir() else None
        return _train_held(config, out, resume, steps, progress, on_step, held, lock)


def _train_held(config: TrainConfig | None, out: Path, resume: bool, steps: int | None, progress: bool,
                on_step: Callable[[dict[str, Any]], None] | None, held: ExitStack, lock: Path | None) -> Path:
    """The body of :func:`train`, with the run folder's lock held (``lock``), or taken here once a new folder
    exists; the lock file is touched at every step (its age tells a live run from a dead one on another host)."""
    from prm_probe.core.files import write_text_atomic
    from prm_probe.training.checkpoint import (
        is_run_dir,
        latest_checkpoint,
        load_training_state,
        prune_checkpoints,
        save_checkpoint,
        training_lock,
    )
    from prm_probe.training.tasks.identity import write_run_identity

    folder = RunFolder(out)
    start, start_model = 0, None
    if resume:
        if not is_run_dir(out):
            raise CheckpointError(f"'{out}' is not a run folder (no config.json); expected a folder written by "
                                  "`prm-probe train`; check the path or start a new run with --out")
        saved = config_from_dict(json.loads(folder.config.read_text(encoding="utf-8")))
        target = steps if steps is not None else (config.steps if config is not None else saved.steps)
        config = config_from_dict({**json.loads(save_config_json(saved)), "steps": target})
        ckpt = latest_checkpoint(out)
        if ckpt is not None:
            start_model = str(ckpt / "model")
    else:
        if config is None:
            raise ConfigError("no config given for a new run; expected a TrainConfig (load_config()); pass one, or "
                              "resume= an existing run")
        if steps is not None:
            config = config_from_dict({**json.loads(save_config_json(config)), "steps": steps})
        if config.steps == 0:
            raise ConfigError("steps is 0 for a new run, which would write nothing; expected >= 1; set --steps")
        if is_run_dir(out):
            raise CheckpointError(f"'{out}' already holds a run; expected a new folder; use --resume {out} to "
                                  "continue it, or choose another --out")
        if not config.run_id:
            config = config_from_dict({**json.loads(save_config_json(config)), "run_id": out.name})
    run = _Run(config, out, start_model)  # bad settings fail here, before anything is written
    out.mkdir(parents=True, exist_ok=True)
    if lock is None:  # a new folder: lock it as soon as it exists
        lock = held.enter_context(training_lock(out))
    folder.rollouts.mkdir(exist_ok=True)
    if start_model is not None:
        state = load_training_state(Path(start_model).parent, run.optimizer, run.scheduler)
        start = int(state["step"])
    write_text_atomic(folder.config, save_config_json(config))
    write_run_identity(out, run.task.identity())  # the task's rewards, seed-drawn options included
    truncate_jsonl(folder.metrics, start)
    truncate_jsonl(folder.validation, start)
    for part in folder.parts():
        if (part_step(part.name) or 0) >= start:
            part.unlink()
    sch = config.schedule
    steps = range(start, config.steps)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=config.steps, initial=start, desc=config.run_id, unit="step")
    for step in steps:
        lock.touch()
        record = _one_step(run, step)
        last = step + 1 == config.steps
        if (sch.val_every and (step + 1) % sch.val_every == 0) or last:
            val = _validate(run, step)
            if val:
                append_jsonl(folder.validation, val)
                record.update({k: v for k, v in val.items() if k != "step"})
        append_jsonl(folder.metrics, record)
        if (sch.save_every and (step + 1) % sch.save_every == 0) or last:
            save_checkpoint(out, step + 1, run.model, run.tokenizer, run.optimizer, run.scheduler,
                            {"data_position": (step + 1) * config.sampling.prompts_per_step, "seed": config.seed,
                             "run_id": config.run_id})
            prune_checkpoints(out, sch.keep_checkpoints)
        if on_step is not None:
            on_step(record)
        if bar is not None:
            bar.set_postfix(reward=f"{record['reward_mean']:.3f}", step_s=f"{record['time_step']:.2f}")
            bar.update(1)
    if bar is not None:
        bar.close()
    return out
