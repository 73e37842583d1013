"""Figures: ``plot_*`` functions over the tidy frames of ``stats``/``prm``, a house ``theme()`` and ``save_figure``.

Seaborn-style API. Axes-level functions take a tidy DataFrame first, column names as keyword-only arguments and an
optional ``ax`` (``None``: the current Axes, ``plt.gca()``, as matplotlib and seaborn do), forward extra keywords
to matplotlib and return the Axes; figure-level wrappers (:func:`plot_target_frequency`,
:func:`plot_overlap_dynamics`) return the Figure. GRPO and λ-GRPO always get the colours of
:data:`ALGORITHM_COLORS`.

This module draws only: means, medians and bootstrap bands are input columns computed elsewhere
(``stats``, ``compare``). No function calls ``show()`` or ``savefig()``; :func:`save_figure` writes files.
It is the only module that imports matplotlib and seaborn, and it does so inside functions, so importing
it stays cheap.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from prm_probe.core.files import atomic_path
from prm_probe.errors import SchemaError, close_matches

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from prm_probe.core.group_trie import GroupTrie

__all__ = ["ALGORITHM_COLORS", "PALETTE", "draw_trie", "plot_curves", "plot_nontrivial_fraction",
           "plot_overlap_dynamics", "plot_prm_quality", "plot_runs", "plot_size_histogram", "plot_sweep",
           "plot_target_frequency", "plot_update_mechanism", "save_figure", "theme"]

#: Fixed colours of the two algorithms (seaborn "colorblind" blue and vermillion).
ALGORITHM_COLORS = {"GRPO": "#d55e00", "λ-GRPO": "#0173b2"}
#: Colour-blind-safe palette (seaborn "colorblind") for other labels, algorithm colours left out.
PALETTE = ("#029e73", "#de8f05", "#cc78bc", "#ca9161", "#56b4e9", "#949494", "#fbafe4", "#ece133")
_MEAN_MEDIAN = ("#0173b2", "#de8f05")  # colours of mean (solid) and median (dashed) lines
_ALIASES = {"grpo": "GRPO", "λ-grpo": "λ-GRPO", "lambda-grpo": "λ-GRPO", "lambda_grpo": "λ-GRPO"}
DPI = 200  # PNG resolution; the PDF is vector

_RC = {
    "font.size": 10, "axes.titlesize": 11, "axes.labelsize": 10, "xtick.labelsize": 9, "ytick.labelsize": 9,
    "legend.fontsize": 9, "legend.title_fontsize": 9, "figure.titlesize": 12, "axes.grid": True,
    "grid.color": "#e3e3e3", "grid.linewidth": 0.6, "axes.edgecolor": "#555555", "axes.linewidth": 0.8,
    "lines.linewidth": 1.6, "legend.frameon": False, "savefig.dpi": DPI, "figure.dpi": 100,
    "pdf.fonttype": 42, "axes.spines.top": False, "axes.spines.right": False,
}


@contextlib.contextmanager
def theme(rc: Mapping[str, Any] | None = None) -> Iterator[None]:
    """Apply the house style inside a ``with`` block: seaborn "whitegrid", fonts ≥ 9 pt, colour-blind palette.

    Args:
        rc: matplotlib rcParams that win over the house style, e.g. ``{"font.size": 12}``.

    Example:
        >>> with theme():  # doctest: +SKIP
        ...     ax = plot_curves(frame, lower="ci_low", upper="ci_high")
        ...     save_figure(ax.figure, "figures/reward")
    """
    import matplotlib as mpl
    import seaborn as sns
    from cycler import cycler

    style = {**sns.axes_style("whitegrid"), **_RC,
             "axes.prop_cycle": cycler(color=[ALGORITHM_COLORS["λ-GRPO"], ALGORITHM_COLORS["GRPO"], *PALETTE]),
             **(rc or {})}
    with mpl.rc_context(style):
        yield


def _hue_colors(levels: Sequence[object]) -> dict[object, str]:
    """Colours of hue levels: algorithm names (and their spellings, e.g. ``lambda-grpo``) get theirs."""
    out: dict[object, str] = {}
    spare = iter(PALETTE * (1 + len(levels) // len(PALETTE)))
    for level in levels:
        name = _ALIASES.get(str(level).strip().lower(), str(level))
        out[level] = ALGORITHM_COLORS.get(name) or next(spare)
    return out


def save_figure(fig: Figure, path: str | os.PathLike, *, close: bool = False) -> list[Path]:
    """Write ``fig`` as PNG (200 dpi) and PDF side by side, each atomically.

    Args:
        fig: the figure.
        path: ``figures/x``, ``figures/x.png`` or ``figures/x.pdf``; all give ``figures/x.png`` and
            ``figures/x.pdf``. Any other suffix is kept as part of the name (``x.v2`` → ``x.v2.png``).
        close: close the figure once written (what code that draws many figures to files wants; the Figure
            object stays readable).

    Returns:
        The two paths written, PNG first.
    """
    path = Path(path)
    stem = path.with_suffix("") if path.suffix.lower() in (".png", ".pdf") else path
    written = []
    for fmt, metadata in (("png", None), ("pdf", {"CreationDate": None})):
        final = stem.with_name(f"{stem.name}.{fmt}")
        with atomic_path(final) as tmp:
            fig.savefig(tmp, format=fmt, dpi=DPI, bbox_inches="tight", metadata=metadata)
        written.append(final)
    if close:
        import matplotlib.pyplot as plt

        plt.close(fig)
    return written


def _require(data: pd.DataFrame, *columns: str | None) -> None:
    missing = [c for c in columns if c is not None and c not in data.columns]
    if missing:
        hint = close_matches(missing[0], map(str, data.columns))
        raise SchemaError(f"plot data lacks column(s) {missing}; found {list(data.columns)}; {hint}"
                          "pass the column names as keywords (x=, y=, hue=, ...)")


def _axes(ax: Axes | None, size: tuple[float, float] = (5.0, 3.4)) -> Axes:
    """``ax``, or the current Axes (a new figure of ``size`` when there is none, or when the current figure is
    still empty it is given that size)."""
    if ax is not None:
        return ax
    import matplotlib.pyplot as plt

    fresh = not plt.get_fignums()
    ax = plt.gca()
    if fresh or (len(ax.figure.axes) == 1 and not ax.has_data() and not ax.texts):
        ax.figure.set_size_inches(size)
    return ax


def _levels(data: pd.DataFrame, hue: str | None) -> list[tuple[object, pd.DataFrame]]:
    if hue is None:
        return [(None, data)]
    return [(level, data[data[hue] == level]) for level in data[hue].dropna().unique()]


def _labels(ax: Axes, kwargs: dict[str, Any], x: str, y: str | None) -> None:
    ax.set_xlabel(kwargs.pop("xlabel", x))
    if y is not None or "ylabel" in kwargs:
        ax.set_ylabel(kwargs.pop("ylabel", y))
    if "title" in kwargs:
        ax.set_title(kwargs.pop("title"))


def plot_curves(data: pd.DataFrame, *, x: str = "step", y: str = "value", hue: str | None = "algorithm",
                lower: str | None = None, upper: str | None = None, ax: Axes | None = None, **kwargs: Any) -> Axes:
    """Draw one line per hue level (its mean curve, given), with an optional band between two columns.

    Args:
        data: one row per (hue level, x); columns ``x``, ``y``, ``hue`` and optionally ``lower``/``upper``
            (e.g. a bootstrap CI computed in ``compare``). Rows with a missing ``y`` are skipped.
        x, y, hue: column names (``hue=None``: one line).
        lower, upper: band columns, both or neither.
        ax: the Axes to draw on; ``None``: the current Axes (``plt.gca()``; a new figure when there is none).
        **kwargs: ``xlabel``, ``ylabel``, ``title``; the rest go to ``Axes.plot``.

    Returns:
        The Axes: ``ax.lines[k]`` is level k (order of first appearance), ``ax.collections[k]`` its band.
    """
    _require(data, x, y, hue, lower, upper)
    if (lower is None) != (upper is None):
        raise SchemaError(f"got lower={lower!r} and upper={upper!r}; expected both band columns or neither; "
                          "pass both (e.g. lower='ci_low', upper='ci_high')")
    ax = _axes(ax)
    _labels(ax, kwargs, x, y)
    groups = _levels(data.dropna(subset=[y]), hue)
    colors = _hue_colors([level for level, _ in groups])
    for level, part in groups:
        part = part.sort_values(x)
        color = kwargs.get("color", colors[level] if hue else None)
        label = "_nolegend_" if level is None else str(level)
        line = ax.plot(part[x].to_numpy(), part[y].to_numpy(), **{"label": label, **kwargs, "color": color})[0]
        if lower is not None and upper is not None:
            ax.fill_between(part[x].to_numpy(), part[lower].to_numpy(), part[upper].to_numpy(),
                            color=line.get_color(), alpha=0.2, linewidth=0)
    if hue is not None and groups:
        ax.legend(title=hue)
    return ax


def plot_runs(data: pd.DataFrame, *, x: str = "step", y: str = "value", hue: str | None = "algorithm",
              units: str = "seed", ax: Axes | None = None, **kwargs: Any) -> Axes:
    """Draw one thin line per unit (e.g. per seed), coloured by hue: the paper's toy-tree figure style.

    Args:
        data: one row per (hue level, unit, x); columns ``x``, ``y``, ``units`` and ``hue``.
        x, y, hue, units: column names.
        ax: the Axes to draw on; ``None``: the current Axes (``plt.gca()``; a new figure when there is none).
        **kwargs: ``xlabel``, ``ylabel``, ``title``; the rest go to ``Axes.plot``.

    Returns:
        The Axes: one line per (hue level, unit), in order of first appearance; one legend entry per level.
    """
    _require(data, x, y, hue, units)
    ax = _axes(ax)
    _labels(ax, kwargs, x, y)
    groups = _levels(data, hue)
    colors = _hue_colors([level for level, _ in groups])
    style = {"linewidth": 0.9, "alpha": 0.85, **kwargs}
    for level, part in groups:
        for k, unit in enumerate(part[units].unique()):
            run = part[part[units] == unit].sort_values(x)
            label = str(level) if k == 0 and hue is not None else "_nolegend_"
            ax.plot(run[x].to_numpy(), run[y].to_numpy(),
                    **{"label": label, "color": colors[level] if hue else None, **style})
    if hue is not None and groups:
        ax.legend(title=hue)
    return ax


def _fraction_axis(ax: Axes) -> None:
    ax.set_ylim(-0.02, 1.02)


def plot_curve_panels(panels: Sequence[tuple[str, pd.DataFrame]], *, hue: str = "algorithm") -> Figure:
    """One row of :func:`plot_curves` panels, one per ``(y label, frame)``; frames hold ``step, mean, lower, upper``
    and ``hue``. Returns the figure (not attached to pyplot)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(4.5 * len(panels), 3.4), layout="constrained")
    for ax, (name, frame) in zip(fig.subplots(1, len(panels), squeeze=False)[0], panels):
        plot_curves(frame, x="step", y="mean", hue=hue, lower="lower", upper="upper", ax=ax, ylabel=name)
    return fig


