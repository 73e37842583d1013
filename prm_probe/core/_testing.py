"""Test and benchmark helpers: brute-force references and generators of synthetic groups and logs.

The brute-force functions apply docs/science.md's definitions literally, one token at a time, so they are slow
and obviously right; the engine in ``trie`` must agree with them exactly. Nothing here is used by the
library's own code paths.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import numpy as np

__all__ = [
    "brute_force_process_set_sizes",
    "counting_process_set_sizes",
    "dict_trie_process_set_sizes",
    "random_group",
    "realistic_group",
    "synthetic_rollouts",
]


def brute_force_process_set_sizes(completions: Sequence[Sequence[int]]) -> list[list[int]]:
    """``|λ(i, t)| = #{ j : |y_j| > t and y_j[0..t] == y_i[0..t] }``, literally (O(G² L²)).

    Example:
        >>> brute_force_process_set_sizes([[1], [1, 2]])
        [[2], [2, 1]]
    """
    seqs = [list(c) for c in completions]
    return [
        [sum(1 for y_j in seqs if len(y_j) > t and y_j[: t + 1] == y_i[: t + 1]) for t in range(len(y_i))]
        for y_i in seqs
    ]


def counting_process_set_sizes(completions: Sequence[Sequence[int]]) -> list[list[int]]:
    """The same definition by counting every prefix in a multiset (O(G L²)); fast enough for 10^4 groups."""
    seqs = [tuple(c) for c in completions]
    counts = Counter(y[: t + 1] for y in seqs for t in range(len(y)))
    return [[counts[y[: t + 1]] for t in range(len(y))] for y in seqs]


def dict_trie_process_set_sizes(completions: Sequence[Sequence[int]]) -> list[list[int]]:
    """A straightforward pure-Python trie of nested dicts that walks each token (the benchmark baseline)."""
    root: dict = {}
    for y in completions:
        node = root
        for tok in y:
            child = node.get(tok)
            if child is None:
                child = node[tok] = [0, {}]
            child[0] += 1
            node = child[1]
    out = []
    for y in completions:
        node = root
        sizes = []
        for tok in y:
            count, node = node[tok]
            sizes.append(count)
        out.append(sizes)
    return out


def radix_trie_process_set_sizes(completions: Sequence[Sequence[int]]) -> list[list[int]]:
    """|λ(i, t)| by a compact pure-Python radix trie, literally: from the root, scan forward while every member of
    a node agrees on the next token, then split the members by it (a node of one member is scanned to its end
    like any other). The per-group baseline of ``benchmarks/bench_engine.py``."""
    out = [[0] * len(c) for c in completions]
    stack = [(list(range(len(completions))), 0)]
    while stack:
        members, t = stack.pop()
        while True:
            alive = [i for i in members if len(completions[i]) > t]
            if not alive:
                break
            first = completions[alive[0]][t]
            if all(completions[i][t] == first for i in alive):  # one edge: scan on
                for i in alive:
                    out[i][t] = len(alive)
                members, t = alive, t + 1
                continue
            buckets: dict[int, list[int]] = {}
            for i in alive:
                buckets.setdefault(completions[i][t], []).append(i)
            for bucket in buckets.values():
                for i in bucket:
                    out[i][t] = len(bucket)
                stack.append((bucket, t + 1))
            break
    return out


def random_group(rng: np.random.Generator, g_max: int = 64, l_max: int = 40, vocab: tuple[int, int] = (2, 4)):
    """A random group with frequent shared prefixes, duplicates and strict prefixes.

    Returns G in 1..g_max completions of length 0..l_max over a vocabulary of 2-4 token ids.
    """
    g = int(rng.integers(1, g_max + 1))
    v = int(rng.integers(vocab[0], vocab[1] + 1))
    base = rng.integers(0, v, size=l_max)
    group = []
    for _ in range(g):
        length = int(rng.integers(0, l_max + 1))
        if rng.random() < 0.5:  # copy a prefix of a shared base sequence, then diverge
            keep = int(rng.integers(0, length + 1))
            seq = np.concatenate([base[:keep], rng.integers(0, v, size=length - keep)])
        else:
            seq = rng.integers(0, v, size=length)
        group.append(seq.astype(int).tolist())
    if g > 1 and rng.random() < 0.3:  # exact duplicates
        group[int(rng.integers(0, g))] = list(group[0])
    return group


def realistic_group(rng: np.random.Generator, g: int, length: int, vocab: int = 50_000,
                    mean_shared: float = 0.1, dup_rate: float = 0.05) -> list[np.ndarray]:
    """A group like a real GRPO group: branches off earlier members after a geometric shared prefix.

    Each completion copies a geometric-length prefix (mean ``mean_shared * length``) of an earlier member,
    then continues with fresh random tokens; about ``dup_rate`` of them duplicate an earlier member.
    All completions have ``length`` tokens, so G·L tokens in all.
    """
    out: list[np.ndarray] = [rng.integers(0, vocab, size=length, dtype=np.int32)]
    for _ in range(1, g):
        parent = out[int(rng.integers(0, len(out)))]
        if rng.random() < dup_rate:
            out.append(parent.copy())
            continue
        keep = min(int(rng.geometric(1.0 / max(mean_shared * length, 1.0))), length)
        fresh = rng.integers(0, vocab, size=length - keep, dtype=np.int32)
        out.append(np.concatenate([parent[:keep], fresh]))
    return out


def synthetic_rollouts(steps: int = 3, groups: int = 4, group_size: int = 8, length: int = 32,
                       seed: int = 0, vocab: int = 1000, run_id: str = "synthetic"):
    """A small rollout table in the canonical schema (pyarrow), made of ``realistic_group`` groups.

    Rewards are binary and drawn at random; overlap grows with the step (a stand-in for convergence).
    """
    from prm_probe.core.rollouts import rollout_table

    rng = np.random.default_rng(seed)
    cols: dict[str, list] = {name: [] for name in ("run_id", "step", "group", "sample", "prompt_id",
                                                    "completion_ids", "reward")}
    for step in range(steps):
        share = 0.05 + 0.6 * step / max(steps - 1, 1)
        for grp in range(groups):
            for sample, seq in enumerate(realistic_group(rng, group_size, length, vocab, mean_shared=share)):
                cols["run_id"].append(run_id)
                cols["step"].append(step)
                cols["group"].append(grp)
                cols["sample"].append(sample)
                cols["prompt_id"].append(f"p{step}-{grp}")
                cols["completion_ids"].append(seq)
                cols["reward"].append(float(rng.random() < 0.5))
    return rollout_table(cols)
