"""The real-model experiment's driver (analysis/experiments/real_model.py), run for 2 steps on a tiny model."""

from __future__ import annotations

import gzip
import importlib.util
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--set", "model.name=tiny", "--set", "task.val_size=4", "--set", "task.train_size=16",
        "--set", "schedule.val_every=1", "--set", "sampling.group_size=4"]


@pytest.fixture(scope="module")
def driver():
    spec = importlib.util.spec_from_file_location("real_model", ROOT / "analysis" / "experiments" / "real_model.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def experiment(driver, tmp_path_factory):
    base = tmp_path_factory.mktemp("real-model")
    dirs = ["--runs-dir", str(base / "runs"), "--keep-dir", str(base / "keep"), "--figures", str(base / "figures")]
    driver.main(["run", "--steps", "2", "--seeds", "0,1", "--workers", "1", *TINY, *dirs])
    driver.main(["report", "--steps", "2", *TINY, *dirs])
    return base


def _dirs(base: Path) -> list[str]:
    return ["--runs-dir", str(base / "runs"), "--keep-dir", str(base / "keep"), "--figures", str(base / "figures")]


def _jsonl_gz(path: Path) -> list[dict]:
    with gzip.open(path, "rt") as f:
        return [json.loads(line) for line in f if line.strip()]


def test_driver_keeps_each_run_with_its_settings(experiment):
    kept = sorted(p.name for p in (experiment / "keep" / "runs").iterdir())
    assert kept == ["grpo_s0", "grpo_s1", "lambda_s0", "lambda_s1"]
    for name in kept:
        folder = experiment / "keep" / "runs" / name
        config = json.loads((folder / "config.json").read_text())
        assert config["model"]["name"] == "tiny" and config["steps"] == 2  # the overrides travel with the run
        assert config["task"]["options"]["operands"] == [1, 50]  # the rest is the experiment's config file
        assert config["loss"]["weighting"] == ("uniform" if name.startswith("grpo") else "process_set")
        assert config["seed"] == int(name[-1])
        assert json.loads((folder / "task.json").read_text())["name"] == "arithmetic"
        assert len(_jsonl_gz(folder / "metrics.jsonl.gz")) == 2
        # byte-stable copies: gzip without a time stamp or a file name
        assert (folder / "metrics.jsonl.gz").read_bytes()[4:8] == b"\0\0\0\0"


def test_paired_seeds_share_their_first_step(experiment):
    """Same seed, same data order and same first samples: step 0 of a pair has the same rewards."""
    keep = experiment / "keep" / "runs"
    for seed in (0, 1):
        a = _jsonl_gz(keep / f"grpo_s{seed}" / "metrics.jsonl.gz")[0]
        b = _jsonl_gz(keep / f"lambda_s{seed}" / "metrics.jsonl.gz")[0]
        assert a["reward_mean"] == b["reward_mean"] and a["path_depth_mean"] == b["path_depth_mean"]


def test_run_table_recomputes_from_the_kept_files(experiment):
    rows = pd.read_csv(experiment / "figures" / "data" / "real_model_runs.csv")
    assert list(rows.columns) == ["model", "task", "algorithm", "seed", "steps", "initial_mean_reward", "val_auc",
                                  "final_val_accuracy", "steps_to_80"]
    assert sorted(rows["algorithm"].unique()) == ["GRPO", "λ-GRPO"] and len(rows) == 4
    best = 0.0
    for _, r in rows.iterrows():
        arm = "grpo" if r["algorithm"] == "GRPO" else "lambda"
        folder = experiment / "keep" / "runs" / f"{arm}_s{r['seed']}"
        val = [v["val_accuracy"] for v in _jsonl_gz(folder / "validation.jsonl.gz")]
        metrics = _jsonl_gz(folder / "metrics.jsonl.gz")
        assert r["val_auc"] == pytest.approx(np.mean(val)) and r["final_val_accuracy"] == pytest.approx(val[-1])
        assert r["initial_mean_reward"] == pytest.approx(metrics[0]["reward_mean"]) and r["steps"] == 2
        best = max(best, val[-1])
    for _, r in rows.iterrows():  # the first step reaching 80 % of the best final accuracy of all runs
        arm = "grpo" if r["algorithm"] == "GRPO" else "lambda"
        val = [v["val_accuracy"] for v in _jsonl_gz(experiment / "keep" / "runs" / f"{arm}_s{r['seed']}"
                                                    / "validation.jsonl.gz")]
        reached = [i + 1 for i, v in enumerate(val) if v >= 0.8 * best]
        assert (np.isnan(r["steps_to_80"]) and not reached) or r["steps_to_80"] == reached[0]


def test_report_writes_the_test_and_the_figures(experiment):
    tests = pd.read_csv(experiment / "figures" / "data" / "real_model_test.csv")
    auc = tests.set_index("metric").loc["val_auc"]
    assert auc["pairs"] == 2 and auc["wilcoxon_floor"] >= 0.5  # two pairs can never be significant
    rows = pd.read_csv(experiment / "figures" / "data" / "real_model_runs.csv")
    wide = rows.pivot(index="seed", columns="algorithm", values="val_auc")
    assert auc["difference_mean"] == pytest.approx((wide["λ-GRPO"] - wide["GRPO"]).mean())
    overlap = pd.read_csv(experiment / "figures" / "data" / "real_model_overlap.csv")
    assert {"informative_branching_fraction", "gradient_mass_ratio", "path_depth_mean"} <= set(overlap.columns)
    assert set(overlap["seeds"]) == {2}
    for name in ("overlap_dynamics_smollm2.png", "overlap_fractions_smollm2.png", "real_model/summary.md"):
        assert (experiment / "figures" / name).stat().st_size > 0


def test_a_kept_run_with_other_settings_is_refused(driver, experiment):
    dirs = ["--runs-dir", str(experiment / "runs"), "--keep-dir", str(experiment / "keep"),
            "--figures", str(experiment / "figures")]
    with pytest.raises(SystemExit, match="trained with other settings"):
        driver.main(["run", "--steps", "2", "--seeds", "0", "--workers", "1", *TINY, "--set", "optim.lr=0.5", *dirs])


def test_pick_lr_and_names(driver):
    table = pd.DataFrame({"lr": [2e-6, 5e-6, 1e-5], "val_auc": [0.3, 0.45, 0.45]})
    assert driver.pick_lr(table) == 5e-6
    assert driver.lr_name(5e-6) == "5e-6"


def test_power_table_by_hand(driver, experiment):
    """Floor and ceiling of σ_d and the minimum detectable effect, recomputed from their definitions."""
    calibration = pd.DataFrame({"lr": [2e-6, 5e-6], "residual_sd": [0.5, 0.06]})
    keep = experiment / "keep" / "runs"
    power = driver.power_table(calibration, 5e-6, keep, points=15).set_index("bound")
    z = 1.7927  # Φ⁻¹(0.8^(1/6)): all six signs alike with probability 0.8
    assert power.loc["floor", "z"] == pytest.approx(z, abs=1e-4)
    assert power.loc["floor", "sigma_d"] == pytest.approx(0.06 * np.sqrt(1.5 / 15 * 2))
    aucs = {arm: [np.mean([v["val_accuracy"] for v in _jsonl_gz(keep / f"{arm}_s{s}" / "validation.jsonl.gz")])
                  for s in (0, 1)] for arm in ("grpo", "lambda")}
    pooled = np.sqrt((np.var(aucs["grpo"], ddof=1) + np.var(aucs["lambda"], ddof=1)) / 2)
    assert power.loc["ceiling", "sigma_d"] == pytest.approx(np.sqrt(2) * pooled)
    assert power.loc["ceiling", "mde"] == pytest.approx(z * np.sqrt(2) * pooled, rel=1e-4)


def test_quality_stage_measures_before_and_after(driver, tmp_path, monkeypatch):
    """The prm-quality stage on tiny runs (near-greedy sampling, so groups share prefixes; few groups, nodes and
    continuations): a node table and a per-token summary at both points, summarised by the report."""
    monkeypatch.setattr(driver, "QUALITY_SEEDS", (0,))
    monkeypatch.setattr(driver, "QUALITY_GROUPS", 2)
    monkeypatch.setattr(driver, "QUALITY_K", 2)
    monkeypatch.setattr(driver, "QUALITY_NODES", 3)
    cold = [*TINY, "--set", "sampling.temperature=0.05"]
    dirs = ["--runs-dir", str(tmp_path / "runs"), "--keep-dir", str(tmp_path / "keep"),
            "--figures", str(tmp_path / "figures")]
    driver.main(["quality", "--steps", "1", *cold, *dirs])  # before the run exists: only the first point
    assert sorted(p.name for p in (tmp_path / "keep" / "quality").iterdir()) == ["grpo_s0_first.csv",
                                                                                "grpo_s0_first_tokens.csv"]
    driver.main(["run", "--steps", "1", "--seeds", "0", "--workers", "1", *cold, *dirs])
    driver.main(["quality", "--steps", "1", *cold, *dirs])
    made = sorted(p.name for p in (tmp_path / "keep" / "quality").iterdir())
    assert made == [f"grpo_s0_{p}{t}.csv" for p in ("first", "last") for t in ("", "_tokens")]
    driver.main(["report", "--steps", "1", *cold, *dirs])
    summary = pd.read_csv(tmp_path / "figures" / "data" / "real_model_prm_quality.csv")
    assert list(zip(summary["run"], summary["point"])) == [("grpo_s0", "first"), ("grpo_s0", "last")]
    assert ((summary["nodes"] >= 1) & (summary["nodes"] <= 3)).all()
    tokens = pd.read_csv(tmp_path / "figures" / "data" / "real_model_prm_quality_tokens.csv")
    assert set(tokens["advantage"]) == {"prm_advantage", "outcome_advantage"}


def test_paired_tests_use_complete_pairs_only(driver):
    """A seed whose λ-GRPO run is missing or unfinished is no pair (not a censored steps_to_80)."""
    rows = pd.DataFrame({"algorithm": ["GRPO", "λ-GRPO", "GRPO", "GRPO", "λ-GRPO"], "seed": [0, 0, 1, 2, 2],
                         "steps": [150, 150, 150, 150, 90], "val_auc": [0.6, 0.7, 0.5, 0.4, 0.9],
                         "final_val_accuracy": [0.7, 0.8, 0.6, 0.5, 0.9], "steps_to_80": [40.0, np.nan, 50.0, 60, 10]})
    tests = driver.paired_tests(rows, planned=150, censor=160).set_index("metric")
    assert (tests["pairs"] == 1).all()
    assert tests.loc["val_auc", "difference_mean"] == pytest.approx(0.1)
    assert tests.loc["steps_to_80", "lambda_mean"] == 160  # never reached, censored


def test_report_checks_the_pairing_and_writes_the_reading(driver, experiment, tmp_path):
    import shutil

    pairing = pd.read_csv(experiment / "figures" / "data" / "real_model_pairing.csv")
    assert pairing["seed"].tolist() == [0, 1] and pairing["paired"].all()
    assert not (experiment / "figures" / "data" / "real_model_reading.csv").exists()  # no power table, no reading
    shutil.copytree(experiment / "keep", tmp_path / "keep")
    (tmp_path / "figures" / "data").mkdir(parents=True)
    shutil.copyfile(ROOT / "figures" / "data" / "real_model_power.csv",
                    tmp_path / "figures" / "data" / "real_model_power.csv")
    driver.main(["report", "--steps", "2", *TINY, *_dirs(tmp_path)])
    reading = pd.read_csv(tmp_path / "figures" / "data" / "real_model_reading.csv")
    assert reading["bound"].tolist() == ["floor", "ceiling"]
    assert set(reading["reading"]) == {"interim"}  # 2 of 6 pairs are never read as a result


def test_report_refuses_runs_that_are_no_pair(driver, experiment, tmp_path):
    """A λ-GRPO run whose first step sampled other completions (another seed or data order) is refused."""
    import shutil

    shutil.copytree(experiment / "keep", tmp_path / "keep")
    path = tmp_path / "keep" / "runs" / "lambda_s1" / "metrics.jsonl.gz"
    records = _jsonl_gz(path)
    records[0]["reward_mean"] = records[0]["reward_mean"] + 0.25
    with gzip.open(path, "wt") as f:
        f.writelines(json.dumps(r) + "\n" for r in records)
    with pytest.raises(SystemExit, match="seed 1 sampled different first steps"):
        driver.main(["report", "--steps", "2", *TINY, *_dirs(tmp_path)])


def test_report_refuses_a_kept_run_with_other_settings(driver, experiment, tmp_path):
    import shutil

    shutil.copytree(experiment / "keep", tmp_path / "keep")
    path = tmp_path / "keep" / "runs" / "grpo_s0" / "config.json"
    original = path.read_text()
    config = json.loads(original)
    config["optim"]["lr"] = 0.5
    path.write_text(json.dumps(config))
    with pytest.raises(SystemExit, match="grpo_s0 was trained with other settings"):
        driver.main(["report", "--steps", "2", *TINY, *_dirs(tmp_path)])
    path.write_text(original)
    (tmp_path / "keep" / "runs" / "stray").mkdir()
    (tmp_path / "keep" / "runs" / "stray" / "config.json").write_text("{}")
    with pytest.raises(SystemExit, match="stray is not a run of this experiment"):
        driver.main(["report", "--steps", "2", *TINY, *_dirs(tmp_path)])


def test_reading_follows_the_pre_registered_rules(driver):
    power = pd.DataFrame({"bound": ["floor", "ceiling"], "mde": [0.03, 0.09]})

    def read(p: float, mean: float, lower: float, upper: float, pairs: int = 6) -> list[str]:
        test = pd.Series({"pairs": pairs, "wilcoxon_p": p, "difference_mean": mean, "difference_lower": lower,
                          "difference_upper": upper})
        return driver.reading(test, power)["reading"].tolist()

    assert read(0.031, 0.05, 0.02, 0.08) == ["lambda helps"] * 2
    assert read(0.031, -0.05, -0.08, -0.02) == ["GRPO better"] * 2
    assert read(0.56, 0.0, -0.02, 0.02) == ["smaller than detectable"] * 2
    assert read(0.56, 0.01, -0.05, 0.06) == ["inconclusive", "smaller than detectable"]
    assert read(0.56, 0.01, -0.10, 0.12) == ["inconclusive"] * 2
    assert read(0.031, 0.05, 0.02, 0.08, pairs=5) == ["interim"] * 2


def test_task_condition_reads_the_step_100_point(driver, tmp_path):
    folder = tmp_path / "grpo_s3"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"seed": 3, "loss": {"weighting": "uniform"},
                                                     "model": {"name": "tiny"}}))
    (folder / "metrics.jsonl").write_text("".join(json.dumps({"step": s, "reward_mean": 0.1}) + "\n"
                                                  for s in range(120)))
    (folder / "validation.jsonl").write_text("".join(json.dumps({"step": s, "val_accuracy": s / 200}) + "\n"
                                                     for s in range(9, 120, 10)))
    table = driver.task_condition(tmp_path)
    assert table.to_dict("records") == [{"seed": 3, "step": 100, "val_accuracy": 99 / 200, "below": True}]