def plot_target_frequency(data: pd.DataFrame, *, x: str = "step", y: str = "target_frequency",
                          col: str = "algorithm", row: str | None = None, units: str = "seed",
                          **kwargs: Any) -> Figure:
    """Draw the toy-tree curves (docs/science.md §7.1): one panel per algorithm (and ``row`` value), a line per seed.

    Args:
        data: columns ``algorithm, seed, step`` and ``y`` (one row per seed and step: the frequency of the target
            path T among that step's samples, or its exact probability ``target_probability``).
        x, y, col, units: column names.
        row: a column whose values get one row of panels each (e.g. an optimiser setting); None: one row.
        **kwargs: passed to :func:`plot_runs` (e.g. ``linewidth``).

    Returns:
        The Figure; panels share y in [0, 1] and are titled by algorithm (and row value).
    """
    import matplotlib.pyplot as plt

    _require(data, x, y, col, units, row)
    levels = list(data[col].dropna().unique())
    rows = [None] if row is None else list(data[row].dropna().unique())
    ncol = max(len(levels), 1)
    fig, axes = plt.subplots(len(rows), ncol, figsize=(3.4 * ncol, 2.5 * len(rows) + 0.3), sharey=True,
                             sharex=True, squeeze=False, layout="constrained")
    colors = _hue_colors(levels)
    for r, row_value in enumerate(rows):
        part_row = data if row is None else data[data[row] == row_value]
        for ax, level in zip(axes[r], levels, strict=False):
            part = part_row[part_row[col] == level]
            title = str(level) if row is None else f"{level} · {row_value}"
            plot_runs(part, x=x, y=y, hue=None, units=units, ax=ax,
                      **{"color": colors[level], "ylabel": "", "title": title, **kwargs})
            _fraction_axis(ax)
            if r < len(rows) - 1:
                ax.set_xlabel("")
        axes[r, 0].set_ylabel("exact π(T)" if y == "target_probability" else "frequency of target path T")
    return fig


