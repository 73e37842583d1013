"""Does λ-GRPO help a real LLM? The pre-registered SmolLM2-135M-Instruct experiment (figures/README.md, "A
pre-registered real-model experiment"): addition of 1-50, paired seeds, GRPO against λ-GRPO.

    python analysis/experiments/real_model.py calibrate   # GRPO at 3 Adam learning rates, seed 100, 60 steps
    python analysis/experiments/real_model.py run         # 6 paired seeds x {GRPO, λ-GRPO}, 150 steps, 2 at a time
    python analysis/experiments/real_model.py quality     # prm-quality before and after training, GRPO seeds 0, 1
    python analysis/experiments/real_model.py report      # tables, the test and the figures, from committed data

Every stage is resumable: finished runs are skipped, interrupted ones resume from their last checkpoint (every 10
steps). Runs train in data/runs/real-model/ (checkpoints, not committed); each finished run's config.json,
task.json and gzipped metrics.jsonl / validation.jsonl are copied into data/experiments/real-model/ (committed),
and `report` reads only those copies. The settings live in analysis/experiments/real_model.toml; the driver sets
only the weighting, the seed and (for the calibration) the learning rate, and `--set KEY=VALUE` overrides are
written into every run's config.json (the test runs the driver for 2 steps on a tiny model that way).
"""

from __future__ import annotations

import argparse
import gzip
import json
import logging
import os
import shutil
import sys
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "analysis" / "experiments" / "real_model.toml"
RUNS = ROOT / "data" / "runs" / "real-model"
KEEP = ROOT / "data" / "experiments" / "real-model"
FIGURES = ROOT / "figures"

#: The calibration (pre-registered): GRPO only, one seed that is not a seed of the comparison, 60 steps, these
#: Adam learning rates; the pick is the highest mean validation accuracy over its evaluation points, the smaller
#: learning rate on a tie.
CALIBRATION_LRS = (2e-6, 5e-6, 1e-5)
CALIBRATION_SEED = 100
CALIBRATION_STEPS = 60
#: The earlier SmolLM2 addition runs (same model and settings, 3 seeds per algorithm): the power's ceiling.
ADDITION_RUNS = ROOT / "data" / "experiments" / "smollm2-addition" / "runs"
#: The comparison (pre-registered): seeds 0-5 for both algorithms, the steps of the config file.
SEEDS = tuple(range(6))
ARMS = {"grpo": "uniform", "lambda": "process_set"}
#: steps_to_80: the first evaluation step whose accuracy reaches this share of the best final accuracy of all runs.
REACH = 0.8
#: prm-quality before and after training (GRPO seeds 0 and 1): K continuations per node, a seeded node subset.
QUALITY_SEEDS = (0, 1)
QUALITY_GROUPS, QUALITY_K, QUALITY_NODES = 16, 16, 48
RUN_COLUMNS = ["model", "task", "algorithm", "seed", "steps", "initial_mean_reward", "val_auc", "final_val_accuracy",
               "steps_to_80"]
#: Step-1 statistics that depend only on the sampling (pretrained weights, seed, data order): the two runs of a
#: pair must agree on them exactly, or they are no pair.
SAMPLING = ("reward_mean", "completion_length_mean", "path_depth_mean", "intermediate_proportion_mean")
#: The task condition (pre-registered): a GRPO seed still below this validation accuracy after this step.
CONDITION_STEP, CONDITION_ACCURACY = 100, 0.8
OVERLAP = ["path_depth_mean", "path_depth_median", "intermediate_proportion_mean", "intermediate_proportion_median",
           "nontrivial_fraction", "proper_branching_fraction", "informative_branching_fraction",
           "gradient_mass_ratio"]

log = logging.getLogger("real_model")


# ---------------------------------------------------------------------------------------------------- running


def run_config(overrides: dict[str, Any]) -> dict[str, Any]:
    """The config file with ``overrides`` (dotted keys) applied, as nested dicts; bad settings fail here."""
    from prm_probe.training.config import config_to_dict, load_config

    return config_to_dict(load_config(CONFIG, overrides))


def keep_run(run_dir: Path, keep: Path) -> Path:
    """Copy a finished run's settings and gzipped metrics into ``keep/<run name>`` (byte-stable gzip)."""
    dest = keep / run_dir.name
    dest.mkdir(parents=True, exist_ok=True)
    for name in ("config.json", "task.json"):
        shutil.copyfile(run_dir / name, dest / name)
    for name in ("metrics.jsonl", "validation.jsonl"):
        tmp = dest / f".{name}.gz.tmp"
        with open(run_dir / name, "rb") as src, open(tmp, "wb") as raw:
            with gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as gz:
                shutil.copyfileobj(src, gz)
        tmp.replace(dest / f"{name}.gz")
    return dest


def train_all(jobs: dict[str, dict[str, Any]], runs: Path, keep: Path, workers: int) -> list[Path]:
    """Train (or resume) every ``name -> config`` into ``runs/name``, ``workers`` at a time with one torch thread
    each, and keep each run as soon as it finishes; runs already kept at their step count are skipped."""
    from prm_probe.experiments.sweeps import run_one

    def done(kept: Path, steps: int) -> bool:
        path = kept / "metrics.jsonl.gz"
        if not path.exists():
            return False
        with gzip.open(path, "rt") as f:
            return sum(1 for line in f if line.strip()) >= steps

    todo = {n: c for n, c in jobs.items() if not (done(keep / n, c["steps"]) and _same(keep / n, c))}
    log.info("%d of %d runs to train (%s)", len(todo), len(jobs), ", ".join(todo) or "none")
    runs.mkdir(parents=True, exist_ok=True)
    kept = []
    ctx = None
    if workers > 1:
        import multiprocessing as mp

        ctx = mp.get_context("spawn")
    with ProcessPoolExecutor(max_workers=max(1, min(workers, len(todo) or 1)), mp_context=ctx) as pool:
        futures = {pool.submit(run_one, str(runs / n), c): n for n, c in todo.items()}
        for fut in as_completed(futures):
            name = futures[fut]
            fut.result()
            kept.append(keep_run(runs / name, keep))
            log.info("finished and kept %s", name)
    return kept


