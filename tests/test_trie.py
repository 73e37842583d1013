"""The process-set engine (prm_probe.core.trie) against literal references, tree invariants and edge cases.

References (prm_probe.core._testing): ``counting_process_set_sizes`` counts every prefix in a multiset and
``brute_force_process_set_sizes`` applies docs/science.md §2.1 literally,
``|λ(i, t)| = #{ j : |y_j| > t and y_j[0..t] == y_i[0..t] }``.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

import prm_probe
from prm_probe.core import trie
from prm_probe.core._testing import brute_force_process_set_sizes, counting_process_set_sizes, random_group
from prm_probe.core.trie import PackedGroups, ProcessSets, process_set_sizes, process_sets
from prm_probe.errors import SchemaError

N_RANDOM = 10_000
N_BATCHES = 4
N_BRUTE = 300
I32_MAX = 2**31 - 1


def flat(sizes_per_completion) -> np.ndarray:
    """Concatenate nested per-completion size lists into one int64 array."""
    return np.fromiter(itertools.chain.from_iterable(sizes_per_completion), dtype=np.int64)


def as_lists(ps: ProcessSets) -> list[list[int]]:
    return [s.tolist() for s in ps.sizes_per_completion()]


@pytest.fixture(scope="module")
def random_groups() -> list[list[list[int]]]:
    """10,000 random groups: G 1..64, lengths 0..40, vocabularies of 2-4 ids (shared prefixes, duplicates)."""
    rng = np.random.default_rng(20260925)
    return [random_group(rng, g_max=64, l_max=40, vocab=(2, 4)) for _ in range(N_RANDOM)]


@pytest.fixture(scope="module")
def random_batches(random_groups) -> list[tuple[list, ProcessSets]]:
    """The random groups processed in a few big batched ``process_sets`` calls."""
    step = -(-len(random_groups) // N_BATCHES)
    out = []
    for k in range(0, len(random_groups), step):
        groups = random_groups[k:k + step]
        out.append((groups, process_sets(PackedGroups.from_lists(groups))))
    return out


# ------------------------------------------------------------------------------ (a) agreement with references
def test_random_groups_cover_the_intended_space(random_groups):
    sizes = np.array([len(g) for g in random_groups])
    lengths = np.array([len(c) for g in random_groups for c in g])
    assert sizes.min() == 1 and sizes.max() == 64
    assert lengths.min() == 0 and lengths.max() == 40
    assert len(random_groups) >= 10_000


def test_engine_equals_counting_reference(random_batches):
    n = 0
    for groups, ps in random_batches:
        want = flat(sizes for g in groups for sizes in counting_process_set_sizes(g))
        assert ps.size.dtype == np.int32
        np.testing.assert_array_equal(ps.size, want)
        n += len(groups)
    assert n == N_RANDOM


def test_engine_equals_brute_force(random_groups, random_batches):
    groups = random_groups[:N_BRUTE]
    ps = random_batches[0][1]
    got = ps.sizes_per_completion()[: sum(len(g) for g in groups)]
    want = [sizes for g in groups for sizes in brute_force_process_set_sizes(g)]
    assert [x.tolist() for x in got] == want


def test_process_set_sizes_matches_brute_force_per_group(random_groups):
    for g in random_groups[:100]:
        assert [x.tolist() for x in process_set_sizes(g)] == brute_force_process_set_sizes(g)


# ------------------------------------------------------------------------------------ (b) node table invariants
def assert_unique_rows(*cols: np.ndarray) -> None:
    """No two positions share the same values in all of ``cols``."""
    order = np.argsort(cols[0], kind="stable") if len(cols) == 1 else np.lexsort(cols[::-1])
    same = np.ones(len(order) - 1 if len(order) else 0, dtype=bool)
    for col in cols:
        c = np.asarray(col)[order]
        same &= c[1:] == c[:-1]
    assert not same.any()


def check_node_table(ps: ProcessSets) -> None:
    """Every structural invariant of the segment and node tables (docs/science.md §2.1, §2.2), vectorised."""
    packed = ps.packed
    n, nodes = packed.n_completions, ps.n_nodes
    comp = ps.seg_completion
    # Segments tile every completion, in order, from position 0, each non-empty.
    assert (ps.seg_length >= 1).all()
    np.testing.assert_array_equal(np.bincount(comp, weights=ps.seg_length, minlength=n), packed.lengths)
    first_seg = ps.seg_offsets[:-1][packed.lengths > 0]
    assert (ps.seg_start[first_seg] == 0).all()
    cont = np.zeros(len(comp), dtype=bool)
    cont[1:] = comp[1:] == comp[:-1]
    assert (ps.seg_start[1:][cont[1:]] == (ps.seg_start + ps.seg_length)[:-1][cont[1:]]).all()
    # Sizes: within a completion, strictly decreasing from segment to segment; tokens carry their node's size.
    assert (ps.seg_size[1:][cont[1:]] < ps.seg_size[:-1][cont[1:]]).all()
    np.testing.assert_array_equal(ps.seg_size, ps.node_size[ps.seg_node])
    np.testing.assert_array_equal(ps.size, ps.node_size[ps.node])
    # A node's span is the same in every member.
    np.testing.assert_array_equal(ps.seg_start, ps.node_start[ps.seg_node])
    np.testing.assert_array_equal(ps.seg_start + ps.seg_length, ps.node_end[ps.seg_node])
    assert (ps.node_end > ps.node_start).all()  # spans are non-empty
    # Members: each completion passes through a node at most once, so |λ| = member count.
    assert_unique_rows(comp * max(nodes, 1) + ps.seg_node)
    np.testing.assert_array_equal(np.bincount(ps.seg_node, minlength=nodes), ps.node_size)
    # Nodes belong to their members' group, groups in order.
    np.testing.assert_array_equal(ps.node_group[ps.seg_node], packed.completion_group[comp])
    assert (np.diff(ps.node_group) >= 0).all()
    # Every member sees the same tokens at every position of the node's span: compare each token with the
    # token at the same position of the node's first member.
    rep = np.full(nodes, n, dtype=np.int64)
    np.minimum.at(rep, ps.seg_node, comp)
    tok_comp = np.repeat(np.arange(n), packed.lengths)
    t = np.arange(len(packed.tokens)) - packed.offsets[tok_comp]
    np.testing.assert_array_equal(packed.tokens, packed.tokens[packed.offsets[rep[ps.node]] + t])
    # Parents: a member's previous node is the parent; the parent's span ends where the child's starts.
    np.testing.assert_array_equal(ps.node_parent[ps.seg_node[1:][cont[1:]]], ps.seg_node[:-1][cont[1:]])
    first_of_comp = ~cont
    assert (ps.node_parent[ps.seg_node[first_of_comp]] == -1).all()
    child = np.flatnonzero(ps.node_parent >= 0)
    parent = ps.node_parent[child]
    np.testing.assert_array_equal(ps.node_end[parent], ps.node_start[child])
    np.testing.assert_array_equal(ps.node_group[parent], ps.node_group[child])
    np.testing.assert_array_equal(ps.node_depth[child], ps.node_depth[parent] + 1)
    top = ps.node_parent < 0
    assert (ps.node_start[top] == 0).all() and (ps.node_depth[top] == 0).all()
    # Children: members are a strict subset of the parent's (compressed: no unary chains), pairwise disjoint
    # (one child per member), and siblings start with different tokens.
    assert (ps.node_size[child] < ps.node_size[parent]).all()
    kids = np.bincount(parent, weights=ps.node_size[child], minlength=nodes)
    assert (kids[parent] <= ps.node_size[parent]).all()
    assert_unique_rows(comp * (nodes + 1) + (ps.node_parent[ps.seg_node] + 1))
    first_tok = packed.tokens[packed.offsets[rep] + ps.node_start]
    assert_unique_rows(ps.node_group, ps.node_parent, first_tok)
    # At most 2G − 1 non-empty nodes per group.
    per_group = np.bincount(ps.node_group, minlength=packed.n_groups)
    assert (per_group <= np.maximum(2 * packed.group_sizes - 1, 0)).all()


def test_node_table_invariants_on_random_groups(random_batches):
    for _, ps in random_batches:
        check_node_table(ps)


def test_inverse_size_sum_counts_distinct_prefixes(random_batches):
    """docs/science.md §2.5: Σ_{i,t} 1/c(i,t) = number of distinct non-empty prefixes in the group."""
    groups, ps = random_batches[1]
    packed = ps.packed
    tok_group = np.repeat(packed.completion_group, packed.lengths)
    inv = np.bincount(tok_group, weights=1.0 / ps.size, minlength=packed.n_groups)
    distinct = [len({tuple(c[: t + 1]) for c in g for t in range(len(c))}) for g in groups]
    np.testing.assert_allclose(inv, distinct, rtol=0, atol=1e-8)


def test_node_members_match_python_sets(random_groups):
    """Member sets by brute force on a few groups: each node's members are the samples sharing its prefix."""
    groups = random_groups[:200]
    ps = process_sets(PackedGroups.from_lists(groups))
    packed = ps.packed
    for k in range(ps.n_nodes):
        segs = np.flatnonzero(ps.seg_node == k)
        members = packed.completion_sample[ps.seg_completion[segs]].tolist()
        g = groups[int(ps.node_group[k])]
        i = members[0]
        end = int(ps.node_end[k])
        prefix = g[i][:end]
        assert members == [j for j, y in enumerate(g) if len(y) >= end and y[:end] == prefix]
        assert len(members) == ps.node_size[k]