def plot_sweep(data: pd.DataFrame, *, x: str = "lr", y: str = "value", lower: str | None = None,
               upper: str | None = None, hue: str | None = "algorithm", col: str = "panel", logx: bool = True,
               ylabel: str | None = None) -> Figure:
    """Small multiples of :func:`plot_curves`: one panel per ``col`` value, ``x`` on a log scale by default.

    Args:
        data: one row per (panel, hue level, x) with the values to draw (means and bands computed elsewhere).
        x, y, lower, upper, hue: as for :func:`plot_curves`.
        col: the column naming each panel.
        logx: draw x on a log scale (learning rates).
        ylabel: the y label of the first panel.

    Returns:
        The Figure, panels in order of first appearance, y shared.
    """
    import matplotlib.pyplot as plt

    _require(data, x, y, hue, col, lower, upper)
    panels = list(data[col].dropna().unique())
    fig, axes = plt.subplots(1, max(len(panels), 1), figsize=(3.4 * max(len(panels), 1), 2.9), sharey=True,
                             squeeze=False, layout="constrained")
    for ax, panel in zip(axes[0], panels, strict=False):
        plot_curves(data[data[col] == panel], x=x, y=y, hue=hue, lower=lower, upper=upper, ax=ax, marker="o",
                    markersize=3, title=str(panel), ylabel="")
        if logx:
            ax.set_xscale("log")
    if ylabel:
        axes[0, 0].set_ylabel(ylabel)
    for ax in axes[0][1:]:
        legend = ax.get_legend()
        if legend is not None:
            legend.remove()
    return fig


