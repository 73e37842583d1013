"""The implied PRM (prm_probe.core.prm) against a brute-force implementation of docs/science.md §3, and Theorem 1.

Definitions (docs/science.md §1.2, §3.1): R̂(λ(i,t)) is the mean reward of the j with the same (t+1)-prefix and
|y_j| > t; a_i = (r_i − r̄)/(σ_unbiased + 1e-4) and A(i,t) = (R(i,t) − r̄)/(σ_unbiased + 1e-4), with the group
mean and the group's unbiased std.
"""

from __future__ import annotations

import numpy as np
import pytest

import prm_probe
from prm_probe.core._testing import random_group, realistic_group
from prm_probe.core.prm import (
    ADVANTAGE_EPS,
    identity_check,
    implied_prm,
    implied_prm_frame,
    node_values,
    outcome_advantages,
)
from prm_probe.core.trie import PackedGroups, process_sets
from prm_probe.errors import SchemaError

N_GROUPS = 500


def brute_force_prm(completions, rewards, eps=ADVANTAGE_EPS, scale="group"):
    """Per token (sample, t, c, R, A, a), straight from the definitions; NaN advantages when G = 1."""
    r = np.asarray(rewards, dtype=np.float64)
    g = len(r)
    mean = r.sum() / g
    std = np.sqrt(((r - mean) ** 2).sum() / (g - 1)) if g > 1 else np.nan
    div = (std + eps) if scale == "group" else 1.0
    rows = []
    for i, y in enumerate(completions):
        for t in range(len(y)):
            members = [j for j, z in enumerate(completions) if len(z) > t and list(z[: t + 1]) == list(y[: t + 1])]
            step = sum(r[j] for j in members) / len(members)
            big_a = (step - mean) / div if g > 1 else np.nan
            small_a = (r[i] - mean) / div if g > 1 else np.nan
            rows.append((i, t, len(members), step, big_a, small_a))
    return np.array(rows, dtype=np.float64).reshape(-1, 6)


def random_rewards(rng: np.random.Generator, g: int) -> np.ndarray:
    kind = rng.integers(0, 3)
    if kind == 0:
        return rng.normal(size=g)
    if kind == 1:
        return rng.integers(0, 2, size=g).astype(np.float64)
    return rng.choice([0.0, 0.25, 1.0], size=g)


@pytest.fixture(scope="module")
def groups_and_rewards():
    rng = np.random.default_rng(424242)
    groups = [random_group(rng, g_max=12, l_max=10, vocab=(2, 4)) for _ in range(N_GROUPS)]
    rewards = [random_rewards(rng, len(g)) for g in groups]
    return groups, rewards


@pytest.fixture(scope="module")
def batch(groups_and_rewards):
    groups, rewards = groups_and_rewards
    ps = process_sets(PackedGroups.from_lists(groups))
    return ps, np.concatenate(rewards)


COLS = ["sample", "t", "process_set_size", "step_reward", "prm_advantage", "outcome_advantage"]


# ------------------------------------------------------------------------------------ brute-force agreement
def test_batched_frame_equals_brute_force(groups_and_rewards, batch):
    groups, rewards = groups_and_rewards
    ps, r = batch
    df = implied_prm_frame(ps, r)
    want = np.concatenate([brute_force_prm(g, rw) for g, rw in zip(groups, rewards, strict=True)])
    assert len(df) == len(want)
    np.testing.assert_array_equal(df[COLS[:3]].to_numpy(dtype=np.float64), want[:, :3])
    np.testing.assert_allclose(df[COLS[3:]].to_numpy(dtype=np.float64), want[:, 3:], rtol=0, atol=1e-9,
                               equal_nan=True)
    gid = np.repeat(np.arange(len(groups)), [sum(len(c) for c in g) for g in groups])
    np.testing.assert_array_equal(df["group"].to_numpy(), gid)
    assert np.isnan(want[:, 4]).any()  # the sample contains groups of size 1


def test_implied_prm_per_group_equals_brute_force(groups_and_rewards):
    groups, rewards = groups_and_rewards
    for g, rw in list(zip(groups, rewards, strict=True))[:150]:
        df = implied_prm(g, rw)
        want = brute_force_prm(g, rw)
        np.testing.assert_allclose(df[COLS].to_numpy(dtype=np.float64), want, rtol=0, atol=1e-9, equal_nan=True)
        np.testing.assert_array_equal(df["reward"].to_numpy(), np.repeat(rw, [len(c) for c in g]))


