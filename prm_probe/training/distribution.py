"""The policy's next-token distribution: the one definition shared by the sampler and every training forward.

GRPO's objective is a policy gradient of the distribution the completions were **sampled** from. That
distribution is not ``softmax(logits)``: the sampler divides the logits by the temperature and, for tasks
that restrict generation (the toy tree's L/R), masks every other token. A trainer that differentiates the
full-vocabulary ``log_softmax(logits)`` instead pushes each sampled action against tokens that can never be
sampled (98 of the tiny models' 100, 49,150 of SmolLM2's 49,152) and, at ``temperature != 1``, computes the
ratio, the policy gradient and the KL of another distribution.

So every log-prob prm_probe uses comes from :func:`policy_log_probs` / :func:`token_log_probs`:

    π(y | context) = softmax( mask_allowed(z) / temperature )[y]

used by the sampler (for drawing and for the recorded ``logps``), the policy forward of the update, the
frozen reference of the KL and the μ > 1 old log-probs.

**Top-k and top-p** truncate the sampler only. Training uses the untruncated tempered (and masked)
distribution, as TRL and verl do: the truncated distribution is not differentiable at its cut-off (a
token's probability jumps to 0 when it leaves the kept set), and matching the peers keeps runs comparable.
The recorded sampler ``logps`` are log-probs of this same untruncated distribution, so a mismatch between
sampler and trainer (``logp_mismatch_max`` in ``metrics.jsonl``) measures only a numerical or implementation
difference, never the truncation. With top-k/top-p on, the samples come from the truncated distribution
while the gradient is that of the untruncated one: a known, documented bias, shared with TRL and verl.

Shapes: ``(..., V)`` logits over a vocabulary of ``V`` ids; ``(...,)`` token ids.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from prm_probe.errors import ConfigError

__all__ = ["PolicyDistribution", "policy_log_probs", "token_log_probs", "truncate"]


@dataclass(frozen=True)
class PolicyDistribution:
    """How logits become the policy: a ``temperature`` and an optional set of ``allowed`` token ids.

    Example:
        >>> d = PolicyDistribution(temperature=0.5, allowed=(1, 3))
        >>> d.log_probs(torch.tensor([[0.0, 1.0, 5.0, 0.0]])).exp()
        tensor([[0.0000, 0.8808, 0.0000, 0.1192]])
    """

    temperature: float = 1.0
    allowed: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        if not self.temperature > 0:
            raise ConfigError(f"temperature {self.temperature}; expected > 0; set sampling.temperature")
        if self.allowed is not None:
            object.__setattr__(self, "allowed", tuple(int(a) for a in self.allowed))
            if not self.allowed:
                raise ConfigError("allowed token ids are empty; expected at least one id (None means no "
                                  "restriction); fix the task's allowed_token_ids")

    def log_probs(self, logits: torch.Tensor) -> torch.Tensor:
        """(..., V) log-probs of the policy (``-inf`` outside the allowed set)."""
        return policy_log_probs(logits, self.temperature, self.allowed)

    def token_log_probs(self, logits: torch.Tensor, tokens: torch.Tensor,
                        with_entropy: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(...,) log π of ``tokens`` under ``logits`` (and the (...,) entropy when asked)."""
        return token_log_probs(logits, tokens, self.temperature, self.allowed, with_entropy)


def _allowed_index(allowed: Sequence[int] | torch.Tensor, device) -> torch.Tensor:
    return torch.as_tensor(list(allowed) if not isinstance(allowed, torch.Tensor) else allowed,
                           dtype=torch.long, device=device)


def _float(logits: torch.Tensor) -> torch.Tensor:
    """fp32 at least (a float64 model keeps float64)."""
    return logits.to(torch.promote_types(logits.dtype, torch.float32))


