"""Tests of ``prm_probe.views.plots``: artist data read back against the input columns, never pixels."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from prm_probe.core.group_trie import GroupTrie
from prm_probe.errors import SchemaError
from prm_probe.views import plots

G6 = ["ABCD", "ABEFHI", "JKLM", "JKLNQST", "JKLNQU", "VWYZ"]
G6_REWARDS = [0.5, 0.5, 1.0, 0.0, 0.0, 0.5]


def chars(ids: list[int]) -> str:
    return "".join(map(chr, ids))


def assert_saved(fig, path) -> None:
    written = plots.save_figure(fig, path)
    assert [p.suffix for p in written] == [".png", ".pdf"]
    for p in written:
        assert p.exists() and p.stat().st_size > 0
    assert written[0].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert written[1].read_bytes()[:5] == b"%PDF-"


def curves_frame(rng: np.random.Generator) -> pd.DataFrame:
    steps = np.arange(10)
    parts = []
    for alg in ("GRPO", "λ-GRPO"):
        value = rng.random(10)
        parts.append(pd.DataFrame({"algorithm": alg, "step": steps, "value": value,
                                   "lower": value - 0.1, "upper": value + 0.1}))
    return pd.concat(parts, ignore_index=True).sample(frac=1.0, random_state=1)  # shuffled rows


def test_plot_curves_lines_and_bands(rng, tmp_path):
    data = curves_frame(rng)
    ax = plots.plot_curves(data, lower="lower", upper="upper", ylabel="reward")
    assert len(ax.lines) == 2 and len(ax.collections) == 2
    for line, band, alg in zip(ax.lines, ax.collections, data["algorithm"].unique(), strict=True):
        part = data[data["algorithm"] == alg].sort_values("step")
        np.testing.assert_array_equal(line.get_xydata(), part[["step", "value"]].to_numpy())
        assert line.get_label() == alg
        assert line.get_color() == plots.ALGORITHM_COLORS[alg]
        verts = band.get_paths()[0].vertices
        assert np.isclose(verts[:, 1].min(), part["lower"].min()) and np.isclose(verts[:, 1].max(), part["upper"].max())
    assert ax.get_xlabel() == "step" and ax.get_ylabel() == "reward"
    assert [t.get_text() for t in ax.get_legend().get_texts()] == list(data["algorithm"].unique())
    assert_saved(ax.figure, tmp_path / "curves")


def test_plot_curves_on_given_axes_skips_missing():
    import matplotlib.pyplot as plt

    _fig, ax = plt.subplots()
    data = pd.DataFrame({"step": [0, 1, 2, 3], "value": [0.1, np.nan, 0.3, 0.4]})
    assert plots.plot_curves(data, hue=None, ax=ax) is ax
    np.testing.assert_array_equal(ax.lines[0].get_xydata(), [[0, 0.1], [2, 0.3], [3, 0.4]])
    assert len(ax.collections) == 0


def test_unknown_labels_get_palette_and_aliases_get_algorithm_colours():
    colors = plots._hue_colors(["lambda-grpo", "grpo", "baseline", "other"])
    assert colors["lambda-grpo"] == plots.ALGORITHM_COLORS["λ-GRPO"]
    assert colors["grpo"] == plots.ALGORITHM_COLORS["GRPO"]
    assert colors["baseline"] == plots.PALETTE[0] and colors["other"] == plots.PALETTE[1]


def test_missing_column_is_a_schema_error():
    with pytest.raises(SchemaError, match="vaule"):
        plots.plot_curves(pd.DataFrame({"step": [0], "value": [1.0]}), y="vaule", hue=None)


def toy_frame(rng: np.random.Generator) -> pd.DataFrame:
    rows = [pd.DataFrame({"algorithm": alg, "seed": seed, "step": np.arange(0, 250, 10),
                          "target_frequency": rng.random(25)})
            for alg in ("GRPO", "λ-GRPO") for seed in range(5)]
    return pd.concat(rows, ignore_index=True)


def test_plot_runs_one_line_per_seed(rng, tmp_path):
    data = toy_frame(rng)
    ax = plots.plot_runs(data, y="target_frequency")
    assert len(ax.lines) == 10
    for line, ((alg, _seed), part) in zip(ax.lines, data.groupby(["algorithm", "seed"], sort=False), strict=True):
        np.testing.assert_array_equal(line.get_xydata(), part[["step", "target_frequency"]].to_numpy())
        assert line.get_color() == plots.ALGORITHM_COLORS[alg]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["GRPO", "λ-GRPO"]
    assert_saved(ax.figure, tmp_path / "runs.png")


def test_plot_target_frequency_panels(rng, tmp_path):
    data = toy_frame(rng)
    fig = plots.plot_target_frequency(data)
    assert [ax.get_title() for ax in fig.axes] == ["GRPO", "λ-GRPO"]
    for ax, alg in zip(fig.axes, ["GRPO", "λ-GRPO"], strict=True):
        assert len(ax.lines) == 5
        got = np.concatenate([line.get_xydata() for line in ax.lines])
        np.testing.assert_array_equal(got, data[data["algorithm"] == alg][["step", "target_frequency"]].to_numpy())
        lo, hi = ax.get_ylim()
        assert lo <= 0 and 1 <= hi <= 1.05
    assert fig.axes[0].get_ylabel() == "frequency of target path T"
    assert fig.axes[0].get_shared_y_axes().joined(fig.axes[0], fig.axes[1])
    assert_saved(fig, tmp_path / "target.pdf")


def dynamics_frame(rng: np.random.Generator) -> pd.DataFrame:
    parts = []
    for g, n in ((6, 40), (36, 12)):
        step = np.arange(n)
        parts.append(pd.DataFrame({
            "group_size": g, "step": step,
            "val_reward_mean": np.where(step % 5 == 0, rng.random(n), np.nan),
            "path_depth_mean": rng.random(n) * g, "path_depth_median": rng.integers(1, g, n).astype(float),
            "intermediate_proportion_mean": rng.random(n), "intermediate_proportion_median": rng.random(n)}))
    return pd.concat(parts, ignore_index=True)


def test_plot_overlap_dynamics_layout_and_data(rng, tmp_path):
    data = dynamics_frame(rng)
    fig = plots.plot_overlap_dynamics(data)
    assert len(fig.axes) == 6
    columns = [["val_reward_mean"], ["path_depth_mean", "path_depth_median"],
               ["intermediate_proportion_mean", "intermediate_proportion_median"]]
    for r, g in enumerate([6, 36]):
        part = data[data["group_size"] == g]
        for c, cols in enumerate(columns):
            ax = fig.axes[3 * r + c]
            assert f"G = {g}" in ax.get_title() and ax.get_ylabel()
            assert len(ax.lines) == len(cols)
            for line, col in zip(ax.lines, cols, strict=True):
                ok = part[col].notna()
                np.testing.assert_array_equal(line.get_xydata(), part.loc[ok, ["step", col]].to_numpy())
    assert len(fig.axes[0].lines[0].get_xydata()) == 8  # validation every 5 steps of 40: NaNs skipped
    assert [t.get_text() for t in fig.axes[1].get_legend().get_texts()] == ["mean", "median"]
    assert_saved(fig, tmp_path / "dynamics")


def test_plot_overlap_dynamics_without_validation_column(rng):
    fig = plots.plot_overlap_dynamics(dynamics_frame(rng).drop(columns="val_reward_mean"))
    assert len(fig.axes[0].lines) == 0 and "val_reward_mean" in fig.axes[0].texts[0].get_text()


def test_plot_size_histogram_sums_tokens_per_size(tmp_path):
    data = pd.DataFrame({"step": [0, 0, 0, 1, 1, 1], "process_set_size": [1, 2, 3, 1, 2, 3],
                         "tokens": [10, 4, 0, 5, 6, 3]})
    ax = plots.plot_size_histogram(data, log=True)
    bars = ax.patches
    assert [b.get_x() + b.get_width() / 2 for b in bars] == [1, 2, 3]
    assert [b.get_height() for b in bars] == [15, 10, 3]
    assert ax.get_yscale() == "log"
    assert ax.get_xlabel() == "process-set size |λ|" and ax.get_ylabel() == "tokens"
    assert_saved(ax.figure, tmp_path / "hist")


def test_plot_nontrivial_fraction(tmp_path):
    data = pd.DataFrame({"step": [2, 0, 1], "nontrivial_fraction": [1.0, 0.5, 0.75],
                         "proper_branching_fraction": [0.5, 0.25, 0.5]})
    ax = plots.plot_nontrivial_fraction(data)
    part = data.sort_values("step")
    for line, col, tag in zip(ax.lines, ["nontrivial_fraction", "proper_branching_fraction"], ["F1", "F2"],
                              strict=True):
        np.testing.assert_array_equal(line.get_xydata(), part[["step", col]].to_numpy())
        assert line.get_label().startswith(tag)
    lo, hi = ax.get_ylim()
    assert lo <= 0 and 1 <= hi <= 1.05
    assert_saved(ax.figure, tmp_path / "fractions")


def node_texts(ax) -> dict[int, str]:
    """Node id -> text of each node box drawn by draw_trie (Texts with gid "node-K")."""
    return {int(t.get_gid().split("-")[1]): t.get_text() for t in ax.texts if (t.get_gid() or "").startswith("node-")}


def test_draw_trie_g6(tmp_path):
    trie = GroupTrie.from_completions([[ord(c) for c in s] for s in G6], rewards=G6_REWARDS)
    ax = plots.draw_trie(trie, decode=chars)
    texts = node_texts(ax)
    table = trie.node_table()
    assert len(texts) == 9 == len(table)
    for row in table.itertuples():
        lines = texts[row.node].split("\n")
        assert lines[0] == chars(trie.tokens(row.node))
        assert lines[1] == f"|λ|={row.size}"
    spans = {text.split("\n")[0]: text for text in texts.values()}
    assert {"AB", "JKL", "NQ", "CD", "EFHI", "M", "ST", "U", "VWYZ"} == set(spans)
    advantage = float(spans["JKL"].split("A=")[1].replace("−", "-"))
    assert advantage == pytest.approx(-0.22, abs=0.005)
    assert "R̂=0.33" in spans["JKL"]
    # Box colours follow A on a diverging map: JKL (A < 0) is reddish, M (A > 0) bluish.
    boxes = {t.get_text().split("\n")[0]: t.get_bbox_patch().get_facecolor() for t in ax.texts if t.get_gid()}
    assert boxes["JKL"][0] > boxes["JKL"][2] and boxes["M"][2] > boxes["M"][0]
    assert any(a.get_ylabel() == "PRM-aware advantage A" for a in ax.figure.axes)
    # One edge per node (top-level nodes hang off the root dot); parents sit left of their children.
    edges = [line.get_xydata() for line in ax.lines if len(line.get_xydata()) > 1]
    assert len(edges) == 9
    assert all(xy[0, 0] < xy[-1, 0] for xy in edges)
    centres = [tuple(map(float, t.get_position())) for t in ax.texts if t.get_gid()]
    assert sorted(tuple(xy[-1]) for xy in edges) == sorted(centres)  # every edge ends at a node box
    assert_saved(ax.figure, tmp_path / "trie")


def test_draw_trie_without_rewards_shows_ids():
    trie = GroupTrie.from_completions([[1, 2, 3], [1, 2, 4], [1, 5, 6], [7, 8, 9]])
    ax = plots.draw_trie(trie, max_chars=3)
    texts = node_texts(ax)
    assert len(texts) == 6
    assert [texts[k].split("\n")[0] for k in range(5)] == ["1", "2", "3", "4", "5 6"]
    assert "A=" not in texts[0] and texts[0].split("\n")[1] == "|λ|=3"
    assert texts[5].split("\n")[0] == "7…"  # "7 8 9" shortened to 3 characters
    assert len(ax.figure.axes) == 1  # no colorbar without rewards


def test_draw_trie_leaves_do_not_overlap():
    trie = GroupTrie.from_completions([[ord(c) for c in s] for s in G6], rewards=G6_REWARDS)
    ax = plots.draw_trie(trie, decode=chars)
    table = trie.node_table()
    leaves = [k for k in table["node"] if k not in set(table["parent"])]
    ys = sorted(t.get_position()[1] for t in ax.texts if t.get_gid() in {f"node-{k}" for k in leaves})
    assert np.all(np.diff(ys) >= 1)


def test_save_figure_leaves_no_temporary_files(tmp_path):
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    ax.plot([0, 1], [0, 1])
    written = plots.save_figure(fig, tmp_path / "out" / "fig.png")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["fig.pdf", "fig.png"]
    assert written == [tmp_path / "out" / "fig.png", tmp_path / "out" / "fig.pdf"]
    assert plt.fignum_exists(fig.number)  # save_figure closes nothing


def test_theme_sets_readable_fonts():
    import matplotlib as mpl

    before = mpl.rcParams["font.size"]
    with plots.theme():
        assert mpl.rcParams["font.size"] >= 9 and mpl.rcParams["xtick.labelsize"] >= 9
        assert mpl.rcParams["axes.grid"]
    assert mpl.rcParams["font.size"] == before


def test_import_does_not_load_matplotlib():
    code = ("import sys, prm_probe.views.plots; "
            "bad = [m for m in ('matplotlib', 'seaborn') if m in sys.modules]; "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_a_single_step_log_is_drawn_and_said_not_left_empty():
    """One step: both fractions are visible markers, and the axes say it is one step with its values."""
    import pandas as pd

    from prm_probe.views.plots import plot_nontrivial_fraction

    ax = plot_nontrivial_fraction(pd.DataFrame({"step": [0], "nontrivial_fraction": [0.875],
                                                "proper_branching_fraction": [0.5]}))
    assert [line.get_marker() for line in ax.lines[:2]] == ["o", "o"]
    assert [line.get_ydata().tolist() for line in ax.lines[:2]] == [[0.875], [0.5]]
    (note,) = [t.get_text() for t in ax.texts]
    assert note == "one step in this log (step 0):\nF1 = 87.5%, F2 = 50.0%"
    two = plot_nontrivial_fraction(pd.DataFrame({"step": [0, 1], "nontrivial_fraction": [0.5, 1.0],
                                                 "proper_branching_fraction": [0.5, 0.5]}), ax=None)
    assert two is ax  # ax=None: the current Axes, as matplotlib does


def test_ax_none_draws_on_the_current_axes_and_save_can_close(tmp_path):
    import matplotlib.pyplot as plt
    import pandas as pd

    from prm_probe.views.plots import plot_size_histogram, save_figure

    fig, ax = plt.subplots()
    drawn = plot_size_histogram(pd.DataFrame({"process_set_size": [1, 2], "tokens": [5, 3]}))
    assert drawn is ax and plt.get_fignums() == [fig.number]
    save_figure(fig, tmp_path / "h")
    assert plt.get_fignums() == [fig.number]  # kept open by default
    written = save_figure(fig, tmp_path / "h", close=True)
    assert plt.get_fignums() == [] and all(p.is_file() for p in written)