def _same(kept: Path, config: dict[str, Any]) -> bool:
    """Whether a kept run was trained with ``config`` (run id aside); a kept run with other settings is refused."""
    path = kept / "config.json"
    if not path.exists():
        return False
    old = {k: v for k, v in json.loads(path.read_text()).items() if k != "run_id"}
    new = {k: v for k, v in json.loads(json.dumps(config)).items() if k != "run_id"}
    if old != new:
        diff = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
        raise SystemExit(f"error: {kept} was trained with other settings ({', '.join(diff)} differ); expected the "
                         "config file's; move that folder away or restore the settings it was run with")
    return True


def calibrate(args: argparse.Namespace) -> None:
    """GRPO at each calibration learning rate; writes the calibration table and names the pick."""
    jobs = {f"grpo_lr{lr_name(lr)}_s{CALIBRATION_SEED}": run_config({**args.set, "optim.lr": lr,
                                                               "seed": CALIBRATION_SEED,
                                                               "steps": args.steps or CALIBRATION_STEPS})
            for lr in CALIBRATION_LRS}
    train_all(jobs, args.runs_dir / "calibration", args.keep_dir / "calibration", args.workers)
    table = calibration_table(args.keep_dir / "calibration")
    out = args.figures / "data" / "real_model_calibration.csv"
    out.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(out, index=False)
    lr = pick_lr(table)
    planned = run_config(args.set)  # the comparison's steps and evaluation points, not the calibration's
    points = int(planned["steps"]) // int(planned["schedule"]["val_every"] or planned["steps"])
    power = power_table(table, lr, ADDITION_RUNS, points)
    power.to_csv(out.with_name("real_model_power.csv"), index=False)
    log.info("calibration:\n%s\npick: lr = %s\npower:\n%s", table.to_string(index=False), lr_name(lr),
             power.to_string(index=False))


def lr_name(lr: float) -> str:
    """``2e-6`` for 2e-06: the learning rate as run names spell it.

    Example:
        >>> lr_name(2e-6), lr_name(1e-5), lr_name(3e-4)
        ('2e-6', '1e-5', '3e-4')
    """
    mantissa, exponent = f"{lr:e}".split("e")
    return f"{float(mantissa):g}e{int(exponent)}"


def calibration_table(keep: Path) -> pd.DataFrame:
    """One row per kept calibration run: lr, steps, the mean validation accuracy over its evaluation points, the
    final one, and the spread of its evaluation points around a 3-point running mean (evaluation noise)."""
    from prm_probe.core.runs import load_run

    rows = []
    for folder in sorted(p for p in keep.iterdir() if (p / "config.json").exists()):
        run = load_run(folder)
        acc = run.values("val_accuracy")["value"].to_numpy()
        smooth = pd.Series(acc).rolling(3, center=True).mean().to_numpy()
        rows.append({"run": folder.name, "lr": float(run.config["optim"]["lr"]), "seed": run.seed,
                     "steps": len(run.metrics), "evaluations": len(acc), "val_auc": float(acc.mean()),
                     "final_val_accuracy": float(acc[-1]), "initial_mean_reward": float(run.metrics["reward_mean"][0]),
                     "residual_sd": float(np.nanstd(acc - smooth, ddof=1)) if len(acc) >= 4 else float("nan")})
    return pd.DataFrame(rows).sort_values("lr").reset_index(drop=True)


def power_table(calibration: pd.DataFrame, lr: float, spread_runs: Path, points: int, pairs: int = len(SEEDS),
                power: float = 0.8) -> pd.DataFrame:
    """The minimum detectable effect on ``val_auc`` (pre-registered): the exact two-sided Wilcoxon test of ``pairs``
    differences rejects at 0.05 only when all of them share a sign, which normal differences N(δ, σ_d) do with
    probability Φ(δ/σ_d)^pairs; ``power`` needs δ ≥ z σ_d with z = Φ⁻¹(power^(1/pairs)).

    Two values bracket σ_d: ``floor`` from the chosen calibration run, the scatter of its evaluation points around
    their 3-point running mean (× √(3/2), the running mean's own share of white noise), over ``points`` points
    and for a difference of two runs; ``ceiling`` √2 × the pooled spread between seeds of ``val_auc`` in the runs
    under ``spread_runs`` (one folder per run, algorithms pooled within), as if pairing removed nothing.
    """
    from prm_probe.core.runs import load_run

    z = _power_z(pairs, power)
    residual = float(calibration.loc[np.isclose(calibration["lr"], lr), "residual_sd"].iloc[0])
    floor = residual * np.sqrt(1.5) / np.sqrt(points) * np.sqrt(2)
    by_algorithm: dict[str, list[float]] = {}
    for folder in sorted(p for p in spread_runs.iterdir() if (p / "config.json").exists()):
        r = load_run(folder)
        by_algorithm.setdefault(r.algorithm, []).append(float(r.values("val_accuracy")["value"].mean()))
    variances = [(len(v) - 1, np.var(v, ddof=1)) for v in by_algorithm.values() if len(v) > 1]
    pooled = np.sqrt(sum(d * v for d, v in variances) / sum(d for d, _ in variances))
    ceiling = float(np.sqrt(2) * pooled)
    return pd.DataFrame([
        {"bound": "floor", "sigma_d": floor, "z": z, "mde": z * floor,
         "source": f"calibration lr {lr_name(lr)}: evaluation scatter {residual:.4f} x sqrt(3/2), {points} points"},
        {"bound": "ceiling", "sigma_d": ceiling, "z": z, "mde": z * ceiling,
         "source": f"sqrt(2) x seed spread {pooled:.4f} of val_auc in {_shown(spread_runs)}"}])