@pytest.mark.parametrize("eps", [0.0, 1e-4, 0.5])
def test_eps_argument(groups_and_rewards, eps):
    groups, rewards = groups_and_rewards
    for g, rw in list(zip(groups, rewards, strict=True))[:60]:
        if len(g) < 2 or np.ptp(rw) == 0:
            continue
        df = implied_prm(g, rw, eps=eps)
        want = brute_force_prm(g, rw, eps=eps)
        np.testing.assert_allclose(df[COLS[3:]].to_numpy(dtype=np.float64), want[:, 3:], rtol=0, atol=1e-9)


def test_scale_none_is_mean_centred_reward(groups_and_rewards, batch):
    """Dr. GRPO: no std scaling, a = r − r̄ and A = R̂ − r̄."""
    groups, rewards = groups_and_rewards
    ps, r = batch
    goff = ps.packed.group_offsets
    a = outcome_advantages(r, goff, scale="none")
    centred = np.concatenate([rw - rw.mean() for rw in rewards])
    single = np.repeat(ps.packed.group_sizes, ps.packed.group_sizes) < 2
    np.testing.assert_allclose(a[~single], centred[~single], rtol=0, atol=1e-12)
    assert np.isnan(a[single]).all()
    df = implied_prm_frame(ps, r, scale="none")
    want = np.concatenate([brute_force_prm(g, rw, scale="none") for g, rw in zip(groups, rewards, strict=True)])
    np.testing.assert_allclose(df[COLS[3:]].to_numpy(dtype=np.float64), want[:, 3:], rtol=0, atol=1e-9,
                               equal_nan=True)


def test_unknown_scale_raises():
    with pytest.raises(SchemaError):
        outcome_advantages([1.0, 0.0], scale="population")


def test_reward_count_mismatch_raises():
    with pytest.raises(SchemaError):
        implied_prm([[1], [2]], [1.0])
    ps = process_sets(PackedGroups.from_lists([[[1], [2]]]))
    with pytest.raises(SchemaError):
        node_values(ps, np.array([1.0, 0.0, 1.0]))


def test_outcome_advantages_use_unbiased_std_plus_eps():
    r = np.array([0.5, 0.5, 1.0, 0.0, 0.0, 0.5])
    want = (r - r.mean()) / (r.std(ddof=1) + 1e-4)
    np.testing.assert_allclose(outcome_advantages(r), want, rtol=0, atol=1e-15)
    np.testing.assert_allclose(outcome_advantages(r, eps=0.0), (r - r.mean()) / r.std(ddof=1), rtol=0, atol=1e-15)
    # Several groups at once: each is normalised by its own mean and std.
    two = outcome_advantages(np.concatenate([r, [3.0, 1.0]]), np.array([0, 6, 8]))
    np.testing.assert_allclose(two[:6], want, rtol=0, atol=1e-15)
    np.testing.assert_allclose(two[6:], np.array([1.0, -1.0]) / (np.sqrt(2.0) + 1e-4), rtol=0, atol=1e-15)


# --------------------------------------------------------------------------------- identity and edge cases
def test_identity_check_holds_on_random_groups(batch):
    ps, r = batch
    chk = identity_check(ps, r)
    assert len(chk) == ps.n_nodes
    assert chk["holds"].all()
    finite = ~np.isnan(chk["sum_advantage"].to_numpy())
    assert finite.sum() > 0 and (chk["sum_advantage"][finite].abs() > 1e-3).any()
    np.testing.assert_array_equal(chk["size"].to_numpy(), ps.node_size)
    # Both sides by hand: Σ_{i∈λ} a_i and |λ|·(R̂(λ) − r̄)/(σ + eps).
    a = outcome_advantages(r, ps.packed.group_offsets)
    lhs = np.bincount(ps.seg_node, weights=a[ps.seg_completion], minlength=ps.n_nodes)
    np.testing.assert_allclose(chk["sum_advantage"], lhs, rtol=0, atol=1e-12, equal_nan=True)
    vals = node_values(ps, r)
    np.testing.assert_allclose(chk["size_times_advantage"], ps.node_size * vals["prm_advantage"], rtol=0, atol=1e-12,
                               equal_nan=True)