# ----------------------------------------------------------------------------------------- (c) invariances
def test_permuting_samples_permutes_sizes(random_groups):
    rng = np.random.default_rng(7)
    groups = random_groups[:500]
    perms = [rng.permutation(len(g)) for g in groups]
    permuted = [[g[p] for p in perm] for g, perm in zip(groups, perms, strict=True)]
    base = process_sets(PackedGroups.from_lists(groups)).sizes_per_completion()
    got = process_sets(PackedGroups.from_lists(permuted)).sizes_per_completion()
    k = 0
    for g, perm in zip(groups, perms, strict=True):
        for new_i, old_i in enumerate(perm):
            assert got[k + new_i].tolist() == base[k + old_i].tolist()
        k += len(g)


def test_duplicates_count_as_members():
    sizes = process_set_sizes([[1, 2, 3], [4], [1, 2, 3], [1, 2, 3], [1, 2]])
    assert [s.tolist() for s in sizes] == [[4, 4, 3], [1], [4, 4, 3], [4, 4, 3], [4, 4]]
    ps = process_sets(PackedGroups.from_lists([[[1, 2, 3], [4], [1, 2, 3], [1, 2, 3], [1, 2]]]))
    assert sorted(ps.node_size.tolist()) == [1, 3, 4]  # [1,2]{0,2,3,4}, [3]{0,2,3}, [4]{1}


