"""Implied process rewards (docs/science.md §3-4): what GRPO's outcome advantages amount to per trie node.

For a node λ of a group: the Monte-Carlo step reward ``R̂(λ)`` is the mean outcome reward of its members,
and the PRM-aware advantage ``A(λ) = (R̂(λ) - r̄) / (σ + eps)`` uses the *group* mean and the group's
unbiased std, exactly like the outcome advantages ``a_i = (r_i - r̄) / (σ + eps)``. Per token,
``R(i, t) = R̂(λ(i, t))`` and ``A(i, t) = A(λ(i, t))``. Theorem 1's algebraic core is the per-node identity
``Σ_{i ∈ λ} a_i = |λ| · A(λ)``, which :func:`identity_check` verifies.

Groups of size 1 have no std: their advantages are NaN (undefined), never silently 0.
This module does not train or compute losses; the trainer's torch code lives in ``losses``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
from numpy.typing import NDArray

from prm_probe.core.trie import PackedGroups, ProcessSets, process_sets
from prm_probe.errors import SchemaError

__all__ = [
    "ADVANTAGE_EPS",
    "group_moments",
    "identity_check",
    "implied_prm",
    "implied_prm_frame",
    "node_values",
    "outcome_advantages",
]

#: Added to the group std before dividing (the authors' code and TRL; docs/science.md §1.2).
ADVANTAGE_EPS = 1e-4

Scale = Literal["group", "none"]


def group_moments(reward: NDArray[np.float64], group_offsets: NDArray[np.int64]):
    """(g,) group means and unbiased stds (NaN std for groups of size 1), and the (N,) group id of each reward.

    The NumPy group moments of logs: the overlap statistics, the implied PRM and :func:`outcome_advantages` use
    them. The built-in trainer computes its advantages in torch with the same formula
    (:func:`prm_probe.training.losses.group_advantages`; ``tests/test_losses.py`` checks the two agree).

    When all rewards of a group are equal, the mean is that value exactly and the std exactly 0, so every
    advantage is exactly 0 (a float sum divided by G can be one rounding step off the common value).
    """
    sizes = np.diff(group_offsets)
    gid = np.repeat(np.arange(len(sizes)), sizes)
    mean = np.bincount(gid, weights=reward, minlength=len(sizes)) / np.maximum(sizes, 1)
    rmax = np.full(len(sizes), -np.inf)
    rmin = np.full(len(sizes), np.inf)
    np.maximum.at(rmax, gid, reward)
    np.minimum.at(rmin, gid, reward)
    flat = (rmax == rmin) & (sizes > 0)
    mean[flat] = rmax[flat]
    dev2 = np.bincount(gid, weights=(reward - mean[gid]) ** 2, minlength=len(sizes))
    with np.errstate(invalid="ignore", divide="ignore"):
        std = np.sqrt(dev2 / (sizes - 1))
    std[sizes < 2] = np.nan
    return mean, std, gid


def outcome_advantages(reward: Sequence[float] | NDArray[np.float64], group_offsets: NDArray[np.int64] | None = None,
                       scale: Scale = "group", eps: float = ADVANTAGE_EPS) -> NDArray[np.float64]:
    """Return GRPO's outcome advantages ``(r - r̄) / (σ_unbiased + eps)`` per completion.

    Args:
        reward: (n,) rewards, grouped consecutively.
        group_offsets: (g + 1,) group boundaries; ``None`` means one group.
        scale: ``"group"`` divides by the group std + eps; ``"none"`` only subtracts the mean (Dr. GRPO).
        eps: added to the std.

    Returns:
        (n,) float64 advantages; NaN for groups of size 1.

    Example:
        >>> outcome_advantages([1, 0, 1, 0]).round(7).tolist()
        [0.8658754, -0.8658754, 0.8658754, -0.8658754]
    """
    r = np.asarray(reward, dtype=np.float64)
    goff = np.array([0, len(r)], dtype=np.int64) if group_offsets is None else np.asarray(group_offsets)
    mean, std, gid = group_moments(r, goff)
    adv = r - mean[gid]
    if scale == "group":
        adv = adv / (std[gid] + eps)
    elif scale != "none":
        raise SchemaError(f"advantage scale {scale!r} is unknown; expected 'group' or 'none'; pick one of them")
    adv[np.diff(goff)[gid] < 2] = np.nan
    return adv


def node_values(ps: ProcessSets, reward: NDArray[np.float64], scale: Scale = "group",
                eps: float = ADVANTAGE_EPS) -> dict[str, NDArray[np.float64]]:
    """Per node: the step reward ``R̂(λ)`` and PRM-aware advantage ``A(λ)``, plus the identity's two sides.

    Returns:
        A dict of (nodes,) float64 arrays: ``step_reward`` (R̂), ``prm_advantage`` (A), ``sum_advantage``
        (Σ_{i∈λ} a_i) and ``size_times_advantage`` (|λ|·A(λ)).
    """
    r = np.asarray(reward, dtype=np.float64)
    if r.shape != (ps.packed.n_completions,):
        raise SchemaError(f"got {r.shape[0] if r.ndim else 0} rewards for {ps.packed.n_completions} completions; "
                          "expected one reward per completion; pass the rewards in packing order")
    goff = ps.packed.group_offsets
    mean, std, _ = group_moments(r, goff)
    a = outcome_advantages(r, goff, scale, eps)
    comp = ps.seg_completion
    n_nodes = ps.n_nodes
    size = ps.node_size.astype(np.float64)
    r_hat = np.bincount(ps.seg_node, weights=r[comp], minlength=n_nodes) / size
    g = ps.node_group
    adv = r_hat - mean[g]
    if scale == "group":
        adv = adv / (std[g] + eps)
    adv[ps.packed.group_sizes[g] < 2] = np.nan
    sum_a = np.bincount(ps.seg_node, weights=a[comp], minlength=n_nodes)
    return {"step_reward": r_hat, "prm_advantage": adv, "sum_advantage": sum_a, "size_times_advantage": size * adv}


def implied_prm_frame(ps: ProcessSets, reward: NDArray[np.float64], scale: Scale = "group",
                      eps: float = ADVANTAGE_EPS):
    """One row per completion token of every group, with its implied process reward.

    Returns:
        A pandas DataFrame with columns ``group, sample, t, token, node, process_set_size, step_reward,
        prm_advantage, reward, outcome_advantage``: ``group`` is the group's position in ``ps.packed``,
        ``step_reward`` is R(i, t), ``prm_advantage`` is A(i, t).
    """
    import pandas as pd

    r = np.asarray(reward, dtype=np.float64)
    vals = node_values(ps, r, scale, eps)
    packed = ps.packed
    lengths = packed.lengths
    comp = np.repeat(np.arange(packed.n_completions), lengths)
    t = np.arange(len(packed.tokens)) - np.repeat(packed.offsets[:-1], lengths)
    node = ps.node
    a = outcome_advantages(r, packed.group_offsets, scale, eps)
    return pd.DataFrame({
        "group": packed.completion_group[comp],
        "sample": packed.completion_sample[comp],
        "t": t,
        "token": packed.tokens,
        "node": node,
        "process_set_size": ps.size,
        "step_reward": vals["step_reward"][node],
        "prm_advantage": vals["prm_advantage"][node],
        "reward": r[comp],
        "outcome_advantage": a[comp],
    })


def implied_prm(completions: Sequence[Sequence[int]], rewards: Sequence[float], scale: Scale = "group",
                eps: float = ADVANTAGE_EPS):
    """Return the implied PRM of one group: one row per completion token.

    Args:
        completions: G sequences of completion token ids.
        rewards: G outcome rewards.

    Returns:
        A DataFrame with columns ``sample, t, token, node, process_set_size, step_reward, prm_advantage,
        reward, outcome_advantage`` (see :func:`implied_prm_frame`).

    Example:
        >>> df = implied_prm([[1, 2, 3], [1, 2, 4], [1, 5, 6], [7, 8, 9]], [1, 0, 1, 0])
        >>> df[df["sample"] == 0][["t", "process_set_size", "step_reward"]].to_numpy().round(4).tolist()
        [[0.0, 3.0, 0.6667], [1.0, 2.0, 0.5], [2.0, 1.0, 1.0]]
    """
    if len(completions) != len(rewards):
        raise SchemaError(f"got {len(completions)} completions and {len(rewards)} rewards; expected one reward "
                          "per completion; pass matching lists")
    ps = process_sets(PackedGroups.from_lists([completions]))
    return implied_prm_frame(ps, np.asarray(rewards, dtype=np.float64), scale, eps).drop(columns="group")


def identity_check(ps: ProcessSets, reward: NDArray[np.float64], atol: float = 1e-9):
    """Verify Theorem 1's per-node identity ``Σ_{i∈λ} a_i = |λ|·A(λ)`` on every node.

    Returns:
        A DataFrame, one row per node: ``node, group, size, sum_advantage, size_times_advantage,
        holds`` (NaN-safe: groups of size 1 compare NaN with NaN and hold).
    """
    import pandas as pd

    vals = node_values(ps, reward)
    lhs, rhs = vals["sum_advantage"], vals["size_times_advantage"]
    holds = np.isclose(lhs, rhs, rtol=0, atol=atol) | (np.isnan(lhs) & np.isnan(rhs))
    return pd.DataFrame({"node": np.arange(ps.n_nodes), "group": ps.node_group, "size": ps.node_size,
                         "sum_advantage": lhs, "size_times_advantage": rhs, "holds": holds})
