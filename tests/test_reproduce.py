"""The experiment drivers, the figures command and the demo, in reduced sizes."""

from __future__ import annotations

import json
import re

import pandas as pd
import pytest

from prm_probe.cli import main
from prm_probe.experiments.reproduce import demo, make_figures, overlap_experiment, toy_tree_experiment
from prm_probe.experiments.sweeps import (
    PAPER_TABLE1,
    calibrated_setting,
    calibration_specs,
    run_outcomes,
    toy_tree_specs,
    toy_tree_table,
)
from tests.conftest import SAMPLE_LOG


def test_toy_tree_specs_cover_table1():
    specs = toy_tree_specs()
    assert len(specs) == 6 * 5 * 2 and len({s.name for s in specs}) == len(specs)
    assert {(s.labels["n"], s.labels["r_neg"]) for s in specs} == set(PAPER_TABLE1)
    for s in specs:
        assert s.config["sampling"]["group_size"] == 16 and s.config["steps"] == 250
        assert s.config["task"]["options"]["n"] == s.labels["n"] and s.labels["model"] == "tiny-gpt2"
    control = calibration_specs(model="tabular", settings=(("sgd", 1.0),), seeds=range(2))
    assert len(control) == 2 and all(s.labels["algorithm"] == "GRPO" for s in control)
    assert all(s.config["task"]["options"]["r_neg"] == 0.7 for s in control)  # no trap: every other path 0.7


def _outcome_rows():
    rows = []
    for seed in range(4):
        for algo, freq, prob in (("GRPO", 0.1 * seed, 0.1 * seed), ("λ-GRPO", 0.1 * seed + 0.5, 0.9)):
            rows.append({"model": "m", "optimizer": "sgd", "lr": 1.0, "n": 1, "r_neg": -1.0, "seed": seed,
                         "algorithm": algo, "run": f"{algo}{seed}", "target_frequency": freq,
                         "target_probability": prob, "final_target_probability": prob, "converged": prob >= 0.5,
                         "gradient_mass_ratio": 0.3})
    return pd.DataFrame(rows)


def test_run_outcomes_and_table_by_hand():
    curves = pd.DataFrame([{"model": "m", "optimizer": "sgd", "lr": 1.0, "n": 1, "r_neg": -1.0, "seed": 0,
                            "algorithm": "GRPO", "run": "a", "step": t, "target_frequency": float(t >= 6),
                            "target_probability": t / 10, "gradient_mass_ratio": 0.5} for t in range(10)])
    out = run_outcomes(curves, last=4)
    assert out.loc[0, "target_frequency"] == 1.0 and out.loc[0, "target_probability"] == pytest.approx(0.75)
    assert out.loc[0, "final_target_probability"] == pytest.approx(0.9) and bool(out.loc[0, "converged"])
    table = toy_tree_table(_outcome_rows())
    row = table.iloc[0]
    assert row["GRPO_freq50"] == pytest.approx(0.15) and row["λ-GRPO_freq50"] == pytest.approx(0.65)
    assert row["delta_freq50"] == pytest.approx(0.5) and row["delta_freq50_lo"] == row["delta_freq50_hi"] == 0.5
    assert row["GRPO_final"] == pytest.approx(0.15) and row["λ-GRPO_final"] == pytest.approx(0.9)
    assert row["GRPO_final_lo"] < 0.15 < row["GRPO_final_hi"] <= 0.3
    assert row["GRPO_converged"] == 0 and row["λ-GRPO_converged"] == 4
    assert row["seeds"] == 4 and row["paper_delta"] == pytest.approx(0.7535)
    # four positive paired differences: the exact two-sided p is its floor, 2 / 2^4
    assert row["p_freq50"] == pytest.approx(0.125) and row["n_freq50"] == 4 and row["floor_freq50"] == 0.125


def test_the_paired_test_reports_n_after_zero_differences():
    rows = _outcome_rows()
    same = (rows["seed"] == 0)
    rows.loc[same & (rows["algorithm"] == "λ-GRPO"), "target_frequency"] = 0.0  # seed 0: no difference
    row = toy_tree_table(rows).iloc[0]
    assert row["seeds"] == 4 and row["n_freq50"] == 3 and row["floor_freq50"] == pytest.approx(0.25)
    assert row["p_freq50"] == pytest.approx(0.25)


