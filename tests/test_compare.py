"""Run comparison on synthetic run folders with known curves, on bad folders, through the CLI, and on real runs."""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from prm_probe.cli import main
from prm_probe.errors import CheckpointError, ConfigError
from prm_probe.training.config import config_from_dict, config_to_dict
from prm_probe.views.compare import RunComparison, algorithm_label, compare_runs, curve_summary, hedges_g, load_run

STEPS = 100
VAL_EVERY = 5
VAL_STEPS = list(range(VAL_EVERY - 1, STEPS, VAL_EVERY))  # 4, 9, ..., 99 as the trainer validates
# per seed: (peak step, plateau); λ-GRPO peaks sooner and higher
FAST = [(29, 0.61), (34, 0.60), (39, 0.62), (29, 0.59), (34, 0.605)]
SLOW = [(64, 0.45), (69, 0.44), (74, 0.46), (79, 0.455), (64, 0.445)]


def _curve(peak_step: int, plateau: float, rng: np.random.Generator) -> list[float]:
    """Linear rise to ``plateau`` reached exactly at ``peak_step``; every other point at least 0.03 lower."""
    out = []
    for s in VAL_STEPS:
        base = plateau * min(s, peak_step) / peak_step
        out.append(plateau if s == peak_step else base - 0.03 - float(rng.uniform(0, 0.02)))
    return out