def test_quality_summary_leaves_out_a_table_still_being_measured(driver, tmp_path):
    """The node table is written batch by batch; without its per-token table (written last) it is unfinished."""
    finished = ROOT / "data" / "experiments" / "real-model" / "quality"
    import shutil

    for name in ("grpo_s0_first.csv", "grpo_s0_first_tokens.csv", "grpo_s0_last.csv"):
        shutil.copyfile(finished / name, tmp_path / name)
    summary = driver.quality_summary(tmp_path)
    assert list(zip(summary["run"], summary["point"])) == [("grpo_s0", "first")]
    assert summary["nodes"].iloc[0] == len(pd.read_csv(tmp_path / "grpo_s0_first.csv"))


def test_pair_table_lists_complete_pairs_with_their_differences(driver):
    rows = pd.DataFrame({"algorithm": ["GRPO", "λ-GRPO", "GRPO", "GRPO", "λ-GRPO"], "seed": [0, 0, 1, 2, 2],
                         "steps": [150, 150, 150, 150, 90], "val_auc": [0.6, 0.7, 0.5, 0.4, 0.9],
                         "final_val_accuracy": [0.7, 0.8, 0.6, 0.5, 0.9], "steps_to_80": [40.0, np.nan, 50.0, 60, 10]})
    table = driver.pair_table(rows, planned=150)
    assert table["seed"].tolist() == [0]  # seed 1 has no λ-GRPO run, seed 2's is unfinished
    assert table["val_auc_difference"].iloc[0] == pytest.approx(0.1)
    assert np.isnan(table["steps_to_80_lambda"].iloc[0]) and np.isnan(table["steps_to_80_difference"].iloc[0])