def test_toy_tree_experiment_small_resumable_and_per_model(tmp_path, monkeypatch):
    from prm_probe.experiments import reproduce

    monkeypatch.setitem(reproduce.TOY_PLANS, "tabular", reproduce.ToyPlan(
        settings=(("sgd", 0.5), ("sgd", 2.0), ("sgd", 8.0)), cells=((1, -1.0), (2, -0.5)), seeds=2,
        rollouts_every=0))
    written = toy_tree_experiment(tmp_path / "exp", tmp_path / "figs", model="tabular", steps=6, workers=1)
    for name in ("toy_tree_curves_tabular", "toy_tree_lr_sweep"):
        assert (tmp_path / "figs" / f"{name}.png").is_file() and (tmp_path / "figs" / f"{name}.pdf").is_file()
    table = pd.read_csv(tmp_path / "figs" / "data" / "toy_tree_table1.csv")
    assert len(table) == 3 * 2 and set(table["model"]) == {"tabular"}
    assert {"GRPO_freq50", "λ-GRPO_final_hi", "delta_final", "p_final", "n_final", "floor_freq50",
            "paper_delta"} <= set(table.columns)
    outcomes = pd.read_csv(written["outcomes"])
    assert len(outcomes) == 3 * 2 * 2 * 2 and outcomes["target_probability"].between(0, 1).all()
    assert "### tabular" in (tmp_path / "figs" / "toy_tree_table1.md").read_text()
    # the committed-data path: every table rebuilt from figures/data alone, identical
    rebuilt = make_figures([str(tmp_path / "figs" / "data")], tmp_path / "again")
    assert {"table1", "sensitivity", "toy_tree_lr_sweep"} <= set(rebuilt)
    for name in ("toy_tree_table1.md", "toy_tree_sensitivity.md", "data/toy_tree_table1.csv"):
        assert (tmp_path / "again" / name).read_bytes() == (tmp_path / "figs" / name).read_bytes()
    runs = tmp_path / "exp" / "tabular" / "runs"
    before = {p.name: (p / "metrics.jsonl").stat().st_mtime_ns for p in runs.iterdir()}
    toy_tree_experiment(tmp_path / "exp", tmp_path / "figs", model="tabular", steps=6, workers=1)  # all finished
    assert before == {p.name: (p / "metrics.jsonl").stat().st_mtime_ns for p in runs.iterdir()}
    # Restored from committed config.json + metrics.jsonl only (no checkpoints, no rollouts): still finished.
    import shutil

    for p in runs.iterdir():
        shutil.rmtree(p / "checkpoints", ignore_errors=True)
        shutil.rmtree(p / "rollouts", ignore_errors=True)
    toy_tree_experiment(tmp_path / "exp", tmp_path / "figs", model="tabular", steps=6, workers=1)
    assert before == {p.name: (p / "metrics.jsonl").stat().st_mtime_ns for p in runs.iterdir()}
    # A second model adds its rows; the first model's stay.
    toy_tree_experiment(tmp_path / "exp", tmp_path / "figs", model="tiny", seeds=1, steps=4, workers=1,
                        setting=("adam", 1e-3), cells=((1, -1.0),))
    table = pd.read_csv(tmp_path / "figs" / "data" / "toy_tree_table1.csv")
    assert set(table["model"]) == {"tabular", "tiny"} and len(table) == 7
    assert (tmp_path / "figs" / "toy_tree_curves_tiny.png").is_file()


def test_calibration_picks_the_best_no_trap_setting(tmp_path, monkeypatch):
    from prm_probe.experiments import reproduce

    monkeypatch.setitem(reproduce.TOY_PLANS, "default", reproduce.ToyPlan(
        calibration=(("sgd", 0.01), ("sgd", 30.0)), cells=((1, -1.0),), seeds=1, calibration_seeds=2,
        rollouts_every=0))
    toy_tree_experiment(tmp_path / "exp", tmp_path / "figs", model="tiny", steps=5, workers=1)
    calib = pd.read_csv(tmp_path / "exp" / "tiny" / "calibration.csv")
    assert len(calib) == 4 and set(calib["algorithm"]) == {"GRPO"}
    best = calibrated_setting(calib)
    table = pd.read_csv(tmp_path / "figs" / "data" / "toy_tree_table1.csv")
    assert (table.loc[0, "optimizer"], table.loc[0, "lr"]) == best
    assert (tmp_path / "figs" / "data" / "toy_tree_calibration.csv").is_file()