def test_identity_check_detects_a_broken_identity(batch, monkeypatch):
    """The check can fail: with advantages that are not mean-centred per node it reports False."""
    import prm_probe.core.prm as prm_mod

    ps, r = batch
    real = prm_mod.node_values

    def broken(*args, **kwargs):
        out = dict(real(*args, **kwargs))
        out["sum_advantage"] = out["sum_advantage"] + 0.01
        return out

    monkeypatch.setattr(prm_mod, "node_values", broken)
    chk = identity_check(ps, r)
    assert not chk["holds"][~np.isnan(chk["sum_advantage"].to_numpy())].any()


def test_group_of_one_gives_nan_advantages():
    df = implied_prm([[1, 2, 3]], [1.0])
    assert df["process_set_size"].tolist() == [1, 1, 1]
    assert df["step_reward"].tolist() == [1.0, 1.0, 1.0]
    assert df["prm_advantage"].isna().all() and df["outcome_advantage"].isna().all()
    assert np.isnan(outcome_advantages([0.3])).all()
    assert np.isnan(outcome_advantages([0.3], scale="none")).all()
    ps = process_sets(PackedGroups.from_lists([[[1, 2, 3]], [[1], [2]]]))
    chk = identity_check(ps, np.array([1.0, 1.0, 0.0]))
    assert chk["holds"].all()
    assert chk["sum_advantage"].isna().tolist() == [True, False, False]
    vals = node_values(ps, np.array([1.0, 1.0, 0.0]))
    assert np.isnan(vals["prm_advantage"][0]) and not np.isnan(vals["prm_advantage"][1:]).any()


@pytest.mark.parametrize("value", [0.0, 1.0, 0.5, -3.0])
def test_all_equal_rewards_give_zero_advantages(groups_and_rewards, value):
    """σ = 0 and a = 0/1e-4 = 0 exactly (docs/science.md §1.2, §8 EX4) for exactly representable rewards."""
    groups, _ = groups_and_rewards
    for g in groups[:100]:
        if len(g) < 2:
            continue
        df = implied_prm(g, [value] * len(g))
        assert (df["outcome_advantage"] == 0).all() and (df["prm_advantage"] == 0).all()
        assert (df["step_reward"] == value).all()


def test_all_equal_real_rewards_give_negligible_advantages(groups_and_rewards):
    """With arbitrary equal reals the group mean sum/G can be off by one ulp, so advantages are ~1e-12, not 0."""
    groups, _ = groups_and_rewards
    rng = np.random.default_rng(5)
    for g in groups[:100]:
        if len(g) < 2:
            continue
        value = float(rng.normal())
        df = implied_prm(g, [value] * len(g))
        np.testing.assert_allclose(df["outcome_advantage"], 0.0, rtol=0, atol=1e-9)
        np.testing.assert_allclose(df["prm_advantage"], 0.0, rtol=0, atol=1e-9)
        np.testing.assert_allclose(df["step_reward"], value, rtol=0, atol=1e-12)


def test_empty_completions_have_no_rows():
    df = implied_prm([[1, 2], [], [1]], [1.0, 0.0, 0.5])
    assert df["sample"].tolist() == [0, 0, 2]
    assert df["process_set_size"].tolist() == [2, 1, 2]
    np.testing.assert_allclose(df["step_reward"], [0.75, 1.0, 0.75])
    # The empty completion still counts in r̄ and σ.
    r = np.array([1.0, 0.0, 0.5])
    np.testing.assert_allclose(df["outcome_advantage"], ((r - r.mean()) / (r.std(ddof=1) + 1e-4))[[0, 0, 2]])


# ------------------------------------------------------------------------------------------------ Theorem 1
def per_group(values, group, n):
    return np.bincount(group, weights=values, minlength=n)


