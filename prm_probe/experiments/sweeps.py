"""The paper's experiments as resumable sweeps of independent training runs, run in parallel processes.

* :func:`toy_tree_specs` — Table 1 of the paper (docs/science.md §7.1): n ∈ {1, 2} × r_neg ∈ {−0.5, −1.0, −1.5},
  GRPO and λ-GRPO, G = 16, 250 steps, at one or more optimiser settings; the metric is the frequency of the
  target path T among the samples of the last 50 steps (and the exact π(T), which the trainer logs).
  :func:`calibration_specs` is the learning-rate calibration on the no-trap control; :func:`run_outcomes`,
  :func:`toy_tree_table` and :func:`calibrated_setting` summarise finished runs.
* :func:`overlap_dynamics` — vanilla GRPO on a reasoning task at two group sizes, logging the overlap
  statistics per step (docs/science.md §6.5, §7.2).

Every run is an ordinary run folder under ``<out>/runs/<name>``; a sweep interrupted half-way resumes and
skips the runs it already finished. Runs are independent, so they go to a process pool (one torch thread
each). This module only schedules and summarises; training is ``trainer.train``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prm_probe.core.files import read_jsonl
from prm_probe.core.runs import RunFolder
from prm_probe.core.weightings import ALGORITHM_LABELS, PROCESS_SET, UNIFORM
from prm_probe.errors import ConfigError

__all__ = [
    "CELLS",
    "ENGINES",
    "OUTCOME_METRICS",
    "PAPER_TABLE1",
    "RunSpec",
    "calibrated_setting",
    "calibration_specs",
    "overlap_specs",
    "run_outcomes",
    "run_specs",
    "target_curves",
    "toy_config",
    "toy_tree_specs",
    "toy_tree_table",
    "uses_lockstep",
]

logger = logging.getLogger(__name__)

#: Table 1 of the paper (docs/science.md §7.1): (n, r_neg) -> (GRPO, λ-GRPO) target frequency, last 50 steps.
PAPER_TABLE1 = {
    (1, -0.5): (0.3995, 0.5663), (1, -1.0): (0.0000, 0.7535), (1, -1.5): (0.2000, 0.4463),
    (2, -0.5): (0.1980, 0.4292), (2, -1.0): (0.0488, 0.3612), (2, -1.5): (0.0000, 0.3820),
}
#: The six (n, r_neg) cells of Table 1, and the cell whose per-seed curves the paper draws.
CELLS: tuple[tuple[int, float], ...] = tuple(PAPER_TABLE1)
FIGURE_CELL = (1, -1.0)
#: The no-trap control of the learning-rate calibration: every non-target path gets +0.7 (r_neg = r_other).
NO_TRAP = 0.7
#: A run "converges on T" when its exact target probability is at least this at its last step.
CONVERGED = 0.5

#: Algorithm key -> (weighting, renormalise, label, run-name part). ``renormalised`` is λ-GRPO divided by the summed
#: weights instead of the token count: a labelled deviation that removes λ-GRPO's smaller total step.
ALGORITHM_SPECS = {UNIFORM: (UNIFORM, False, ALGORITHM_LABELS[UNIFORM], "grpo"),
                   PROCESS_SET: (PROCESS_SET, False, ALGORITHM_LABELS[PROCESS_SET], "lambda"),
                   "renormalised": (PROCESS_SET, True, f"{ALGORITHM_LABELS[PROCESS_SET]} renormalised", "lambdarenorm")}
ALGORITHMS = {key: label for key, (_, _, label, _) in ALGORITHM_SPECS.items() if key != "renormalised"}


@dataclass(frozen=True)
class RunSpec:
    """One run of a sweep: its folder name, its config as nested dicts, and labels for the tables."""

    name: str
    config: dict[str, Any]
    labels: dict[str, Any] = field(default_factory=dict)


def toy_config(*, model: str, n: int, r_neg: float, seed: int, weighting: str, lr: float, optimizer: str,
               steps: int = 250, group_size: int = 16, rollouts_every: int = 1,
               renormalise: bool = False) -> dict[str, Any]:
    """The config of one toy-tree run (docs/science.md §7.1 and its [CHOICE] defaults): G = 16, one group per step,
    token-mean, μ = 1, β = 0, temperature 1, no gradient clipping, a checkpoint at the end only."""
    return {
        "seed": seed, "steps": steps, "device": "cpu",
        "model": {"name": model},
        "task": {"name": "toy-tree", "train_size": 1, "val_size": 1,
                 "options": {"depth": 4, "n": n, "r_neg": r_neg}},
        "sampling": {"group_size": group_size, "prompts_per_step": 1, "temperature": 1.0},
        "loss": {"weighting": weighting, "aggregation": "token_mean", "beta": 0.0, "mu": 1,
                 **({"renormalise": True} if renormalise else {})},
        "optim": {"optimizer": optimizer, "lr": lr, "max_grad_norm": 0.0},
        "schedule": {"val_every": 0, "save_every": 0, "keep_checkpoints": 1, "rollouts_every": rollouts_every},
    }


def toy_tree_specs(*, model: str = "tiny-gpt2", settings: Sequence[tuple[str, float]] = (("adam", 3e-4),),
                   cells: Sequence[tuple[int, float]] = CELLS, seeds: Iterable[int] = range(5), steps: int = 250,
                   group_size: int = 16, prefix: str = "table1", rollouts_every: int = 1,
                   algorithms: Sequence[str] = tuple(ALGORITHMS)) -> list[RunSpec]:
    """Every (optimiser setting, cell, seed, algorithm) of a toy-tree sweep (algorithms: keys of
    :data:`ALGORITHM_SPECS`).

    The two algorithms of one seed share the target path T, the initial weights and the first step's samples
    (the seed fixes all three), so their outcomes are paired.
    """
    specs = []
    seeds = list(seeds)
    for optimizer, lr in settings:
        for n, r_neg in cells:
            for seed in seeds:
                for algorithm in algorithms:
                    weighting, renormalise, label, short = ALGORITHM_SPECS[algorithm]
                    name = f"{prefix}_{optimizer}{lr:g}_n{n}_r{r_neg:g}_{short}_s{seed}"
                    cfg = toy_config(model=model, n=n, r_neg=r_neg, seed=seed, weighting=weighting, lr=lr,
                                     optimizer=optimizer, steps=steps, group_size=group_size,
                                     rollouts_every=rollouts_every, renormalise=renormalise)
                    specs.append(RunSpec(name, cfg, {"model": model, "optimizer": optimizer, "lr": lr, "n": n,
                                                     "r_neg": r_neg, "seed": seed, "algorithm": label}))
    return specs


def calibration_specs(*, model: str, settings: Sequence[tuple[str, float]], seeds: Iterable[int] = range(2),
                      steps: int = 250, rollouts_every: int = 1) -> list[RunSpec]:
    """GRPO on the no-trap control (every non-target path +0.7) at each setting: the calibration of §7.1."""
    return toy_tree_specs(model=model, settings=settings, cells=((1, NO_TRAP),), seeds=seeds, steps=steps,
                          prefix="calib", rollouts_every=rollouts_every, algorithms=(UNIFORM,))


def overlap_specs(*, group_sizes: Sequence[int] = (4, 12), steps: int = 60, task: str = "arithmetic",
                  model: str = "tiny", prompts_per_step: int = 4, max_new_tokens: int = 24, lr: float = 3e-3,
                  seed: int = 0, val_every: int = 5, task_options: dict | None = None,
                  val_size: int = 32) -> list[RunSpec]:
    """Vanilla GRPO at several group sizes, logging overlap statistics every step (docs/science.md §7.2).

    The paper used DeepSeek-R1-Distill-Qwen-1.5B on OpenRS with G ∈ {6, 36} for ~1,675 and ~275 steps;
    the defaults here are CPU-sized (a tiny model, G ∈ {4, 12}). ``--model``/``--group-sizes``/``--steps``
    reproduce the paper's settings on a GPU.
    """
    specs = []
    for g in group_sizes:
        cfg = {"seed": seed, "steps": steps, "model": {"name": model},
               "task": {"name": task, "val_size": val_size, "options": dict(task_options or {})},
               "sampling": {"group_size": g, "prompts_per_step": prompts_per_step, "max_new_tokens": max_new_tokens,
                            "temperature": 1.0},
               "loss": {"weighting": UNIFORM, "aggregation": "token_mean"},
               "optim": {"lr": lr}, "schedule": {"val_every": val_every}}
        specs.append(RunSpec(f"overlap_G{g}", cfg, {"group_size": g, "algorithm": "GRPO"}))
    return specs


def _finished(run_dir: Path, steps: int) -> bool:
    """A run is finished when its metrics reach ``steps`` (checkpoints are not needed: the tables read the metrics,
    so a sweep restored from committed ``config.json`` + ``metrics.jsonl`` files continues where it stopped)."""
    return len(read_jsonl(RunFolder(run_dir).metrics)) >= steps


#: How sweeps train their runs: ``auto`` steps the tabular policy with the lockstep engine (the trainer's
#: trajectory, ~5× faster; :mod:`prm_probe.experiments.lockstep`) and everything else with the trainer;
#: ``trainer`` uses the trainer for every run.
ENGINES = ("auto", "trainer")


def uses_lockstep(config: dict[str, Any], engine: str = "auto") -> bool:
    """Whether a sweep trains ``config`` with the lockstep engine (``engine`` one of :data:`ENGINES`)."""
    if engine not in ENGINES:
        raise ConfigError(f"engine {engine!r}; expected one of {', '.join(ENGINES)}; fix --engine")
    loss = config.get("loss", {})
    return (engine == "auto" and config.get("model", {}).get("name") == "tabular"
            and loss.get("mu", 1) == 1 and loss.get("beta", 0.0) == 0.0)


def run_one(run_dir: str, config: dict[str, Any], engine: str = "auto") -> str:
    """Train one run in a worker process (one torch thread); resume it if it was interrupted."""
    import shutil

    import torch

    from prm_probe.training.checkpoint import is_run_dir, latest_checkpoint
    from prm_probe.training.config import config_from_dict
    from prm_probe.training.trainer import train

    torch.set_num_threads(1)
    path = Path(run_dir)
    cfg = config_from_dict(config)
    if uses_lockstep(config, engine):
        from prm_probe.experiments.lockstep import train_lockstep

        if path.exists():
            shutil.rmtree(path)  # unfinished (metrics are written whole): a lockstep run takes a second
        train_lockstep(cfg, path)
        return run_dir
    if is_run_dir(path):
        if latest_checkpoint(path) is not None:
            train(cfg, path, resume=True)
            return run_dir
        shutil.rmtree(path)  # interrupted before its first checkpoint: start again
    train(cfg, path)
    return run_dir


def run_specs(specs: Sequence[RunSpec], out: str | os.PathLike, *, workers: int | None = None,
              progress: bool = False, engine: str = "auto") -> list[Path]:
    """Run every spec into ``out/runs/<name>`` (skipping finished ones), ``workers`` at a time, with ``engine``
    (:data:`ENGINES`)."""
    root = Path(out) / "runs"
    root.mkdir(parents=True, exist_ok=True)
    names = [s.name for s in specs]
    if len(set(names)) != len(names):
        raise ConfigError("sweep has duplicate run names; expected one folder per run; fix the sweep definition")
    todo = [s for s in specs if not _finished(root / s.name, int(s.config.get("steps", 0)))]
    logger.info("%d of %d runs to do in %s", len(todo), len(specs), root)
    workers = max(1, min(workers or os.cpu_count() or 1, len(todo) or 1))
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(specs), initial=len(specs) - len(todo), desc="runs", unit="run")
    if todo:
        if workers == 1:
            for s in todo:
                run_one(str(root / s.name), s.config, engine)
                if bar is not None:
                    bar.update(1)
        else:
            import multiprocessing as mp

            with ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context("spawn")) as pool:
                futures = [pool.submit(run_one, str(root / s.name), s.config, engine) for s in todo]
                for fut in as_completed(futures):
                    fut.result()
                    if bar is not None:
                        bar.update(1)
    if bar is not None:
        bar.close()
    return [root / s.name for s in specs]


def target_curves(specs: Sequence[RunSpec], out: str | os.PathLike):
    """Per run and step: the spec labels + ``run, step, target_frequency`` (share of the step's G samples that
    are T), ``target_probability`` (the exact π(T) of the policy that sampled the step; NaN if not logged) and
    ``gradient_mass_ratio`` (Σ 1/|λ| / Σ 1 of the step's group)."""
    import pandas as pd

    rows = []
    for s in specs:
        for rec in read_jsonl(RunFolder(Path(out) / "runs" / s.name).metrics):
            rows.append({**s.labels, "run": s.name, "step": rec["step"],
                         "target_frequency": rec.get("reward_target_mean", float("nan")),
                         "target_probability": rec.get("target_probability", float("nan")),
                         "gradient_mass_ratio": rec.get("gradient_mass_ratio", float("nan"))})
    return pd.DataFrame(rows)


def run_outcomes(curves, *, last: int = 50):
    """One row per run: its labels, then its outcome over its last ``last`` steps.

    Columns added: ``target_frequency`` (mean sampled frequency of T: the paper's metric),
    ``target_probability`` (mean exact π(T)), ``final_target_probability`` (π(T) at the last step),
    ``converged`` (final π(T) >= :data:`CONVERGED`), ``gradient_mass_ratio`` (mean over the whole run).
    """
    end = curves.groupby("run")["step"].transform("max")
    tail = curves[curves["step"] > end - last]
    labels = [c for c in curves.columns if c not in ("step", "target_frequency", "target_probability",
                                                     "gradient_mass_ratio")]
    out = tail.groupby(labels, as_index=False, dropna=False)[["target_frequency", "target_probability"]].mean()
    final = curves[curves["step"] == end].set_index("run")["target_probability"]
    out["final_target_probability"] = out["run"].map(final)
    out["converged"] = out["final_target_probability"] >= CONVERGED
    out["gradient_mass_ratio"] = out["run"].map(curves.groupby("run")["gradient_mass_ratio"].mean())
    return out


#: The two outcome metrics of a toy-tree run, each labelled for what it is: the paper's (the sampled frequency of T,
#: a window mean over the last 50 steps) and the exact probability π(T) of the policy at the run's last step.
OUTCOME_METRICS = {"freq50": ("target_frequency", "frequency of T among the samples of the last 50 steps (window "
                                                  "mean; the paper's metric)"),
                   "final": ("final_target_probability", "exact π(T) of the policy at the last step (final value)")}


def toy_tree_table(outcomes, *, by: Sequence[str] = ("model", "optimizer", "lr", "n", "r_neg")):
    """Table 1 from :func:`run_outcomes`: per ``by`` group, each algorithm's outcome over seeds, with intervals,
    converged counts and the paired test of λ-GRPO − GRPO, for each metric of :data:`OUTCOME_METRICS`.

    The two algorithms of one seed share T, the initial weights and the first step's samples, so they are paired.

    Returns:
        One row per group. For each metric M (``freq50``, ``final``) and algorithm A (``GRPO``, ``λ-GRPO``):
        ``A_M`` (mean over seeds) with ``A_M_lo``/``A_M_hi`` (95 % percentile bootstrap of the mean);
        ``delta_M`` (mean paired difference λ-GRPO − GRPO) with ``delta_M_lo``/``_hi`` (bootstrap over pairs);
        ``p_M`` (two-sided Wilcoxon signed-rank over the pairs), ``n_M`` (pairs left after dropping zero
        differences: the test's n) and ``floor_M`` (the smallest p possible with that n). Then ``A_converged``
        (seeds whose final π(T) >= 0.5), ``mass_ratio`` (λ-GRPO's mean gradient-mass ratio), ``seeds`` (pairs),
        and the paper's numbers (its metric is ``freq50``) where ``by`` holds (n, r_neg).
    """
    import pandas as pd

    from prm_probe.views.statistics import bootstrap_mean_ci, paired_wilcoxon

    by = [c for c in by if c in outcomes.columns]
    rows = []
    for key, part in outcomes.groupby(by, sort=True, dropna=False):
        key = key if isinstance(key, tuple) else (key,)
        g = part[part["algorithm"] == "GRPO"].set_index("seed").sort_index()
        lam = part[part["algorithm"] == "λ-GRPO"].set_index("seed").sort_index()
        both = g.index.intersection(lam.index)
        row = dict(zip(by, key, strict=True))
        for metric, (column, _) in OUTCOME_METRICS.items():
            for name, frame in (("GRPO", g), ("λ-GRPO", lam)):
                values = frame.loc[both, column].to_numpy(dtype=float)
                row[f"{name}_{metric}"] = float(values.mean()) if values.size else float("nan")
                row[f"{name}_{metric}_lo"], row[f"{name}_{metric}_hi"] = bootstrap_mean_ci(values)
            a, b = g.loc[both, column].to_numpy(dtype=float), lam.loc[both, column].to_numpy(dtype=float)
            row[f"delta_{metric}"] = float((b - a).mean()) if a.size else float("nan")
            row[f"delta_{metric}_lo"], row[f"delta_{metric}_hi"] = bootstrap_mean_ci(b - a)
            test = paired_wilcoxon(a, b)
            row[f"p_{metric}"], row[f"n_{metric}"], row[f"floor_{metric}"] = test["p"], test["n"], test["floor"]
        for name, frame in (("GRPO", g), ("λ-GRPO", lam)):
            row[f"{name}_converged"] = int(frame.loc[both, "converged"].sum())
        row["mass_ratio"] = lam["gradient_mass_ratio"].mean()
        row["seeds"] = len(both)
        if "n" in row and "r_neg" in row:
            paper = PAPER_TABLE1.get((int(row["n"]), float(row["r_neg"])), (float("nan"),) * 2)
            row.update({"paper_GRPO": paper[0], "paper_λ-GRPO": paper[1], "paper_delta": paper[1] - paper[0]})
        rows.append(row)
    return pd.DataFrame(rows)


def calibrated_setting(outcomes) -> tuple[str, float]:
    """The calibration's pick: the setting where GRPO's mean target frequency on the no-trap control is highest
    (ties: the smaller learning rate)."""
    means = outcomes.groupby(["optimizer", "lr"], as_index=False)["target_frequency"].mean()
    best = means.sort_values(["target_frequency", "lr"], ascending=[False, True]).iloc[0]
    return str(best["optimizer"]), float(best["lr"])
