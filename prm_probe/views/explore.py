"""``prm-probe explore``: one self-contained HTML page in which a researcher sees a log's process sets, the step
rewards GRPO implicitly gives them, and how overlap moves over training.

:func:`explore` gathers what the page shows into one JSON document (:meth:`Explorer.data`): every step's overlap
statistics, every group's row, and the tries of a chosen subset of groups (by default the most informative ones:
branching where rewards differ, then the largest reward spread, then the most nodes), optionally prm-quality nodes
and run curves. :meth:`Explorer.html` inlines that document with the page's CSS and script
(``prm_probe/views/explorer/``: plain HTML, CSS and JavaScript, no library, no network at view time), so the file
opens from disk and can be attached to a message. In Jupyter an :class:`Explorer` displays itself inline.

This module reads logs through :mod:`prm_probe.core` only; turning token ids into text is the caller's
``decode`` (the command line loads the tokenizer).
"""

from __future__ import annotations

import html
import json
import math
import os
from collections.abc import Callable, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from prm_probe.errors import ConfigError, SchemaError

__all__ = ["DEFAULT_MAX_GROUPS", "Explorer", "explore", "trie_data"]

#: Groups whose tries a page embeds by default (every step's statistics and every group's row are always there).
DEFAULT_MAX_GROUPS = 200
#: Per-step statistics the overview draws, with their labels.
STEP_CURVES = {
    "path_depth_mean": "path depth (mean)",
    "intermediate_proportion_mean": "intermediate proportion (mean)",
    "nontrivial_fraction": "F1: groups sharing a token",
    "proper_branching_fraction": "F2: groups with 1 < |λ| < G",
    "informative_branching_fraction": "F3: branching where rewards differ",
    "gradient_mass_ratio": "gradient-mass ratio Σ1/|λ| / Σ1",
    "reward_mean": "mean reward",
}
#: Per-group columns the groups table shows.
GROUP_COLUMNS = ("run_id", "step", "group", "group_size", "reward_mean", "reward_std", "node_count",
                 "informative_branching", "proper_branching", "path_depth_mean")
_SELECTION = ("the {n} most informative groups: those whose trie branches where rewards differ first, then the "
              "largest reward spread, then the most nodes")


def _clean(value: Any) -> Any:
    """JSON-safe: numpy scalars as Python numbers, NaN and infinities as null."""
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating, float)):
        return None if not math.isfinite(float(value)) else round(float(value), 6)
    if isinstance(value, (np.bool_,)):
        return bool(value)
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [_clean(v) for v in value]
    return value


def trie_data(trie, decode: Callable[[list[int]], str] | None = None) -> dict[str, Any]:
    """What the page shows of one group (a :class:`~prm_probe.core.group_trie.GroupTrie` with rewards): its
    completions (sample, reward, outcome advantage a_i, path of node ids) and its nodes (parent, depth, |λ|,
    members, R̂, A, the span's tokens as text or ids, and Theorem 1's identity Σ_{i∈λ} a_i = |λ|·A(λ), recomputed
    here from the members' outcome advantages)."""
    table = trie.node_table()
    has_rewards = trie.rewards is not None
    adv = trie.outcome_advantages() if has_rewards else np.full(len(trie), np.nan)
    nodes = []
    engine = trie.engine_ids()
    for row in table.itertuples(index=False):
        ids = trie.tokens(int(row.node))
        members = [int(m) for m in row.members]
        node: dict[str, Any] = {"id": int(row.node), "eid": int(engine[int(row.node)]), "parent": int(row.parent),
                                "depth": int(row.depth), "size": int(row.size), "members": members,
                                "ids": [int(t) for t in ids]}
        if decode is not None:
            node["toks"] = [decode([t]) for t in ids]
            node["text"] = decode(ids)
        if has_rewards:
            node["r"] = float(row.step_reward)
            node["a"] = float(row.prm_advantage)
            node["sum_a"] = float(np.sum(adv[members]))
            node["size_a"] = float(row.size * row.prm_advantage)
        nodes.append(node)
    paths: dict[int, list[int]] = {}
    for node in nodes:
        for m in node["members"]:
            paths.setdefault(m, []).append(node["id"])
    rewards = trie.rewards if has_rewards else np.full(len(trie), np.nan)
    completions = [{"sample": i, "reward": float(rewards[i]), "a": float(adv[i]),
                    "path": sorted(paths.get(i, []), key=lambda k: nodes[k]["depth"])} for i in range(len(trie))]
    return _clean({"G": len(trie), "nodes": nodes, "completions": completions})


def _informative_order(groups) -> np.ndarray:
    """Row order of the groups frame, most informative first (see the module docstring); ties by step, group."""
    frame = groups.reset_index(drop=True)
    keys = frame.assign(_inf=-frame["informative_branching"].astype(float),
                        _spread=-frame["reward_std"].astype(float).fillna(0.0),
                        _nodes=-frame["node_count"].astype(float))
    return keys.sort_values(["_inf", "_spread", "_nodes", "step", "group"], kind="stable").index.to_numpy()