@pytest.mark.parametrize("g", [2, 5, 64])
def test_identical_completions_give_weight_one_over_g(g):
    sizes = process_set_sizes([[3, 1, 4, 1, 5]] * g)
    assert all(s.tolist() == [g] * 5 for s in sizes)
    weights = [1.0 / s for s in sizes]
    np.testing.assert_allclose(np.concatenate(weights), 1.0 / g)
    ps = process_sets(PackedGroups.from_lists([[[3, 1, 4, 1, 5]] * g]))
    assert ps.n_nodes == 1 and ps.node_size.tolist() == [g]


def test_distinct_first_tokens_give_size_one():
    group = [[k, 0, 0, k % 3] for k in range(20)] + [[20]]
    sizes = process_set_sizes(group)
    assert all((s == 1).all() for s in sizes)
    ps = process_sets(PackedGroups.from_lists([group]))
    assert ps.n_nodes == len(group)


def test_single_completion_group():
    assert [s.tolist() for s in process_set_sizes([[1, 2, 3]])] == [[1, 1, 1]]
    ps = process_sets(PackedGroups.from_lists([[[1, 2, 3]]]))
    assert ps.n_nodes == 1 and ps.node_start.tolist() == [0] and ps.node_end.tolist() == [3]


def test_empty_completions():
    sizes = process_set_sizes([[1, 2], [], [1], []])
    assert [s.tolist() for s in sizes] == [[2, 1], [], [2], []]
    assert all(s.dtype == np.int64 for s in sizes)
    ps = process_sets(PackedGroups.from_lists([[[1, 2], [], [1], []]]))
    assert ps.seg_offsets.tolist() == [0, 2, 2, 3, 3]
    check_node_table(ps)


