"""Check the lockstep engine against the trainer on every tabular run the trainer made.

The tabular Table 1 (figures/data/toy_tree_outcomes.csv.gz) is run with the lockstep engine
(prm_probe/experiments/lockstep.py), which takes the trainer's steps without its overhead. Before the engine
existed, the trainer itself ran seeds 0–19 of the same sweep (2026-12-02); their per-run outcomes are kept in
data/experiments/toy-tree/tabular/trainer_outcomes.csv.gz. This script compares the two run by run: the sampled
frequency of T over the last 50 steps must be identical (same samples), the exact π(T) equal to float precision.

    python analysis/experiments/toy_tree_engine_check.py      # reads committed files only; a second

Writes figures/data/toy_tree_engine_check.csv (one row: runs compared, identical frequencies, largest |Δ π(T)|).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[2]


def main() -> int:
    trainer = pd.read_csv(ROOT / "data" / "experiments" / "toy-tree" / "tabular" / "trainer_outcomes.csv.gz")
    engine = pd.read_csv(ROOT / "figures" / "data" / "toy_tree_outcomes.csv.gz")
    both = trainer.merge(engine[engine["model"] == "tabular"], on="run", suffixes=("_trainer", "_engine"))
    same_freq = (both["target_frequency_trainer"] == both["target_frequency_engine"])
    gap = (both["final_target_probability_trainer"] - both["final_target_probability_engine"]).abs()
    window = (both["target_probability_trainer"] - both["target_probability_engine"]).abs()
    row = {"runs_by_trainer": len(trainer), "runs_compared": len(both), "identical_freq50": int(same_freq.sum()),
           "max_abs_diff_final_pi": float(gap.max()), "max_abs_diff_window_pi": float(window.max()),
           "same_converged": int((both["converged_trainer"] == both["converged_engine"]).sum())}
    pd.DataFrame([row]).to_csv(ROOT / "figures" / "data" / "toy_tree_engine_check.csv", index=False)
    print(pd.DataFrame([row]).to_string(index=False))
    if len(both) < len(trainer) or not same_freq.all() or gap.max() > 1e-5:
        print("the engine does not reproduce the trainer's runs", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