class Explorer:
    """The explorer of one log: its data (:meth:`data`), its page (:meth:`html`, :meth:`save`), shown inline in
    Jupyter. Build it with :func:`explore`."""

    def __init__(self, data: dict[str, Any]) -> None:
        self._data = data

    def data(self) -> dict[str, Any]:
        """The JSON document the page embeds: ``meta``, ``steps``, ``groups``, ``tries`` (by group key),
        ``prm_quality`` and ``runs`` (None when not given)."""
        return self._data

    def __repr__(self) -> str:
        m = self._data["meta"]
        return (f"Explorer(log={m['log']!r}, steps={len(self._data['steps'])}, groups={m['groups_total']}, "
                f"tries={m['groups_shown']})")

    def html(self) -> str:
        """The whole page: HTML, CSS, script and data in one string (no network at view time)."""
        assets = resources.files("prm_probe.views") / "explorer"
        page = (assets / "page.html").read_text(encoding="utf-8")
        payload = json.dumps(self._data, separators=(",", ":"), allow_nan=False)
        payload = payload.replace("</", "<\\/")  # nothing in the data can close the script element
        title = html.escape(f"prm-probe explore: {Path(str(self._data['meta']['log'])).name}")
        return (page.replace("/*CSS*/", (assets / "page.css").read_text(encoding="utf-8"))
                .replace("/*JS*/", (assets / "page.js").read_text(encoding="utf-8"))
                .replace("/*DATA*/null", payload)
                .replace("<!--TITLE-->", title))

    def save(self, path: str | os.PathLike) -> Path:
        """Write the page to ``path`` (``.html``), atomically; return the path."""
        from prm_probe.core.files import write_text_atomic

        out = Path(path)
        if out.suffix.lower() not in (".html", ".htm"):
            raise ConfigError(f"output '{path}' has suffix '{out.suffix}'; expected .html; rename the output")
        return write_text_atomic(out, self.html())

    def _repr_html_(self) -> str:
        """The page in an iframe (its script runs isolated from the notebook's)."""
        doc = html.escape(self.html(), quote=True)
        return (f'<iframe srcdoc="{doc}" style="width:100%;height:720px;border:1px solid #ccc" '
                'sandbox="allow-scripts"></iframe>')


def _check_log(log) -> None:
    from prm_probe.core.rollouts import read_metadata, resolve_log

    source = resolve_log(log)  # a missing path, an empty file or a CSV: one line each
    read_metadata(source)


def explore(log: str | os.PathLike, *, decode: Callable[[list[int]], str] | None = None,
            max_groups: int = DEFAULT_MAX_GROUPS, prm_quality: str | os.PathLike | None = None,
            runs: Sequence[str | os.PathLike] | None = None, tokenizer_note: str = "") -> Explorer:
    """Gather what the explorer page shows of ``log`` (see the module docstring).

    Args:
        log: a rollout log (file, folder, glob or ``"sample"``).
        decode: token ids → text, to show spans as text (token boundaries on hover); ids without it.
        max_groups: how many groups' tries to embed (the most informative); every group's row is always there.
        prm_quality: a node table written by ``prm-probe prm-quality -o`` for this log: V(prefix) and its standard
            error beside R̂ on the nodes it measured.
        runs: run folders of ``prm-probe train`` (or TRL runs) to show side by side.
        tokenizer_note: a sentence the page shows about the tokenizer (e.g. why it shows ids).

    Raises:
        ConfigError: ``max_groups`` < 1, or a prm-quality table that does not belong to the log.
        SchemaError, LogReadError: the log is empty or not a rollout log; the prm-quality file lacks its columns.
        CheckpointError: a run folder that is not a run.
    """
    from prm_probe.core.group_trie import GroupTrie
    from prm_probe.core.rollouts import read_rollouts
    from prm_probe.core.stats import overlap_stats

    if int(max_groups) < 1:
        raise ConfigError(f"--max-groups {max_groups}; expected at least 1; raise it")
    _check_log(log)
    stats = overlap_stats(log)
    if not len(stats.columns["group"]["group"]):
        raise SchemaError(f"log '{log}' has no rows; expected at least one group; check the log")
    groups = stats.groups.reset_index(drop=True)
    order = _informative_order(groups)
    chosen = order[: int(max_groups)]
    table = read_rollouts(log, columns=["run_id", "step", "group", "sample", "completion_ids", "reward"])
    frame = table.to_pandas()
    by_key = {key: part for key, part in frame.groupby(["run_id", "step", "group"], sort=False)}
    tries: dict[str, Any] = {}
    for i in chosen:
        row = groups.iloc[int(i)]
        part = by_key[(row["run_id"], row["step"], row["group"])].sort_values("sample")
        trie = GroupTrie.from_completions([list(c) for c in part["completion_ids"]], rewards=part["reward"].tolist())
        tries[f"{row['run_id']}|{int(row['step'])}|{int(row['group'])}"] = trie_data(trie, decode)
    steps = stats.steps
    group_rows = [{c: row[c] for c in GROUP_COLUMNS if c in groups.columns} for row in groups.to_dict("records")]
    for rank, i in enumerate(order):
        group_rows[int(i)]["rank"] = rank
    shown = len(chosen)
    meta = {
        "log": os.fspath(log), "groups_total": len(groups), "groups_shown": shown,
        "selection": (f"every group ({shown})" if shown == len(groups) else _SELECTION.format(n=shown)
                      + f"; {len(groups) - shown} more groups are in the table without a trie (--max-groups)"),
        "tokenizer": tokenizer_note or ("spans are decoded text; hover a token for its id" if decode else
                                        "spans are token ids (no tokenizer given or recorded)"),
        "curves": STEP_CURVES, "runs": sorted(set(map(str, groups["run_id"]))),
    }
    data = {"meta": meta,
            "steps": [{k: v for k, v in r.items() if k == "run_id" or k == "step" or k in STEP_CURVES}
                      for r in steps.to_dict("records")],
            "groups": group_rows, "tries": tries,
            "prm_quality": _prm_quality_rows(prm_quality, tries) if prm_quality is not None else None,
            "runs": _run_curves(runs) if runs else None}
    return Explorer(_clean(data))