def test_overlap_experiment_small(tmp_path):
    written = overlap_experiment(tmp_path / "ov", tmp_path / "figs", group_sizes=(2, 3), steps=3, model="tiny",
                                 max_new_tokens=6, val_every=2, workers=1)
    frame = pd.read_csv(written["data"])
    assert sorted(frame["group_size"].unique()) == [2, 3] and len(frame) == 6
    assert (tmp_path / "figs" / "overlap_dynamics.png").is_file()


def test_figures_from_a_log(tmp_path, monkeypatch):
    """The figures draw the log's data: the |λ| histogram's bars are its token counts per size, the non-trivial
    fraction's lines its per-step F1 and F2, and the trie the busiest group whose rewards differ, node by node."""
    from collections import Counter

    from matplotlib.figure import Figure

    from prm_probe.core.group_trie import GroupTrie
    from prm_probe.core.stats import overlap_stats
    from prm_probe.core.trie import process_set_sizes

    saved: list[Figure] = []
    savefig = Figure.savefig

    def spy(fig, *args, **kwargs):
        saved.append(fig)
        return savefig(fig, *args, **kwargs)

    monkeypatch.setattr(Figure, "savefig", spy)
    written = make_figures([str(SAMPLE_LOG)], tmp_path)
    assert {"size_histogram", "nontrivial_fraction", "trie"} <= set(written)
    for path in written.values():
        assert path.is_file() and path.with_suffix(".pdf").is_file()
    axes = {}
    for fig in saved:
        for ax in fig.axes:
            axes.setdefault(ax.get_title(), ax)

    def titled(words: str):
        (ax,) = [ax for title, ax in axes.items() if words in title]
        return ax

    log = pd.read_parquet(SAMPLE_LOG)
    counts = Counter()  # tokens per |λ|, counted group by group from the log itself
    for _, group in log.groupby(["run_id", "step", "group"]):
        for sizes in process_set_sizes([list(c) for c in group.sort_values("sample")["completion_ids"]]):
            counts.update(sizes.tolist())
    bars = titled("process-set sizes").patches
    assert [round(b.get_x() + b.get_width() / 2) for b in bars] == sorted(counts)
    assert [b.get_height() for b in bars] == [counts[k] for k in sorted(counts)]

    stats = overlap_stats(SAMPLE_LOG)
    f1, f2 = titled("non-trivial").lines[:2]
    assert f1.get_xdata().tolist() == f2.get_xdata().tolist() == [0, 1, 2, 3]
    assert f1.get_ydata().tolist() == stats.steps["nontrivial_fraction"].tolist() == [0.5, 1.0, 1.0, 1.0]
    assert f2.get_ydata().tolist() == stats.steps["proper_branching_fraction"].tolist()

    groups = stats.groups[stats.groups["reward_std"] > 0]
    busiest = groups.sort_values(["node_count", "step", "group"], ascending=[False, True, True]).iloc[0]
    step, group = int(busiest["step"]), int(busiest["group"])
    trie_ax = titled("trie of step")
    assert trie_ax.get_title().startswith(f"trie of step {step}, group {group} ")
    boxes = [t for t in trie_ax.texts if (t.get_gid() or "").startswith("node-")]
    trie = GroupTrie.from_log(SAMPLE_LOG, step, group, str(busiest["run_id"]))
    assert len(boxes) == len(trie.node_table()) == busiest["node_count"]


def _md_table(text: str, header: str) -> list[list[str]]:
    """The Markdown table whose header row starts with ``header``: its header and body rows, as lists of cells
    (``\\|`` inside a cell is not a separator)."""
    def cells(line: str) -> list[str]:
        return [c.strip() for c in re.split(r"(?<!\\)\|", line.strip().strip("|"))]

    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(header))
    rows = [cells(lines[start])]
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        rows.append(cells(line))
    return rows