def test_result_markdown_carries_the_tables_numbers(driver):
    rows = pd.DataFrame({"algorithm": ["GRPO", "λ-GRPO"] * 6, "seed": np.repeat(range(6), 2), "steps": 150,
                         "val_auc": [0.60, 0.65, 0.61, 0.66, 0.62, 0.67, 0.63, 0.68, 0.64, 0.69, 0.65, 0.70],
                         "final_val_accuracy": 0.8, "steps_to_80": [40.0, np.nan] * 6})
    tests = driver.paired_tests(rows, planned=150, censor=160)
    power = pd.DataFrame({"bound": ["floor", "ceiling"], "mde": [0.026, 0.092]})
    verdict = driver.reading(tests.set_index("metric").loc["val_auc"], power)
    condition = pd.DataFrame({"seed": [0], "step": [100], "val_accuracy": [0.625], "below": [True]})
    text = driver.result_markdown(driver.pair_table(rows, 150), tests, verdict, condition, censor=160)
    assert "(the pre-registered result)" in text and "INTERIM" not in text
    assert "| 5 | 0.650 | 0.700 | +0.050 | 0.800 | 0.800 | 40 | not reached |" in text
    # six positive differences: the exact test's floor, 2/64
    assert "| val_auc | 6 | 6 | 0.625 [" in text and "| 6 of 6 | 0.031 | 0.031 |" in text
    assert "| floor | 0.026 | lambda helps |" in text and "as step 160" in text
    assert "holds (seed 0: 0.625)" in text