def _power_z(pairs: int, power: float) -> float:
    """z = Φ⁻¹(power^(1/pairs)): the effect, in units of σ_d, at which all ``pairs`` normal differences share a sign
    with probability ``power`` (the only way the exact two-sided Wilcoxon test of 6 pairs rejects at 0.05)."""
    from scipy.stats import norm

    return float(norm.ppf(power ** (1 / pairs)))


def _shown(path: Path) -> str:
    """``path`` relative to the repository when it is inside it (stable text in committed tables)."""
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def pick_lr(table: pd.DataFrame) -> float:
    """The pre-registered pick: the highest ``val_auc``, the smaller learning rate on a tie.

    Example:
        >>> pick_lr(pd.DataFrame({"lr": [1e-6, 2e-6, 4e-6], "val_auc": [0.2, 0.5, 0.5]}))
        2e-06
    """
    best = table["val_auc"].max()
    return float(table.loc[np.isclose(table["val_auc"], best, rtol=0, atol=1e-12), "lr"].min())


def comparison_config(args: argparse.Namespace, seed: int, weighting: str) -> dict[str, Any]:
    """The config of one comparison run: the file, ``--set``, ``--steps`` when given, the seed and weighting."""
    steps = {"steps": args.steps} if args.steps else {}
    return run_config({**args.set, **steps, "seed": seed, "loss.weighting": weighting})


def run(args: argparse.Namespace) -> None:
    """Train both algorithms at every seed (paired: same seed, so the same data order and first samples)."""
    jobs = {}
    for seed in args.seeds:
        for arm, weighting in ARMS.items():
            jobs[f"{arm}_s{seed}"] = comparison_config(args, seed, weighting)
    train_all(jobs, args.runs_dir / "runs", args.keep_dir / "runs", args.workers)


def quality(args: argparse.Namespace) -> None:
    """prm-quality of GRPO seeds 0 and 1 at their first point (the pretrained model, step 0) and their last
    checkpoint: a log of ``QUALITY_GROUPS`` groups sampled from each (the run's task and sampling settings), then
    ``QUALITY_K`` continuations on a seeded subset of ``QUALITY_NODES`` shared nodes."""
    from prm_probe.core.prm_quality import prm_quality_token_summary, prm_quality_tokens
    from prm_probe.training.collect import sample_log
    from prm_probe.training.prm_quality import measure_prm_quality

    out = args.keep_dir / "quality"
    out.mkdir(parents=True, exist_ok=True)
    for seed in QUALITY_SEEDS:
        run_dir = args.runs_dir / "runs" / f"grpo_s{seed}"
        # the run's own settings where it exists (they travel with it), else those it will be trained with
        config = (json.loads((run_dir / "config.json").read_text()) if (run_dir / "config.json").exists()
                  else comparison_config(args, seed, ARMS["grpo"]))
        for point in ("first", "last"):
            name = f"grpo_s{seed}_{point}"
            if point == "last" and not _trained(run_dir, config["steps"]):
                log.info("skipping %s: grpo_s%d has not reached step %d yet (train it with `run`)",
                         name, seed, config["steps"])
                continue
            model = config["model"]["name"] if point == "first" else str(run_dir)
            log_path = args.runs_dir / "quality" / f"{name}.parquet"
            log_path.parent.mkdir(parents=True, exist_ok=True)
            if not log_path.exists():
                s = config["sampling"]
                # the pretrained model belongs to no run: give it the run's task and sampling settings explicitly
                extra = {} if point == "last" else {
                    "task_name": config["task"]["name"], "task_options": config["task"]["options"],
                    "group_size": s["group_size"], "max_new_tokens": s["max_new_tokens"],
                    "temperature": s["temperature"]}
                sample_log(model, out=log_path, groups=QUALITY_GROUPS, split="validation", seed=seed,
                           device="cpu", **extra)
            nodes = measure_prm_quality(model, log_path, rollouts=QUALITY_K, max_nodes=QUALITY_NODES, seed=0,
                                        device="cpu", out=out / f"{name}.csv", progress=True)
            if not (out / f"{name}.csv").exists():  # no shared node in the log: an empty table says so
                nodes.to_csv(out / f"{name}.csv", index=False)
                log.warning("%s: the log has no shared node to measure", name)
            tokens = prm_quality_token_summary(prm_quality_tokens(nodes, log_path))
            tokens.insert(0, "run", f"grpo_s{seed}")
            tokens.insert(1, "point", point)
            tokens.to_csv(out / f"{name}_tokens.csv", index=False)
            log.info("prm-quality %s done", name)


def _trained(run_dir: Path, steps: int) -> bool:
    """Whether the run in ``run_dir`` has saved its checkpoint of step ``steps`` and no process trains it."""
    from prm_probe.core.runs import latest_checkpoint
    from prm_probe.training.checkpoint import LOCK_FILE

    newest = latest_checkpoint(run_dir) if run_dir.is_dir() else None
    return newest is not None and newest.name == f"step-{steps:06d}" and not (run_dir / LOCK_FILE).exists()


# ---------------------------------------------------------------------------------------------------- report