def _write_run(folder: Path, *, weighting: str = "uniform", seed: int = 0, curve: list[float] | None = None,
               val_steps: list[int] | None = None, renormalise: bool = False, **settings) -> Path:
    """A run folder as the trainer writes it: config.json, metrics.jsonl (every step) and validation.jsonl."""
    data = {"seed": seed, "steps": STEPS, "run_id": folder.name, "task": {"name": "toy-tree"},
            "loss": {"weighting": weighting, "renormalise": renormalise}, "schedule": {"val_every": VAL_EVERY}}
    for dotted, value in settings.items():
        section, key = dotted.split("__")
        data.setdefault(section, {})[key] = value
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps(config_to_dict(config_from_dict(data)), indent=2))
    curve = curve if curve is not None else [0.5] * len(VAL_STEPS)
    val_steps = val_steps if val_steps is not None else VAL_STEPS
    val = {s: {"step": s, "val_accuracy": v, "val_reward_mean": 2 * v - 1, "val_problems": 64}
           for s, v in zip(val_steps, curve, strict=True)}
    lines = []
    for step in range(STEPS):
        record = {"step": step, "loss": 0.1, "reward_mean": curve[min(step // VAL_EVERY, len(curve) - 1)],
                  "path_depth_mean": 3.0 + (seed % 3) + (0.5 if weighting == "process_set" else 0.0),
                  "intermediate_proportion_mean": 0.4, "nontrivial_fraction": 1.0}
        record.update({k: v for k, v in val.get(step, {}).items() if k != "step"})
        lines.append(json.dumps(record))
    (folder / "metrics.jsonl").write_text("\n".join(lines) + "\n")
    (folder / "validation.jsonl").write_text("".join(json.dumps(v) + "\n" for v in val.values()))
    return folder


@pytest.fixture
def experiment(tmp_path, rng) -> list[Path]:
    """Five GRPO and five λ-GRPO seeds with a large constructed effect."""
    runs = [_write_run(tmp_path / f"grpo-s{i}", seed=i, curve=_curve(p, v, rng)) for i, (p, v) in enumerate(SLOW)]
    runs += [_write_run(tmp_path / f"lambda-grpo-s{i}", weighting="process_set", seed=i, curve=_curve(p, v, rng))
             for i, (p, v) in enumerate(FAST)]
    return runs


def _row(tests: pd.DataFrame, quantity: str) -> pd.Series:
    return tests.set_index("quantity").loc[quantity]


# ------------------------------------------------------------------------------------------ definitions


def test_curve_summary_definitions():
    s = curve_summary([0, 10, 20, 30], [0.1, 0.96, 1.0, 0.5])
    assert (s["peak"], s["peak_step"], s["step_to_95"], s["final"]) == (1.0, 20.0, 10.0, 0.5)
    assert s["auc"] == pytest.approx((0.53 * 10 + 0.98 * 10 + 0.75 * 10) / 30)
    negative = curve_summary([0, 1, 2], [-1.0, -0.52, -0.5])  # threshold -0.5 - 0.025
    assert negative["step_to_95"] == 1.0 and negative["peak_step"] == 2.0
    flat = curve_summary([3, 5], [0.0, 0.0])
    assert flat["step_to_95"] == 3.0 and flat["auc"] == 0.0
    assert curve_summary([7], [0.4])["auc"] == 0.4
    assert all(math.isnan(v) for v in curve_summary([], []).values())


def test_hedges_g_sign_and_correction():
    assert hedges_g([1, 2, 3], [2, 3, 4]) == pytest.approx(0.8)
    assert hedges_g([2, 3, 4], [1, 2, 3]) == pytest.approx(-0.8)
    assert math.isnan(hedges_g([1, 1], [2, 2]))


def test_algorithm_labels():
    assert algorithm_label({"loss": {"weighting": "uniform"}}) == "GRPO"
    assert algorithm_label({"loss": {"weighting": "process_set"}}) == "λ-GRPO"
    assert algorithm_label({"loss": {"weighting": "process_set", "renormalise": True}}) == "λ-GRPO (renormalised)"


# ----------------------------------------------------------------------------------------- the effect


def test_detects_the_constructed_direction(experiment):
    comparison = compare_runs(experiment)
    assert isinstance(comparison, RunComparison) and len(comparison) == 10
    assert comparison.algorithms == ["GRPO", "λ-GRPO"]
    tests = comparison.tests()
    assert set(tests["quantity"]) == {"peak", "step_to_95", "final", "auc"}
    assert (tests["algorithm_a"] == "GRPO").all() and (tests["algorithm_b"] == "λ-GRPO").all()
    for q in ("peak", "final", "auc"):
        row = _row(tests, q)
        assert row["difference"] > 0.1 and row["hedges_g"] > 0, q
        assert row["welch_p"] < 0.01 and row["mannwhitney_p"] < 0.05, q
    speed = _row(tests, "step_to_95")
    assert speed["difference"] == pytest.approx(np.mean([p for p, _ in FAST]) - np.mean([p for p, _ in SLOW]))
    assert speed["difference"] < 0 and speed["hedges_g"] < 0 and speed["welch_p"] < 0.01
    assert (tests["n_a"] == 5).all() and (tests["n_b"] == 5).all() and (tests["note"] == "").all()


def test_peak_steps_are_the_constructed_ones(experiment):
    summary = compare_runs(experiment).run_summary().set_index("run")
    for i, (peak_step, plateau) in enumerate(SLOW):
        assert summary.loc[f"grpo-s{i}", "peak_step"] == peak_step
        assert summary.loc[f"grpo-s{i}", "peak"] == plateau
        assert summary.loc[f"grpo-s{i}", "step_to_95"] == peak_step
    for i, (peak_step, _) in enumerate(FAST):
        assert summary.loc[f"lambda-grpo-s{i}", "peak_step"] == peak_step
        assert summary.loc[f"lambda-grpo-s{i}", "algorithm"] == "λ-GRPO"
        assert summary.loc[f"lambda-grpo-s{i}", "seed"] == i
    assert (summary["n_points"] == len(VAL_STEPS)).all()


def test_identical_distributions_give_large_p(tmp_path, rng):
    curves = [_curve(p, v, rng) for p, v in SLOW]
    runs = [_write_run(tmp_path / f"a{i}", seed=i, curve=c) for i, c in enumerate(curves)]
    runs += [_write_run(tmp_path / f"b{i}", weighting="process_set", seed=i, curve=c) for i, c in enumerate(curves)]
    tests = compare_runs(runs).tests()
    assert (tests["welch_p"] > 0.05).all() and (tests["mannwhitney_p"] > 0.05).all()
    assert np.allclose(tests["difference"], 0) and np.allclose(tests["hedges_g"], 0)


def test_fewer_than_two_seeds_gives_nan_p_and_a_note(tmp_path, rng):
    runs = [_write_run(tmp_path / "a", curve=_curve(64, 0.4, rng)),
            _write_run(tmp_path / "b", weighting="process_set", curve=_curve(29, 0.6, rng))]
    tests = compare_runs(runs).tests()
    assert tests["welch_p"].isna().all() and tests["mannwhitney_p"].isna().all()
    assert tests["note"].str.contains("fewer than 2").all()
    assert (_row(tests, "peak")["difference"]) == pytest.approx(0.2)


# ---------------------------------------------------------------------------------------- curves


def test_bootstrap_band_contains_the_mean_and_is_reproducible(experiment):
    comparison = compare_runs(experiment, n_boot=500, seed=3)
    curves = comparison.curves()
    assert list(curves.columns) == ["metric", "algorithm", "step", "mean", "lower", "upper", "n_seeds"]
    assert (curves["lower"] <= curves["mean"] + 1e-12).all() and (curves["mean"] <= curves["upper"] + 1e-12).all()
    assert (curves["upper"] - curves["lower"]).max() > 0.01
    assert (curves["n_seeds"] == 5).all() and sorted(set(curves["step"])) == VAL_STEPS
    lam = curves[curves["algorithm"] == "λ-GRPO"].set_index("step")
    expected = np.mean([_run_values(p)[34] for p in experiment[5:]])
    assert lam.loc[34, "mean"] == pytest.approx(expected)
    pd.testing.assert_frame_equal(curves, compare_runs(experiment, n_boot=500, seed=3).curves())


def _run_values(path: Path) -> dict[int, float]:
    records = map(json.loads, (path / "validation.jsonl").read_text().splitlines())
    return {r["step"]: r["val_accuracy"] for r in records}


def test_identical_seeds_give_a_zero_width_band(tmp_path, rng):
    curve = _curve(40, 0.5, rng)
    runs = [_write_run(tmp_path / f"r{i}", seed=i, curve=curve) for i in range(4)]
    curves = compare_runs(runs).curves()
    assert np.allclose(curves["upper"] - curves["lower"], 0, atol=1e-12)
    assert np.allclose(curves["mean"], curve)


def test_steps_missing_in_some_seeds_use_the_others(tmp_path, rng):
    runs = [_write_run(tmp_path / f"r{i}", seed=i, curve=_curve(40, 0.5 + 0.01 * i, rng)) for i in range(3)]
    short = VAL_STEPS[:-1]
    runs.append(_write_run(tmp_path / "short", seed=9, curve=_curve(40, 0.9, rng)[:-1], val_steps=short))
    curves = compare_runs(runs).curves().set_index("step")
    assert curves.loc[VAL_STEPS[-1], "n_seeds"] == 3 and curves.loc[VAL_STEPS[0], "n_seeds"] == 4
    last = [_run_values(r)[VAL_STEPS[-1]] for r in runs[:3]]
    assert curves.loc[VAL_STEPS[-1], "mean"] == pytest.approx(np.mean(last))


def test_metrics_from_metrics_jsonl_and_overlap(experiment):
    comparison = compare_runs(experiment)
    reward = comparison.curves("reward_mean")
    assert len(reward) == 2 * STEPS and set(reward["metric"]) == {"reward_mean"}
    overlap = comparison.overlap()
    assert set(overlap["metric"]) == {"path_depth_mean", "intermediate_proportion_mean", "nontrivial_fraction"}
    depth = overlap[overlap["metric"] == "path_depth_mean"].groupby("algorithm")["mean"].mean()
    assert depth["λ-GRPO"] - depth["GRPO"] == pytest.approx(0.5)
    with pytest.raises(ConfigError, match=r"val_acuracy.*did you mean 'val_accuracy'"):
        comparison.curves("val_acuracy")


def test_validation_falls_back_to_metrics_jsonl(tmp_path, rng):
    run = _write_run(tmp_path / "r", curve=_curve(40, 0.5, rng))
    expected = load_run(run).values("val_accuracy")
    (run / "validation.jsonl").unlink()
    pd.testing.assert_frame_equal(load_run(run).values("val_accuracy"), expected)


# ---------------------------------------------------------------------------------- bad run folders


def test_mismatched_configs_are_refused_unless_forced(tmp_path, rng):
    a = _write_run(tmp_path / "a", curve=_curve(40, 0.5, rng))
    b = _write_run(tmp_path / "b", weighting="process_set", curve=_curve(40, 0.5, rng), sampling__group_size=16)
    with pytest.raises(ConfigError) as info:
        compare_runs([a, b])
    message = str(info.value)
    assert "sampling.group_size (8 vs 16)" in message and "--force" in message and "\n" not in message
    forced = compare_runs([a, b], force=True)
    assert forced.differences == {"sampling.group_size": [8, 16]}
    assert "sampling.group_size (8 vs 16)" in forced.to_markdown()


def test_truncated_metrics_file_uses_the_valid_lines(tmp_path, rng, caplog):
    run = _write_run(tmp_path / "r", curve=_curve(40, 0.5, rng))
    text = (run / "metrics.jsonl").read_text()
    (run / "metrics.jsonl").write_text(text[: len(text) - 40])  # the last line cut mid-JSON
    with caplog.at_level(logging.WARNING, logger="prm_probe.views.compare"):
        loaded = load_run(run)
    assert len(loaded.metrics) == STEPS - 1 and loaded.metrics["step"].max() == STEPS - 2
    assert "metrics.jsonl" in caplog.text and "truncated" in caplog.text


def test_empty_or_broken_runs_are_skipped_and_reported(experiment, tmp_path, caplog):
    empty = _write_run(tmp_path / "empty")
    (empty / "metrics.jsonl").write_text("")
    garbage = _write_run(tmp_path / "garbage")
    (garbage / "config.json").write_text("{not json")
    missing = tmp_path / "missing"
    no_config = _write_run(tmp_path / "no-config")
    (no_config / "config.json").unlink()
    with caplog.at_level(logging.WARNING, logger="prm_probe.views.compare"):
        comparison = compare_runs([*experiment, empty, garbage, missing, no_config])
    assert len(comparison) == 10
    assert [p for p, _ in comparison.skipped] == [str(empty), str(garbage), str(missing), str(no_config)]
    reasons = [why for _, why in comparison.skipped]
    assert "no valid line in metrics.jsonl" in reasons[0] and "unreadable config.json" in reasons[1]
    assert "is not a folder" in reasons[2] and "has no config.json" in reasons[3]
    assert caplog.text.count("skipping a run") == 4
    assert "## Skipped runs" in comparison.to_markdown()
    with pytest.raises(CheckpointError, match="none of the 2 run folder"):
        compare_runs([empty, missing])


def test_labels_from_globs(experiment):
    comparison = compare_runs(experiment, labels={"baseline": "*/grpo-s*", "ours": "lambda-*"})
    assert comparison.algorithms == ["baseline", "ours"]
    assert load_run(experiment[0], [("first", "*s0")]).algorithm == "first"
    assert load_run(experiment[1], [("first", "*s0")]).algorithm == "GRPO"


def test_write_produces_the_tables(experiment, tmp_path):
    out = tmp_path / "report"
    written = compare_runs(experiment).write(out, figures=False)
    names = {p.name for p in written}
    assert {"summary.md", "runs.csv", "tests.csv", "curves.csv"} <= names
    assert all(p.is_file() for p in written)
    assert len(pd.read_csv(out / "runs.csv")) == 10 and len(pd.read_csv(out / "tests.csv")) == 4
    assert {"val_accuracy", "path_depth_mean"} <= set(pd.read_csv(out / "curves.csv")["metric"])
    assert not [p for p in out.iterdir() if p.name.startswith(".")]


# --------------------------------------------------------------------------------------------- CLI


def test_cli_compares_globbed_runs_and_writes_files(experiment, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr("prm_probe.views.compare._write_figures", lambda *args: [])  # figures are tested in plots
    empty = _write_run(tmp_path / "grpo-empty")
    (empty / "metrics.jsonl").write_text("")
    out = tmp_path / "cmp"
    assert main(["compare", str(tmp_path / "grpo-*"), str(tmp_path / "lambda-grpo-s*"), "--out", str(out)]) == 0
    stdout = capsys.readouterr().out
    assert "# Run comparison: val_accuracy" in stdout and "| λ-GRPO | 5 |" in stdout and "step_to_95" in stdout
    assert "grpo-empty" in stdout  # listed under skipped runs
    assert f"to {out}" in stdout
    assert (out / "summary.md").read_text().startswith("# Run comparison")
    assert (out / "tests.csv").is_file() and (out / "curves.csv").is_file() and (out / "runs.csv").is_file()


def test_cli_labels_and_metric(experiment, tmp_path, capsys):
    code = main(["compare", *map(str, experiment), "--label", "slow=*/grpo-s*", "--label", "fast=*lambda*",
                 "--metric", "reward_mean"])
    assert code == 0
    stdout = capsys.readouterr().out
    assert "# Run comparison: reward_mean" in stdout and "| slow | 5 |" in stdout and "| fast | 5 |" in stdout


def test_cli_mismatch_is_one_error_line(tmp_path, rng, capsys):
    a = _write_run(tmp_path / "a", curve=_curve(40, 0.5, rng))
    b = _write_run(tmp_path / "b", curve=_curve(40, 0.5, rng), model__name="tiny-gpt2")
    assert main(["compare", str(a), str(b)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "model.name (tiny vs tiny-gpt2)" in err[0] and "--force" in err[0]
    assert main(["compare", str(a), str(b), "--force", "-q"]) == 0


def test_cli_needs_two_runs(tmp_path, rng, capsys):
    a = _write_run(tmp_path / "a", curve=_curve(40, 0.5, rng))
    assert main(["compare", str(a), str(tmp_path / "nothing")]) == 2
    assert "at least two runs" in capsys.readouterr().err
    assert main(["compare", str(tmp_path / "nope*")]) == 2


# --------------------------------------------------------------------------------------- real runs


def test_real_tiny_runs_compare(tmp_path):
    from prm_probe.training.trainer import train

    runs = []
    for name, weighting in (("grpo", "uniform"), ("lambda-grpo", "process_set")):
        config = config_from_dict({"steps": 3, "seed": 0, "device": "cpu", "model": {"name": "tiny"},
                                   "task": {"name": "toy-tree", "train_size": 8, "val_size": 1},
                                   "sampling": {"group_size": 4, "prompts_per_step": 1, "max_new_tokens": 8},
                                   "loss": {"weighting": weighting}, "schedule": {"val_every": 1}})
        runs.append(train(config, tmp_path / name))
    comparison = compare_runs(runs, n_boot=200)
    curves = comparison.curves()
    assert sorted(set(curves["step"])) == [0, 1, 2] and (curves["n_seeds"] == 1).all()
    assert comparison.algorithms == ["GRPO", "λ-GRPO"]
    assert len(comparison.overlap()) == 2 * 3 * 3
    written = comparison.write(tmp_path / "out", figures=False)
    assert (tmp_path / "out" / "summary.md") in written


def test_a_run_kept_with_gzipped_metrics_reads_as_the_original(experiment, tmp_path):
    """A finished run committed as config.json + metrics.jsonl.gz + validation.jsonl.gz is the same run."""
    import gzip
    import shutil

    original = experiment[0]
    kept = tmp_path / "kept" / original.name
    kept.mkdir(parents=True)
    shutil.copy(original / "config.json", kept / "config.json")
    for name in ("metrics.jsonl", "validation.jsonl"):
        if (original / name).is_file():
            (kept / f"{name}.gz").write_bytes(gzip.compress((original / name).read_bytes()))
    a, b = load_run(original), load_run(kept)
    pd.testing.assert_frame_equal(a.metrics, b.metrics)
    pd.testing.assert_frame_equal(a.validation, b.validation)
    assert len(b.validation) > 0


def test_summary_and_frame_agree_with_the_other_result_objects(experiment):
    """summary() is a dict of headline numbers (as OverlapStats.summary() and PrmQuality.summary()) recomputed here
    from run_summary() and tests(); frame(by) gives the frames by name."""
    comparison = compare_runs(experiment)
    s = comparison.summary()
    runs, tests = comparison.run_summary(), comparison.tests()
    assert s["metric"] == "val_accuracy" and s["runs"] == len(experiment)
    for algorithm in comparison.algorithms:
        part = runs[runs["algorithm"] == algorithm]
        assert s[f"runs[{algorithm}]"] == len(part)
        assert s[f"final[{algorithm}]"] == pytest.approx(part["final"].mean())
    final = tests[tests["quantity"] == "final"].iloc[0]
    assert s[f"final: {final.algorithm_b} − {final.algorithm_a}"] == pytest.approx(final.difference)
    assert s["final: welch_p"] == pytest.approx(final.welch_p)
    pd.testing.assert_frame_equal(comparison.frame("runs"), runs)
    pd.testing.assert_frame_equal(comparison.frame("tests"), tests)
    pd.testing.assert_frame_equal(comparison.frame("curves"), comparison.curves())
    with pytest.raises(ConfigError, match="expected one of runs, tests, curves, overlap"):
        comparison.frame("nodes")


def test_a_metric_with_one_point_per_run_is_warned_about(tmp_path, caplog):
    """Runs that validate only at the end: the default metric has one point per run, which is said, with the fix."""
    runs = [_write_run(tmp_path / f"{w}{s}", weighting=w, seed=s, curve=[0.5 + 0.1 * s], val_steps=[STEPS - 1])
            for w in ("uniform", "process_set") for s in range(2)]
    with caplog.at_level(logging.WARNING):
        compare_runs(runs)
    (message,) = [r.getMessage() for r in caplog.records if "value(s) per run" in r.getMessage()]
    assert message.startswith("metric 'val_accuracy' has 1 value(s) per run") and "--metric reward_mean" in message
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        compare_runs(runs, metric="reward_mean")  # logged every step: nothing to warn about
    assert not [r for r in caplog.records if "value(s) per run" in r.getMessage()]


# ---------------------------------------------------------------------------------------------- paired


def test_paired_tests_against_the_definition_and_scipy(experiment):
    """Runs of one seed are a pair: B − A per seed, its mean, the exact Wilcoxon p (against scipy's exact test)."""
    from scipy.stats import wilcoxon

    comparison = compare_runs(experiment, paired=True)
    paired = comparison.paired_tests().set_index("quantity")
    summary = comparison.run_summary()
    for q in ("peak", "step_to_95", "final", "auc"):
        wide = summary.pivot(index="seed", columns="algorithm", values=q)
        diff = (wide["λ-GRPO"] - wide["GRPO"]).to_numpy()
        row = paired.loc[q]
        assert row["pairs"] == 5 and row["difference"] == pytest.approx(diff.mean())
        assert row["difference_lower"] <= row["difference"] <= row["difference_upper"]
        assert row["b_higher"] == (diff > 0).sum()
        nonzero = diff[diff != 0]
        assert row["wilcoxon_n"] == nonzero.size
        if nonzero.size and len(set(np.abs(nonzero))) == nonzero.size:  # no ties: scipy's exact test applies
            assert row["wilcoxon_p"] == pytest.approx(wilcoxon(nonzero, method="exact").pvalue)
    # every seed is faster and higher under λ-GRPO: all five signs agree, the floor 2/32
    assert paired.loc["peak", "wilcoxon_p"] == pytest.approx(0.0625) and paired.loc["peak", "b_higher"] == 5
    assert paired.loc["step_to_95", "b_higher"] == 0 and paired.loc["step_to_95", "difference"] < 0
    # the constructed curves differ from their first point on, so no pair shares its first step, and it says so
    assert (paired["same_first_step"] == 0).all() and paired["note"].str.contains("different first steps").all()


def test_paired_pairs_that_share_their_start_and_ties(tmp_path, rng):
    """Identical curves per seed: zero differences are dropped (n = 0, p NaN) and every pair shares its start."""
    curves = [_curve(p, v, rng) for p, v in SLOW]
    runs = [_write_run(tmp_path / f"a{i}", seed=i, curve=c) for i, c in enumerate(curves)]
    runs += [_write_run(tmp_path / f"b{i}", weighting="process_set", seed=i, curve=c) for i, c in enumerate(curves)]
    paired = compare_runs(runs, paired=True).paired_tests()
    assert (paired["pairs"] == 5).all() and (paired["wilcoxon_n"] == 0).all() and paired["wilcoxon_p"].isna().all()
    assert (paired["difference"] == 0).all() and (paired["same_first_step"] == 5).all()
    assert (paired["note"] == "").all()


def test_paired_leaves_out_a_seed_without_its_pair_and_refuses_two_of_one_seed(experiment, tmp_path, rng):
    paired = compare_runs(experiment[:5] + experiment[5:9], paired=True).paired_tests()  # λ-GRPO seed 4 missing
    assert (paired["pairs"] == 4).all() and paired["note"].str.contains("left out: 4").all()
    twin = _write_run(tmp_path / "grpo-again", seed=0, curve=_curve(64, 0.45, rng))
    with pytest.raises(ConfigError, match=r"both GRPO with seed 0.*--label"):
        compare_runs([*experiment, twin], paired=True)
    assert len(compare_runs([*experiment, twin])) == 11  # unpaired comparisons still pool them


def test_cli_paired_writes_the_paired_table(experiment, tmp_path, capsys):
    out = tmp_path / "cmp"
    assert main(["compare", *map(str, experiment), "--paired", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "## Paired tests" in text and "5 of 5" in text
    table = pd.read_csv(out / "paired_tests.csv")
    assert list(table["quantity"]) == ["peak", "step_to_95", "final", "auc"] and (table["pairs"] == 5).all()
    assert "## Paired tests" in (out / "summary.md").read_text()
    assert not (tmp_path / "plain" / "paired_tests.csv").exists()
    assert main(["compare", *map(str, experiment), "--out", str(tmp_path / "plain"), "-q"]) == 0
    assert not (tmp_path / "plain" / "paired_tests.csv").exists()