_DYNAMICS = (  # (title, y label, [(column, line label)])
    ("validation reward", "mean reward (validation set)", [("val_reward_mean", "validation")]),
    ("path depth", "process steps per completion", [("path_depth_mean", "mean"), ("path_depth_median", "median")]),
    ("intermediate proportion", "share of tokens in a shared prefix",
     [("intermediate_proportion_mean", "mean"), ("intermediate_proportion_median", "median")]),
)


def plot_overlap_dynamics(data: pd.DataFrame, *, row: str = "group_size", x: str = "step") -> Figure:
    """Draw the paper's overlap-dynamics figure (docs/science.md §6.5): one row per ``row`` value, three panels.

    Panels: validation reward; path depth (mean, median); intermediate proportion (mean, median). Missing
    values (NaN, e.g. steps without validation) are skipped, so every panel's line connects its points.

    Args:
        data: one row per (``row`` value, step): columns ``row``, ``x``, ``val_reward_mean``,
            ``path_depth_mean``, ``path_depth_median``, ``intermediate_proportion_mean`` and
            ``intermediate_proportion_median`` (the step frame of ``stats`` joined with validation rewards).
            A panel whose columns are all absent says so instead of failing.
        row: the column that splits rows (``group_size`` is labelled ``G = 6``).
        x: the step column.

    Returns:
        The Figure, axes ``fig.axes[3 * r + c]``; mean lines are solid, medians dashed.
    """
    import matplotlib.pyplot as plt

    _require(data, row, x)
    rows = sorted(data[row].dropna().unique())
    fig, axes = plt.subplots(max(len(rows), 1), 3, figsize=(11.0, 2.9 * max(len(rows), 1)), squeeze=False,
                             sharex="row", layout="constrained")
    for r, value in enumerate(rows):
        part = data[data[row] == value].sort_values(x)
        name = f"G = {value}" if row == "group_size" else f"{row} = {value}"
        for c, (title, ylabel, series) in enumerate(_DYNAMICS):
            ax = axes[r, c]
            ax.set_title(f"{title}, {name}")
            ax.set_ylabel(ylabel)
            ax.set_xlabel(f"training {x}" if x == "step" else x)
            present = [(col, label) for col, label in series if col in part.columns]
            if not present:
                ax.text(0.5, 0.5, f"no {series[0][0]} column", transform=ax.transAxes, ha="center", color="0.4")
            for k, (col, label) in enumerate(present):
                ok = part[col].notna()
                ax.plot(part.loc[ok, x].to_numpy(), part.loc[ok, col].to_numpy(), label=label,
                        color=_MEAN_MEDIAN[k], linestyle=("-", "--")[k],
                        linewidth=1.2, marker="o" if col == "val_reward_mean" else None, markersize=3)
            if c == 2:
                _fraction_axis(ax)
            if len(present) > 1:
                ax.legend()
    return fig


