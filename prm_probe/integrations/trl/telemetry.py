"""Process sets of TRL ``GRPOTrainer`` generation batches: ``|λ|``, live overlap statistics, rollout logs.

TRL keeps a prompt's G completions in consecutive rows of the *gathered* generation batch, but a group may
span processes (per-device batch < G). :class:`OverlapTelemetry` therefore gathers every process's
completion ids (padded to a common width), builds the tries of the whole batch on every process (a few
milliseconds; no process waits for another), and returns this process's rows of ``|λ(i, t)|``. It also
appends the overlap statistics to TRL's metrics (``overlap/...``, logged like ``reward`` or ``kl``) and can
write the batch as a canonical rollout log with token ids.

Choices (docs/science.md §2.3–2.4): tries use completion ids only; a completion ends where TRL's completion
mask ends (up to and including its first EOS). Loss masks do not change the trie: a completion whose mask
TRL zeroes (``mask_truncated_completions``) keeps its sampled ids, recovered as the ids before the trailing
padding. Rewards are TRL's ``Σ_f w_f·r_f`` over reward functions (NaN where every function returned None).

:func:`attach_overlap_telemetry` adds the statistics (and optionally the log) to a plain ``GRPOTrainer``
without touching its loss. It wraps two methods of that trainer instance, because Hugging Face callbacks
are never shown the batch; ``LambdaGRPOTrainer`` uses the same object directly.
"""

from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray

from prm_probe.core.runs import part_name
from prm_probe.errors import ConfigError, PrmProbeError

__all__ = ["GatheredBatch", "OverlapTelemetry", "attach_overlap_telemetry", "completion_lengths"]

log = logging.getLogger(__name__)


def completion_lengths(completion_ids: torch.Tensor, completion_mask: torch.Tensor, pad_id: int) -> torch.Tensor:
    """(B,) sampled length of each right-padded completion.

    The mask's length where the mask is non-empty; where TRL zeroed it (a masked truncated completion),
    the position after the last non-pad id.

    Example:
        >>> ids = torch.tensor([[4, 5, 2, 0], [4, 7, 7, 7], [0, 0, 0, 0]])
        >>> completion_lengths(ids, torch.tensor([[1, 1, 1, 0], [0, 0, 0, 0], [0, 0, 0, 0]]), pad_id=0).tolist()
        [3, 4, 0]
    """
    from_mask = completion_mask.sum(dim=1)
    positions = torch.arange(1, completion_ids.size(1) + 1, device=completion_ids.device)
    if completion_ids.size(1) == 0:
        return from_mask.long()
    after_last = torch.where(completion_ids != pad_id, positions, 0).amax(dim=1)
    return torch.where(from_mask > 0, from_mask, after_last).long()


@dataclass(frozen=True)
class GatheredBatch:
    """One generation batch of all processes, rows in TRL's gathered order (groups of G consecutive rows).

    Attributes:
        completion_ids: (N, T) right-padded completion ids.
        lengths: (N,) completion lengths.
        prompt_ids: (N, P) left-padded prompt ids; ``prompt_mask`` (N, P) marks the real ones.
        advantages: (N,) TRL's advantages, or None when they are not one per row.
        local_rows: the slice of rows that belong to this process.
        group_size: G.
    """

    completion_ids: NDArray[np.int64]
    lengths: NDArray[np.int64]
    prompt_ids: NDArray[np.int64]
    prompt_mask: NDArray[np.int64]
    advantages: NDArray[np.float32] | None
    local_rows: slice
    group_size: int


def _tokenizer(trainer: Any) -> Any:
    tok = getattr(trainer, "_tokenizer", None) or trainer.processing_class
    return getattr(tok, "tokenizer", tok)  # processors wrap the tokenizer


def _pad_id(trainer: Any) -> int:
    tok = _tokenizer(trainer)
    return int(tok.pad_token_id if tok.pad_token_id is not None else 0)


def gather_batch(trainer: Any, output: dict[str, Any], group_size: int) -> GatheredBatch:
    """Gather the completion and prompt ids of every process (a collective: call it on all processes)."""
    acc, pad = trainer.accelerator, _pad_id(trainer)
    ids, mask = output["completion_ids"], output["completion_mask"]
    lengths = completion_lengths(ids, mask, pad)
    all_ids = acc.gather(acc.pad_across_processes(ids.contiguous(), dim=1, pad_index=pad))
    all_lengths = acc.gather(lengths)
    prompt = acc.gather(acc.pad_across_processes(output["prompt_ids"].contiguous(), dim=1, pad_index=pad,
                                                 pad_first=True))
    prompt_mask = acc.gather(acc.pad_across_processes(output["prompt_mask"].contiguous(), dim=1, pad_index=0,
                                                      pad_first=True))
    adv = output["advantages"]
    all_adv = acc.gather(adv.float()).cpu().numpy() if adv.dim() == 1 else None
    local = ids.size(0)
    rank = acc.process_index
    return GatheredBatch(all_ids.cpu().numpy().astype(np.int64), all_lengths.cpu().numpy().astype(np.int64),
                         prompt.cpu().numpy().astype(np.int64), prompt_mask.cpu().numpy().astype(np.int64),
                         all_adv, slice(rank * local, (rank + 1) * local), group_size)


