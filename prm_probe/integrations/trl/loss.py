"""The λ-GRPO loss inside TRL's ``GRPOTrainer``: each token's whole loss times ``1/|λ(i, t)|``.

TRL adds ``β·KL`` to the per-token loss right before aggregating it, inside one private method, so no hook
sits between the two (TRL 1.16, ``GRPOTrainer._compute_loss``). Folding the weight into (B, T) advantages
would scale the surrogate but leave the KL unscaled, which is not λ-GRPO when β > 0 (docs/science.md §5.1–5.2).
This module therefore rebuilds the per-token objective of the loss types it supports from the same inputs,
helpers and settings TRL uses, multiplies it by the weight **after** the KL term and **before** aggregation,
and then aggregates exactly as TRL does for the configured ``loss_type``. With all weights 1 it equals TRL's
own loss, metrics and gradients; ``tests/test_trl.py`` checks that for every supported loss type, so a TRL
release that changes its objective fails the tests instead of drifting silently.

Supported: ``loss_type`` grpo, bnpo, dr_grpo, dapo, cispo, sapo; token- or sequence-level importance
sampling; ``epsilon``/``epsilon_high``/``delta``; ``beta`` with or without ``use_bias_correction_kl``;
``top_entropy_quantile``; ``off_policy_mask_threshold``; vLLM importance-sampling correction; tool masks;
MoE auxiliary loss. Refused with a clear error (:func:`unsupported_settings`): luspo, vespo, the entropy
bonus, and the Liger fused loss, which bypasses the per-token loss altogether.
"""

from __future__ import annotations

import inspect
from typing import Any

import torch

from prm_probe.errors import ConfigError

__all__ = ["SUPPORTED_LOSS_TYPES", "aggregate_like_trl", "lambda_grpo_loss", "per_token_objective",
           "unsupported_settings"]

SUPPORTED_LOSS_TYPES = ("grpo", "bnpo", "dr_grpo", "dapo", "cispo", "sapo")
_CLIPPED_TYPES = ("grpo", "bnpo", "dr_grpo", "dapo")


def unsupported_settings(trainer: Any) -> list[str]:
    """Settings of ``trainer`` that the λ-GRPO loss cannot honour, each as 'name=value (why)'."""
    args = trainer.args
    found = []
    if trainer.loss_type not in SUPPORTED_LOSS_TYPES:
        found.append(f"loss_type={trainer.loss_type!r} (supported: {', '.join(SUPPORTED_LOSS_TYPES)})")
    if getattr(args, "use_liger_kernel", False):
        found.append("use_liger_kernel=True (the fused loss never forms a per-token loss to weight)")
    if getattr(args, "entropy_coef", 0.0) or getattr(args, "use_adaptive_entropy", False):
        found.append("entropy_coef/use_adaptive_entropy (the entropy bonus is not supported)")
    return found


def _forward_extras(trainer: Any, inputs: dict[str, Any]) -> dict[str, Any]:
    """The optional inputs (images, token types, ...) that TRL's log-prob helper accepts, as present."""
    accepted = inspect.signature(trainer._get_per_token_logps_and_entropies).parameters
    fixed = {"model", "input_ids", "attention_mask", "logits_to_keep", "compute_entropy", "compute_aux_loss"}
    return {k: inputs.get(k) for k in accepted if k not in fixed and k in inputs}


