"""Which task makes SmolLM2-135M-Instruct learn slowly enough to tell GRPO and λ-GRPO apart? (issue: a pre-registered
real-model experiment). For each candidate task, 32 groups of G = 8 from the untrained model (train split, seed 0,
64 new tokens, temperature 1, the chat template): mean reward, the share of groups whose rewards differ (only those
carry a gradient), and the overlap statistics. The wanted task starts at a mean reward of 0.05–0.35 with at least a
quarter of its groups unequal.

    python analysis/experiments/real_model_task_probe.py      # about 25 min on 2 CPU cores; resumable

Writes figures/data/real_model_task_probe.csv (one row per candidate); the sampled logs stay in
data/runs/task-probe/ (not committed).
"""

import json
import time
from pathlib import Path

import pandas as pd

from prm_probe.core.stats import overlap_stats
from prm_probe.training.collect import sample_log

ROOT = Path(__file__).resolve().parents[2]
RUNS = ROOT / "data" / "runs" / "task-probe"
OUT = ROOT / "figures" / "data" / "real_model_task_probe.csv"
GROUPS, G, TOKENS = 32, 8, 64

#: name -> (task, options)
CANDIDATES = {
    "add-2digit": ("arithmetic", {"operations": [1, 1], "operands": [10, 99], "operators": "+"}),
    "mul-2digit": ("arithmetic", {"operations": [1, 1], "operands": [10, 99], "operators": "*"}),
    "addsub-2op": ("arithmetic", {"operations": [2, 2], "operands": [2, 20], "operators": "+-"}),
    "arith-default": ("arithmetic", {}),
    "countdown": ("countdown", {}),
    # easier ones, after the five above all started below 0.05
    "add-1to20": ("arithmetic", {"operations": [1, 1], "operands": [1, 20], "operators": "+"}),
    "add-3terms-1digit": ("arithmetic", {"operations": [2, 2], "operands": [1, 9], "operators": "+"}),
    "sub-1digit": ("arithmetic", {"operations": [1, 1], "operands": [1, 9], "operators": "-"}),
    # between the two: operands up to 50 and 30, so that learning the sums (not only the format) takes time
    "add-1to50": ("arithmetic", {"operations": [1, 1], "operands": [1, 50], "operators": "+"}),
    "add-1to30": ("arithmetic", {"operations": [1, 1], "operands": [1, 30], "operators": "+"}),
}


def main() -> None:
    RUNS.mkdir(parents=True, exist_ok=True)
    timing = RUNS / "times.json"  # each log's sampling time, kept for reruns that only recompute the table
    times = json.loads(timing.read_text()) if timing.exists() else {}
    rows = []
    for name, (task, options) in CANDIDATES.items():
        log = RUNS / f"{name}.parquet"
        if not log.exists():
            t0 = time.perf_counter()
            sample_log("smollm2-135m", task, log, groups=GROUPS, group_size=G, split="train", seed=0,
                       max_new_tokens=TOKENS, temperature=1.0, device="cpu", task_options=options)
            times[name] = round(time.perf_counter() - t0, 1)
            timing.write_text(json.dumps(times, indent=1))
        seconds = times.get(name, float("nan"))
        stats = overlap_stats(log)
        s, groups = stats.summary(), stats.groups
        rows.append({"candidate": name, "task": task, "options": str(options), "groups": len(groups),
                     "group_size": G, "max_new_tokens": TOKENS, "mean_reward": float(groups["reward_mean"].mean()),
                     "unequal_group_share": float((groups["reward_std"] > 0).mean()),
                     "nontrivial_fraction": s["nontrivial_fraction"],
                     "proper_branching_fraction": s["proper_branching_fraction"],
                     "informative_branching_fraction": float(groups["informative_branching"].mean()),
                     "path_depth_mean": s["path_depth_mean"],
                     "intermediate_proportion_mean": s["intermediate_proportion_mean"],
                     "gradient_mass_ratio": s["gradient_mass_ratio"], "sample_seconds": seconds})
        print(rows[-1])
        pd.DataFrame(rows).to_csv(OUT, index=False)
    print("wrote", OUT)


if __name__ == "__main__":
    main()
