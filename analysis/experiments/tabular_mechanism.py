"""Why Adam removes λ-GRPO's effect on the tabular toy tree: both algorithms' updates, measured on the same batches.

For the cell n = 1, r_neg = −1 (the trap is T's first action: under the uniform policy the MC value of that
opening is −0.75 against 0.7 for the other), at SGD lr 1 (where λ-GRPO's effect is largest) and at Adam lr 0.01
and 0.1 (where it is near zero), 20 seeds of each algorithm, 250 steps, with the lockstep engine: every step
gives, from the same batch, GRPO's and λ-GRPO's gradients and the updates their optimisers make (the run's own
optimiser, and a shadow one that has seen the other weighting's gradients along the same trajectory).

Metrics, fixed before the runs (per run, over steps 0–49, where the trap is entered or avoided: ratios of the
window's mean update norms, cosines and agreement as window means; then the mean over seeds with a 95 %
bootstrap interval):
  root_ratio    λ-GRPO's root-row update norm ÷ GRPO's, from the same batches (how much λ slows the trap row);
  target_ratio  the same for the rows below T's first action (the subtree that must learn T);
  speed_grpo / speed_lambda   each algorithm's own root-row ÷ subtree update norm (the trap row's speed
                relative to the subtree);
  cos_update, cos_grad        cosine between the two algorithms' updates / gradients over the whole table;
  root_sign_agree             share of steps where the two root-row updates point the same way.

    python analysis/experiments/tabular_mechanism.py            # about 5 minutes on 2 CPU cores

Writes figures/data/tabular_mechanism.csv.gz (one row per run and step, every 2nd step),
figures/data/tabular_mechanism_summary.csv and figures/tabular_mechanism.png/.pdf.
"""

from __future__ import annotations

import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[2]
SETTINGS = (("sgd", 1.0), ("adam", 0.01), ("adam", 0.1))
SEEDS = range(20)
WINDOW = 50


def one(args: tuple[str, float, int, str]) -> pd.DataFrame:
    import torch

    from prm_probe.experiments.mechanism import update_trace
    from prm_probe.experiments.sweeps import toy_config
    from prm_probe.training.config import config_from_dict

    torch.set_num_threads(1)
    optimizer, lr, seed, weighting = args
    cfg = config_from_dict(toy_config(model="tabular", n=1, r_neg=-1.0, seed=seed, weighting=weighting, lr=lr,
                                      optimizer=optimizer, rollouts_every=0))
    return update_trace(cfg, {"setting": f"{optimizer} lr {lr:g}", "seed": seed})


def summarise(trace: pd.DataFrame) -> pd.DataFrame:
    from prm_probe.views.statistics import bootstrap_mean_ci

    early = trace[trace["step"] < WINDOW]
    norms = [f"upd_{g}_{a}" for g in ("root", "target") for a in ("grpo", "lambda")]
    per_run = early.groupby(["setting", "algorithm", "seed"], sort=False)[
        [*norms, "cos_update", "cos_grad", "root_sign_agree"]].mean().reset_index()
    with np.errstate(divide="ignore", invalid="ignore"):  # ratios of the window's mean norms, per run
        per_run["root_ratio"] = per_run["upd_root_lambda"] / per_run["upd_root_grpo"]
        per_run["target_ratio"] = per_run["upd_target_lambda"] / per_run["upd_target_grpo"]
        per_run["speed_grpo"] = per_run["upd_root_grpo"] / per_run["upd_target_grpo"]
        per_run["speed_lambda"] = per_run["upd_root_lambda"] / per_run["upd_target_lambda"]
    metrics = ["root_ratio", "target_ratio", "speed_grpo", "speed_lambda", "cos_update", "cos_grad",
               "root_sign_agree"]
    rows = []
    for (setting, algorithm), part in per_run.groupby(["setting", "algorithm"], sort=False):
        row = {"setting": setting, "trajectory": algorithm, "runs": len(part)}
        for m in metrics:
            v = part[m].replace([np.inf, -np.inf], np.nan).dropna().to_numpy()
            row[m] = float(v.mean()) if v.size else float("nan")
            row[f"{m}_lo"], row[f"{m}_hi"] = bootstrap_mean_ci(v)
        rows.append(row)
    return pd.DataFrame(rows)


def main() -> int:
    from prm_probe.views.plots import plot_update_mechanism, save_figure, theme

    jobs = [(o, lr, s, w) for o, lr in SETTINGS for s in SEEDS for w in ("uniform", "process_set")]
    with ProcessPoolExecutor(max_workers=2) as pool:
        trace = pd.concat(list(pool.map(one, jobs, chunksize=4)), ignore_index=True)
    data = ROOT / "figures" / "data"
    trace[trace["step"] % 2 == 0].round(6).to_csv(data / "tabular_mechanism.csv.gz", index=False)
    summary = summarise(trace)  # from the full trace (the committed file holds every 2nd step)
    summary.round(5).to_csv(data / "tabular_mechanism_summary.csv", index=False)
    with theme():
        fig = plot_update_mechanism(trace)
        fig.suptitle("tabular toy tree, n = 1, r_neg = −1: GRPO's and λ-GRPO's updates from the same batches "
                     "(20 seeds each)", fontsize=10)
        save_figure(fig, ROOT / "figures" / "tabular_mechanism")
    pd.set_option("display.width", 200)
    print(summary[["setting", "trajectory", "runs", "root_ratio", "target_ratio", "speed_grpo", "speed_lambda",
                   "cos_update", "cos_grad", "root_sign_agree"]].to_string(index=False, float_format="%.3f"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