def per_token_objective(trainer: Any, model: Any, inputs: dict[str, Any],
                        weight: torch.Tensor | None) -> dict[str, torch.Tensor]:
    """The per-token loss of TRL's objective for ``trainer.loss_type``, times ``weight``.

    Args:
        trainer: a TRL ``GRPOTrainer`` (its settings and helpers are used).
        model: the policy to differentiate.
        inputs: one TRL micro-batch (``prompt_ids``, ``completion_ids``, masks, ``advantages``, ...).
        weight: (B, T) per-token factors (``1/|λ|`` for λ-GRPO), or None for 1.

    Returns:
        ``loss`` (B, T) weighted per-token loss (surrogate, masks, KL included; padding not yet masked);
        ``mask`` (B, T) aggregation mask; ``ratio`` (B, T) or (B, 1) importance ratio after the ``delta`` cap;
        ``advantages`` (B, 1) or (B, T); ``entropies`` (B, T); ``kl`` (B, T) or None; ``aux_loss`` or None.
    """
    prompt_ids, prompt_mask = inputs["prompt_ids"], inputs["prompt_mask"]
    completion_ids, completion_mask = inputs["completion_ids"], inputs["completion_mask"]
    mask = completion_mask if "tool_mask" not in inputs else completion_mask * inputs["tool_mask"]
    logps, entropies, aux_loss = trainer._get_per_token_logps_and_entropies(
        model, torch.cat([prompt_ids, completion_ids], dim=1), torch.cat([prompt_mask, completion_mask], dim=1),
        completion_ids.size(1), compute_entropy=True, compute_aux_loss=trainer.aux_loss_enabled,
        **_forward_extras(trainer, inputs))
    adv = inputs["advantages"]
    adv = adv.unsqueeze(1) if adv.dim() == 1 else adv  # (B, 1) or (B, T)
    old = inputs.get("old_per_token_logps")
    old = logps.detach() if old is None else old

    log_ratio = logps - old  # (B, T)
    if trainer.importance_sampling_level == "sequence":
        log_ratio = (log_ratio * mask).sum(-1, keepdim=True) / mask.sum(-1, keepdim=True).clamp(min=1.0)  # (B, 1)
    elif trainer.importance_sampling_level != "token":
        raise ConfigError(f"importance_sampling_level {trainer.importance_sampling_level!r} is unknown; "
                         "expected 'token' or 'sequence'")
    ratio = torch.exp(log_ratio)

    kl = None
    if trainer.beta != 0.0:
        diff = inputs["ref_per_token_logps"] - logps
        kl = torch.exp(diff) - diff - 1  # k3, (B, T)
        if trainer.args.use_bias_correction_kl:
            kl = kl * ratio

    if trainer.loss_type == "cispo":
        loss = -torch.clamp(ratio, max=trainer.epsilon_high).detach() * adv * logps
    elif trainer.loss_type == "sapo":
        temps = torch.where(adv > 0, trainer.args.sapo_temperature_pos, trainer.args.sapo_temperature_neg)
        loss = -(torch.sigmoid(temps * (ratio - 1)) * 4 / temps) * adv
    elif trainer.loss_type in _CLIPPED_TYPES:
        clipped = torch.clamp(ratio, 1 - trainer.epsilon_low, 1 + trainer.epsilon_high)
        if trainer.args.delta is not None:
            ratio = torch.clamp(ratio, max=trainer.args.delta)
        loss = -torch.min(ratio * adv, clipped * adv)
    else:
        raise ConfigError(f"loss_type {trainer.loss_type!r} is not supported by the λ-GRPO loss; "
                         f"expected one of {', '.join(SUPPORTED_LOSS_TYPES)}")

    if trainer.off_policy_mask_threshold is not None:
        sampling = inputs.get("sampling_per_token_logps", old)
        loss = loss * trainer.get_off_policy_mask(advantages=adv, per_token_logps=logps,
                                                  sampling_per_token_logps=sampling, mask=mask,
                                                  off_policy_threshold=trainer.off_policy_mask_threshold)
    if trainer.top_entropy_quantile < 1.0:
        loss = loss * trainer.get_high_entropy_mask(entropies, mask, 1 - trainer.top_entropy_quantile)
    if trainer.use_vllm and trainer.vllm_importance_sampling_correction:
        loss = loss * inputs["importance_sampling_ratio"]
    if kl is not None:
        loss = loss + trainer.beta * kl
    if weight is not None:
        loss = loss * weight  # λ-GRPO: the whole per-token loss, KL included, before aggregation
    return {"loss": loss, "mask": mask, "ratio": ratio, "advantages": adv, "entropies": entropies, "kl": kl,
            "aux_loss": aux_loss}


