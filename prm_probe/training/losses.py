"""The GRPO / λ-GRPO objective in torch, staged as: per-token objective → weights → aggregation.

docs/science.md §1 and §5. Two orthogonal axes:

* **weighting** (:data:`WEIGHTINGS`): ``uniform`` (GRPO: the completion mask) or ``process_set``
  (λ-GRPO: ``1/|λ(i, t)|`` on completion tokens). The weight multiplies the *whole* per-token objective,
  clipped surrogate and KL alike; clipping is decided before scaling, so λ never changes which tokens clip.
* **aggregation** (:data:`AGGREGATIONS`): ``seq_mean`` (per-sequence mean, then mean over sequences: the
  original GRPO and the authors' code default), ``token_mean`` (sum over the optimiser batch ÷ its total
  completion tokens: the normaliser under which GRPO = PRM holds) or ``dr_grpo`` (sum ÷ (N × max new
  tokens)). Denominators are token counts of the **whole optimiser batch**, never sums of weights, so
  gradient accumulation does not change the result. The opt-in ``renormalise`` variant (a deviation
  from the paper, labelled as such) divides by summed weights instead.

Shapes: ``B`` rows (completions) in a micro-batch, ``T`` completion positions (padded).
This module has no model code, no sampling and no I/O.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from prm_probe.core.prm import ADVANTAGE_EPS
from prm_probe.core.weightings import PROCESS_SET, UNIFORM
from prm_probe.errors import ConfigError, close_matches

__all__ = [
    "AGGREGATIONS",
    "WEIGHTINGS",
    "BatchNorms",
    "aggregate",
    "group_advantages",
    "per_token_terms",
    "token_weights",
]

def group_advantages(rewards: torch.Tensor, group_size: int, scale: bool = True,
                     eps: float = ADVANTAGE_EPS) -> torch.Tensor:
    """Outcome advantages ``(r − r̄)/(σ_unbiased + eps)`` for consecutive groups of ``group_size``.

    Args:
        rewards: (N,) rewards, N a multiple of ``group_size``.
        group_size: G >= 2.
        scale: divide by the group std + eps (``False``: Dr. GRPO, mean-centred only).

    Returns:
        (N,) advantages, dtype of ``rewards``.

    Example:
        >>> group_advantages(torch.tensor([1.0, 0.0, 1.0, 0.0]), 4)
        tensor([ 0.8659, -0.8659,  0.8659, -0.8659])
    """
    if group_size < 2:
        raise ConfigError(f"group size {group_size} < 2: advantages need a group std; expected G >= 2; "
                          "sample at least 2 completions per prompt")
    if rewards.numel() % group_size:
        raise ConfigError(f"{rewards.numel()} rewards do not split into groups of {group_size}; expected a multiple; "
                          "keep whole groups together")
    r = rewards.view(-1, group_size)  # (groups, G)
    adv = r - r.mean(dim=1, keepdim=True)
    if scale:
        adv = adv / (r.std(dim=1, unbiased=True, keepdim=True) + eps)
    flat = r.amax(dim=1, keepdim=True) == r.amin(dim=1, keepdim=True)  # all-equal rewards: exactly 0
    return adv.masked_fill(flat, 0.0).reshape(-1)


def per_token_terms(logp: torch.Tensor, old_logp: torch.Tensor, advantages: torch.Tensor,
                    ref_logp: torch.Tensor | None = None, eps_low: float = 0.2, eps_high: float = 0.2,
                    beta: float = 0.0) -> dict[str, torch.Tensor]:
    """The per-token GRPO loss ``ℓ = −[min(P·a, clip(P, 1−ε_low, 1+ε_high)·a) − β·K]`` and its parts.

    Args:
        logp: (B, T) log π_θ of the sampled tokens (with grad).
        old_logp: (B, T) log π_old (no grad); equal to ``logp.detach()`` on the first pass (μ = 1).
        advantages: (B,) outcome advantages (or (B, T) per-token ones).
        ref_logp: (B, T) log π_ref for the k3 KL, or None when β = 0.
        beta: KL coefficient.

    Returns:
        ``loss`` (B, T) per-token loss to minimise (unweighted, unmasked); ``kl`` (B, T) k3 estimate
        (zeros without a reference); ``clipped`` (B, T) bool, True where the clipped branch is active.
    """
    adv = advantages.unsqueeze(1) if advantages.dim() == 1 else advantages  # (B, 1) or (B, T)
    ratio = torch.exp(logp - old_logp.detach())  # (B, T)
    clipped_ratio = torch.clamp(ratio, 1.0 - eps_low, 1.0 + eps_high)  # (B, T)
    surrogate = torch.minimum(ratio * adv, clipped_ratio * adv)  # (B, T)
    clipped = (clipped_ratio * adv < ratio * adv).detach()  # (B, T)
    if ref_logp is not None and beta != 0.0:
        delta = ref_logp.detach() - logp  # (B, T)
        kl = torch.exp(delta) - delta - 1.0  # (B, T) k3
    else:
        kl = torch.zeros_like(logp)
    return {"loss": -(surrogate - beta * kl), "kl": kl, "clipped": clipped}


def _uniform(mask: torch.Tensor, sizes: torch.Tensor | None) -> torch.Tensor:
    return mask


def _process_set(mask: torch.Tensor, sizes: torch.Tensor | None) -> torch.Tensor:
    if sizes is None:
        raise ConfigError("weighting 'process_set' needs the process-set sizes |λ| of every token; "
                          "got none; compute them with prm_probe.core.trie.process_sets")
    return mask / sizes.clamp(min=1).to(mask.dtype)


#: weighting name (:mod:`prm_probe.core.weightings`) -> f(mask (B, T), sizes (B, T) | None) -> weights (B, T)
WEIGHTINGS: dict[str, Callable[[torch.Tensor, torch.Tensor | None], torch.Tensor]] = {
    UNIFORM: _uniform,
    PROCESS_SET: _process_set,
}


def token_weights(weighting: str, mask: torch.Tensor, sizes: torch.Tensor | None = None) -> torch.Tensor:
    """(B, T) per-token weights for ``weighting`` (0 on padding)."""
    fn = WEIGHTINGS.get(weighting)
    if fn is None:
        raise ConfigError(f"unknown weighting {weighting!r}; {close_matches(weighting, WEIGHTINGS)}"
                          f"expected one of {', '.join(WEIGHTINGS)}")
    return fn(mask, sizes)


@dataclass(frozen=True)
class BatchNorms:
    """Denominators of the whole optimiser batch, so micro-batching never changes the loss.

    Attributes:
        n_sequences: N, completions in the optimiser batch.
        n_tokens: Σ_i |y_i| over the optimiser batch.
        max_new_tokens: the maximum completion length setting (Dr. GRPO's constant).
        weight_sum: Σ_{i,t} w(i, t) over the batch (only for ``renormalise`` with token_mean).
    """

    n_sequences: int
    n_tokens: int
    max_new_tokens: int
    weight_sum: float | None = None


def _seq_mean(loss, weights, mask, norms: BatchNorms, renormalise: bool):
    per_row = (loss * weights).sum(dim=1)  # (B,)
    denom = (weights if renormalise else mask).sum(dim=1).clamp(min=1e-12)  # (B,)
    return (per_row / denom).sum() / norms.n_sequences


def _token_mean(loss, weights, mask, norms: BatchNorms, renormalise: bool):
    denom = norms.weight_sum if renormalise else norms.n_tokens
    if renormalise and denom is None:
        raise ConfigError("renormalised token_mean needs BatchNorms.weight_sum; got None; pass the batch's Σw")
    return (loss * weights).sum() / max(float(denom), 1e-12)


def _dr_grpo(loss, weights, mask, norms: BatchNorms, renormalise: bool):
    return (loss * weights).sum() / (norms.n_sequences * norms.max_new_tokens)


#: aggregation name -> f(loss (B, T), weights (B, T), mask (B, T), norms, renormalise) -> scalar
AGGREGATIONS = {"seq_mean": _seq_mean, "token_mean": _token_mean, "dr_grpo": _dr_grpo}


def aggregate(aggregation: str, loss: torch.Tensor, weights: torch.Tensor, mask: torch.Tensor,
              norms: BatchNorms, renormalise: bool = False) -> torch.Tensor:
    """Reduce a micro-batch's weighted per-token loss to its share of the optimiser-batch loss.

    Summing the returned values over the micro-batches of one optimiser batch gives the batch loss.

    Example:
        >>> loss = torch.tensor([[1.0, 1.0, 0.0], [2.0, 0.0, 0.0]]); mask = (loss > 0).float()
        >>> float(aggregate("token_mean", loss, mask, mask, BatchNorms(2, 3, 3)))
        1.3333333730697632
        >>> float(aggregate("seq_mean", loss, mask, mask, BatchNorms(2, 3, 3)))
        1.5
    """
    fn = AGGREGATIONS.get(aggregation)
    if fn is None:
        raise ConfigError(f"unknown aggregation {aggregation!r}; {close_matches(aggregation, AGGREGATIONS)}"
                          f"expected one of {', '.join(AGGREGATIONS)}")
    return fn(loss, weights, mask, norms, renormalise)