def test_group_of_only_empty_completions():
    assert [s.tolist() for s in process_set_sizes([[], [], []])] == [[], [], []]
    groups = [[[1, 2], [1]], [[], []], [[3]], [[]]]
    ps = process_sets(PackedGroups.from_lists(groups))
    assert as_lists(ps) == [[2, 1], [2], [], [], [1], []]
    assert np.bincount(ps.node_group, minlength=4).tolist() == [2, 0, 1, 0]
    check_node_table(ps)


def test_no_groups_at_all():
    ps = process_sets(PackedGroups.from_lists([]))
    assert ps.n_nodes == 0 and len(ps.size) == 0 and ps.seg_offsets.tolist() == [0]


def test_mixed_group_sizes_in_one_batch(random_groups):
    rng = np.random.default_rng(3)
    groups = [[[1, 2]], [[1, 2], [1, 3], [1, 2]], [[5] * 40] * 64, [[]], [[0, 1], [1, 0]]]
    groups += [random_group(rng, g_max=64, l_max=40) for _ in range(20)]
    ps = process_sets(PackedGroups.from_lists(groups))
    assert as_lists(ps) == [s for g in groups for s in counting_process_set_sizes(g)]
    singles = [as_lists(process_sets(PackedGroups.from_lists([g]))) for g in groups]
    assert as_lists(ps) == [s for one in singles for s in one]
    check_node_table(ps)


FIELDS = ("seg_offsets", "seg_start", "seg_length", "seg_size", "seg_node", "node_group", "node_parent",
          "node_depth", "node_start", "node_end", "node_size")


def test_chunking_does_not_change_results(random_groups, monkeypatch):
    groups = [*random_groups[:600], [[9] * 40] * 64]  # the last group alone exceeds a tiny chunk
    packed = PackedGroups.from_lists(groups)
    whole = process_sets(packed)
    assert len(trie._chunks(packed)) == 1
    monkeypatch.setattr(trie, "CHUNK_ELEMENTS", 64)
    assert len(trie._chunks(packed)) > 100
    chunked = process_sets(packed)
    for name in FIELDS:
        np.testing.assert_array_equal(getattr(chunked, name), getattr(whole, name), err_msg=name)
    check_node_table(chunked)


def test_large_token_ids():
    top = I32_MAX
    group = [[top, 0], [top, top - 1], [top - 1], [top, 0, top], [0, top]]
    assert [s.tolist() for s in process_set_sizes(group)] == brute_force_process_set_sizes(group)
    assert [s.tolist() for s in process_set_sizes(group)] == [[3, 2], [3, 1], [1], [3, 2, 1], [1, 1]]
    rng = np.random.default_rng(11)
    vocab = np.array([0, 1, top - 2, top - 1, top])
    groups = [[vocab[random].tolist() for random in g] for g in
              (random_group(rng, g_max=16, l_max=12, vocab=(2, 4)) for _ in range(300))]
    ps = process_sets(PackedGroups.from_lists(groups))
    assert as_lists(ps) == [s for g in groups for s in counting_process_set_sizes(g)]
    check_node_table(ps)