def run_rows(keep: Path, planned: int | None = None) -> pd.DataFrame:
    """One row per kept run (``RUN_COLUMNS``): the pre-registered metrics.

    ``val_auc`` is the mean validation accuracy over the run's evaluation points up to ``planned`` steps (every
    point weighs the same); ``final_val_accuracy`` the last point's value; ``steps_to_80`` the first evaluation
    step (counted from 1) whose accuracy reaches ``REACH`` x the best final accuracy among the runs, NaN when the
    run never reaches it; ``initial_mean_reward`` the mean training reward of step 1 (sampled from the pretrained
    model, temperature 1).
    """
    from prm_probe.core.runs import load_run

    runs = [load_run(p) for p in sorted(keep.iterdir()) if (p / "config.json").exists()]
    rows = []
    for r in runs:
        val = r.values("val_accuracy")
        if planned is not None:
            val = val[val["step"] < planned]
        acc = val["value"].to_numpy()
        task = r.task or {"name": r.config["task"]["name"], "options": r.config["task"]["options"]}
        rows.append({"model": r.config["model"]["name"], "task": json.dumps(task, sort_keys=True),
                     "algorithm": r.algorithm, "seed": r.seed, "steps": len(r.metrics),
                     "initial_mean_reward": float(r.metrics["reward_mean"].iloc[0]),
                     "val_auc": float(acc.mean()) if acc.size else float("nan"),
                     "final_val_accuracy": float(acc[-1]) if acc.size else float("nan"),
                     "_steps": (val["step"].to_numpy() + 1), "_acc": acc})
    frame = pd.DataFrame(rows)
    if frame.empty:
        return pd.DataFrame(columns=RUN_COLUMNS)
    threshold = REACH * frame["final_val_accuracy"].max()
    frame["steps_to_80"] = [float(s[np.argmax(a >= threshold)]) if (a >= threshold).any() else float("nan")
                            for s, a in zip(frame["_steps"], frame["_acc"], strict=True)]
    return frame[RUN_COLUMNS].sort_values(["algorithm", "seed"]).reset_index(drop=True)


def complete_pairs(rows: pd.DataFrame, planned: int) -> pd.DataFrame:
    """The rows of seeds whose runs of both algorithms reached ``planned`` steps."""
    full = rows[rows["steps"] >= planned]
    both = full.groupby("seed")["algorithm"].nunique()
    return full[full["seed"].isin(both[both == 2].index)]


def pair_table(rows: pd.DataFrame, planned: int) -> pd.DataFrame:
    """Per seed with both runs at ``planned`` steps: each metric of GRPO and λ-GRPO and their difference λ − GRPO
    (``steps_to_80`` NaN when not reached), the per-seed outcomes behind :func:`paired_tests`."""
    full = complete_pairs(rows, planned)
    out = None
    for metric in ("val_auc", "final_val_accuracy", "steps_to_80"):
        wide = full.pivot(index="seed", columns="algorithm", values=metric).dropna(how="all")
        if not {"GRPO", "λ-GRPO"} <= set(wide.columns):
            return pd.DataFrame()
        part = pd.DataFrame({f"{metric}_grpo": wide["GRPO"], f"{metric}_lambda": wide["λ-GRPO"],
                             f"{metric}_difference": wide["λ-GRPO"] - wide["GRPO"]})
        out = part if out is None else out.join(part, how="inner")
    return out.reset_index()


def paired_tests(rows: pd.DataFrame, planned: int, censor: float) -> pd.DataFrame:
    """The pre-registered test of each metric on the complete pairs (both algorithms at ``planned`` steps):
    per-algorithm means with bootstrap 95 % intervals, the mean paired difference λ-GRPO − GRPO with its bootstrap
    interval, and the two-sided exact paired Wilcoxon test with n after zero differences and its floor.
    ``steps_to_80`` of a run that never reaches the threshold counts as ``censor`` (later than any reached step)."""
    from prm_probe.views.statistics import bootstrap_mean_ci, paired_wilcoxon

    full = complete_pairs(rows, planned)  # a missing run is no pair, not a censored steps_to_80
    wide = {m: full.pivot(index="seed", columns="algorithm", values=m) for m in
            ("val_auc", "final_val_accuracy", "steps_to_80")}
    out = []
    for metric, table in wide.items():
        if not {"GRPO", "λ-GRPO"} <= set(table.columns):
            continue
        table = table.fillna(censor) if metric == "steps_to_80" else table.dropna()
        grpo, lam = table["GRPO"].to_numpy(), table["λ-GRPO"].to_numpy()
        diff = lam - grpo
        test = paired_wilcoxon(grpo, lam)
        row = {"metric": metric, "pairs": len(table), "grpo_mean": grpo.mean(), "lambda_mean": lam.mean(),
               "difference_mean": diff.mean(), "lambda_better": int((diff > 0).sum() if metric != "steps_to_80"
                                                                      else (diff < 0).sum()),
               "wilcoxon_n": test["n"], "wilcoxon_p": test["p"], "wilcoxon_floor": test["floor"]}
        for key, values in (("grpo", grpo), ("lambda", lam), ("difference", diff)):
            row[f"{key}_lower"], row[f"{key}_upper"] = bootstrap_mean_ci(values)
        out.append(row)
    return pd.DataFrame(out)


