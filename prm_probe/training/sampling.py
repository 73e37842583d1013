"""Sampling G completions per prompt with a KV cache, correct masks and positions for left padding.

Our own decoding loop (rather than ``model.generate``) so that: sampling draws from an explicit
``torch.Generator`` (a run's sampling is fixed by its seed without touching global RNG state); the
sampler's per-token log-probs are recorded as sampled; generation can be restricted to a set of allowed
tokens for an exact number of steps (the toy tree task); and the completion ends at the **first** end
token, which is kept as the last completion token (docs/science.md §2.4), whatever the pad id.

Shapes: ``B`` rows (prompts × G), ``P`` padded prompt length, ``T`` generated positions.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import dataclass

import torch

from prm_probe.training.distribution import policy_log_probs, truncate

__all__ = ["Completions", "left_pad", "process_logits", "sample_completions"]


@dataclass
class Completions:
    """Sampled completions, one entry per row (prompt-major: rows ``k*G .. k*G+G-1`` share prompt ``k``).

    Attributes:
        prompt_ids: (B,) prompt token ids per row.
        completion_ids: (B,) completion token ids, the end token included when one was sampled.
        logps: (B,) log-probs of each completion token under the policy distribution (temperature and allowed-token
            mask applied; top-k/top-p truncation not, as in training: :mod:`prm_probe.training.distribution`).
        finish_reason: (B,) ``"stop"`` or ``"length"``.
    """

    prompt_ids: list[list[int]]
    completion_ids: list[list[int]]
    logps: list[list[float]]
    finish_reason: list[str]


def left_pad(seqs: Sequence[Sequence[int]], pad_id: int, device=None) -> tuple[torch.Tensor, torch.Tensor]:
    """Left-pad token lists: returns ``ids`` (B, L) long and ``mask`` (B, L) long (1 = real token)."""
    width = max((len(s) for s in seqs), default=0)
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for i, s in enumerate(seqs):
        if len(s):
            ids[i, width - len(s):] = torch.as_tensor(list(s), dtype=torch.long)
            mask[i, width - len(s):] = 1
    return ids.to(device), mask.to(device)


def process_logits(logits: torch.Tensor, temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0,
                   allowed: torch.Tensor | None = None) -> torch.Tensor:
    """(B, V) log-probs the sampler **draws** from: the policy (allowed-token mask, temperature), then top-k/top-p.

    The policy itself (what is recorded and trained) is :func:`prm_probe.training.distribution.policy_log_probs`;
    top-k/top-p only truncate the draw (see :mod:`prm_probe.training.distribution`).
    """
    return truncate(policy_log_probs(logits, temperature, allowed), top_k, top_p)


def forward_parameters(model) -> frozenset[str]:
    """Names of the keyword arguments the (base) model's ``forward`` declares (a LoRA wrapper is looked through)."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return _signature_names(type(base).forward)


@functools.lru_cache(maxsize=64)
def _signature_names(forward) -> frozenset[str]:
    """Parameter names of a class's ``forward`` (cached: the sampler asks at every decoding step)."""
    import inspect

    return frozenset(inspect.signature(forward).parameters)


def _cache_keyword(model) -> str:
    """``cache`` in transformers >= 5.2x, ``past_key_values`` before (the GPU machine has 5.17)."""
    return "cache" if "cache" in forward_parameters(model) else "past_key_values"


def last_logits_kwargs(model, n: int) -> dict[str, int]:
    """``{"logits_to_keep": n}`` where the model supports it (the LM head then runs on the last n positions only)."""
    return {"logits_to_keep": n} if "logits_to_keep" in forward_parameters(model) else {}


@torch.no_grad()
def sample_completions(model, prompts: Sequence[Sequence[int]], group_size: int, *, max_new_tokens: int,
                       end_ids: set[int], pad_id: int, generator: torch.Generator, temperature: float = 1.0,
                       top_k: int = 0, top_p: float = 1.0, allowed_token_ids: Sequence[int] | None = None,
                       exact_new_tokens: int | None = None, greedy: bool = False) -> Completions:
    """Sample ``group_size`` completions for each prompt.

    Args:
        model: a causal LM (eval mode is set and restored by the caller).
        prompts: K prompts as token-id lists.
        max_new_tokens: stop every row after this many tokens (``finish_reason = "length"``).
        end_ids: tokens that end a completion (kept as its last token, ``"stop"``).
        generator: the only source of randomness.
        allowed_token_ids: restrict sampling to these ids (e.g. the toy tree's two actions).
        exact_new_tokens: generate exactly this many tokens, ignoring end tokens.
        greedy: take the arg-max instead of sampling (validation).
    """
    device = next(model.parameters()).device
    rows = [list(p) for p in prompts for _ in range(group_size)]
    ids, mask = left_pad(rows, pad_id, device)  # (B, P)
    b = ids.shape[0]
    steps = exact_new_tokens if exact_new_tokens is not None else max_new_tokens
    allowed = None if allowed_token_ids is None else torch.as_tensor(list(allowed_token_ids), device=device)
    ends = torch.as_tensor(sorted(end_ids), device=device) if end_ids else None
    positions = (mask.cumsum(dim=1) - 1).clamp(min=0)  # (B, P)
    out_tokens = torch.full((b, steps), pad_id, dtype=torch.long, device=device)  # (B, T)
    out_logps = torch.zeros((b, steps), dtype=torch.float32, device=device)  # (B, T)
    lengths = torch.zeros(b, dtype=torch.long, device=device)  # (B,)
    done = torch.zeros(b, dtype=torch.bool, device=device)  # (B,)
    stopped = torch.zeros(b, dtype=torch.bool, device=device)  # (B,)
    past = None
    cache_kw = _cache_keyword(model)
    last_only = last_logits_kwargs(model, 1)  # the prefill needs the last position's logits only
    step_ids, step_pos, attn = ids, positions, mask
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else nullcontext()
    for t in range(steps):
        with autocast:
            out = model(input_ids=step_ids, attention_mask=attn, position_ids=step_pos, use_cache=True,
                        **{cache_kw: past}, **last_only)
        past = out[cache_kw] if cache_kw in out else out.past_key_values
        logp = policy_log_probs(out.logits[:, -1, :], temperature, allowed)  # (B, V) the policy
        if greedy:
            tok = logp.argmax(dim=-1)  # (B,)
        else:
            draw = truncate(logp, top_k, top_p)  # (B, V) the sampler's (possibly truncated) distribution
            tok = torch.multinomial(draw.exp(), 1, generator=generator).squeeze(1)  # (B,)
        tok = torch.where(done, torch.full_like(tok, pad_id), tok)
        out_tokens[:, t] = tok
        out_logps[:, t] = logp.gather(1, tok.unsqueeze(1)).squeeze(1).masked_fill(done, 0.0)
        lengths += (~done).long()
        if exact_new_tokens is None and ends is not None:
            hit = torch.isin(tok, ends) & ~done
            stopped |= hit
            done |= hit
        if bool(done.all()):
            break
        step_ids = tok.unsqueeze(1)  # (B, 1)
        step_pos = step_pos[:, -1:] + 1  # (B, 1)
        attn = torch.cat([attn, torch.ones_like(attn[:, :1])], dim=1)  # (B, P + t + 1)
    lengths_l = lengths.tolist()
    toks = out_tokens.tolist()
    lps = out_logps.tolist()
    return Completions(
        prompt_ids=rows,
        completion_ids=[toks[i][: lengths_l[i]] for i in range(b)],
        logps=[lps[i][: lengths_l[i]] for i in range(b)],
        finish_reason=["stop" if s else "length" for s in stopped.tolist()],
    )
