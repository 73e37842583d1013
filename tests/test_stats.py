"""Overlap statistics against literal per-token definitions (docs/science.md §6) on random groups."""

from __future__ import annotations

import numpy as np
import pytest

from prm_probe.core._testing import brute_force_process_set_sizes, random_group
from prm_probe.core.prm import node_values
from prm_probe.core.stats import completion_stats, group_stats, size_histogram
from prm_probe.core.trie import PackedGroups, process_sets


def _expected_completion(sizes: list[int], g: int) -> dict[str, float]:
    """Path depth, ip, ip_strict, root length and first divergence straight from a c(i, ·) list."""
    depth = sum(1 for t, c in enumerate(sizes) if c < g and (t == 0 or c < sizes[t - 1]))
    depth_all = (1 if sizes else 0) + sum(1 for t in range(1, len(sizes)) if sizes[t] < sizes[t - 1])
    n = len(sizes)
    return {
        "path_depth": depth,
        "depth_all": depth_all,
        "intermediate_proportion": sum(c > 1 for c in sizes) / n if n else np.nan,
        "ip_strict": sum(1 < c < g for c in sizes) / n if n else np.nan,
        "root_length": sum(c == g for c in sizes),
        "first_divergence": sum(c > 1 for c in sizes),
        "inverse_size_sum": sum(1 / c for c in sizes),
    }


@pytest.fixture(scope="module")
def random_groups():
    rng = np.random.default_rng(7)
    groups = [random_group(rng, g_max=24, l_max=20) for _ in range(600)]
    rewards = [rng.integers(0, 3, size=len(g)).astype(float) / 2 for g in groups]
    return groups, rewards


def test_completion_stats_match_definitions(random_groups):
    groups, _ = random_groups
    ps = process_sets(PackedGroups.from_lists(groups))
    got = completion_stats(ps)
    k = 0
    for grp in groups:
        for sizes in brute_force_process_set_sizes(grp):
            exp = _expected_completion(sizes, len(grp))
            for name, value in exp.items():
                np.testing.assert_allclose(got[name][k], value, rtol=0, atol=1e-12, err_msg=f"{name} row {k}")
            k += 1
    assert k == ps.packed.n_completions


def test_group_stats_match_definitions(random_groups):
    groups, rewards = random_groups
    ps = process_sets(PackedGroups.from_lists(groups))
    reward = np.concatenate(rewards)
    got = group_stats(ps, reward)
    for gi, (grp, r) in enumerate(zip(groups, rewards, strict=True)):
        g = len(grp)
        sizes = brute_force_process_set_sizes(grp)
        flat = [c for s in sizes for c in s]
        assert got["nontrivial"][gi] == any(c > 1 for c in flat)
        assert got["proper_branching"][gi] == any(1 < c < g for c in flat)
        distinct = len({tuple(x) for x in grp})
        assert got["distinct_completions"][gi] == distinct
        dup = sum(1 for x in grp if sum(1 for y in grp if y == x) > 1) / g
        assert got["duplicate_rate"][gi] == pytest.approx(dup)
        # Distinct non-empty prefixes = nodes' token slots; node count = distinct member sets by (start, set).
        prefixes = {tuple(x[: t + 1]) for x in grp for t in range(len(x))}
        if flat:
            assert got["gradient_mass_ratio"][gi] == pytest.approx(len(prefixes) / len(flat))
        else:
            assert np.isnan(got["gradient_mass_ratio"][gi])
        # F3: a partial node whose members have different rewards.
        f3 = False
        for _i, x in enumerate(grp):
            for t in range(len(x)):
                members = [j for j, y in enumerate(grp) if len(y) > t and y[: t + 1] == x[: t + 1]]
                if 1 < len(members) < g and len({r[j] for j in members}) > 1:
                    f3 = True
        assert got["informative_branching"][gi] == f3
        assert got["zero_variance"][gi] == (len(set(r)) == 1)


def test_group_medians_and_means(random_groups):
    groups, _ = random_groups
    ps = process_sets(PackedGroups.from_lists(groups))
    comp = completion_stats(ps)
    got = group_stats(ps)
    gid = ps.packed.completion_group
    for gi in range(len(groups)):
        depth = comp["path_depth"][gid == gi]
        ip = comp["intermediate_proportion"][gid == gi]
        assert got["path_depth_mean"][gi] == pytest.approx(depth.mean())
        assert got["path_depth_median"][gi] == pytest.approx(np.median(depth))
        if np.isnan(ip).all():
            assert np.isnan(got["intermediate_proportion_median"][gi])
        else:
            assert got["intermediate_proportion_median"][gi] == pytest.approx(np.nanmedian(ip))
            assert got["intermediate_proportion_mean"][gi] == pytest.approx(np.nanmean(ip))


def test_histogram_counts_every_token(random_groups):
    groups, _ = random_groups
    ps = process_sets(PackedGroups.from_lists(groups))
    sizes, counts = size_histogram(ps)
    flat = np.concatenate([np.asarray(c, dtype=np.int64) for g in groups for c in brute_force_process_set_sizes(g)])
    assert counts.sum() == len(flat)
    np.testing.assert_array_equal(counts, np.bincount(flat, minlength=sizes[-1] + 1)[1:])


def test_frequency_mass_and_prm_orm_share_by_definition(random_groups):
    groups, rewards = random_groups
    ps = process_sets(PackedGroups.from_lists(groups))
    reward = np.concatenate(rewards)
    got = group_stats(ps, reward)
    vals = node_values(ps, reward)
    for gi, (grp, r) in enumerate(zip(groups, rewards, strict=True)):
        sizes = brute_force_process_set_sizes(grp)
        toks = sum(len(x) for x in grp)
        differ = 0
        for i, x in enumerate(grp):
            for t in range(len(x)):
                members = [j for j, y in enumerate(grp) if len(y) > t and y[: t + 1] == x[: t + 1]]
                differ += not np.isclose(np.mean([r[j] for j in members]), r[i], rtol=0, atol=1e-12)
        if toks:
            assert got["prm_orm_differ_share"][gi] == pytest.approx(differ / toks)
        nodes = np.flatnonzero(ps.node_group == gi)
        span = (ps.node_end[nodes] - ps.node_start[nodes]).astype(float)
        a = np.abs(np.nan_to_num(vals["prm_advantage"][nodes]))
        den = (ps.node_size[nodes] * span * a).sum()
        expected = 1 - (span * a).sum() / den if den > 0 else 0.0
        assert got["frequency_mass"][gi] == pytest.approx(expected)
        assert sum(len(s) for s in sizes) == toks