def plot_size_histogram(data: pd.DataFrame, *, x: str = "process_set_size", weight: str = "tokens",
                        ax: Axes | None = None, log: bool = False, **kwargs: Any) -> Axes:
    """Draw the token-weighted histogram of ``|λ|``: one bar per integer size.

    Args:
        data: the ``histogram`` frame of ``stats``: columns ``process_set_size`` and ``tokens``; rows with
            the same size (several steps or runs) are summed, so filter first to show one step.
        x, weight: column names.
        ax: the Axes to draw on; ``None``: the current Axes (``plt.gca()``; a new figure when there is none).
        log: log-scaled y axis.
        **kwargs: ``xlabel``, ``ylabel``, ``title``; the rest go to ``Axes.bar``.

    Returns:
        The Axes; ``ax.patches[k]`` is the bar of the k-th smallest size.
    """
    _require(data, x, weight)
    ax = _axes(ax)
    kwargs.setdefault("xlabel", "process-set size |λ|")
    _labels(ax, kwargs, x, "tokens")
    totals = data.groupby(x, sort=True)[weight].sum()
    ax.bar(totals.index.to_numpy(), totals.to_numpy(), **{"width": 0.8, "color": PALETTE[0], **kwargs})
    from matplotlib.ticker import MaxNLocator, NullFormatter

    if log:
        ax.set_yscale("log")
        ax.set_ylim(bottom=0.5)  # a bar of one token stays visible
        ax.yaxis.set_minor_formatter(NullFormatter())

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(axis="x", visible=False)
    return ax


def plot_nontrivial_fraction(data: pd.DataFrame, *, x: str = "step", ax: Axes | None = None,
                             **kwargs: Any) -> Axes:
    """Draw per step the share of non-trivial groups: F1 (any shared token) and F2 (proper branching).

    Args:
        data: the ``steps`` frame of ``stats``: columns ``x``, ``nontrivial_fraction`` and
            ``proper_branching_fraction`` (docs/science.md §6.3).
        x: the step column.
        ax: the Axes to draw on; ``None``: the current Axes (``plt.gca()``; a new figure when there is none).
        **kwargs: ``xlabel``, ``ylabel``, ``title``; the rest go to ``Axes.plot``.

    Returns:
        The Axes: ``ax.lines[0]`` is F1, ``ax.lines[1]`` F2; y spans [0, 1].
    """
    _require(data, x, "nontrivial_fraction", "proper_branching_fraction")
    ax = _axes(ax)
    kwargs.setdefault("ylabel", "fraction of groups")
    _labels(ax, kwargs, x, None)
    part = data.sort_values(x)
    single = len(part) == 1  # a line through one point draws nothing: mark it and say so
    for column, label, color, style in (("nontrivial_fraction", "F1: some token shared", _MEAN_MEDIAN[0], "-"),
                                        ("proper_branching_fraction", "F2: proper branching", _MEAN_MEDIAN[1], "--")):
        ok = part[column].notna()
        extra = {"marker": "o", "markersize": 9 if style == "-" else 6} if single else {}
        ax.plot(part.loc[ok, x].to_numpy(), part.loc[ok, column].to_numpy(),
                **{"label": label, "color": color, "linestyle": style, **extra, **kwargs})
    _fraction_axis(ax)
    if single:
        f1, f2 = (float(part[c].iloc[0]) for c in ("nontrivial_fraction", "proper_branching_fraction"))
        step = part[x].iloc[0]
        ax.text(0.5, 0.5, f"one step in this log (step {step}):\nF1 = {f1:.1%}, F2 = {f2:.1%}",
                transform=ax.transAxes, ha="center", va="center", fontsize=10, color="0.25")
        ax.set_xticks([step])
        ax.set_xlim(step - 1, step + 1)
    ax.legend(loc="lower right" if single else "best")
    return ax