@pytest.mark.parametrize("group", [[[1, -1]], [[-100]], [[1, 2], [3, -5, 4]]])
def test_negative_token_id_raises(group):
    with pytest.raises(SchemaError):
        process_set_sizes(group)
    with pytest.raises(SchemaError):
        PackedGroups.from_lists([group])
    with pytest.raises(prm_probe.SchemaError):  # the public alias is the same class
        PackedGroups.from_lists([group])


# ------------------------------------------------------------------------------------------ (d) packing
def test_from_lists_round_trip(random_groups):
    groups = [*random_groups[:300], [[]], [[1]]]
    p = PackedGroups.from_lists(groups)
    assert p.tokens.dtype == np.int32
    assert p.offsets.dtype == np.int64 and p.group_offsets.dtype == np.int64
    assert p.n_groups == len(groups)
    assert p.n_completions == sum(len(g) for g in groups)
    back = [[p.tokens[p.offsets[c]:p.offsets[c + 1]].tolist()
             for c in range(p.group_offsets[k], p.group_offsets[k + 1])] for k in range(p.n_groups)]
    assert back == groups
    assert p.lengths.tolist() == [len(c) for g in groups for c in g]
    assert p.group_sizes.tolist() == [len(g) for g in groups]
    assert p.completion_group.tolist() == [k for k, g in enumerate(groups) for _ in g]
    assert p.completion_sample.tolist() == [i for g in groups for i in range(len(g))]
    # Rebuilding from the flat arrays gives the same results.
    again = PackedGroups(p.tokens.copy(), p.offsets.copy(), p.group_offsets.copy())
    np.testing.assert_array_equal(process_sets(again).size, process_sets(p).size)


def test_from_lists_accepts_numpy_rows():
    rows = [np.array([1, 2, 3], dtype=np.int64), np.array([1, 2], dtype=np.int32), [4]]
    p = PackedGroups.from_lists([rows])
    assert p.tokens.tolist() == [1, 2, 3, 1, 2, 4]
    assert [s.tolist() for s in process_set_sizes(rows)] == [[2, 2, 1], [2, 2], [1]]


@pytest.mark.parametrize("offsets, group_offsets", [([0, 2, 3], [0, 1]), ([0, 2, 4], [0, 2]), ([1, 3], [0, 1])])
def test_bad_offsets_raise(offsets, group_offsets):
    with pytest.raises(SchemaError):
        PackedGroups(np.array([1, 2, 3], dtype=np.int32), np.array(offsets, dtype=np.int64),
                     np.array(group_offsets, dtype=np.int64))


def test_from_lists_takes_lists_tuples_and_arrays_and_refuses_ids_outside_int32():
    import numpy as np

    from prm_probe.core.trie import PackedGroups
    from prm_probe.errors import SchemaError

    a = PackedGroups.from_lists([[[1, 2], (1,), np.array([3, 4, 5])], [[]]])
    assert a.tokens.tolist() == [1, 2, 1, 3, 4, 5] and a.offsets.tolist() == [0, 2, 3, 6, 6]
    assert a.group_offsets.tolist() == [0, 3, 4]
    with pytest.raises(SchemaError, match="token ids span"):
        PackedGroups.from_lists([[[1, 2**31]]])
    with pytest.raises(SchemaError, match="token ids span"):
        PackedGroups.from_lists([[[-1, 2]]])


def test_radix_trie_baseline_matches_the_brute_force():
    import numpy as np

    from prm_probe.core._testing import brute_force_process_set_sizes, radix_trie_process_set_sizes, random_group

    rng = np.random.default_rng(3)
    for _ in range(200):
        group = [list(map(int, c)) for c in random_group(rng)]
        assert radix_trie_process_set_sizes(group) == brute_force_process_set_sizes(group)
