"""prm-quality on the tabular toy tree at several training steps (issue: how good is GRPO's implicit PRM?).

Trains GRPO on the toy tree (n = 1, r_neg = -1) with the tabular policy and SGD lr 1 for 100 steps, keeping a
checkpoint every 25 steps; at the untrained policy and at steps 25, 50 and 100 samples 16 groups of 16 and
compares R̂ of every shared node with the exact value of its prefix (and a K = 64 Monte-Carlo estimate).

Run from the repository root:  python analysis/experiments/prm_quality_tabular.py  (about a minute on a CPU);
it writes figures/data/prm_quality_tabular.csv (one row per training step) and the node tables beside it.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

from prm_probe.cli import main as cli
from prm_probe.experiments.prm_quality import prm_quality, prm_quality_summary
from prm_probe.training.collect import sample_log

ROOT = Path(__file__).resolve().parents[2]
WORK = ROOT / "data" / "runs" / "prm-quality-tabular"
OPTIONS = {"n": 1, "r_neg": -1.0}


def run() -> pd.DataFrame:
    run_dir = WORK / "run"
    if not (run_dir / "checkpoints" / "step-000100").is_dir():
        code = cli(["train", "--model", "tabular", "--task", "toy-tree", "--set", "task.options.n=1", "--set",
                    "task.options.r_neg=-1.0", "--steps", "100", "--group-size", "16", "--prompts-per-step", "1",
                    "--set", "optim.optimizer=sgd", "--lr", "1.0", "--save-every", "25", "--set",
                    "schedule.keep_checkpoints=10", "--out", str(run_dir), "-q"])
        if code:
            sys.exit(code)
    rows, tables = [], []
    for step in (0, 25, 50, 100):
        ckpt = "tabular" if step == 0 else str(run_dir / "checkpoints" / f"step-{step:06d}" / "model")
        log = WORK / f"log-step{step}.parquet"
        sample_log(ckpt, "toy-tree", log, groups=16, group_size=16, split="train", seed=1, max_new_tokens=4,
                   task_options=OPTIONS)
        nodes = prm_quality(ckpt, log, rollouts=64, seed=0, max_nodes=1000)
        within = ((nodes["mc_value"] - nodes["exact_value"]).abs() <= 4 * nodes["mc_stderr"] + 1e-9).mean()
        summary = prm_quality_summary(nodes, "exact_value")["overall"].iloc[0].to_dict()
        rows.append({"train_step": step, **summary, "mc_within_4se": within})
        tables.append(nodes.assign(train_step=step))
    out = ROOT / "figures" / "data"
    out.mkdir(parents=True, exist_ok=True)
    frame = pd.DataFrame(rows)
    frame.to_csv(out / "prm_quality_tabular.csv", index=False)
    pd.concat(tables).to_csv(out / "prm_quality_tabular_nodes.csv.gz", index=False)
    return frame


if __name__ == "__main__":
    print(run().to_string(index=False))
