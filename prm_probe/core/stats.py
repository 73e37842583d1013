"""Overlap statistics of process sets (docs/science.md §6), per completion, group and step, as tidy frames.

Conventions (docs/science.md §6, our defaults; the alternatives are extra columns):

* ``path_depth``: distinct process sets on a completion's path **below the root** (positions with
  ``|λ| < G``). A flat tree gives 1; a completion lying entirely inside the root gives 0. ``depth_all``
  also counts a non-empty root.
* ``intermediate_proportion``: share of a completion's tokens with ``|λ| > 1`` (duplicates count as
  shared). ``ip_strict`` counts only ``1 < |λ| < G``. Undefined (NaN) for an empty completion, which is
  then left out of means and medians.
* ``nontrivial`` (F1): some token is shared, ``|λ| > 1``; ``proper_branching`` (F2): some node has
  ``1 < |λ| < G``; ``informative_branching`` (F3): such a node whose members' rewards differ.
* Per step, completion metrics are pooled over all completions of the step (mean and median); group
  flags become fractions of groups; cumulative columns pool every step up to and including this one.

Everything is computed from the engine's segment table, never per token in Python. Statistics of a log
stream step by step (:func:`overlap_stats`), so memory does not grow with the log.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

from prm_probe.core.prm import group_moments, node_values
from prm_probe.core.rollouts import LogSource, iter_steps, pack_groups, prefetch, resolve_log
from prm_probe.core.trie import ProcessSets, process_sets

__all__ = [
    "GROUP_COLUMNS",
    "OverlapStats",
    "completion_stats",
    "group_stats",
    "live_overlap_metrics",
    "overlap_stats",
    "size_histogram",
]

logger = logging.getLogger(__name__)

#: The fixed leading columns of the per-group frame (`prm-probe stats --by group`).
GROUP_COLUMNS = ("run_id", "step", "group", "group_size", "nontrivial", "proper_branching", "node_count",
                 "path_depth_mean", "path_depth_median", "intermediate_proportion_mean",
                 "intermediate_proportion_median", "gradient_mass_ratio")

By = Literal["step", "group", "completion", "histogram"]


def _per_completion(ps: ProcessSets, weights: NDArray[np.float64]) -> NDArray[np.float64]:
    return np.bincount(ps.seg_completion, weights=weights, minlength=ps.packed.n_completions)


def completion_stats(ps: ProcessSets) -> dict[str, NDArray]:
    """Per-completion overlap metrics, aligned with ``ps.packed``'s completions.

    Returns:
        A dict of (n,) arrays: ``length``, ``path_depth``, ``depth_all``, ``intermediate_proportion``,
        ``ip_strict``, ``root_length`` (tokens with ``|λ| = G``), ``first_divergence`` (tokens with
        ``|λ| > 1``: the position where the completion leaves every other member), ``inverse_size_sum``
        (Σ_t 1/|λ|).

    Example:
        >>> from prm_probe.core.trie import PackedGroups
        >>> ps = process_sets(PackedGroups.from_lists([[[1, 2, 3], [1, 2, 4], [1, 5, 6], [7, 8, 9]]]))
        >>> completion_stats(ps)["path_depth"].tolist()
        [3, 3, 2, 1]
    """
    packed = ps.packed
    g_of_seg = packed.group_sizes[packed.completion_group][ps.seg_completion]
    size, length = ps.seg_size, ps.seg_length.astype(np.float64)
    below_root = (size < g_of_seg).astype(np.float64)
    lengths = packed.lengths.astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        ip = _per_completion(ps, length * (size > 1)) / lengths
        ip_strict = _per_completion(ps, length * ((size > 1) & (size < g_of_seg))) / lengths
    return {
        "length": packed.lengths,
        "path_depth": _per_completion(ps, below_root).astype(np.int64),
        "depth_all": np.diff(ps.seg_offsets),
        "intermediate_proportion": ip,
        "ip_strict": ip_strict,
        "root_length": _per_completion(ps, length * (size == g_of_seg)).astype(np.int64),
        "first_divergence": _per_completion(ps, length * (size > 1)).astype(np.int64),
        "inverse_size_sum": _per_completion(ps, length / size),
    }


def _group_mean(values: NDArray, gid: NDArray[np.int64], n_groups: int) -> NDArray[np.float64]:
    ok = ~np.isnan(values)
    total = np.bincount(gid[ok], weights=values[ok], minlength=n_groups)
    count = np.bincount(gid[ok], minlength=n_groups)
    with np.errstate(invalid="ignore", divide="ignore"):
        return total / count


def _group_median(values: NDArray, gid: NDArray[np.int64], n_groups: int) -> NDArray[np.float64]:
    """NaN-skipping median of ``values`` within each group, vectorised (NaN for an all-NaN group)."""
    v = np.asarray(values, dtype=np.float64)
    ok = ~np.isnan(v)
    v, g = v[ok], gid[ok]
    order = np.lexsort((v, g))
    v, g = v[order], g[order]
    count = np.bincount(g, minlength=n_groups)
    start = np.concatenate([[0], np.cumsum(count)[:-1]])
    out = np.full(n_groups, np.nan)
    has = count > 0
    lo = start[has] + (count[has] - 1) // 2
    hi = start[has] + count[has] // 2
    out[has] = (v[lo] + v[hi]) / 2
    return out


def group_stats(ps: ProcessSets, reward: NDArray[np.float64] | None = None,
                per_completion: dict[str, NDArray] | None = None) -> dict[str, NDArray]:
    """Per-group overlap metrics, aligned with ``ps.packed``'s groups.

    Returns:
        A dict of (g,) arrays: ``group_size``, ``nontrivial`` (F1), ``proper_branching`` (F2),
        ``node_count``, the means and medians of ``path_depth`` and ``intermediate_proportion``,
        ``gradient_mass_ratio`` (Σ 1/|λ| / Σ 1; NaN without tokens), ``distinct_completions``,
        ``duplicate_rate``, ``tokens``; with ``reward`` also ``informative_branching`` (F3),
        ``reward_mean``, ``reward_std``, ``zero_variance``, ``prm_orm_differ_share`` and ``frequency_mass``.
    """
    packed = ps.packed
    n_groups = packed.n_groups
    comp = per_completion if per_completion is not None else completion_stats(ps)
    gid = packed.completion_group
    gsize = packed.group_sizes
    seg_group = gid[ps.seg_completion]
    tokens = np.bincount(gid, weights=packed.lengths, minlength=n_groups)
    shared = np.bincount(seg_group, weights=ps.seg_size > 1, minlength=n_groups) > 0
    partial = (ps.seg_size > 1) & (ps.seg_size < gsize[seg_group])
    branching = np.bincount(seg_group, weights=partial, minlength=n_groups) > 0
    # Distinct completions: completions sharing their last node are identical (empty ones form one class).
    ends = ps.seg_offsets[1:] - 1
    nonempty = packed.lengths > 0
    last_node = np.where(nonempty, ps.seg_node[np.clip(ends, 0, None)] if len(ps.seg_node) else -1, -1)
    key = np.where(nonempty, last_node, -1 - gid)  # one class per group for the empty completions
    _uniq, inverse, counts = np.unique(key, return_inverse=True, return_counts=True)
    distinct = np.bincount(gid[np.unique(inverse, return_index=True)[1]], minlength=n_groups)
    dup = np.bincount(gid, weights=counts[inverse] > 1, minlength=n_groups)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = {
            "group_size": gsize,
            "nontrivial": shared,
            "proper_branching": branching,
            "node_count": np.bincount(ps.node_group, minlength=n_groups),
            "path_depth_mean": _group_mean(comp["path_depth"].astype(np.float64), gid, n_groups),
            "path_depth_median": _group_median(comp["path_depth"], gid, n_groups),
            "intermediate_proportion_mean": _group_mean(comp["intermediate_proportion"], gid, n_groups),
            "intermediate_proportion_median": _group_median(comp["intermediate_proportion"], gid, n_groups),
            "gradient_mass_ratio": np.bincount(gid, weights=comp["inverse_size_sum"], minlength=n_groups) / tokens,
            "distinct_completions": distinct,
            "duplicate_rate": dup / gsize,
            "tokens": tokens.astype(np.int64),
        }
    if reward is not None:
        out.update(_reward_stats(ps, np.asarray(reward, dtype=np.float64), partial, seg_group))
    return out


def _reward_stats(ps: ProcessSets, reward: NDArray[np.float64], partial: NDArray[np.bool_],
                  seg_group: NDArray[np.int64]) -> dict[str, NDArray]:
    packed = ps.packed
    n_groups = packed.n_groups
    gid = packed.completion_group
    vals = node_values(ps, reward)
    r_hat, adv = vals["step_reward"], vals["prm_advantage"]
    # F3: a partial node whose members' rewards are not all equal (min != max over the node).
    r_seg = reward[ps.seg_completion]
    nmax = np.full(ps.n_nodes, -np.inf)
    nmin = np.full(ps.n_nodes, np.inf)
    np.maximum.at(nmax, ps.seg_node, r_seg)
    np.minimum.at(nmin, ps.seg_node, r_seg)
    node_partial = (ps.node_size > 1) & (ps.node_size < packed.group_sizes[ps.node_group])
    informative = np.bincount(ps.node_group, weights=node_partial & (nmax > nmin), minlength=n_groups) > 0
    mean, std, _ = group_moments(reward, packed.group_offsets)
    # PRM != ORM: tokens whose implied reward differs from their completion's own reward.
    differ = ~np.isclose(r_hat[ps.seg_node], r_seg, rtol=0, atol=1e-12)
    tokens = np.bincount(gid, weights=packed.lengths, minlength=n_groups)
    # Frequency mass: 1 - Σ_λ |span|·|A| / Σ_λ |λ|·|span|·|A| (0 for a flat tree).
    span = (ps.node_end - ps.node_start).astype(np.float64)
    abs_a = np.abs(np.nan_to_num(adv))
    once = np.bincount(ps.node_group, weights=span * abs_a, minlength=n_groups)
    freq = np.bincount(ps.node_group, weights=ps.node_size * span * abs_a, minlength=n_groups)
    with np.errstate(invalid="ignore", divide="ignore"):
        return {
            "informative_branching": informative,
            "reward_mean": mean,
            "reward_std": std,
            "zero_variance": (std == 0) | (packed.group_sizes < 2),
            "prm_orm_differ_share": np.bincount(seg_group, weights=ps.seg_length * differ, minlength=n_groups)
            / tokens,
            "frequency_mass": np.where(freq > 0, 1 - once / np.where(freq > 0, freq, 1), 0.0),
        }


def size_histogram(ps: ProcessSets) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """Token-weighted histogram of ``|λ|``: (sizes, token counts), sizes 1..max G, zeros included."""
    top = int(ps.packed.group_sizes.max(initial=1))
    counts = np.bincount(ps.seg_size, weights=ps.seg_length, minlength=top + 1)[1:]
    return np.arange(1, len(counts) + 1), counts.astype(np.int64)


def _nanmean(x: NDArray) -> float:
    x = np.asarray(x, dtype=np.float64)
    ok = ~np.isnan(x)
    return float(x[ok].mean()) if ok.any() else float("nan")


def _nanmedian(x: NDArray) -> float:
    x = np.asarray(x, dtype=np.float64)
    ok = ~np.isnan(x)
    return float(np.median(x[ok])) if ok.any() else float("nan")


def headline(comp: Mapping[str, NDArray], grp: Mapping[str, NDArray]) -> dict[str, float]:
    """The headline overlap statistics of a set of completions and their groups, the one implementation
    (a step's row, a log's summary and the trainer's live metrics all use it): F1 / F2 fractions of groups
    (and F3, ``informative_branching_fraction``, when the groups carry rewards), path depth and intermediate
    proportion (mean and median over completions, NaNs skipped) and the gradient-mass ratio
    ``Σ 1/|λ| / Σ |y|`` (NaN without tokens)."""
    tokens = float(comp["length"].sum())
    n_groups = len(grp["nontrivial"])
    ip = comp["intermediate_proportion"]
    f3: dict[str, float] = {}
    if "informative_branching" in grp:
        f3 = {"informative_branching_fraction": float(np.mean(grp["informative_branching"])) if n_groups
              else float("nan")}
    return {
        "nontrivial_fraction": float(np.mean(grp["nontrivial"])) if n_groups else float("nan"),
        "proper_branching_fraction": float(np.mean(grp["proper_branching"])) if n_groups else float("nan"),
        "path_depth_mean": _nanmean(comp["path_depth"]), "path_depth_median": _nanmedian(comp["path_depth"]),
        "intermediate_proportion_mean": _nanmean(ip), "intermediate_proportion_median": _nanmedian(ip),
        "gradient_mass_ratio": float(comp["inverse_size_sum"].sum() / tokens) if tokens else float("nan"),
        **f3,
    }


def _step_row(comp: dict[str, NDArray], grp: dict[str, NDArray]) -> dict[str, object]:
    """One step's row: pooled completion metrics, group-flag fractions, token-weighted ratios, raw sums."""
    ip = comp["intermediate_proportion"]
    row: dict[str, object] = {
        "run_id": grp["run_id"][0], "step": int(grp["step"][0]),
        "groups": len(grp["group"]), "completions": len(comp["length"]), "tokens": int(comp["length"].sum()),
        **headline(comp, grp),
        "node_count_mean": float(np.mean(grp["node_count"])),
    }
    if "zero_variance" in grp:
        row["zero_variance_fraction"] = float(np.mean(grp["zero_variance"]))
    if "reward_mean" in grp:
        row["reward_mean"] = float(np.mean(grp["reward_mean"]))
    row["_depth_sum"] = float(comp["path_depth"].sum())
    row["_ip_sum"] = float(np.nansum(ip))
    row["_ip_count"] = int((~np.isnan(ip)).sum())
    return row


def _step_columns(rows: list[dict[str, object]]) -> dict[str, NDArray]:
    """Per-step rows → columns sorted by (run_id, step), with cumulative (expanding) means per run."""
    names = list(dict.fromkeys(k for r in rows for k in r))
    cols = {k: np.asarray([r.get(k, np.nan) for r in rows]) for k in names}
    cols["run_id"] = np.asarray([r["run_id"] for r in rows], dtype=object)
    run_codes = np.unique(cols["run_id"].astype(str), return_inverse=True)[1]
    order = np.lexsort((cols["step"], run_codes))
    cols = {k: v[order] for k, v in cols.items()}
    run_codes = run_codes[order]
    new_run = np.ones(len(order), dtype=bool)
    new_run[1:] = run_codes[1:] != run_codes[:-1]

    def run_cumsum(x: NDArray) -> NDArray:
        total = np.cumsum(x)
        base = np.maximum.accumulate(np.where(new_run, np.arange(len(x)), 0))
        return total - np.concatenate([[0.0], total])[base]

    with np.errstate(invalid="ignore", divide="ignore"):
        cols["path_depth_mean_cumulative"] = run_cumsum(cols.pop("_depth_sum")) / run_cumsum(cols["completions"])
        cols["intermediate_proportion_mean_cumulative"] = run_cumsum(cols.pop("_ip_sum")) / run_cumsum(
            cols.pop("_ip_count"))
    return cols


def _frame(cols: dict[str, NDArray]):
    """A DataFrame from columns (object columns become pandas' string dtype)."""
    import pandas as pd

    return pd.DataFrame({k: pd.array(v.astype(str), dtype="string") if v.dtype == object else v
                         for k, v in cols.items()})


class OverlapStats:
    """Tidy overlap statistics of a log: per completion, group and step, plus the ``|λ|`` histogram.

    The numbers live in numpy columns (:attr:`columns`); the pandas frames are built on first access, so
    the command line never imports pandas.

    Attributes:
        completions: one row per completion (``run_id, step, group, sample, length, path_depth, ...``).
        groups: one row per group; starts with :data:`GROUP_COLUMNS`.
        steps: one row per ``(run_id, step)``.
        histogram: one row per ``(run_id, step, process_set_size)`` with its token count.
        metadata: the log's key-value metadata.
    """

    def __init__(self, columns: dict[str, dict[str, NDArray]], metadata: dict[str, str]) -> None:
        self.columns = columns
        self.metadata = metadata
        self._frames: dict[str, object] = {}

    def _get(self, level: str):
        if level not in self._frames:
            self._frames[level] = _frame(self.columns[level])
        return self._frames[level]

    @property
    def completions(self):
        return self._get("completion")

    @property
    def groups(self):
        return self._get("group")

    @property
    def steps(self):
        return self._get("step")

    @property
    def histogram(self):
        return self._get("histogram")

    def frame(self, by: By):
        """The pandas frame for ``by`` in ``{"step", "group", "completion", "histogram"}``."""
        return self._get(by)

    def table(self, by: By):
        """The columns for ``by`` as a pyarrow Table (no pandas involved)."""
        import pyarrow as pa

        return pa.table({k: pa.array(v.astype(str)) if v.dtype == object else pa.array(v)
                         for k, v in self.columns[by].items()})

    def write(self, path: str | os.PathLike, by: By = "step") -> Path:
        """Write the ``by`` table to a .csv or .parquet file, atomically (checked before anything is written)."""
        from prm_probe.core.files import write_table

        return write_table(self.table(by), path)

    def summary(self) -> dict[str, float]:
        """Headline numbers of the whole log (pooled over all steps)."""
        g, c = self.columns["group"], self.columns["completion"]
        return {
            "steps": len(self.columns["step"]["step"]),
            "groups": len(g["group"]),
            "completions": len(c["length"]),
            "tokens": int(c["length"].sum()),
            **headline(c, g),
            "singleton_groups": int((g["group_size"] < 2).sum()),
            "empty_completions": int((c["length"] == 0).sum()),
        }


def _step_arrays(table) -> tuple[dict[str, NDArray], dict[str, NDArray], dict[str, NDArray], dict[str, object]]:
    """Completion, group and histogram columns and the step row of one step's table."""
    grouped = pack_groups(table)
    packed = grouped.packed
    ps = process_sets(packed)
    comp = completion_stats(ps)
    grp = group_stats(ps, grouped.reward, comp)
    keys = grouped.group_keys
    gid = packed.completion_group
    completions = {"run_id": keys["run_id"][gid], "step": keys["step"][gid], "group": keys["group"][gid],
                   "sample": grouped.sample, "reward": grouped.reward, **comp}
    groups = {"run_id": keys["run_id"], "step": keys["step"], "group": keys["group"], **grp}
    groups = {k: groups[k] for k in GROUP_COLUMNS} | {k: v for k, v in groups.items() if k not in GROUP_COLUMNS}
    groups["prompt_id"] = keys["prompt_id"]
    sizes, counts = size_histogram(ps)
    n = len(counts)
    hist = {"run_id": np.repeat(keys["run_id"][:1], n), "step": np.repeat(keys["step"][:1], n),
            "process_set_size": sizes, "tokens": counts}
    return completions, groups, hist, _step_row(comp, groups)


def _concat(parts: list[dict[str, NDArray]]) -> dict[str, NDArray]:
    names = list(dict.fromkeys(k for p in parts for k in p))
    return {k: np.concatenate([p[k] for p in parts]) for k in names}


def overlap_stats(source: str | os.PathLike | LogSource,
                  progress: bool | Callable[[Iterator[Any]], Iterator[Any]] = False,
                  on_step: Callable[[int], None] | None = None, workers: int = 2) -> OverlapStats:
    """Compute the overlap statistics of a rollout log, streaming it one step at a time.

    Args:
        source: a log file, folder of parts, glob, or :class:`~prm_probe.core.rollouts.LogSource`.
        progress: a wrapper of the step iterator that shows progress (e.g. ``tqdm.auto.tqdm``; the CLI passes
            one); ``True`` logs the number of steps done at INFO level (this layer imports no progress-bar library).
        on_step: called with the number of rows of each step once it is processed.
        workers: threads computing steps concurrently (numpy and Parquet decoding release the GIL);
            a background thread reads ahead either way. Results do not depend on it.

    Returns:
        An :class:`OverlapStats` with completion, group, step and histogram columns and frames.

    Raises:
        LogReadError, SchemaError: the log cannot be read or breaks the schema.
    """
    from prm_probe.core.rollouts import read_metadata
    from prm_probe.errors import LogReadError

    log = source if isinstance(source, LogSource) else resolve_log(source)
    parts: dict[str, list] = {"completion": [], "group": [], "histogram": [], "step": []}
    for c, g, h, row in _iter_step_arrays(log, progress, workers):
        parts["completion"].append(c)
        parts["group"].append(g)
        parts["histogram"].append(h)
        parts["step"].append(row)
        if on_step is not None:
            on_step(len(c["sample"]))
    if not parts["group"]:
        raise LogReadError(f"log '{log.files[0]}' has no rows; expected at least one completion; "
                           "check that the run wrote its rollouts")
    columns = {"completion": _concat(parts["completion"]), "group": _concat(parts["group"]),
               "histogram": _concat(parts["histogram"]), "step": _step_columns(parts["step"])}
    return OverlapStats(columns, read_metadata(log))


def _logged(steps: Iterator[Any]) -> Iterator[Any]:
    for i, step in enumerate(steps, 1):
        if i & (i - 1) == 0:  # 1, 2, 4, 8, ...: a log line count logarithmic in the steps
            logger.info("stats: %d steps read", i)
        yield step


def _iter_step_arrays(log: LogSource, progress: bool | Callable[[Iterator[Any]], Iterator[Any]],
                      workers: int) -> Iterator[tuple]:
    steps: Iterator[Any] = prefetch(iter_steps(log, columns=()))
    if callable(progress):
        steps = progress(steps)
    elif progress:
        steps = _logged(steps)
    if workers <= 1:
        for table in steps:
            yield _step_arrays(table)
        return
    from collections import deque
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="prm-probe-stats") as pool:
        pending: deque = deque()
        for table in steps:
            pending.append(pool.submit(_step_arrays, table))
            if len(pending) > workers:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


def live_overlap_metrics(ps: ProcessSets, reward: NDArray[np.float64] | None = None) -> dict[str, float]:
    """The overlap statistics a trainer logs at every step, from the step's process sets.

    Returns fractions of non-trivial (F1) and properly branching (F2) groups, path depth and intermediate
    proportion (mean and median over completions) and the gradient-mass ratio ``Σ 1/|λ| / Σ |y|``.
    """
    comp = completion_stats(ps)
    return headline(comp, group_stats(ps, reward, comp))