def sensitivity(pairs: pd.DataFrame, power: float = 0.8) -> pd.DataFrame:
    """After the runs, not pre-registered: how firm the primary result is, from the per-seed pairs
    (:func:`pair_table`).

    ``sigma_d`` is the observed standard deviation of the paired ``val_auc`` differences (ddof 1) and ``mde`` the
    effect the pre-registered power formula (:func:`power_table`) gives with it, to set beside the floor and
    ceiling fixed before the runs. ``loo_*`` is the mean difference with each seed left out in turn: the smallest,
    the largest and how many of them have the other sign than the mean over all pairs.

    Example:
        >>> t = sensitivity(pd.DataFrame({"seed": [0, 1, 2], "val_auc_difference": [0.01, 0.02, -0.02]}))
        >>> round(float(t["loo_min"].iloc[0]), 3), round(float(t["loo_max"].iloc[0]), 3), int(t["loo_flips"].iloc[0])
        (-0.005, 0.015, 1)
    """
    diff = pairs["val_auc_difference"].to_numpy(dtype=float) if len(pairs) else np.array([])
    if diff.size < 2:
        return pd.DataFrame()
    z = _power_z(diff.size, power)
    sd = float(np.std(diff, ddof=1))
    loo = np.array([np.delete(diff, i).mean() for i in range(diff.size)])
    flips = int((loo * diff.mean() < 0).sum())  # strictly the other sign
    return pd.DataFrame([{"metric": "val_auc", "pairs": diff.size, "difference_mean": diff.mean(), "sigma_d": sd,
                          "z": z, "mde": z * sd, "loo_min": loo.min(), "loo_max": loo.max(), "loo_flips": flips}])


def check_kept(keep: Path, expected: Any) -> list[Path]:
    """The kept runs, each checked against the config it must have been trained with (``expected(seed, weighting)``);
    a folder named for no arm and seed, or trained with other settings, is refused (SystemExit)."""
    folders = sorted(p for p in keep.iterdir() if (p / "config.json").exists())
    for folder in folders:
        arm, _, seed = folder.name.rpartition("_s")
        if arm not in ARMS or not seed.isdigit():
            raise SystemExit(f"error: {folder} is not a run of this experiment (expected <grpo|lambda>_s<seed>); "
                             "move it out of the kept runs")
        _same(folder, expected(int(seed), ARMS[arm]))
    return folders


def pairing_check(keep: Path) -> pd.DataFrame:
    """Per seed with both runs kept: the step-1 sampling statistics (``SAMPLING``) of each run and whether they are
    equal. Before the first update the two algorithms sample from the same weights with the same seed and data, so
    any difference means the runs are not paired (another seed, data order or start)."""
    rows = []
    for seed in SEEDS:
        paths = {arm: keep / f"{arm}_s{seed}" / "metrics.jsonl.gz" for arm in ARMS}
        if not all(p.exists() for p in paths.values()):
            continue
        first = {}
        for arm, path in paths.items():
            with gzip.open(path, "rt") as f:
                first[arm] = json.loads(f.readline())
        row = {"seed": seed, **{f"{arm}_{k}": first[arm].get(k) for arm in ARMS for k in SAMPLING}}
        row["paired"] = all(first["grpo"].get(k) == first["lambda"].get(k) for k in SAMPLING)
        rows.append(row)
    return pd.DataFrame(rows)


def task_condition(keep: Path) -> pd.DataFrame:
    """The pre-registered task condition, per kept GRPO run: validation accuracy after step ``CONDITION_STEP``
    and whether it is below ``CONDITION_ACCURACY`` (the condition holds when any seed is)."""
    from prm_probe.core.runs import load_run

    rows = []
    for folder in sorted(keep.glob("grpo_s*")):
        if not (folder / "config.json").exists():
            continue
        r = load_run(folder)
        val = r.values("val_accuracy")
        at = val.loc[val["step"] + 1 == CONDITION_STEP, "value"]
        if at.size:
            rows.append({"seed": r.seed, "step": CONDITION_STEP, "val_accuracy": float(at.iloc[0]),
                         "below": bool(at.iloc[0] < CONDITION_ACCURACY)})
    return pd.DataFrame(rows, columns=["seed", "step", "val_accuracy", "below"])


def reading(test: pd.Series, power: pd.DataFrame, pairs: int = len(SEEDS)) -> pd.DataFrame:
    """The pre-registered reading of the primary test (``test``: the ``val_auc`` row of :func:`paired_tests`),
    once against each bound of the minimum detectable effect in ``power`` (floor and ceiling).

    - ``lambda helps``: p < 0.05 with a positive mean difference;
    - ``GRPO better``: p < 0.05 with a negative one (the pre-registration names no reading; this one is plain);
    - ``smaller than detectable``: p ≥ 0.05 and the bootstrap interval inside ± the bound;
    - ``inconclusive``: p ≥ 0.05 and the interval wider;
    - ``interim``: fewer than ``pairs`` complete pairs.

    Example:
        >>> t = pd.Series({"pairs": 6, "wilcoxon_p": 0.3, "difference_mean": 0.01, "difference_lower": -0.02,
        ...                "difference_upper": 0.04})
        >>> reading(t, pd.DataFrame({"bound": ["floor", "ceiling"], "mde": [0.03, 0.09]}))["reading"].tolist()
        ['inconclusive', 'smaller than detectable']
    """
    out = []
    for _, bound in power.iterrows():
        if test["pairs"] < pairs:
            verdict = "interim"
        elif test["wilcoxon_p"] < 0.05:
            verdict = "lambda helps" if test["difference_mean"] > 0 else "GRPO better"
        elif -bound["mde"] <= test["difference_lower"] and test["difference_upper"] <= bound["mde"]:
            verdict = "smaller than detectable"
        else:
            verdict = "inconclusive"
        out.append({"bound": bound["bound"], "mde": bound["mde"], "pairs": int(test["pairs"]),
                    "wilcoxon_p": test["wilcoxon_p"], "difference_mean": test["difference_mean"],
                    "difference_lower": test["difference_lower"], "difference_upper": test["difference_upper"],
                    "reading": verdict})
    return pd.DataFrame(out)


FINAL = "the pre-registered result"


def progress(tests: pd.DataFrame) -> str:
    """:data:`FINAL` once every planned pair is complete, else ``INTERIM: k of 6 pairs`` (``tests``:
    :func:`paired_tests`)."""
    complete = int(tests["pairs"].max()) if len(tests) else 0
    return FINAL if complete >= len(SEEDS) else f"INTERIM: {complete} of {len(SEEDS)} pairs"