def plot_prm_quality(nodes: pd.DataFrame, by_size: pd.DataFrame, *, value: str = "mc_value",
                     label: str | None = None) -> Figure:
    """Draw how good GRPO's implied PRM is: R̂(λ) against the true prefix value V, and its error against |λ|.

    Args:
        nodes: rows of ``prm_quality``: columns ``step_reward``, ``value`` and ``size``.
        by_size: the ``by_size`` frame of ``prm_quality_summary`` (columns ``size``, ``nodes``, ``bias``,
            ``rmse``), computed on the same nodes and ``value``.
        value: the column taken as V (``mc_value`` or ``exact_value``); names the x axis.
        label: a title prefix (the model and step, say).

    Returns:
        The Figure: ``fig.axes[0]`` the scatter (one point per node, area ∝ |λ|, the diagonal R̂ = V dashed),
        ``fig.axes[1]`` RMSE (solid) and bias (dashed) of R̂ − V per |λ|, with the number of nodes per size.
    """
    import matplotlib.pyplot as plt

    _require(nodes, "step_reward", value, "size")
    _require(by_size, "size", "nodes", "bias", "rmse")
    fig, (left, right) = plt.subplots(1, 2, figsize=(10.0, 4.0), layout="constrained")
    part = nodes.dropna(subset=[value])
    truth = "exact value" if value == "exact_value" else "Monte-Carlo value"
    left.scatter(part[value].to_numpy(), part["step_reward"].to_numpy(), s=8.0 * part["size"].to_numpy(),
                 alpha=0.45, color=PALETTE[0], edgecolors="none", label="node (area ∝ |λ|)")
    lo = float(min(part[value].min(), part["step_reward"].min())) if len(part) else 0.0
    hi = float(max(part[value].max(), part["step_reward"].max())) if len(part) else 1.0
    left.plot([lo, hi], [lo, hi], color="0.35", linestyle="--", linewidth=1.0, label="R̂ = V")
    left.set_xlabel(f"V(prefix), {truth}")
    left.set_ylabel("implied step reward R̂(λ)")
    left.set_title(f"{label + ': ' if label else ''}{len(part)} shared nodes")
    left.legend(loc="upper left")
    sizes = by_size.sort_values("size")
    x = sizes["size"].to_numpy()
    right.plot(x, sizes["rmse"].to_numpy(), color=_MEAN_MEDIAN[0], marker="o", markersize=3, label="RMSE")
    right.plot(x, sizes["bias"].to_numpy(), color=_MEAN_MEDIAN[1], linestyle="--", marker="o", markersize=3,
               label="bias")
    right.axhline(0.0, color="0.6", linewidth=0.8)
    right.set_xlabel("process-set size |λ|")
    right.set_ylabel("R̂(λ) − V")
    right.set_title("error of the implied PRM by |λ|")
    from matplotlib.ticker import MaxNLocator

    right.xaxis.set_major_locator(MaxNLocator(integer=True))
    counts = right.twinx()
    counts.bar(x, sizes["nodes"].to_numpy(), width=0.6, color="0.85", zorder=0)
    counts.set_ylabel("nodes", color="0.45")
    counts.grid(False)
    counts.spines["right"].set_visible(True)
    right.set_zorder(counts.get_zorder() + 1)
    right.patch.set_visible(False)
    right.legend(loc="upper right")
    return fig