def test_overlap_figure_averages_complete_pairs_only(driver, experiment, tmp_path):
    """A run whose pair is still training stays out of the per-algorithm means, so both use the same seeds."""
    import shutil

    shutil.copytree(experiment / "keep" / "runs", tmp_path / "runs")
    assert set(driver.overlap_frame(tmp_path / "runs")["seeds"]) == {2}
    shutil.rmtree(tmp_path / "runs" / "lambda_s1")
    frame = driver.overlap_frame(tmp_path / "runs")
    assert set(frame["seeds"]) == {1} and sorted(frame["algorithm"].unique()) == ["GRPO", "λ-GRPO"]
    shutil.rmtree(tmp_path / "runs" / "lambda_s0")
    assert driver.overlap_frame(tmp_path / "runs").empty


def test_overlap_summary_by_hand(driver):
    """Window means per seed, their seed range, and the running-mean peak, on a frame small enough to do by hand."""
    # 2 seeds x 5 steps of one algorithm, window 2: seed 0 path depth 0,1,2,3,4; seed 1 the same plus 2.
    rows = [{"algorithm": "GRPO", "seed": s, "step": t, "path_depth_mean": t + 2 * s} for s in (0, 1) for t in range(5)]
    summary = driver.overlap_summary(pd.DataFrame(rows), window=2).set_index("metric").loc["path_depth_mean"]
    assert summary["seeds"] == 2 and summary["window"] == 2
    # first 2 steps: seed 0 mean 0.5, seed 1 mean 2.5 -> 1.5 [0.5, 2.5]; last 2 steps: 3.5 and 5.5 -> 4.5
    assert (summary["start"], summary["start_min"], summary["start_max"]) == (1.5, 0.5, 2.5)
    assert (summary["end"], summary["end_min"], summary["end_max"]) == (4.5, 3.5, 5.5)
    # seed means 1,2,3,4,5; running mean of 2 peaks at 4.5 over steps 3-4 (0-based), i.e. after step 5
    assert summary["peak"] == 4.5 and summary["peak_step"] == 5
    # a rise then a fall: the peak is inside, not at the end
    rows = [{"algorithm": "λ-GRPO", "seed": 0, "step": t, "path_depth_mean": v} for t, v in enumerate([0, 2, 4, 2, 0])]
    summary = driver.overlap_summary(pd.DataFrame(rows), window=2).iloc[0]
    assert summary["peak"] == 3.0 and summary["peak_step"] in (3, 4) and summary["end"] == 1.0