def result_markdown(pairs: pd.DataFrame, tests: pd.DataFrame, verdict: pd.DataFrame,
                    condition: pd.DataFrame, censor: float, overlap: pd.DataFrame | None = None,
                    firmness: pd.DataFrame | None = None) -> str:
    """The pre-registered result as Markdown, every number from the tables the report writes: per-seed outcomes,
    the paired tests, the reading against both power bounds, the task condition (``censor``: the step a run
    that never reaches the steps_to_80 threshold counts as) and, when given, the post-hoc :func:`sensitivity`
    (``firmness``) and the overlap summary (:func:`overlap_summary`)."""
    def num(x: float) -> str:
        return "n/a" if pd.isna(x) else f"{x:.3f}"

    def steps(x: float) -> str:
        return "not reached" if pd.isna(x) else f"{x:.0f}"

    head = progress(tests)
    head += "" if head == FINAL else ", no conclusion"
    out = [f"# SmolLM2-135M-Instruct, addition of 1-50: GRPO against λ-GRPO ({head})", "",
           "Written by `python analysis/experiments/real_model.py report` from the committed runs. `val_auc` is "
           "the mean validation accuracy over the 15 evaluation points (steps 10-150), the final accuracy one "
           "evaluation after step 150; differences are λ-GRPO − GRPO of the same seed.", "",
           "## Per seed", "",
           "| seed | val_auc GRPO | val_auc λ-GRPO | difference | final GRPO | final λ-GRPO | steps_to_80 GRPO | "
           "steps_to_80 λ-GRPO |", "|---|---|---|---|---|---|---|---|"]
    for _, r in pairs.iterrows():
        out.append(f"| {int(r['seed'])} | {num(r['val_auc_grpo'])} | {num(r['val_auc_lambda'])} | "
                   f"{r['val_auc_difference']:+.3f} | {num(r['final_val_accuracy_grpo'])} | "
                   f"{num(r['final_val_accuracy_lambda'])} | {steps(r['steps_to_80_grpo'])} | "
                   f"{steps(r['steps_to_80_lambda'])} |")
    out += ["", "## Paired tests (exact two-sided Wilcoxon signed-rank; bootstrap 95 % intervals of the mean)", "",
            "| metric | pairs | n after ties | GRPO mean [95 % CI] | λ-GRPO mean [95 % CI] | difference [95 % CI] | "
            "λ better | p | smallest p possible |", "|---|---|---|---|---|---|---|---|---|"]
    for _, t in tests.iterrows():
        out.append(f"| {t['metric']} | {int(t['pairs'])} | {int(t['wilcoxon_n'])} | {num(t['grpo_mean'])} "
                   f"[{num(t['grpo_lower'])}, {num(t['grpo_upper'])}] | {num(t['lambda_mean'])} "
                   f"[{num(t['lambda_lower'])}, {num(t['lambda_upper'])}] | {t['difference_mean']:+.3f} "
                   f"[{num(t['difference_lower'])}, {num(t['difference_upper'])}] | {int(t['lambda_better'])} of "
                   f"{int(t['pairs'])} | {num(t['wilcoxon_p'])} | {num(t['wilcoxon_floor'])} |")
    out += ["", f"steps_to_80 counts a run that never reaches the threshold as step {censor:.0f}; only val_auc is tested "
            "(α = 0.05), the others are descriptive.", ""]
    if len(verdict):
        out += ["## Reading (pre-registered rules, primary metric)", "",
                "| power bound | minimum detectable effect | reading |", "|---|---|---|"]
        out += [f"| {v['bound']} | {v['mde']:.3f} | {v['reading']} |" for _, v in verdict.iterrows()]
        out.append("")
    if firmness is not None and len(firmness):
        f = firmness.iloc[0]
        out += ["## How firm (after the runs, not pre-registered)", "",
                f"The {int(f['pairs'])} paired val_auc differences have a standard deviation of {f['sigma_d']:.3f}; "
                f"with it the pre-registered power formula gives a minimum detectable effect of {f['mde']:.3f} "
                f"(z = {f['z']:.2f}), to set beside the floor and ceiling above, fixed before the runs. Leaving one "
                f"seed out, the mean difference ranges from {f['loo_min']:+.3f} to {f['loo_max']:+.3f} "
                f"({int(f['loo_flips'])} of {int(f['pairs'])} with the other sign than {f['difference_mean']:+.3f}).",
                ""]
    if len(condition):
        holds = "holds" if condition["below"].any() else "does not hold"
        out += ["## Task condition", "",
                f"A GRPO seed still below {CONDITION_ACCURACY} validation accuracy after step {CONDITION_STEP}: "
                f"{holds} (" + ", ".join(f"seed {int(c['seed'])}: {c['val_accuracy']:.3f}"
                                          for _, c in condition.iterrows()) + ").", ""]
    if overlap is not None and len(overlap):
        window = int(overlap["window"].iloc[0])
        seeds = int(overlap["seeds"].min())
        out += [f"## Overlap over training (descriptive; {seeds} seeds per algorithm)", "",
                f"Window means of the first and the last {window} steps: the mean over seeds, then the smallest and "
                f"the largest seed in brackets. The peak is the largest {window}-step running mean of the seed means, "
                "at the last step of its window.", "",
                "| metric | algorithm | first steps | last steps | peak (step) |", "|---|---|---|---|---|"]
        for _, o in overlap.sort_values(["metric", "algorithm"]).iterrows():
            out.append(f"| {o['metric']} | {o['algorithm']} | {num(o['start'])} [{num(o['start_min'])}, "
                       f"{num(o['start_max'])}] | {num(o['end'])} [{num(o['end_min'])}, {num(o['end_max'])}] | "
                       f"{num(o['peak'])} ({steps(o['peak_step'])}) |")
        out.append("")
    return "\n".join(out)