def _shorten(text: str, max_chars: int) -> str:
    text = text.replace("\n", "⏎").replace("\t", "→")
    return text if len(text) <= max_chars else text[: max_chars - 1].rstrip() + "…"


def _leaf_positions(parents: Sequence[int]) -> dict[int, float]:
    """Vertical position of every node (-1 = root): leaves 0, 1, 2, ... in DFS order, parents centred."""
    children: dict[int, list[int]] = {}
    for node, parent in enumerate(parents):
        children.setdefault(parent, []).append(node)
    pos: dict[int, float] = {}
    next_leaf = 0.0

    def place(node: int) -> float:
        nonlocal next_leaf
        kids = children.get(node, [])
        if kids:
            ys = [place(k) for k in kids]
            pos[node] = (ys[0] + ys[-1]) / 2
        else:
            pos[node], next_leaf = next_leaf, next_leaf + 1
        return pos[node]

    place(-1)
    return pos


def draw_trie(trie: GroupTrie, *, decode: Callable[[list[int]], str] | None = None, ax: Axes | None = None,
              max_chars: int = 12) -> Axes:
    """Draw one group's process-set trie in the style of the paper's Figure 1, root on the left.

    Each node is a box with its span (``decode(ids)`` when given, else token ids, shortened to
    ``max_chars``), ``|λ|`` and, when the trie has rewards, the step reward ``R̂`` and PRM-aware advantage
    ``A``; the box colour shows A on a diverging map centred at 0 (grey without rewards). Leaves are
    spread vertically in depth-first order; a dot marks the (empty) root and edges are elbows.

    Args:
        trie: the group, e.g. ``GroupTrie.from_completions(ids, rewards=r)``; its ``node_table()`` gives
            ``node, parent, depth, size, members`` and, with rewards, ``step_reward, prm_advantage``.
        decode: turns a span's token ids into text (e.g. ``tokenizer.decode``).
        ax: the Axes to draw on; ``None``: the current Axes (``plt.gca()``), whose figure is sized to the tree
            when it holds nothing else yet.
        max_chars: spans are shortened to this many characters.

    Returns:
        The Axes; node k's box is the Text with gid ``node-k``.
    """
    import matplotlib.pyplot as plt
    from matplotlib.colors import TwoSlopeNorm

    table = trie.node_table()
    parents = table["parent"].astype(int).tolist()
    ypos = _leaf_positions(parents)
    n_leaves = sum(1 for k in range(len(parents)) if k not in parents) or 1
    depth = table["depth"].astype(int).to_numpy()
    if ax is None:
        ax = _axes(None, (2.0 + 1.6 * (int(depth.max(initial=0)) + 1), 1.0 + 0.75 * n_leaves))
        ax.figure.set_layout_engine("constrained")
    has_a = "prm_advantage" in table.columns
    adv = table["prm_advantage"].to_numpy(dtype=float) if has_a else np.full(len(table), np.nan)
    bound = float(np.nanmax(np.abs(adv))) if np.isfinite(adv).any() and np.nanmax(np.abs(adv)) > 0 else 1.0
    cmap, norm = plt.get_cmap("RdBu"), TwoSlopeNorm(0.0, -bound, bound)
    xs = {-1: -0.8, **{k: float(d) for k, d in enumerate(depth)}}
    for node, parent in enumerate(parents):  # elbow edges: the vertical runs in the gap between columns
        bend = xs[node] - 0.5
        ax.plot([xs[parent], bend, bend, xs[node]], [ypos[parent], ypos[parent], ypos[node], ypos[node]],
                color="0.45", linewidth=1.0, zorder=1)
    ax.plot([xs[-1]], [ypos[-1]], marker="o", color="0.2", markersize=6, zorder=3)
    for row in table.itertuples(index=False):
        ids = trie.tokens(int(row.node))
        span = decode(ids) if decode is not None else " ".join(map(str, ids))
        lines = [_shorten(span, max_chars) if ids else "∅", f"|λ|={int(row.size)}"]
        face = "0.9"
        if has_a:
            a = float(row.prm_advantage)
            shown = f"{a:+.2f}".replace("-", "−") if np.isfinite(a) else "n/a"
            lines.append(f"R̂={row.step_reward:.2f}  A={shown}")
            if np.isfinite(a):
                face = cmap(norm(a))
        dark = not isinstance(face, str) and (0.299 * face[0] + 0.587 * face[1] + 0.114 * face[2]) < 0.5
        ax.text(xs[row.node], ypos[row.node], "\n".join(lines), ha="center", va="center", fontsize=9,
                color="white" if dark else "black", zorder=4, gid=f"node-{row.node}", parse_math=False,
                bbox={"boxstyle": "round,pad=0.35", "facecolor": face, "edgecolor": "0.3", "linewidth": 0.8})
    ax.set_xlim(-0.9, int(depth.max(initial=0)) + 0.5)
    ax.set_ylim(n_leaves - 0.4, -0.6)
    ax.axis("off")
    if has_a:
        from matplotlib.cm import ScalarMappable

        bar = ax.figure.colorbar(ScalarMappable(norm, cmap), ax=ax, shrink=0.7, pad=0.01, aspect=25)
        bar.set_label("PRM-aware advantage A")
    return ax


