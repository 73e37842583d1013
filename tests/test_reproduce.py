"""The experiment drivers, the figures command and the demo, in reduced sizes."""

from __future__ import annotations

import pandas as pd
import pytest

from prm_probe.cli import main
from prm_probe.experiments import PAPER_TABLE1, toy_tree_specs, toy_tree_table
from prm_probe.reproduce import demo, make_figures, overlap_experiment, toy_tree_experiment
from tests.conftest import SAMPLE_LOG


def test_toy_tree_specs_cover_table1():
    specs = toy_tree_specs()
    assert len(specs) == 6 * 5 * 2 and len({s.name for s in specs}) == len(specs)
    assert {(s.labels["n"], s.labels["r_neg"]) for s in specs} == set(PAPER_TABLE1)
    for s in specs:
        assert s.config["sampling"]["group_size"] == 16 and s.config["steps"] == 250
        assert s.config["task"]["options"]["n"] == s.labels["n"]


def test_toy_tree_table_means_the_last_steps_over_seeds():
    rows = []
    for algo, value in (("GRPO", 0.0), ("λ-GRPO", 1.0)):
        for seed in (0, 1):
            for step in range(10):
                late = step >= 6
                rows.append({"n": 1, "r_neg": -1.0, "algorithm": algo, "seed": seed, "run": f"{algo}{seed}",
                             "step": step, "target_frequency": value * late + 0.5 * (not late)})
    table = toy_tree_table(pd.DataFrame(rows), last=4)
    assert table.loc[0, "GRPO"] == 0.0 and table.loc[0, "λ-GRPO"] == 1.0 and table.loc[0, "delta"] == 1.0
    assert table.loc[0, "paper_delta"] == pytest.approx(0.7535)


def test_toy_tree_experiment_small_and_resumable(tmp_path):
    kw = {"seeds": 1, "steps": 4, "workers": 1, "model": "tiny", "sensitivity": False, "ns": (1,), "r_negs": (-1.0,)}
    written = toy_tree_experiment(tmp_path / "exp", tmp_path / "figs", **kw)
    for suffix in (".png", ".pdf"):
        assert (tmp_path / "figs" / f"toy_tree_curves{suffix}").is_file()
    table = pd.read_csv(tmp_path / "exp" / "table1.csv")
    assert len(table) == 1 and set(table.columns) >= {"GRPO", "λ-GRPO", "delta", "paper_delta"}
    curves = pd.read_csv(written["curves"])
    assert len(curves) == 2 * 4 and curves["target_frequency"].between(0, 1).all()
    marker = tmp_path / "exp" / "runs"
    before = {p.name: (p / "metrics.jsonl").stat().st_mtime_ns for p in marker.iterdir()}
    toy_tree_experiment(tmp_path / "exp", tmp_path / "figs", **kw)  # rerun: every run already finished
    after = {p.name: (p / "metrics.jsonl").stat().st_mtime_ns for p in marker.iterdir()}
    assert before == after


def test_overlap_experiment_small(tmp_path):
    written = overlap_experiment(tmp_path / "ov", tmp_path / "figs", group_sizes=(2, 3), steps=3, model="tiny",
                                 max_new_tokens=6, val_every=2, workers=1)
    frame = pd.read_csv(written["data"])
    assert sorted(frame["group_size"].unique()) == [2, 3] and len(frame) == 6
    assert (tmp_path / "figs" / "overlap_dynamics.png").is_file()


def test_figures_from_a_log(tmp_path):
    written = make_figures([str(SAMPLE_LOG)], tmp_path)
    assert {"size_histogram", "nontrivial_fraction", "trie"} <= set(written)
    for path in written.values():
        assert path.is_file() and path.with_suffix(".pdf").is_file()


def test_demo_reduced(tmp_path):
    report = demo(tmp_path / "demo", log=SAMPLE_LOG, seeds=1, steps=4, workers=1)
    text = report.read_text()
    assert "GRPO vs λ-GRPO" in text and "non-trivial groups" in text
    for name in ("toy_tree_curves.png", "size_histogram.png", "group_trie.png", "comparison/summary.md"):
        assert (tmp_path / "demo" / name).is_file(), name


def test_cli_figures_and_bad_experiment_name(tmp_path, capsys):
    assert main(["figures", str(SAMPLE_LOG), "--out", str(tmp_path), "-q"]) == 0
    assert (tmp_path / "group_trie.png").is_file()
    with pytest.raises(SystemExit):
        main(["experiment", "toytree"])
