"""The process-set engine: within-group token-prefix tries, vectorised over flat token arrays.

For completion ``i`` of a group and a position ``t`` the *process set* is (docs/science.md §2.1)

    λ(i, t) = { j : |y_j| > t and y_j[0..t] == y_i[0..t] }     (a multiset: duplicates count)

and ``|λ(i, t)|`` is its size. The positions of one completion that share a set form one *segment*: a
maximal run ``[start, end)`` with a constant set, which is one node of the group's compressed trie.

Algorithm (no per-token Python loop). For a chunk of groups, completions are padded into a block of shape
(groups, G, L) of big-endian ``token + 1`` (0 pads, so a shorter sequence sorts before its extensions),
each group's rows are sorted lexicographically by viewing a row as one opaque byte string, and the
longest common prefix (LCP) of every pair of rows is the running minimum of the LCPs of sorted
neighbours. Since ``|λ(i, t)| = #{ j : min(LCP(i, j), |y_i|) > t }`` (with ``LCP(i, i) = |y_i|``), sorting
those G values per row gives every segment of the row at once: the k-th sorted value ends the segment
whose size is ``G - k``. Per-token arrays are one ``np.repeat`` of the segment table away.

Cost: O(G·L) bytes compared per group plus O(G²) small work. Only completion token ids are used: the
prompt is excluded by construction (docs/science.md §2.3), and EOS handling is the caller's choice (§2.4).

This module does not read files, compute rewards or statistics: see ``rollouts``, ``prm`` and ``stats``.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np
from numpy.typing import NDArray

from prm_probe.errors import SchemaError

__all__ = ["PackedGroups", "ProcessSets", "process_set_sizes", "process_sets"]

#: Upper bound on the padded block (groups × G × L elements) processed at once; bounds peak memory.
CHUNK_ELEMENTS = 1 << 21


@dataclass(frozen=True)
class PackedGroups:
    """Groups of completions as flat arrays, in the Arrow ``list<int32>`` layout.

    Attributes:
        tokens: (N,) int32 completion token ids of all completions, concatenated.
        offsets: (n + 1,) int64; completion ``c`` is ``tokens[offsets[c]:offsets[c + 1]]``.
        group_offsets: (g + 1,) int64; group ``k`` holds completions ``group_offsets[k]:group_offsets[k + 1]``.
    """

    tokens: NDArray[np.int32]
    offsets: NDArray[np.int64]
    group_offsets: NDArray[np.int64]

    def __post_init__(self) -> None:
        off, goff = self.offsets, self.group_offsets
        if off.ndim != 1 or len(off) < 1 or off[0] != 0 or off[-1] != len(self.tokens):
            raise SchemaError(
                f"completion offsets run from {off[:1]} to {off[-1:]} over {len(self.tokens)} tokens; "
                "expected offsets[0] == 0 and offsets[-1] == len(tokens); build them with PackedGroups.from_lists"
            )
        if goff.ndim != 1 or len(goff) < 1 or goff[0] != 0 or goff[-1] != len(off) - 1:
            raise SchemaError(
                f"group offsets end at {goff[-1:]} for {len(off) - 1} completions; expected them to end at "
                "the number of completions; build them with PackedGroups.from_lists"
            )
        if len(self.tokens) and int(self.tokens.min()) < 0:
            raise SchemaError(
                f"found a negative token id ({int(self.tokens.min())}); expected ids >= 0; "
                "remove padding markers such as -100 before packing"
            )

    @classmethod
    def from_lists(cls, groups: Sequence[Sequence[Sequence[int]]]) -> PackedGroups:
        """Pack nested Python sequences ``groups[g][i] = token ids``.

        Example:
            >>> p = PackedGroups.from_lists([[[1, 2], [1]], [[3]]])
            >>> p.tokens.tolist(), p.offsets.tolist(), p.group_offsets.tolist()
            ([1, 2, 1, 3], [0, 2, 3, 4], [0, 2, 3])
        """
        # One numpy conversion per completion (lists, tuples or arrays), no per-token Python loop.
        arrays = [np.asarray(c, dtype=np.int64).reshape(-1) if isinstance(c, np.ndarray)
                  else np.fromiter(c, dtype=np.int64, count=len(c)) for g in groups for c in g]
        offsets = np.zeros(len(arrays) + 1, dtype=np.int64)
        np.cumsum([len(a) for a in arrays], out=offsets[1:])
        goff = np.zeros(len(groups) + 1, dtype=np.int64)
        np.cumsum([len(g) for g in groups], out=goff[1:])
        flat = np.concatenate(arrays) if arrays else np.zeros(0, dtype=np.int64)
        if flat.size and (flat.min() < 0 or flat.max() > np.iinfo(np.int32).max):
            raise SchemaError(f"token ids span {flat.min()}..{flat.max()}; expected ids in "
                              f"0..{np.iinfo(np.int32).max}; pass the tokenizer's ids")
        return cls(flat.astype(np.int32), offsets, goff)

    @classmethod
    def from_padded(cls, ids: NDArray[np.integer], lengths: NDArray[np.integer], group_size: int) -> PackedGroups:
        """Pack a right-padded batch whose rows come in consecutive groups of ``group_size``.

        Args:
            ids: (B, T) completion token ids; row ``i`` holds ``lengths[i]`` ids, then padding (ignored).
            lengths: (B,) completion lengths, 0 <= lengths[i] <= T.
            group_size: G; B must be a multiple of it.

        Example:
            >>> p = PackedGroups.from_padded(np.array([[5, 6, 0], [5, 0, 0]]), np.array([2, 1]), 2)
            >>> p.tokens.tolist(), p.offsets.tolist(), p.group_offsets.tolist()
            ([5, 6, 5], [0, 2, 3], [0, 2])
        """
        ids = np.asarray(ids)
        lengths = np.asarray(lengths, dtype=np.int64)
        b, width = ids.shape
        if group_size < 1 or b % group_size:
            raise SchemaError(f"a batch of {b} rows does not split into groups of {group_size}; expected a multiple "
                              "of the group size; keep each prompt's G completions together")
        if len(lengths) != b or (b and (lengths.min() < 0 or lengths.max() > width)):
            raise SchemaError(f"completion lengths must be {b} values in 0..{width}; got {len(lengths)} values "
                              f"in {lengths.min(initial=0)}..{lengths.max(initial=0)}; derive them from the mask")
        keep = np.arange(width)[None, :] < lengths[:, None]  # (B, T)
        offsets = np.zeros(b + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        return cls(ids[keep].astype(np.int32), offsets, np.arange(0, b + 1, group_size, dtype=np.int64))

    def to_padded(self, values: NDArray, width: int | None = None, fill: float = 0) -> NDArray:
        """Scatter per-token ``values`` (N,) into a right-padded (n, width) array, ``fill`` elsewhere.

        Example:
            >>> p = PackedGroups.from_lists([[[1, 2], [1]]])
            >>> p.to_padded(np.array([2, 1, 2]), fill=1).tolist()
            [[2, 1], [2, 1]]
        """
        width = int(self.lengths.max(initial=0)) if width is None else width
        out = np.full((self.n_completions, width), fill, dtype=np.asarray(values).dtype)
        keep = np.arange(width)[None, :] < self.lengths[:, None]
        out[keep] = values
        return out

    @property
    def n_groups(self) -> int:
        return len(self.group_offsets) - 1

    @property
    def n_completions(self) -> int:
        return len(self.offsets) - 1

    @cached_property
    def lengths(self) -> NDArray[np.int64]:
        """(n,) completion lengths in tokens."""
        return np.diff(self.offsets)

    @cached_property
    def group_sizes(self) -> NDArray[np.int64]:
        """(g,) number of completions per group."""
        return np.diff(self.group_offsets)

    @cached_property
    def completion_group(self) -> NDArray[np.int64]:
        """(n,) group index of each completion."""
        return np.repeat(np.arange(self.n_groups), self.group_sizes)

    @cached_property
    def completion_sample(self) -> NDArray[np.int64]:
        """(n,) index of each completion within its group (0..G-1, in packing order)."""
        return np.arange(self.n_completions) - self.group_offsets[self.completion_group]


@dataclass(frozen=True)
class ProcessSets:
    """Process sets of every token of a :class:`PackedGroups`, stored as a segment table.

    A *segment* is the part of one completion that lies in one trie node. Segments are stored in
    completion order and, within a completion, from the root down; they cover each completion exactly,
    so per-token arrays are ``np.repeat(segment_value, segment_length)``.

    Attributes:
        packed: the input groups.
        seg_offsets: (n + 1,) int64; completion ``c`` owns segments ``seg_offsets[c]:seg_offsets[c + 1]``.
        seg_start: (S,) int32 first position of the segment in its completion.
        seg_length: (S,) int32 number of tokens (always >= 1).
        seg_size: (S,) int32 process-set size ``|λ|`` of the segment's tokens.
        seg_node: (S,) int64 global node id (nodes of group k come before those of group k + 1).
        node_group, node_parent, node_depth, node_start, node_end, node_size: the node table, (nodes,)
            each; ``node_parent`` is -1 for a node without a non-empty parent, ``node_depth`` counts its
            non-empty ancestors.
    """

    packed: PackedGroups
    seg_offsets: NDArray[np.int64]
    seg_start: NDArray[np.int32]
    seg_length: NDArray[np.int32]
    seg_size: NDArray[np.int32]
    seg_node: NDArray[np.int64]
    node_group: NDArray[np.int64]
    node_parent: NDArray[np.int64]
    node_depth: NDArray[np.int32]
    node_start: NDArray[np.int32]
    node_end: NDArray[np.int32]
    node_size: NDArray[np.int32]

    @property
    def n_nodes(self) -> int:
        return len(self.node_group)

    @cached_property
    def seg_completion(self) -> NDArray[np.int64]:
        """(S,) completion index of each segment."""
        return np.repeat(np.arange(self.packed.n_completions), np.diff(self.seg_offsets))

    @cached_property
    def size(self) -> NDArray[np.int32]:
        """(N,) ``|λ(i, t)|`` for every token, aligned with ``packed.tokens``."""
        return np.repeat(self.seg_size, self.seg_length)

    @cached_property
    def node(self) -> NDArray[np.int64]:
        """(N,) node id of every token, aligned with ``packed.tokens``."""
        return np.repeat(self.seg_node, self.seg_length)

    def sizes_per_completion(self) -> list[NDArray[np.int32]]:
        """``|λ|`` split by completion: a list of n int32 arrays."""
        return np.split(self.size, self.packed.offsets[1:-1])

    def node_members(self) -> list[NDArray[np.int64]]:
        """Member sample indices (within the group) of every node, duplicates as separate samples."""
        order = np.lexsort((self.seg_completion, self.seg_node))
        samples = self.packed.completion_sample[self.seg_completion[order]]
        return np.split(samples, np.cumsum(self.node_size)[:-1])

    def node_table(self):
        """The node table as a DataFrame: ``node, group, parent, depth, start, end, size, members``.

        Example:
            >>> ps = process_sets(PackedGroups.from_lists([[[1, 2], [1, 3], [4]]]))
            >>> ps.node_table()[["node", "parent", "start", "end", "size"]].to_numpy().tolist()
            [[0, -1, 0, 1, 2], [1, -1, 0, 1, 1], [2, 0, 1, 2, 1], [3, 0, 1, 2, 1]]
        """
        import pandas as pd

        return pd.DataFrame({
            "node": np.arange(self.n_nodes), "group": self.node_group, "parent": self.node_parent,
            "depth": self.node_depth, "start": self.node_start, "end": self.node_end, "size": self.node_size,
            "members": [m.tolist() for m in self.node_members()],
        })

    @cached_property
    def group_node_offsets(self) -> NDArray[np.int64]:
        """(g + 1,) node ids of group k are ``group_node_offsets[k]:group_node_offsets[k + 1]``."""
        counts = np.bincount(self.node_group, minlength=self.packed.n_groups)
        out = np.zeros(self.packed.n_groups + 1, dtype=np.int64)
        np.cumsum(counts, out=out[1:])
        return out


def process_sets(packed: PackedGroups) -> ProcessSets:
    """Compute the process sets and trie nodes of every group in ``packed``.

    Args:
        packed: groups of completion token ids (completion part only).

    Returns:
        The segment table and node table; see :class:`ProcessSets`.

    Example:
        >>> ps = process_sets(PackedGroups.from_lists([[[1, 2, 3], [1, 2, 4], [1, 5, 6], [7, 8, 9]]]))
        >>> [s.tolist() for s in ps.sizes_per_completion()]
        [[3, 2, 1], [3, 2, 1], [3, 1, 1], [1, 1, 1]]
        >>> ps.n_nodes
        6
    """
    n = packed.n_completions
    parts: list[tuple[np.ndarray, ...]] = []
    for g0, g1 in _chunks(packed):
        parts.append(_chunk_segments(packed, g0, g1))
    if parts:
        comp, start, length, size, minmember = (np.concatenate(x) for x in zip(*parts, strict=True))
    else:
        comp = start = length = size = minmember = np.zeros(0, dtype=np.int64)
    seg_offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.bincount(comp, minlength=n), out=seg_offsets[1:])
    group = packed.completion_group[comp]
    # A node is identified within its group by (start position, smallest member index).
    gmax = int(packed.group_sizes.max(initial=1))
    lmax = int(packed.lengths.max(initial=0)) + 1
    key = (group * lmax + start) * gmax + minmember
    _uniq, first, seg_node = np.unique(key, return_index=True, return_inverse=True)
    seg_node = seg_node.reshape(-1).astype(np.int64)
    # Parent = the node of the previous segment of the same completion.
    prev = np.full(len(comp), -1, dtype=np.int64)
    same = np.zeros(len(comp), dtype=bool)
    if len(comp) > 1:
        same[1:] = comp[1:] == comp[:-1]
        prev[1:] = np.where(same[1:], seg_node[:-1], -1)
    depth = np.arange(len(comp), dtype=np.int64) - seg_offsets[comp]
    return ProcessSets(
        packed=packed,
        seg_offsets=seg_offsets,
        seg_start=start.astype(np.int32),
        seg_length=length.astype(np.int32),
        seg_size=size.astype(np.int32),
        seg_node=seg_node,
        node_group=group[first].astype(np.int64),
        node_parent=prev[first],
        node_depth=depth[first].astype(np.int32),
        node_start=start[first].astype(np.int32),
        node_end=(start[first] + length[first]).astype(np.int32),
        node_size=size[first].astype(np.int32),
    )


def process_set_sizes(completions: Sequence[Sequence[int]]) -> list[NDArray[np.int64]]:
    """Return ``|λ(i, t)|`` for every token of one group: one int64 array per completion.

    Args:
        completions: one group, as G sequences of completion token ids (prompt excluded).

    Example:
        >>> [s.tolist() for s in process_set_sizes([[1, 2, 3], [1, 2, 3], [1, 2], [4]])]
        [[3, 3, 2], [3, 3, 2], [3, 3], [1]]
        >>> [s.tolist() for s in process_set_sizes([[1], [1, 2], []])]
        [[2], [2, 1], []]
    """
    ps = process_sets(PackedGroups.from_lists([completions]))
    return [s.astype(np.int64) for s in ps.sizes_per_completion()]


def _chunks(packed: PackedGroups) -> list[tuple[int, int]]:
    """Split the groups into consecutive runs whose padded blocks hold about CHUNK_ELEMENTS each."""
    ng = packed.n_groups
    if ng == 0:
        return []
    lengths = packed.lengths
    goff = packed.group_offsets
    gmax_per_group = packed.group_sizes
    # Maximum length per group (reduceat needs non-empty slices; empty groups count as 0).
    nonempty = gmax_per_group > 0
    lmax = np.zeros(ng, dtype=np.int64)
    if nonempty.any() and len(lengths):
        lmax[nonempty] = np.maximum.reduceat(lengths, goff[:-1][nonempty])
    gmax = int(gmax_per_group.max())
    cost = gmax * np.maximum(lmax, 1)
    bounds = np.searchsorted(np.cumsum(cost), np.arange(1, int(cost.sum() // CHUNK_ELEMENTS) + 1) * CHUNK_ELEMENTS)
    edges = np.unique(np.concatenate([[0], bounds, [ng]]).clip(0, ng))
    return [(int(a), int(b)) for a, b in itertools.pairwise(edges) if b > a]


def _chunk_segments(packed: PackedGroups, g0: int, g1: int) -> tuple[np.ndarray, ...]:
    """Segments of groups ``g0:g1``: (completion, start, length, size, smallest member), each (S,)."""
    goff = packed.group_offsets
    c0, c1 = int(goff[g0]), int(goff[g1])
    ng = g1 - g0
    sizes = packed.group_sizes[g0:g1]
    gp = int(sizes.max(initial=0))
    lens = packed.lengths[c0:c1]
    lp = max(int(lens.max(initial=0)), 1)
    if c1 == c0:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, empty, empty, empty
    # Row of each completion in the (ng * gp, lp) block; rows beyond a group's size stay empty.
    local_group = packed.completion_group[c0:c1] - g0
    row = local_group * gp + packed.completion_sample[c0:c1]
    row_len = np.zeros(ng * gp, dtype=np.int64)
    row_len[row] = lens
    # Fill the block in row-major order (rows are in completion order), then make it big-endian in place.
    block = np.zeros((ng * gp, lp), dtype=np.uint32)
    t0, t1 = int(packed.offsets[c0]), int(packed.offsets[c1])
    block[np.arange(lp)[None, :] < row_len[:, None]] = packed.tokens[t0:t1].view(np.uint32) + np.uint32(1)
    block.byteswap(inplace=True)
    row_len = row_len.reshape(ng, gp)

    # Lexicographic order of each group's rows: a big-endian row compares like its token sequence.
    order = np.argsort(block.view(f"V{4 * lp}").reshape(ng, gp), axis=1, kind="stable")  # (ng, gp)
    rank = np.empty_like(order)
    np.put_along_axis(rank, order, np.arange(gp)[None, :], axis=1)
    # LCP of sorted neighbours (ng, gp - 1), then of every pair via a running minimum.
    big = np.int64(lp + 1)
    if gp > 1:
        srt = block.reshape(ng, gp, lp)[np.arange(ng)[:, None], order]  # (ng, gp, lp)
        neq = srt[:, 1:, :] != srt[:, :-1, :]  # (ng, gp - 1, lp)
        first = neq.argmax(axis=2)
        differs = np.take_along_axis(neq, first[..., None], axis=2)[..., 0]
        adj = np.where(differs, first, lp).astype(np.int64)  # (ng, gp - 1)
        a = np.arange(gp)
        # pair_sorted[a, b] = min(adj[a:b]) for a < b.
        masked = np.where(a[None, :, None] <= a[None, None, : gp - 1], adj[:, None, :], big)  # (ng, gp, gp - 1)
        run_min = np.minimum.accumulate(masked, axis=2)
        pair_sorted = np.full((ng, gp, gp), big, dtype=np.int64)
        pair_sorted[:, :, 1:] = run_min
        upper = a[:, None] < a[None, :]
        pair_sorted = np.where(upper, pair_sorted, np.swapaxes(pair_sorted, 1, 2))
        # Back to packing order: pair[i, j] = LCP(completion i, completion j).
        gi = np.arange(ng)[:, None, None]
        pair = pair_sorted[gi, rank[:, :, None], rank[:, None, :]]  # (ng, gp, gp)
    else:
        pair = np.full((ng, gp, gp), big, dtype=np.int64)
    # u[i, j] = min(LCP(i, j), |y_i|); |λ(i, t)| = #{ j : u[i, j] > t }.
    u = np.minimum(pair, row_len[:, :, None])  # (ng, gp, gp)
    by_u = np.argsort(u, axis=2, kind="stable")
    ends = np.take_along_axis(u, by_u, axis=2)  # segment k of row i is [ends[k-1], ends[k])
    starts = np.concatenate([np.zeros((ng, gp, 1), dtype=np.int64), ends[:, :, :-1]], axis=2)
    # Members of segment k are by_u[k:], so its smallest member is a suffix minimum.
    minmember = np.minimum.accumulate(by_u[:, :, ::-1], axis=2)[:, :, ::-1]
    keep = (ends > starts).reshape(ng * gp, gp)
    real = np.zeros(ng * gp, dtype=bool)
    real[row] = True
    keep &= real[:, None]
    comp_of_row = np.full(ng * gp, -1, dtype=np.int64)
    comp_of_row[row] = np.arange(c0, c1)
    rows_idx, k_idx = np.nonzero(keep)  # row-major: completion order, then root to leaf
    starts = starts.reshape(ng * gp, gp)[rows_idx, k_idx]
    length = ends.reshape(ng * gp, gp)[rows_idx, k_idx] - starts
    size = gp - k_idx
    return comp_of_row[rows_idx], starts, length, size, minmember.reshape(ng * gp, gp)[rows_idx, k_idx]