def plot_update_mechanism(trace: pd.DataFrame, *, col: str = "setting") -> Figure:
    """How GRPO's and λ-GRPO's updates differ on the tabular toy tree, one column of panels per ``col`` value.

    Args:
        trace: rows of :func:`prm_probe.experiments.mechanism.update_trace` for several runs, with columns ``col``,
            ``seed``, ``algorithm`` (the trajectory: ``grpo`` or ``lambda``), ``step``, ``cos_update``,
            ``cos_grad``, ``upd_root_*``, ``upd_target_*`` and ``root_gap``.

    Returns:
        A Figure with three rows: the cosine between the two algorithms' updates (and gradients) from the same
        batch; the speed of the trap row relative to the rows below T's first action (norm of the root row's
        update ÷ norm of the subtree's, each algorithm on its own trajectory; log scale); the trap row's logit gap
        (T's first action minus the other) per seed. Lines are medians over seeds (row 1, 2) or one per seed (row 3).
    """
    import matplotlib.pyplot as plt

    _require(trace, col, "seed", "algorithm", "step", "cos_update", "cos_grad", "root_gap")
    settings = list(dict.fromkeys(trace[col]))
    fig, axes = plt.subplots(3, len(settings), figsize=(3.6 * len(settings), 7.4), sharex=True, squeeze=False,
                             layout="constrained")
    names = {"grpo": "GRPO", "lambda": "λ-GRPO"}
    for c, setting in enumerate(settings):
        part = trace[trace[col] == setting]
        ax = axes[0, c]
        med = part.groupby("step")[["cos_update", "cos_grad"]].median()
        ax.plot(med.index, med["cos_update"], color=PALETTE[0], label="updates")
        ax.plot(med.index, med["cos_grad"], color=PALETTE[5], linestyle="--", label="gradients")
        ax.set_ylim(-0.05, 1.05)
        ax.set_title(str(setting))
        ax = axes[1, c]
        for algo, name in names.items():
            own = part[part["algorithm"] == algo]
            ratio = (own[f"upd_root_{algo}"] / own[f"upd_target_{algo}"]).replace([np.inf, -np.inf], np.nan)
            med = ratio.groupby(own["step"]).median()
            ax.plot(med.index, med.to_numpy(), color=ALGORITHM_COLORS[name], label=name)
        ax.set_yscale("log")
        ax = axes[2, c]
        for algo, name in names.items():
            for _, run in part[part["algorithm"] == algo].groupby("seed"):
                ax.plot(run["step"], run["root_gap"], color=ALGORITHM_COLORS[name], alpha=0.35, linewidth=0.8)
            ax.plot([], [], color=ALGORITHM_COLORS[name], label=name)
        ax.axhline(0, color="0.6", linewidth=0.6)
        ax.set_xlabel("step")
    axes[0, 0].set_ylabel("cosine, GRPO vs λ-GRPO\n(same batch)")
    axes[1, 0].set_ylabel("trap row ÷ subtree\nupdate norm")
    axes[2, 0].set_ylabel("trap row: logit of T[0]\nminus the other")
    for r in range(3):
        axes[r, -1].legend(fontsize=7, frameon=False)
    return fig
