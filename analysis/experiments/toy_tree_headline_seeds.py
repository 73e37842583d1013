"""Does the headline move when seeds are added? The tabular cell SGD lr 1, n = 1, r_neg = −1 at 200 seeds.

Table 1 runs 60 seeds per cell. This runs the headline cell with seeds 0–199 (the lockstep engine; seeds 0–59
are the Table 1 runs again, bit for bit) and reports both outcome metrics, their paired difference and the
converged counts over the first 20, 40, 60, 100, 150 and 200 seeds, with 95 % bootstrap intervals.

    python analysis/experiments/toy_tree_headline_seeds.py     # about 10 minutes on 2 CPU cores; resumable

Writes figures/data/toy_tree_headline_seeds.csv and figures/data/toy_tree_headline_outcomes.csv (one row per
run); the work folder is data/runs/toy-tree-headline.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

from prm_probe.experiments.sweeps import run_outcomes, run_specs, target_curves, toy_tree_specs, toy_tree_table

ROOT = Path(__file__).resolve().parents[2]
PREFIXES = (20, 40, 60, 100, 150, 200)


def main() -> int:
    specs = toy_tree_specs(model="tabular", settings=(("sgd", 1.0),), cells=((1, -1.0),), seeds=range(max(PREFIXES)),
                           prefix="headline", rollouts_every=0)
    work = ROOT / "data" / "runs" / "toy-tree-headline"
    run_specs(specs, work, workers=2, progress=True)
    outcomes = run_outcomes(target_curves(specs, work))
    outcomes.to_csv(ROOT / "figures" / "data" / "toy_tree_headline_outcomes.csv", index=False)
    rows = [toy_tree_table(outcomes[outcomes["seed"] < k], by=("model",)).assign(first_seeds=k) for k in PREFIXES]
    table = pd.concat(rows, ignore_index=True)
    cols = ["first_seeds", "GRPO_freq50", "GRPO_freq50_lo", "GRPO_freq50_hi", "λ-GRPO_freq50", "delta_freq50",
            "delta_freq50_lo", "delta_freq50_hi", "GRPO_final", "λ-GRPO_final", "delta_final", "delta_final_lo",
            "delta_final_hi", "p_final", "n_final", "GRPO_converged", "λ-GRPO_converged"]
    table[cols].to_csv(ROOT / "figures" / "data" / "toy_tree_headline_seeds.csv", index=False)
    pd.set_option("display.width", 250)
    print(table[cols].to_string(index=False, float_format=lambda x: f"{x:.3g}"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