def test_result_markdown_carries_the_overlap_summary(driver):
    rows = [{"algorithm": a, "seed": s, "step": t, "path_depth_mean": t + s, "gradient_mass_ratio": 0.5}
            for a in ("GRPO", "λ-GRPO") for s in (0, 1) for t in range(20)]
    overlap = driver.overlap_summary(pd.DataFrame(rows))
    text = driver.result_markdown(pd.DataFrame(), pd.DataFrame(columns=["pairs"]), pd.DataFrame(), pd.DataFrame(),
                                  160, overlap)
    # path depth: first 10 steps 4.5 / 5.5 per seed -> 5.000 [4.500, 5.500]; last 10: 14.5 / 15.5
    assert "| path_depth_mean | GRPO | 5.000 [4.500, 5.500] | 15.000 [14.500, 15.500] | 15.000 (20) |" in text
    assert "2 seeds per algorithm" in text


def test_sensitivity_by_hand(driver):
    """The post-hoc firmness: observed spread of the differences, the MDE it implies, leave-one-seed-out means."""
    from scipy.stats import norm

    diff = [0.04, -0.02, -0.01, -0.03, 0.00, -0.02]
    f = driver.sensitivity(pd.DataFrame({"seed": range(6), "val_auc_difference": diff})).iloc[0]
    assert f["pairs"] == 6 and abs(f["difference_mean"] - (-0.04 / 6)) < 1e-12
    sd = (sum((d + 0.04 / 6) ** 2 for d in diff) / 5) ** 0.5
    assert abs(f["sigma_d"] - sd) < 1e-12 and abs(f["z"] - norm.ppf(0.8 ** (1 / 6))) < 1e-12
    assert abs(f["mde"] - 1.7927 * sd) < 1e-4
    # leaving out +0.04 gives -0.016, leaving out -0.03 gives -0.002; none reaches the other sign
    assert abs(f["loo_min"] - (-0.08 / 5)) < 1e-12 and abs(f["loo_max"] - (-0.01 / 5)) < 1e-12
    assert f["loo_flips"] == 0
    assert driver.sensitivity(pd.DataFrame({"seed": [0], "val_auc_difference": [0.1]})).empty
    text = driver.result_markdown(pd.DataFrame(), pd.DataFrame(columns=["pairs"]), pd.DataFrame(), pd.DataFrame(),
                                  160, None, driver.sensitivity(pd.DataFrame({"seed": range(6),
                                                                              "val_auc_difference": diff})))
    assert f"standard deviation of {sd:.3f}" in text and "from -0.016 to -0.002 (0 of 6" in text