def overlap_seeds(keep: Path) -> pd.DataFrame:
    """Per algorithm, seed and step: the live overlap metrics and the validation reward of each kept run.

    Only seeds whose runs of both algorithms are kept count, so the two algorithms are described over the same
    seeds (a run whose pair is still training joins when its pair is kept)."""
    from prm_probe.core.runs import load_run

    paired = [s for s in SEEDS if all((keep / f"{arm}_s{s}" / "config.json").exists() for arm in ARMS)]
    parts = []
    for folder in [keep / f"{arm}_s{s}" for s in paired for arm in ARMS]:
        r = load_run(folder)
        m = r.metrics[["step", *[c for c in OVERLAP if c in r.metrics]]].copy()
        m = m.merge(r.validation[["step", "val_reward_mean", "val_accuracy"]], on="step", how="left")
        m.insert(0, "algorithm", r.algorithm)
        m.insert(1, "seed", r.seed)
        parts.append(m)
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()


def overlap_frame(keep: Path) -> pd.DataFrame:
    """Per algorithm and step: the mean over seeds (complete pairs only, :func:`overlap_seeds`) of the live
    overlap metrics and of the validation reward; ``seeds`` counts the runs averaged."""
    return seed_means(overlap_seeds(keep))


def seed_means(frame: pd.DataFrame) -> pd.DataFrame:
    """:func:`overlap_seeds`'s per-seed rows averaged over seeds per algorithm and step, with ``seeds``."""
    if frame.empty:
        return frame
    means = frame.drop(columns="seed").groupby(["algorithm", "step"], as_index=False).mean()
    means["seeds"] = frame.groupby(["algorithm", "step"]).size().to_numpy()
    return means


def overlap_summary(per_seed: pd.DataFrame, window: int = 10) -> pd.DataFrame:
    """The numbers the overlap paragraph quotes, one row per algorithm and metric.

    ``start`` and ``end`` are window means over the first and the last ``window`` steps (steps 1-10 and 141-150 of a
    150-step run, counted after N optimiser steps as the validation points are): the mean over seeds of each seed's
    window mean, with the smallest and largest seed. ``peak`` is the maximum of the ``window``-step running mean of
    the seed means, and ``peak_step`` the last step of that window.

    Args:
        per_seed: :func:`overlap_seeds` (``algorithm, seed, step`` and the metric columns; ``step`` from 0).
    """
    rows = []
    cols = [c for c in OVERLAP if c in per_seed]
    for algorithm, part in per_seed.groupby("algorithm"):
        steps = np.sort(part["step"].unique())
        first, last = steps[:window], steps[-window:]
        mean = part.groupby("step")[cols].mean().sort_index()
        running = mean.rolling(window, min_periods=window).mean()
        for col in cols:
            start = part[part["step"].isin(first)].groupby("seed")[col].mean()
            end = part[part["step"].isin(last)].groupby("seed")[col].mean()
            peak = running[col]
            rows.append({"algorithm": algorithm, "metric": col, "seeds": part["seed"].nunique(),
                         "start": start.mean(), "start_min": start.min(), "start_max": start.max(),
                         "end": end.mean(), "end_min": end.min(), "end_max": end.max(),
                         "peak": peak.max(), "peak_step": int(peak.idxmax()) + 1 if peak.notna().any() else None,
                         "window": window})
    return pd.DataFrame(rows)


def draw_overlap(frame: pd.DataFrame, out: Path, window: int = 10) -> list[Path]:
    """The paper's 2 x 3 overlap figure on the real model (rows: algorithms; a ``window``-step running mean of the
    seed means, validation reward at its points), and a second figure with F1, F2, F3 and the gradient-mass ratio."""
    import matplotlib.pyplot as plt

    from prm_probe.views.plots import ALGORITHM_COLORS, plot_overlap_dynamics, save_figure, theme

    smooth = frame.copy()
    smooth["step"] = smooth["step"] + 1  # after N optimiser steps, as the validation points are counted
    cols = [c for c in OVERLAP if c in smooth]
    smooth[cols] = smooth.groupby("algorithm")[cols].transform(lambda s: s.rolling(window, min_periods=1).mean())
    paths = []
    with theme():
        fig = plot_overlap_dynamics(smooth, row="algorithm")
        fig.suptitle(f"SmolLM2-135M-Instruct, addition of 1-50: overlap over training (mean over seeds, "
                     f"{window}-step running mean)", fontsize=10)
        paths += save_figure(fig, out / "overlap_dynamics_smollm2", close=True)
        panels = [("nontrivial_fraction", "F1: groups with a shared prefix"),
                  ("proper_branching_fraction", "F2: groups that branch"),
                  ("informative_branching_fraction", "F3: branching where rewards differ"),
                  ("gradient_mass_ratio", "gradient-mass ratio Σ1/|λ| / Σ|y|")]
        fig, axes = plt.subplots(1, 4, figsize=(13, 3.0), layout="constrained")
        for ax, (col, title) in zip(axes, panels, strict=True):
            for algorithm, part in smooth.groupby("algorithm"):
                if col in part:
                    ax.plot(part["step"], part[col], label=algorithm, color=ALGORITHM_COLORS.get(algorithm))
            ax.set_title(title, fontsize=9)
            ax.set_xlabel("training step")
        axes[0].legend()
        fig.suptitle(f"SmolLM2-135M-Instruct, addition of 1-50: F1-F3 and gradient mass over training (mean over "
                     f"seeds, {window}-step running mean)", fontsize=10)
        paths += save_figure(fig, out / "overlap_fractions_smollm2", close=True)
    return paths


