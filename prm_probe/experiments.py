"""The paper's experiments as resumable sweeps of independent training runs, run in parallel processes.

* :func:`toy_tree_sweep` — Table 1 of the paper (SCIENCE.md §7.1): n ∈ {1, 2} × r_neg ∈ {−0.5, −1.0, −1.5},
  5 seeds, GRPO and λ-GRPO, G = 16, 250 steps; the metric is the frequency of the target path T among the
  samples of the last 50 steps. Plus a sensitivity sweep over the learning rate and the optimiser.
* :func:`overlap_dynamics` — vanilla GRPO on a reasoning task at two group sizes, logging the overlap
  statistics per step (SCIENCE.md §6.5, §7.2).

Every run is an ordinary run folder under ``<out>/runs/<name>``; a sweep interrupted half-way resumes and
skips the runs it already finished. Runs are independent, so they go to a process pool (one torch thread
each). This module only schedules and summarises; training is ``trainer.train``.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prm_probe.errors import ConfigError

__all__ = [
    "PAPER_TABLE1",
    "RunSpec",
    "overlap_specs",
    "run_specs",
    "sensitivity_specs",
    "target_curves",
    "toy_tree_specs",
    "toy_tree_table",
]

logger = logging.getLogger(__name__)

#: Table 1 of the paper (SCIENCE.md §7.1): (n, r_neg) -> (GRPO, λ-GRPO) target frequency, last 50 steps.
PAPER_TABLE1 = {
    (1, -0.5): (0.3995, 0.5663), (1, -1.0): (0.0000, 0.7535), (1, -1.5): (0.2000, 0.4463),
    (2, -0.5): (0.1980, 0.4292), (2, -1.0): (0.0488, 0.3612), (2, -1.5): (0.0000, 0.3820),
}

ALGORITHMS = {"uniform": "GRPO", "process_set": "λ-GRPO"}


@dataclass(frozen=True)
class RunSpec:
    """One run of a sweep: its folder name, its config as nested dicts, and labels for the tables."""

    name: str
    config: dict[str, Any]
    labels: dict[str, Any] = field(default_factory=dict)


def _toy_config(*, n: int, r_neg: float, seed: int, weighting: str, steps: int, group_size: int, lr: float,
                optimizer: str, model: str) -> dict[str, Any]:
    return {
        "seed": seed, "steps": steps, "device": "cpu",
        "model": {"name": model},
        "task": {"name": "toy-tree", "train_size": 1, "val_size": 1,
                 "options": {"depth": 4, "n": n, "r_neg": r_neg}},
        "sampling": {"group_size": group_size, "prompts_per_step": 1, "temperature": 1.0},
        "loss": {"weighting": weighting, "aggregation": "token_mean", "beta": 0.0, "mu": 1},
        "optim": {"optimizer": optimizer, "lr": lr, "max_grad_norm": 0.0},
        "schedule": {"val_every": 0, "save_every": 0, "keep_checkpoints": 1},
    }


def toy_tree_specs(*, ns: Sequence[int] = (1, 2), r_negs: Sequence[float] = (-0.5, -1.0, -1.5),
                   seeds: Iterable[int] = range(5), steps: int = 250, group_size: int = 16, lr: float = 3e-4,
                   optimizer: str = "adam", model: str = "tiny-gpt2", prefix: str = "table1") -> list[RunSpec]:
    """The Table 1 sweep: every (n, r_neg, seed, algorithm)."""
    specs = []
    for n in ns:
        for r_neg in r_negs:
            for seed in seeds:
                for weighting, algo in ALGORITHMS.items():
                    name = f"{prefix}_n{n}_r{abs(r_neg):g}_{'lambda' if weighting == 'process_set' else 'grpo'}_s{seed}"
                    cfg = _toy_config(n=n, r_neg=r_neg, seed=seed, weighting=weighting, steps=steps,
                                      group_size=group_size, lr=lr, optimizer=optimizer, model=model)
                    specs.append(RunSpec(name, cfg, {"n": n, "r_neg": r_neg, "seed": seed, "algorithm": algo,
                                                     "lr": lr, "optimizer": optimizer}))
    return specs


def sensitivity_specs(*, settings: Sequence[tuple[str, float]] = (("adam", 1e-4), ("adam", 1e-3), ("sgd", 1e-2),
                                                                   ("sgd", 3e-2), ("sgd", 1e-1)),
                      n: int = 1, r_neg: float = -1.0, seeds: Iterable[int] = range(5), steps: int = 250,
                      group_size: int = 16, model: str = "tiny-gpt2") -> list[RunSpec]:
    """The same toy configuration over several optimisers and learning rates (an order of magnitude each).

    Adam at the calibrated 3e-4 is the Table 1 sweep itself, so it is not repeated here.
    """
    specs = []
    for optimizer, lr in settings:
        specs += toy_tree_specs(ns=(n,), r_negs=(r_neg,), seeds=seeds, steps=steps, group_size=group_size, lr=lr,
                                optimizer=optimizer, model=model, prefix=f"sens_{optimizer}_lr{lr:g}")
    return specs


def overlap_specs(*, group_sizes: Sequence[int] = (4, 12), steps: int = 60, task: str = "arithmetic",
                  model: str = "tiny", prompts_per_step: int = 4, max_new_tokens: int = 24, lr: float = 3e-3,
                  seed: int = 0, val_every: int = 5, task_options: dict | None = None,
                  val_size: int = 32) -> list[RunSpec]:
    """Vanilla GRPO at several group sizes, logging overlap statistics every step (SCIENCE.md §7.2).

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
               "loss": {"weighting": "uniform", "aggregation": "token_mean"},
               "optim": {"lr": lr}, "schedule": {"val_every": val_every}}
        specs.append(RunSpec(f"overlap_G{g}", cfg, {"group_size": g, "algorithm": "GRPO"}))
    return specs