def test_demo_reduced(tmp_path):
    """The demo trains both algorithms for every seed and step, reports those runs' own outcomes (which the
    weighting changes), and the bundled log's real overlap statistics."""
    from prm_probe.core.stats import overlap_stats
    from prm_probe.core.weightings import ALGORITHM_LABELS

    report = demo(tmp_path / "demo", log=SAMPLE_LOG, seeds=2, steps=4, workers=1)
    text = report.read_text()
    assert "GRPO vs λ-GRPO" in text and "non-trivial groups" in text and "tabular policy" in text
    for name in ("toy_tree_curves_tabular.png", "size_histogram.png", "group_trie.png", "comparison/summary.md"):
        assert (tmp_path / "demo" / name).is_file(), name
    # every figure the demo writes is linked from the report, and every link leads to a file
    links = set(re.findall(r"\]\(([^)]+)\)", text))
    written = {str(p.relative_to(tmp_path / "demo")) for p in (tmp_path / "demo").rglob("*.png")
               if "runs" not in p.parts}
    assert written <= links, written - links
    assert all((tmp_path / "demo" / link).is_file() for link in links), links
    assert "**4 steps is a smoke test**" in text

    final = {}  # (algorithm, seed) -> exact π(T) at the run's last step
    for run in (tmp_path / "demo" / "runs").iterdir():
        config = json.loads((run / "config.json").read_text())
        records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
        assert [r["step"] for r in records] == [0, 1, 2, 3], run.name
        final[ALGORITHM_LABELS[config["loss"]["weighting"]], config["seed"]] = records[-1]["target_probability"]
    assert sorted(final) == [("GRPO", 0), ("GRPO", 1), ("λ-GRPO", 0), ("λ-GRPO", 1)]
    header, *rows = _md_table(text, "| seed |")
    assert [r[0] for r in rows] == ["0", "1"]
    for row in rows:
        for algorithm, cell in zip(header[1:], row[1:], strict=True):
            assert float(cell) == pytest.approx(final[algorithm, int(row[0])], abs=5e-5)
        assert abs(final["λ-GRPO", int(row[0])] - final["GRPO", int(row[0])]) > 1e-3  # the weighting acted

    s = overlap_stats(SAMPLE_LOG).summary()
    assert f"{s['groups']} groups, {s['completions']} completions, {s['tokens']} tokens." in text
    _, *stat_rows = _md_table(text, "| statistic |")
    values = {label: value for label, value in stat_rows}
    (nontrivial,) = [v for k, v in values.items() if k.startswith("non-trivial groups")]
    assert float(nontrivial.rstrip("%")) / 100 == pytest.approx(s["nontrivial_fraction"], abs=5e-4) and \
        s["nontrivial_fraction"] == 0.875
    (mass,) = [v for k, v in values.items() if k.startswith("gradient-mass ratio")]
    assert float(mass) == pytest.approx(s["gradient_mass_ratio"], abs=5e-4)
    (depth,) = [v for k, v in values.items() if k.startswith("path depth")]
    assert [float(x) for x in depth.split(" / ")] == pytest.approx(
        [s["path_depth_mean"], s["path_depth_median"]], abs=5e-3)


def test_cli_figures_and_bad_experiment_name(tmp_path, capsys):
    assert main(["figures", str(SAMPLE_LOG), "--out", str(tmp_path), "-q"]) == 0
    assert (tmp_path / "group_trie.png").is_file()
    with pytest.raises(SystemExit):
        main(["experiment", "toytree"])


@pytest.mark.parametrize("argv", [["--steps", "-1"], ["--seeds", "0"], ["--workers", "0"], ["--log", "nope.parquet"]])
def test_demo_refuses_bad_settings_before_any_folder(argv, tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("prm-probe: error: ") and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not out.exists()


def test_demo_announces_its_stages_on_stderr(tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path / "d"), "--seeds", "1", "--steps", "2", "--workers", "1"]) == 0
    err = capsys.readouterr().err
    for stage in ("training GRPO and λ-GRPO", "tables and figures", "overlap statistics"):
        assert f"prm-probe demo: {stage}" in err, stage


def test_the_trie_figure_says_when_it_shows_token_ids(tmp_path, monkeypatch):
    """Without a loadable tokenizer the trie's spans are token ids and its title says so; with one they are text."""
    import matplotlib.pyplot as plt

    from prm_probe.experiments import reproduce
    from prm_probe.training.models import char_tokenizer

    titles = []

    def spy(fig, path):
        titles.append([ax.get_title() for ax in fig.axes])
        plt.close(fig)
        return [path]

    monkeypatch.setattr(reproduce, "_save", spy)
    reproduce.log_figures(SAMPLE_LOG, tmp_path)  # the synthetic log's recorded tokenizer is not a loadable one
    (title,) = [t for t in titles[-1] if t.startswith("trie of step")]
    assert "; spans as token ids (its tokenizer 'none (synthetic ids 3..999)' is not available offline" in title
    tok = char_tokenizer()
    folder = tmp_path / "tok"
    tok.save_pretrained(folder)
    reproduce.log_figures(SAMPLE_LOG, tmp_path, tokenizer=str(folder))
    assert not any("token ids" in t for t in titles[-1])
    plt.close("all")