def quality_summary(folder: Path) -> pd.DataFrame:
    """One row per finished node table ``<run>_<first|last>.csv`` in ``folder``: the overall summary of prm-quality.

    A node table is written batch by batch while it is measured (so a rerun resumes); only one whose per-token
    table ``<run>_<point>_tokens.csv`` exists, written last, is finished. Unfinished ones are left out and logged.
    """
    from prm_probe.core.prm_quality import prm_quality_summary

    rows = []
    for path in sorted(folder.glob("grpo_s*_*.csv")):
        if path.stem.endswith(("_first", "_last")):
            if not path.with_name(f"{path.stem}_tokens.csv").exists():
                log.info("leaving out %s: still being measured (rerun `quality` to finish it)", path.name)
                continue
            run, point = path.stem.rsplit("_", 1)
            overall = prm_quality_summary(pd.read_csv(path))["overall"].iloc[0].to_dict()
            rows.append({"run": run, "point": point, **overall})
    return pd.DataFrame(rows)


def report(args: argparse.Namespace) -> None:
    """Tables, the paired test and the figures, from the committed copies only."""
    from prm_probe.views.compare import compare_runs

    keep = args.keep_dir / "runs"
    config = comparison_config(args, 0, ARMS["grpo"])  # the steps and evaluation schedule every run shares
    planned = int(config["steps"])
    folders = check_kept(keep, lambda seed, weighting: comparison_config(args, seed, weighting))
    pairing = pairing_check(keep)
    if len(pairing) and not pairing["paired"].all():
        bad = ", ".join(str(s) for s in pairing.loc[~pairing["paired"], "seed"])
        raise SystemExit(f"error: the two runs of seed {bad} sampled different first steps, so they are no pair "
                         "(another seed, data order or start); retrain them with the config file's settings")
    rows = run_rows(keep, planned)
    data = args.figures / "data"
    data.mkdir(parents=True, exist_ok=True)
    rows.to_csv(data / "real_model_runs.csv", index=False)
    pairing.to_csv(data / "real_model_pairing.csv", index=False)
    condition = task_condition(keep)
    condition.to_csv(data / "real_model_condition.csv", index=False)
    pairs = pair_table(rows, planned)
    pairs.to_csv(data / "real_model_pairs.csv", index=False)
    val_every = int(config["schedule"]["val_every"]) or planned
    tests = paired_tests(rows, planned, censor=planned + val_every)
    tests.to_csv(data / "real_model_test.csv", index=False)
    power_path = data / "real_model_power.csv"
    verdict = pd.DataFrame()
    if power_path.exists() and len(tests):
        verdict = reading(tests.set_index("metric").loc["val_auc"], pd.read_csv(power_path))
        verdict.to_csv(data / "real_model_reading.csv", index=False)
    per_seed = overlap_seeds(keep)
    frame = seed_means(per_seed)
    frame.to_csv(data / "real_model_overlap.csv", index=False)
    overlap = overlap_summary(per_seed) if len(per_seed) else pd.DataFrame()
    overlap.to_csv(data / "real_model_overlap_summary.csv", index=False)
    firmness = sensitivity(pairs)
    firmness.to_csv(data / "real_model_sensitivity.csv", index=False)
    (args.figures / "real_model").mkdir(parents=True, exist_ok=True)
    (args.figures / "real_model" / "result.md").write_text(
        result_markdown(pairs, tests, verdict, condition, planned + val_every, overlap, firmness), encoding="utf-8")
    if len(frame):
        draw_overlap(frame, args.figures)
    comparison = compare_runs(folders, metric="val_accuracy", paired=True)
    comparison.write(args.figures / "real_model")
    if (args.keep_dir / "quality").exists():
        quality_summary(args.keep_dir / "quality").to_csv(data / "real_model_prm_quality.csv", index=False)
        tokens = sorted((args.keep_dir / "quality").glob("*_tokens.csv"))
        if tokens:
            pd.concat([pd.read_csv(p) for p in tokens]).to_csv(data / "real_model_prm_quality_tokens.csv", index=False)
    log.info("%s\n%s\n%s\n%s\n%s", progress(tests), rows.to_string(index=False), tests.to_string(index=False),
             condition.to_string(index=False), verdict.to_string(index=False))


# ---------------------------------------------------------------------------------------------------- CLI


def _overrides(items: Sequence[str]) -> dict[str, Any]:
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"error: --set {item!r}; expected KEY=VALUE; e.g. --set model.name=tiny")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("stage", choices=["calibrate", "run", "quality", "report"])
    parser.add_argument("--seeds", type=lambda s: [int(x) for x in s.split(",")], default=list(SEEDS),
                        help="comma-separated seeds of `run` (default 0-5)")
    parser.add_argument("--steps", type=int, default=None, help="steps (default: the config file's; 60 to calibrate)")
    parser.add_argument("--workers", type=int, default=2, help="runs at a time, one thread each (default 2)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="a setting over the config file, written into every run's config.json")
    parser.add_argument("--runs-dir", type=Path, default=RUNS, help=f"where runs train (default {RUNS})")
    parser.add_argument("--keep-dir", type=Path, default=KEEP, help=f"the committed copies (default {KEEP})")
    parser.add_argument("--figures", type=Path, default=FIGURES, help=f"report's output root (default {FIGURES})")
    args = parser.parse_args(argv)
    args.set = _overrides(args.set)
    logging.basicConfig(level=logging.WARNING, format="%(message)s", stream=sys.stderr)
    log.setLevel(logging.INFO)  # this driver's stages; libraries stay at warnings
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    {"calibrate": calibrate, "run": run, "quality": quality, "report": report}[args.stage](args)


if __name__ == "__main__":
    main()