def test_theorem_1_token_mean_identity(batch):
    """Σ_{i,t} a_i·g_{i,t} = Σ_{i,t} A(i,t)·g_{i,t} for any g equal across members at shared positions.

    g stands for a per-token log-prob gradient component, which is identical across the members of a node
    at each position (docs/science.md §3.2, step 1). We draw one random value per (node, position) pair. With
    token-mean aggregation the common normaliser 1/Σ|y_i| cancels.
    """
    ps, r = batch
    df = implied_prm_frame(ps, r)
    n = ps.packed.n_groups
    rng = np.random.default_rng(99)
    key = df["node"].to_numpy() * 64 + df["t"].to_numpy()
    _, inverse = np.unique(key, return_inverse=True)
    g = rng.normal(size=inverse.max() + 1)[inverse]
    group = df["group"].to_numpy()
    ok = ps.packed.group_sizes >= 2
    tokens = per_group(np.ones(len(df)), group, n)
    a, big_a = df["outcome_advantage"].to_numpy(), df["prm_advantage"].to_numpy()
    lhs = per_group(np.nan_to_num(a) * g, group, n) / np.maximum(tokens, 1)
    rhs = per_group(np.nan_to_num(big_a) * g, group, n) / np.maximum(tokens, 1)
    np.testing.assert_allclose(lhs[ok], rhs[ok], rtol=0, atol=1e-9)
    assert np.abs(lhs[ok]).max() > 0.1  # not trivially zero
    # g ≡ 1: Σ a_i over tokens equals Σ A(i,t).
    np.testing.assert_allclose(per_group(np.nan_to_num(a), group, n)[ok],
                               per_group(np.nan_to_num(big_a), group, n)[ok], rtol=0, atol=1e-9)
    # The identity needs g to be shared: independent per-token values break it in some group.
    g_free = rng.normal(size=len(df))
    lhs_free = per_group(np.nan_to_num(a) * g_free, group, n)
    rhs_free = per_group(np.nan_to_num(big_a) * g_free, group, n)
    assert np.abs(lhs_free - rhs_free)[ok].max() > 1e-3


def test_theorem_needs_token_mean_when_lengths_differ():
    """Per-sequence 'grpo' weights 1/|y_i| break the identity with unequal lengths and keep it with equal ones."""
    def both_sides(group, rewards):
        df = implied_prm(group, rewards)
        w = 1.0 / df.groupby("sample")["t"].transform("size").to_numpy()
        return (df["outcome_advantage"] * w).sum(), (df["prm_advantage"] * w).sum()

    lhs, rhs = both_sides([[1, 2], [1, 3, 4, 5], [6]], [1.0, 0.0, 0.0])
    assert abs(lhs - rhs) > 1e-3
    rng = np.random.default_rng(1)
    for _ in range(20):
        group = realistic_group(rng, g=8, length=12, vocab=3, mean_shared=0.5)
        rewards = rng.normal(size=8)
        lhs, rhs = both_sides([list(map(int, y)) for y in group], rewards)
        assert abs(lhs - rhs) < 1e-9


def test_lambda_grpo_weights_equal_once_per_node_advantages(batch):
    """Σ_{i,t} a_i/c(i,t) = Σ_λ |span(λ)|·A(λ) per group (docs/science.md §5.3): each step counts once."""
    ps, r = batch
    df = implied_prm_frame(ps, r)
    n = ps.packed.n_groups
    ok = ps.packed.group_sizes >= 2
    a = df["outcome_advantage"].to_numpy()
    lhs = per_group(np.nan_to_num(a / df["process_set_size"].to_numpy()), df["group"].to_numpy(), n)
    vals = node_values(ps, r)
    span = (ps.node_end - ps.node_start).astype(np.float64)
    rhs = per_group(np.nan_to_num(span * vals["prm_advantage"]), ps.node_group, n)
    np.testing.assert_allclose(lhs[ok], rhs[ok], rtol=0, atol=1e-9)
    # And GRPO's weights apply each step |λ| times: Σ_{i,t} a_i = Σ_λ |λ|·|span|·A(λ).
    rhs_freq = per_group(np.nan_to_num(ps.node_size * span * vals["prm_advantage"]), ps.node_group, n)
    np.testing.assert_allclose(per_group(np.nan_to_num(a), df["group"].to_numpy(), n)[ok], rhs_freq[ok],
                               rtol=0, atol=1e-9)


def test_node_mean_advantage_is_prm_advantage(batch):
    """A(λ) = mean_{j∈λ} a_j (docs/science.md §3.1)."""
    ps, r = batch
    a = outcome_advantages(r, ps.packed.group_offsets)
    mean_a = np.bincount(ps.seg_node, weights=a[ps.seg_completion], minlength=ps.n_nodes) / ps.node_size
    np.testing.assert_allclose(node_values(ps, r)["prm_advantage"], mean_a, rtol=0, atol=1e-12, equal_nan=True)


def test_public_names():
    assert prm_probe.implied_prm is implied_prm
    assert prm_probe.outcome_advantages is outcome_advantages
    assert prm_probe.identity_check is identity_check