def _prm_quality_rows(path: str | os.PathLike, tries: dict[str, Any]) -> list[dict[str, Any]]:
    """The measured nodes of a prm-quality table, keyed to the page's group keys; prm-quality numbers nodes as the
    engine does within a group (:meth:`~prm_probe.core.group_trie.GroupTrie.engine_ids`), mapped here to the
    page's node ids and checked against the log's trie (|λ| and R̂)."""
    import pandas as pd

    from prm_probe.core.prm_quality import NODE_COLUMNS

    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"--prm-quality {path} does not exist; expected a node table written by `prm-probe "
                          "prm-quality -o`; check the path")
    try:
        nodes = pd.read_parquet(p) if p.suffix.lower() == ".parquet" else pd.read_csv(p)
    except (ValueError, OSError) as exc:
        raise ConfigError(f"--prm-quality {path} is not a readable table ({str(exc).splitlines()[0]}); expected a "
                          "node table written by `prm-probe prm-quality -o`; check the file") from None
    missing = [c for c in NODE_COLUMNS if c not in nodes.columns]
    if missing:
        raise SchemaError(f"--prm-quality {path} lacks column(s) {', '.join(missing[:4])}; expected the node table "
                          "of `prm-probe prm-quality -o`; pass that file")
    rows = []
    for r in nodes.to_dict("records"):
        key = f"{r['run_id']}|{int(r['step'])}|{int(r['group'])}"
        value = r["exact_value"] if r["exact_value"] == r["exact_value"] else r["mc_value"]
        stderr = 0.0 if r["exact_value"] == r["exact_value"] else r["mc_stderr"]
        rows.append({"key": key, "eid": int(r["node"]), "size": int(r["size"]), "r": r["step_reward"],
                     "v": value, "se": stderr, "exact": r["exact_value"] == r["exact_value"]})
    for row in rows:
        eid, trie = row.pop("eid"), tries.get(row["key"])
        if trie is None:  # a group without an embedded trie: shown in the scatter only
            row["node"] = None
            continue
        node = next((n for n in trie["nodes"] if n["eid"] == eid), None)
        if node is None or node["size"] != row["size"] or abs((node.get("r") or 0.0) - row["r"]) > 1e-6:
            raise ConfigError(f"--prm-quality {path}: node {eid} of group {row['key']} does not match the "
                              "log's trie (its |λ| or R̂ differ); expected the table of this log; pass the matching "
                              "files")
        row["node"] = node["id"]  # the page's (local) node id
    return rows


def _run_curves(runs: Sequence[str | os.PathLike]) -> dict[str, Any]:
    """Mean curves per algorithm (bootstrap band) of the runs' reward and overlap statistics, as ``compare``."""
    from prm_probe.views.compare import OVERLAP_METRICS, compare_runs

    comparison = compare_runs([os.fspath(r) for r in runs], metric="reward_mean")
    names = ["reward_mean", *[m for m in OVERLAP_METRICS if m in comparison.available]]
    curves = {m: comparison.curves(m).to_dict("records") for m in names if m in comparison.available}
    return {"algorithms": comparison.algorithms, "runs": [str(r.path) for r in comparison.runs], "curves": curves}