def _finished(run_dir: Path, steps: int) -> bool:
    metrics = run_dir / "metrics.jsonl"
    if not metrics.is_file():
        return False
    lines = [x for x in metrics.read_text(encoding="utf-8").splitlines() if x.strip()]
    return len(lines) >= steps and (run_dir / "checkpoints").is_dir()


def _run_one(run_dir: str, config: dict[str, Any]) -> str:
    """Train one run in a worker process (one torch thread); resume it if it was interrupted."""
    import torch

    from prm_probe.checkpoint import is_run_dir, latest_checkpoint
    from prm_probe.config import config_from_dict
    from prm_probe.trainer import train

    torch.set_num_threads(1)
    path = Path(run_dir)
    cfg = config_from_dict(config)
    if is_run_dir(path):
        if latest_checkpoint(path) is not None:
            train(cfg, path, resume=True)
            return run_dir
        import shutil

        shutil.rmtree(path)  # interrupted before its first checkpoint: start again
    train(cfg, path)
    return run_dir


def run_specs(specs: Sequence[RunSpec], out: str | os.PathLike, *, workers: int | None = None,
              progress: bool = False) -> list[Path]:
    """Run every spec into ``out/runs/<name>`` (skipping finished ones), ``workers`` at a time."""
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
                _run_one(str(root / s.name), s.config)
                if bar is not None:
                    bar.update(1)
        else:
            import multiprocessing as mp

            with ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context("spawn")) as pool:
                futures = [pool.submit(_run_one, str(root / s.name), s.config) for s in todo]
                for fut in as_completed(futures):
                    fut.result()
                    if bar is not None:
                        bar.update(1)
    if bar is not None:
        bar.close()
    return [root / s.name for s in specs]


def target_curves(specs: Sequence[RunSpec], out: str | os.PathLike):
    """Per-run target-path frequency per step: columns = the spec labels + ``step, target_frequency``."""
    import pandas as pd

    rows = []
    for s in specs:
        metrics = Path(out) / "runs" / s.name / "metrics.jsonl"
        for line in metrics.read_text(encoding="utf-8").splitlines():
            if line.strip():
                rec = json.loads(line)
                rows.append({**s.labels, "run": s.name, "step": rec["step"],
                             "target_frequency": rec.get("reward_target_mean", float("nan"))})
    return pd.DataFrame(rows)


def toy_tree_table(curves, *, last: int = 50, by: Sequence[str] = ("n", "r_neg")):
    """Table 1: mean over seeds of each run's target frequency over its last ``last`` steps, with Δ.

    Returns:
        One row per ``by`` group: ``GRPO``, ``λ-GRPO``, ``delta`` (λ-GRPO − GRPO), the per-seed spread
        (``GRPO_sd``, ``λ-GRPO_sd``), the number of seeds, and the paper's numbers beside ours when ``by``
        is (n, r_neg).
    """
    import pandas as pd

    end = curves.groupby("run")["step"].transform("max")
    tail = curves[curves["step"] > end - last]
    per_run = tail.groupby([*by, "algorithm", "seed"], as_index=False)["target_frequency"].mean()
    stats = per_run.groupby([*by, "algorithm"])["target_frequency"].agg(["mean", "std", "count"]).unstack("algorithm")
    out = pd.DataFrame({
        "GRPO": stats[("mean", "GRPO")], "λ-GRPO": stats[("mean", "λ-GRPO")],
        "GRPO_sd": stats[("std", "GRPO")], "λ-GRPO_sd": stats[("std", "λ-GRPO")],
        "seeds": stats[("count", "GRPO")],
    }).reset_index()
    out["delta"] = out["λ-GRPO"] - out["GRPO"]
    if tuple(by) == ("n", "r_neg"):
        out["paper_GRPO"] = [PAPER_TABLE1.get((int(n), float(r)), (float("nan"),) * 2)[0]
                             for n, r in zip(out["n"], out["r_neg"], strict=True)]
        out["paper_λ-GRPO"] = [PAPER_TABLE1.get((int(n), float(r)), (float("nan"),) * 2)[1]
                               for n, r in zip(out["n"], out["r_neg"], strict=True)]
        out["paper_delta"] = out["paper_λ-GRPO"] - out["paper_GRPO"]
    return out