def check_group_layout(batch: GatheredBatch) -> None:
    """Refuse a batch whose blocks of G consecutive rows do not each share one prompt."""
    n, g = len(batch.lengths), batch.group_size
    if n % g:
        raise PrmProbeError(f"the gathered generation batch has {n} rows, not a multiple of num_generations={g}; "
                            "expected whole groups; set generation_batch_size to a multiple of num_generations")
    prompts = np.where(batch.prompt_mask > 0, batch.prompt_ids, -1).reshape(n // g, g, -1)
    bad = np.flatnonzero(~(prompts == prompts[:, :1]).all(axis=(1, 2)))
    if len(bad):
        k = int(bad[0])
        raise PrmProbeError(f"rows {k * g}..{k * g + g - 1} of the gathered generation batch do not share one "
                            f"prompt; expected TRL's layout of {g} consecutive completions per prompt; this TRL "
                            "version or sampler groups rows differently, so process sets cannot be formed")


def _prompt_key(ids: NDArray[np.int64]) -> str:
    return hashlib.sha1(np.ascontiguousarray(ids, dtype=np.int64).tobytes()).hexdigest()[:16]


class OverlapTelemetry:
    """Per generation batch: ``|λ|`` of every token, overlap metrics, and an optional canonical rollout log.

    Args:
        trainer: the TRL ``GRPOTrainer`` whose batches are observed.
        rollout_log_dir: folder for ``step-NNNNNN.parquet`` parts (main process, training batches only), or None.
        log_metrics: append the ``overlap/...`` statistics to the trainer's metrics.
    """

    def __init__(self, trainer: Any, rollout_log_dir: str | os.PathLike | None = None, log_metrics: bool = True):
        self.trainer = trainer
        self.record: Any = None  # the run's RunRecordCallback, when one records it (its config goes into the log)
        self.rollout_log_dir = Path(rollout_log_dir) if rollout_log_dir else None
        self.log_metrics = log_metrics
        self._rewards: torch.Tensor | None = None
        self.last_metrics: dict[str, float] = {}

    def record_rewards(self, rewards_per_func: torch.Tensor) -> None:
        """Keep the gathered (N, F) rewards per reward function of the batch being scored."""
        self._rewards = rewards_per_func.detach()

    def _reward_columns(self, n: int) -> tuple[NDArray[np.float64] | None, dict[str, NDArray[np.float64]]]:
        rewards, self._rewards = self._rewards, None
        if rewards is None or rewards.shape[0] != n:
            return None, {}
        weights = self.trainer.reward_weights.to(rewards.device, rewards.dtype)
        total = torch.nansum(rewards * weights.unsqueeze(0), dim=1)
        total = torch.where(torch.isnan(rewards).all(dim=1), torch.nan, total)
        names = list(getattr(self.trainer, "reward_func_names", [])) or [f"f{i}" for i in range(rewards.shape[1])]
        parts = {name: rewards[:, i].double().cpu().numpy() for i, name in enumerate(names)}
        return total.double().cpu().numpy(), parts

    def observe(self, output: dict[str, Any]) -> torch.Tensor:
        """Process a batch returned by ``_generate_and_score_completions`` (collective; call on all processes).

        Returns:
            (B, T) float32 ``|λ(i, t)|`` for this process's rows and ``output["completion_ids"]``'s width
            (1 on padding), on the completions' device.
        """
        from prm_probe.core.stats import live_overlap_metrics
        from prm_probe.core.trie import PackedGroups, process_sets

        trainer = self.trainer
        train = bool(trainer.model.training)
        group_size = trainer.num_generations if train else trainer.num_generations_eval
        batch = gather_batch(trainer, output, group_size)
        check_group_layout(batch)
        reward, parts = self._reward_columns(len(batch.lengths))
        packed = PackedGroups.from_padded(batch.completion_ids, batch.lengths, group_size)
        ps = process_sets(packed)
        if self.log_metrics:
            self.last_metrics = live_overlap_metrics(ps, reward)
            metrics = trainer._metrics["train" if train else "eval"]
            for key, value in self.last_metrics.items():
                metrics[f"overlap/{key}"].append(value)
        if train and self.rollout_log_dir is not None and trainer.accelerator.is_main_process:
            self._write_log(batch, packed, reward, parts)
        width = output["completion_ids"].size(1)  # <= the gathered width, which every process was padded to
        sizes = packed.to_padded(ps.size, batch.completion_ids.shape[1], fill=1)[batch.local_rows, :width]
        return torch.as_tensor(sizes, dtype=torch.float32, device=output["completion_ids"].device)

    def _write_log(self, batch: GatheredBatch, packed: Any, reward: NDArray[np.float64] | None,
                   parts: dict[str, NDArray[np.float64]]) -> Path:
        from prm_probe.core.rollouts import log_metadata, rollout_table, write_rollouts

        trainer, n, g = self.trainer, len(batch.lengths), batch.group_size
        step = int(trainer.state.global_step)
        prompts = [row[m > 0] for row, m in zip(batch.prompt_ids, batch.prompt_mask, strict=True)]
        completions = np.split(packed.tokens, packed.offsets[1:-1])
        eos = set(getattr(trainer, "eos_token_ids", None) or [])
        run_id = trainer.args.run_name or Path(trainer.args.output_dir).name
        cols: dict[str, Any] = {
            "run_id": run_id, "step": step, "group": np.arange(n) // g, "sample": np.arange(n) % g,
            "prompt_id": [_prompt_key(p) for p in prompts], "completion_ids": [c.tolist() for c in completions],
            "reward": reward if reward is not None else np.full(n, np.nan),
            "prompt_ids": [p.tolist() for p in prompts],
        }
        if eos:
            cols["finish_reason"] = ["stop" if len(c) and int(c[-1]) in eos else "length" for c in completions]
        if batch.advantages is not None:
            cols["advantage"] = batch.advantages
        for name, values in parts.items():
            cols[f"reward_{name}"] = values
        from prm_probe.integrations.trl.record import RunRecordCallback

        tok = _tokenizer(trainer)
        # one metadata shape for every log: the run config as the built-in trainer writes it (task, model, sampling,
        # loss, optim), with TRL's own settings under "trl", the same dict as the run folder's config.json
        record = self.record or getattr(trainer, "run_record", None) or RunRecordCallback()
        meta = log_metadata(token_source="sampled", tokenizer=str(getattr(tok, "name_or_path", "")),
                            eos_token_id=tok.eos_token_id, pad_token_id=_pad_id(trainer),
                            model=str(getattr(getattr(trainer.model, "config", None), "_name_or_path", "")),
                            config={**record.config(trainer.args, trainer.model), "trainer": type(trainer).__name__})
        path = self.rollout_log_dir / part_name(step)
        return write_rollouts(rollout_table(cols, num_rows=n), path, metadata=meta)


def attach_overlap_telemetry(trainer: Any, rollout_log_dir: str | os.PathLike | None = None,
                             record_run: bool = True, task: str | None = None) -> OverlapTelemetry:
    """Add process-set statistics (and optionally a canonical rollout log) to any TRL ``GRPOTrainer``.

    The loss is untouched: the hook only reads each generation batch. Call it before ``trainer.train()``;
    the statistics then appear in the trainer's logs as ``overlap/path_depth_mean``, ... (``eval_overlap/...``
    during evaluation), next to ``reward`` and ``kl``. With ``record_run`` the run folder also gets
    prm_probe's ``config.json`` / ``metrics.jsonl``
    (:class:`~prm_probe.integrations.trl.record.RunRecordCallback`, recording ``task``), so
    ``prm-probe compare`` reads the run.
    """
    if getattr(trainer, "_prm_probe_telemetry", None) is not None:
        raise ConfigError("this trainer already has prm_probe's overlap telemetry attached; expected one; "
                          "attach it once (LambdaGRPOTrainer has it built in)")
    telemetry = OverlapTelemetry(trainer, rollout_log_dir)
    score, generate = trainer._calculate_rewards, trainer._generate_and_score_completions

    def calculate_rewards(*args: Any, **kwargs: Any) -> torch.Tensor:
        rewards = score(*args, **kwargs)
        telemetry.record_rewards(rewards)
        return rewards

    def generate_and_score(inputs: Any) -> dict[str, Any]:
        output = generate(inputs)
        telemetry.observe(output)
        return output

    trainer._calculate_rewards = calculate_rewards
    trainer._generate_and_score_completions = generate_and_score
    trainer._prm_probe_telemetry = telemetry
    if record_run:
        from prm_probe.integrations.trl.record import RunRecordCallback

        telemetry.record = RunRecordCallback(task=task)
        trainer.add_callback(telemetry.record)
    return telemetry