def policy_log_probs(logits: torch.Tensor, temperature: float = 1.0,
                     allowed: Sequence[int] | torch.Tensor | None = None) -> torch.Tensor:
    """(..., V) log-probs of ``softmax(mask_allowed(logits) / temperature)``; ``-inf`` outside ``allowed``.

    Example:
        >>> policy_log_probs(torch.log(torch.tensor([0.5, 0.3, 0.2])), allowed=[0, 2]).exp()
        tensor([0.7143, 0.0000, 0.2857])
    """
    x = _float(logits) / temperature
    if allowed is not None:
        idx = _allowed_index(allowed, x.device)
        keep = torch.zeros(x.shape[-1], dtype=torch.bool, device=x.device)
        keep[idx] = True
        x = x.masked_fill(~keep, float("-inf"))
    return torch.log_softmax(x, dim=-1)


def token_log_probs(logits: torch.Tensor, tokens: torch.Tensor, temperature: float = 1.0,
                    allowed: Sequence[int] | torch.Tensor | None = None,
                    with_entropy: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(...,) log π(token) under the policy of :func:`policy_log_probs`, and optionally its (...,) entropy.

    Memory-lean: with ``allowed`` only the allowed columns of the logits are normalised (k instead of V per
    position), and without it the log-prob is ``z_y/T − logsumexp(z/T)`` (no (..., V) log-softmax kept for
    the backward). A token outside ``allowed`` has log-prob ``-inf`` (it cannot have been sampled).
    The entropy is computed without gradient.

    Args:
        logits: (..., V) raw model logits.
        tokens: (...,) token ids (any value where the caller masks the position out).
    """
    tokens = tokens.long()
    if allowed is not None:
        idx = _allowed_index(allowed, logits.device)  # (k,)
        sub = _float(logits.index_select(-1, idx)) / temperature  # (..., k)
        lse = torch.logsumexp(sub, dim=-1)  # (...,)
        lookup = torch.full((logits.shape[-1],), -1, dtype=torch.long, device=logits.device)
        lookup[idx] = torch.arange(idx.numel(), device=logits.device)
        pos = lookup[tokens.clamp(0, logits.shape[-1] - 1)]  # (...,) index within allowed, -1 if not allowed
        picked = sub.gather(-1, pos.clamp(min=0).unsqueeze(-1)).squeeze(-1)  # (...,)
        logp = torch.where(pos >= 0, picked - lse, torch.full_like(picked, float("-inf")))
        x, norm = sub, lse
    else:
        x = _float(logits) / temperature  # (..., V)
        norm = torch.logsumexp(x, dim=-1)  # (...,)
        logp = x.gather(-1, tokens.unsqueeze(-1)).squeeze(-1) - norm  # (...,)
    entropy = None
    if with_entropy:
        with torch.no_grad():
            lp = x - norm.unsqueeze(-1)  # (..., k or V)
            p = lp.exp()
            entropy = -torch.where(p > 0, p * lp, torch.zeros_like(p)).sum(dim=-1)
    return logp, entropy


def truncate(log_probs: torch.Tensor, top_k: int = 0, top_p: float = 1.0) -> torch.Tensor:
    """The sampler's (..., V) distribution: ``log_probs`` cut to the top-k and nucleus-p tokens, renormalised.

    Training never uses this (see the module docstring); ``top_k = 0`` and ``top_p = 1`` return the input.
    """
    x = log_probs
    if 0 < top_k < x.shape[-1]:
        kth = torch.topk(x, top_k, dim=-1).values[..., -1:]  # (..., 1)
        x = x.masked_fill(x < kth, float("-inf"))
    if top_p < 1.0:
        sorted_x, order = torch.sort(x, dim=-1, descending=True)
        probs = torch.softmax(sorted_x, dim=-1)
        drop = probs.cumsum(dim=-1) - probs > top_p  # keep the smallest prefix reaching top_p
        sorted_x = sorted_x.masked_fill(drop, float("-inf"))
        x = torch.full_like(x, float("-inf")).scatter(-1, order, sorted_x)
    if x is log_probs:
        return x
    return torch.log_softmax(x, dim=-1)
