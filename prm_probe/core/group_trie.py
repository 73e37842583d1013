"""``GroupTrie``: one group's process-set trie as an object to explore in a notebook or print in a terminal.

A thin view over the engine's arrays for a single group: its nodes (span, members, ``|λ|``, and with
rewards the step reward ``R̂`` and PRM-aware advantage ``A``), each sample's path, tidy frames, and an
indented text rendering (``prm-probe prm``). It computes nothing the engine and ``prm`` do not.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from prm_probe.core.prm import node_values, outcome_advantages
from prm_probe.core.trie import PackedGroups, ProcessSets, process_sets
from prm_probe.errors import ConfigError, SchemaError

__all__ = ["GroupTrie"]


class GroupTrie:
    """The compressed prefix trie of one group.

    Build it with :meth:`from_completions` (token-id lists) or :meth:`from_process_sets` (one group of a
    larger computation). Node ids here are *local*: 0..nodes-1, numbered depth first with children in
    order of their smallest member. They differ from the engine's global ids in
    :class:`~prm_probe.core.trie.ProcessSets` (ordered by start position, then smallest member).

    Example:
        >>> trie = GroupTrie.from_completions([[1, 2, 3], [1, 2, 4], [1, 5, 6], [7, 8, 9]], rewards=[1, 0, 1, 0])
        >>> trie
        GroupTrie(G=4, nodes=6, max_depth=3)
        >>> trie[0]
        [0, 1, 2]
        >>> print(trie.render())
        [1]  |λ|=3  R̂=0.667  A=+0.289  samples 0,1,2
          [2]  |λ|=2  R̂=0.500  A=+0.000  samples 0,1
            [3]  |λ|=1  R̂=1.000  A=+0.866  sample 0
            [4]  |λ|=1  R̂=0.000  A=-0.866  sample 1
          [5 6]  |λ|=1  R̂=1.000  A=+0.866  sample 2
        [7 8 9]  |λ|=1  R̂=0.000  A=-0.866  sample 3
    """

    def __init__(self, ps: ProcessSets, group: int = 0, rewards: Sequence[float] | None = None) -> None:
        packed = ps.packed
        self._ps = ps
        self.group = group
        c0, c1 = int(packed.group_offsets[group]), int(packed.group_offsets[group + 1])
        self._c0, self._c1 = c0, c1
        n0, n1 = int(ps.group_node_offsets[group]), int(ps.group_node_offsets[group + 1])
        self._n0, self._n1 = n0, n1
        seg0, seg1 = int(ps.seg_offsets[c0]), int(ps.seg_offsets[c1])
        self._seg = slice(seg0, seg1)
        self.run_id: str | None = None
        self._number_nodes()
        self.rewards = None if rewards is None else np.asarray(rewards, dtype=np.float64)
        if self.rewards is not None and len(self.rewards) != c1 - c0:
            from prm_probe.errors import SchemaError

            raise SchemaError(f"got {len(self.rewards)} rewards for a group of {c1 - c0}; expected one per "
                              "completion; pass the group's rewards in sample order")

    def _number_nodes(self) -> None:
        """Number the nodes depth-first, children in order of their smallest member (local ids 0..)."""
        ps = self._ps
        seg_node = ps.seg_node[self._seg] - self._n0
        comp = ps.seg_completion[self._seg] - self._c0
        members: list[list[int]] = [[] for _ in range(self.n_nodes)]
        for node, sample in zip(seg_node.tolist(), comp.tolist(), strict=True):
            members[node].append(sample)
        children: dict[int, list[int]] = {}
        for node, parent in enumerate((ps.node_parent[self._n0:self._n1]).tolist()):
            children.setdefault(parent - self._n0 if parent >= 0 else -1, []).append(node)
        order: list[int] = []
        stack = sorted(children.get(-1, []), key=lambda k: members[k][0], reverse=True)
        while stack:
            node = stack.pop()
            order.append(node)
            stack.extend(sorted(children.get(node, []), key=lambda k: members[k][0], reverse=True))
        self._engine_of = np.asarray(order, dtype=np.int64)  # local id -> engine id - n0
        self._local_of = np.empty(self.n_nodes, dtype=np.int64)
        self._local_of[self._engine_of] = np.arange(self.n_nodes)
        self._members = [members[k] for k in order]

    @classmethod
    def from_completions(cls, completions: Sequence[Sequence[int]],
                         rewards: Sequence[float] | None = None) -> GroupTrie:
        """Build the trie of one group given as G token-id sequences (and optionally G rewards)."""
        return cls(process_sets(PackedGroups.from_lists([completions])), 0, rewards)

    @classmethod
    def from_log(cls, log, step: int, group: int, run_id: str | None = None) -> GroupTrie:
        """The trie of one group of a rollout log (file, folder or glob), with its rewards.

        Raises:
            ConfigError: no such group, or it exists in several runs and ``run_id`` is not given.
        """
        import pyarrow.compute as pc

        from prm_probe.core.rollouts import pack_groups, read_rollouts

        table = read_rollouts(log)
        mask = pc.and_(pc.equal(table.column("step"), step), pc.equal(table.column("group"), group))
        if run_id is not None:
            mask = pc.and_(mask, pc.equal(table.column("run_id"), run_id))
        sub = table.filter(mask)
        where = "" if run_id is None else f" in run {run_id!r}"
        if sub.num_rows == 0:
            raise ConfigError(f"no rows with step {step} and group {group}{where} in '{log}'; expected an existing "
                              "group; list the groups with `prm-probe stats LOG --by group`")
        runs = pc.unique(sub.column("run_id")).to_pylist()
        if len(runs) > 1:
            raise ConfigError(f"step {step}, group {group} exists in {len(runs)} runs ({', '.join(runs[:4])}); "
                              "expected one; pick one with run_id (--run-id)")
        grouped = pack_groups(sub)
        trie = cls(process_sets(grouped.packed), 0, grouped.reward)
        trie.run_id = runs[0]
        return trie

    @classmethod
    def from_process_sets(cls, ps: ProcessSets, group: int, rewards: Sequence[float] | None = None) -> GroupTrie:
        """View group ``group`` of an existing :class:`~prm_probe.core.trie.ProcessSets`."""
        return cls(ps, group, rewards)

    def __len__(self) -> int:
        return self._c1 - self._c0

    @property
    def n_nodes(self) -> int:
        return self._n1 - self._n0

    @property
    def max_depth(self) -> int:
        d = self._ps.node_depth[self._n0:self._n1]
        return int(d.max()) + 1 if len(d) else 0

    def __repr__(self) -> str:
        return f"GroupTrie(G={len(self)}, nodes={self.n_nodes}, max_depth={self.max_depth})"

    def __getitem__(self, sample: int) -> list[int]:
        """The path of ``sample``: its node ids (local to this group, 0..nodes-1) from the top down."""
        if not -len(self) <= sample < len(self):
            raise IndexError(f"sample {sample} out of range for a group of {len(self)}")
        c = self._c0 + sample % len(self)
        s0, s1 = int(self._ps.seg_offsets[c]), int(self._ps.seg_offsets[c + 1])
        return self._local_of[self._ps.seg_node[s0:s1] - self._n0].tolist()

    def engine_ids(self) -> list[int]:
        """For each local node id, the node's id in the engine's numbering within its group (ordered by start
        position, then smallest member): the ids ``prm-probe prm-quality`` writes."""
        return self._engine_of.tolist()

    def members(self, node: int) -> list[int]:
        """Sample indices passing through node ``node`` (a multiset: duplicates are separate samples)."""
        return list(self._members[node])

    def tokens(self, node: int) -> list[int]:
        """Token ids of the process step (span) of node ``node``."""
        c = self._c0 + self._members[node][0]
        off = int(self._ps.packed.offsets[c])
        g = self._n0 + int(self._engine_of[node])
        return self._ps.packed.tokens[off + self._ps.node_start[g]: off + self._ps.node_end[g]].tolist()

    def node_table(self):
        """One row per node: ``node, parent, depth, start, end, size, members`` (+ ``step_reward``,
        ``prm_advantage`` when rewards are known). Node and parent ids are local (parent -1 = none)."""
        import pandas as pd

        ps, idx = self._ps, self._n0 + self._engine_of
        parent = ps.node_parent[idx]
        frame = pd.DataFrame({
            "node": np.arange(self.n_nodes),
            "parent": np.where(parent >= 0, self._local_of[np.maximum(parent - self._n0, 0)], -1),
            "depth": ps.node_depth[idx],
            "start": ps.node_start[idx],
            "end": ps.node_end[idx],
            "size": ps.node_size[idx],
            "members": [self.members(k) for k in range(self.n_nodes)],
        })
        if self.rewards is not None:
            vals = self._values()
            frame["step_reward"] = vals["step_reward"][self._engine_of]
            frame["prm_advantage"] = vals["prm_advantage"][self._engine_of]
        return frame

    def _values(self) -> dict[str, np.ndarray]:
        sub = self._single()
        return node_values(sub, self.rewards)

    def _single(self) -> ProcessSets:
        """This group alone as a ProcessSets (node ids 0..nodes-1)."""
        if self._ps.packed.n_groups == 1:
            return self._ps
        p = self._ps.packed
        t0, t1 = int(p.offsets[self._c0]), int(p.offsets[self._c1])
        packed = PackedGroups(p.tokens[t0:t1], p.offsets[self._c0:self._c1 + 1] - t0,
                              np.array([0, self._c1 - self._c0], dtype=np.int64))
        return process_sets(packed)

    def to_frame(self):
        """One row per completion token: ``sample, t, token, node, process_set_size`` (+ PRM columns)."""
        from prm_probe.core.prm import implied_prm_frame

        sub = self._single()
        if self.rewards is not None:
            frame = implied_prm_frame(sub, self.rewards).drop(columns="group")
        else:
            import pandas as pd

            p = sub.packed
            comp = np.repeat(np.arange(p.n_completions), p.lengths)
            frame = pd.DataFrame({"sample": comp, "t": np.arange(len(p.tokens)) - np.repeat(p.offsets[:-1], p.lengths),
                                  "token": p.tokens, "node": sub.node, "process_set_size": sub.size})
        frame["node"] = self._local_of[frame["node"].to_numpy()]
        return frame

    def identity_check(self):
        """Theorem 1's per-node identity on this group (:func:`prm_probe.core.prm.identity_check`); needs rewards."""
        from prm_probe.core.prm import identity_check

        if self.rewards is None:
            raise SchemaError("this GroupTrie has no rewards; expected a group with rewards; build it with "
                              "rewards=... or from a log")
        return identity_check(self._single(), self.rewards)

    def outcome_advantages(self) -> np.ndarray:
        """(G,) outcome advantages of the group's samples (NaN for G = 1); needs rewards."""
        if self.rewards is None:
            raise SchemaError("this GroupTrie has no rewards; expected a group with rewards; build it with "
                              "rewards=... or from a log")
        return outcome_advantages(self.rewards)

    def _repr_html_(self, decode: Callable[[list[int]], str] | None = None) -> str:
        """The trie as nested boxes in Jupyter, as ``prm-probe explore`` draws it: each node's span (token ids, or
        ``decode``'s text), |λ|, R̂ and A, coloured by A (red below the group mean, blue above) and its members;
        static HTML, no script."""
        import html

        table = self.node_table()
        rows = list(table.itertuples(index=False))
        has_a = "prm_advantage" in table.columns
        bound = max([abs(float(r.prm_advantage)) for r in rows if has_a and np.isfinite(r.prm_advantage)] or [1.0])
        bound = bound or 1.0
        children: dict[int, list] = {}
        for r in rows:
            children.setdefault(int(r.parent), []).append(r)

        def colour(a: float) -> str:
            if not has_a or not np.isfinite(a):
                return "#e8ebf0"
            t = 0.55 * max(-1.0, min(1.0, a / bound))  # the explorer's diverging scale, light enough for text
            end = (178, 24, 43) if t < 0 else (33, 102, 172)
            return "rgb({},{},{})".format(*(round(247 + (e - 247) * abs(t)) for e in end))

        def box(r) -> str:
            ids = self.tokens(int(r.node))
            span = decode(ids) if decode is not None else " ".join(map(str, ids))
            stats = f"|λ|={int(r.size)}"
            if has_a:
                stats += f"  R̂={float(r.step_reward):.3f}  A={float(r.prm_advantage):+.3f}"
            members = ", ".join(map(str, r.members))
            kids = "".join(f"<li>{box(c)}</li>" for c in children.get(int(r.node), []))
            style = ("display:inline-block;padding:2px 7px;margin:2px 0;border:1px solid #b8c0cc;border-radius:5px;"
                     f"background:{colour(float(r.prm_advantage)) if has_a else '#e8ebf0'}")
            node = (f'<span style="{style}" title="members: {members}"><code>{html.escape(span or "∅")}</code> '
                    f"<small>{html.escape(stats)}</small></span>")
            return node + (f'<ul style="list-style:none;margin:0;padding-left:20px;border-left:1px dashed #ccc">'
                           f"{kids}</ul>" if kids else "")

        items = "".join(f"<li>{box(r)}</li>" for r in children.get(-1, []))
        head = f"GroupTrie: G = {len(self)}, {self.n_nodes} nodes" + ("" if has_a else " (no rewards)")
        return (f'<div><div style="color:#5b6577">{html.escape(head)}</div>'
                f'<ul style="list-style:none;padding:0">{items}</ul></div>')

    def render(self, decode: Callable[[list[int]], str] | None = None, max_chars: int = 60) -> str:
        """The trie as an indented tree, one line per node: span, ``|λ|``, ``R̂``, ``A``, members.

        Args:
            decode: turns a span's token ids into text (e.g. ``tokenizer.decode``); ids are shown without it.
            max_chars: spans are shortened to this many characters.
        """
        table = self.node_table()
        children: dict[int, list[int]] = {}
        for node, parent in zip(table["node"], table["parent"], strict=True):
            children.setdefault(int(parent), []).append(int(node))
        lines: list[str] = []

        def span_text(node: int) -> str:
            ids = self.tokens(node)
            text = repr(decode(ids)) if decode is not None else "[" + " ".join(map(str, ids)) + "]"
            return text if len(text) <= max_chars else text[: max_chars - 1] + "…"

        def walk(node: int, indent: int) -> None:
            row = table.iloc[node]
            mem = row["members"]
            who = f"sample {mem[0]}" if len(mem) == 1 else "samples " + ",".join(map(str, mem))
            parts = [span_text(node), f"|λ|={row['size']}"]
            if self.rewards is not None:
                parts += [f"R̂={row['step_reward']:.3f}", f"A={row['prm_advantage']:+.3f}"]
            lines.append("  " * indent + "  ".join([*parts, who]))
            for child in children.get(node, []):
                walk(child, indent + 1)

        for top in children.get(-1, []):
            walk(top, 0)
        return "\n".join(lines)