def aggregate_like_trl(trainer: Any, loss: torch.Tensor, mask: torch.Tensor, inputs: dict[str, Any],
                       train: bool) -> torch.Tensor:
    """Reduce a (B, T) per-token loss to the micro-batch loss with TRL's denominators for its ``loss_type``.

    The denominators are token or sequence counts, never the weights: λ-GRPO does not renormalise
    (docs/science.md §5.1, §5.4).
    """
    accumulation = trainer.current_gradient_accumulation_steps if train else 1.0
    kind = trainer.loss_type
    masked = loss * mask
    if kind in ("grpo", "sapo"):
        return (masked.sum(-1) / mask.sum(-1).clamp(min=1.0)).mean() / accumulation
    if kind == "bnpo":
        return masked.sum() / mask.sum().clamp(min=1.0) / accumulation
    if kind == "dr_grpo":
        return masked.sum() / (loss.size(0) * trainer.max_completion_length) / accumulation
    if kind in ("dapo", "cispo"):
        normaliser = inputs["num_items_in_batch"].clamp(min=1.0) / trainer.accelerator.num_processes
        if train:
            normaliser = normaliser * accumulation / trainer.args.steps_per_generation
        return masked.sum() / normaliser
    raise ConfigError(f"loss_type {kind!r} is not supported by the λ-GRPO loss; "
                     f"expected one of {', '.join(SUPPORTED_LOSS_TYPES)}")


def _global_mean(trainer: Any, x: torch.Tensor, mask: torch.Tensor) -> float:
    """Mean of ``x`` over the unmasked tokens of all processes ((B, 1) values count once per row)."""
    if x.shape[1] == 1:
        total, count = x.sum(), torch.tensor(float(x.shape[0]), device=x.device)
    else:
        total, count = (x * mask).sum(), mask.sum().float()
    both = trainer.accelerator.reduce(torch.stack([total, count]), reduction="sum")
    return (both[0] / both[1].clamp(min=1.0)).item()


def _row_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return x.squeeze(1) if x.shape[1] == 1 else (x * mask).sum(-1) / mask.sum(-1)


def _log_metrics(trainer: Any, parts: dict[str, torch.Tensor], mode: str) -> None:
    """The same metrics TRL logs from its loss (KL, entropy, clip ratios), computed on unweighted values."""
    metrics, mask, ratio, adv = trainer._metrics[mode], parts["mask"], parts["ratio"], parts["advantages"]
    if parts["kl"] is not None:
        metrics["kl"].append(_global_mean(trainer, parts["kl"], mask))
    metrics["entropy"].append(_global_mean(trainer, parts["entropies"], mask))
    if trainer.loss_type in _CLIPPED_TYPES:
        low = ((ratio < 1 - trainer.epsilon_low) & (adv < 0)).float()
        high = ((ratio > 1 + trainer.epsilon_high) & (adv > 0)).float()
        metrics["clip_ratio/low_mean"].append(_global_mean(trainer, low, mask))
        metrics["clip_ratio/high_mean"].append(_global_mean(trainer, high, mask))
        metrics["clip_ratio/region_mean"].append(_global_mean(trainer, torch.maximum(low, high), mask))
        from trl.trainer.utils import nanmax, nanmin

        gather = trainer.accelerator.gather
        metrics["clip_ratio/low_min"].append(nanmin(gather(_row_mean(low, mask))).item())
        metrics["clip_ratio/high_max"].append(nanmax(gather(_row_mean(high, mask))).item())
    elif trainer.loss_type == "cispo":
        clipped = ((ratio > trainer.epsilon_high) & (adv > 0)).float()
        metrics["cispo_clip_ratio"].append(_global_mean(trainer, clipped, mask))


def lambda_grpo_loss(trainer: Any, model: Any, inputs: dict[str, Any], weight: torch.Tensor | None) -> torch.Tensor:
    """TRL's micro-batch loss with each token's per-token loss multiplied by ``weight`` (B, T)."""
    train = bool(trainer.model.training)
    mode = "train" if train else "eval"
    parts = per_token_objective(trainer, model, inputs, weight)
    loss = aggregate_like_trl(trainer, parts["loss"], parts["mask"], inputs, train)
    if trainer.aux_loss_enabled:
        accumulation = trainer.current_gradient_accumulation_steps if train else 1.0
        loss = loss + trainer.router_aux_loss_coef * parts["aux_loss"] / accumulation
        trainer._metrics[mode]["aux_loss"].append(
            trainer.accelerator.gather_for_metrics(parts["aux_loss"]).mean().item())
    _log_metrics(trainer, parts, mode)
    return loss
