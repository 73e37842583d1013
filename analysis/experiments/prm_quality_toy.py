"""prm-quality on the toy tree at several training steps, where the exact value of every prefix is known.

Trains GRPO on the toy tree (n = 1, r_neg = -1) for 100 steps with a checkpoint every 25, then at the
untrained policy and at steps 25, 50 and 100 samples 16 groups of 16 and compares each shared node's implied
step reward R̂(λ) with the exact value of its prefix under that checkpoint (and with a K = 64 Monte-Carlo
estimate, to check the estimator), node by node and token by token.

Every log is sampled with the run's task (its target path T included: the run records it, and sampling a run's
checkpoint keeps it whatever seed draws the samples), and the script checks that each log's recorded task is
the run's before it measures anything.

    python analysis/experiments/prm_quality_toy.py --model tabular     # SGD lr 1, about a minute
    python analysis/experiments/prm_quality_toy.py --model tiny-gpt2   # Adam 3e-4, a few minutes

Writes, for model M: figures/data/prm_quality_M.csv (one row per training step: the node summary against the
exact value, the MC check: |MC − V| within 4 exact standard errors (std/√K), over all nodes and over the nodes
whose value has non-zero variance, where the check is not trivially exact, and the same with the sample's own
standard error; and the per-token summary), figures/data/prm_quality_M_nodes.csv.gz and
..._by_size.csv (all steps), and figures/prm_quality_M.png/.pdf (step 25). Work files go to
data/runs/prm-quality-M/; a rerun reuses the trained run and the finished node tables.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from prm_probe.core.prm_quality import (
    prm_quality_summary,
    prm_quality_token_summary,
    prm_quality_tokens,
)
from prm_probe.core.rollouts import read_metadata
from prm_probe.experiments.sweeps import toy_config
from prm_probe.training.collect import sample_log
from prm_probe.training.prm_quality import measure_prm_quality
from prm_probe.training.tasks import log_task_identity, run_task_identity

ROOT = Path(__file__).resolve().parents[2]
OPTIONS = {"n": 1, "r_neg": -1.0}
#: Optimiser per model: the tabular policy's SGD rate of the demo, tiny-gpt2's calibrated Adam rate.
SETTINGS = {"tabular": ("sgd", 1.0), "tiny-gpt2": ("adam", 3e-4)}
STEPS = (0, 25, 50, 100)
#: The step drawn: mid-training, when the policy has moved but its groups still branch (tiny-gpt2 has
#: converged to T by step 100, where every group is one path and R̂ = V trivially).
FIGURE_STEP = 25


def initial_checkpoint(model: str, work: Path) -> str:
    """The untrained policy as a model folder (the built-in name for the tabular policy, whose start is fixed)."""
    if model == "tabular":
        return "tabular"
    from prm_probe.training.models import load_policy
    from prm_probe.training.tasks import get_task

    folder = work / "step-000000"
    if not (folder / "config.json").is_file():
        policy, tokenizer = load_policy(model, seed=0, task=get_task("toy-tree", seed=0, options=OPTIONS))  # as train
        policy.save_pretrained(folder)
        tokenizer.save_pretrained(folder)
    return str(folder)


def run(model: str) -> pd.DataFrame:
    from prm_probe.training.config import config_from_dict
    from prm_probe.training.trainer import train

    work = ROOT / "data" / "runs" / f"prm-quality-{model}"
    run_dir = work / "run"
    optimizer, lr = SETTINGS[model]
    if not (run_dir / "checkpoints" / f"step-{STEPS[-1]:06d}").is_dir():
        cfg = toy_config(model=model, n=1, r_neg=-1.0, seed=0, weighting="uniform", lr=lr, optimizer=optimizer,
                         steps=STEPS[-1], rollouts_every=0)
        cfg["schedule"].update(save_every=25, keep_checkpoints=10)
        train(config_from_dict(cfg), run_dir)
    identity = run_task_identity(run_dir)  # the task the run trained on (seed 0: target RRRL)
    rows, tables, sizes = [], [], []
    for step in STEPS:
        ckpt = (initial_checkpoint(model, work) if step == 0
                else str(run_dir / "checkpoints" / f"step-{step:06d}" / "model"))
        log = work / f"log-step{step}.parquet"
        if not log.is_file():
            if step == 0:  # the untrained policy is not one of the run's checkpoints: name the run's task
                sample_log(ckpt, identity.name, log, groups=16, group_size=16, split="train", seed=1,
                           task_options=identity.options, device="cpu")
            else:  # a checkpoint of the run: its task, group size and sampling settings come with it
                sample_log(ckpt, out=log, groups=16, split="train", seed=1, device="cpu")
        recorded = log_task_identity(read_metadata(log))
        if recorded != identity:
            raise SystemExit(f"{log}: sampled with task {recorded}, not the run's {identity}; delete it and rerun")
        nodes = measure_prm_quality(ckpt, log, rollouts=64, seed=0, max_nodes=1000, device="cpu",
                            out=work / f"nodes-step{step}.csv")
        # the MC check against the exact value, with the exact standard error std/√K: the sample's own standard
        # error is 0 whenever all K continuations score alike, which happens often near convergence (π = 0.97
        # gives 64 equal draws with probability 0.12) although the value is not deterministic
        err = (nodes["mc_value"] - nodes["exact_value"]).abs()
        agree = err <= 4 * nodes["exact_std"] / np.sqrt(nodes["K"]) + 1e-9
        agree_sample_se = err <= 4 * nodes["mc_stderr"] + 1e-9
        varied = nodes["exact_std"] > 1e-9  # nodes whose continuations' rewards differ
        within = agree.mean()
        summary = prm_quality_summary(nodes, "exact_value")
        tokens = prm_quality_token_summary(prm_quality_tokens(nodes, log, "exact_value")).set_index("advantage")
        rows.append({"train_step": step, **summary["overall"].iloc[0].to_dict(), "mc_within_4se": within,
                     "nodes_varied": int(varied.sum()),
                     "mc_within_4se_varied": float(agree[varied].mean()) if varied.any() else float("nan"),
                     "mc_within_4_sample_se_varied": (float(agree_sample_se[varied].mean()) if varied.any()
                                                      else float("nan")),
                     "tokens": int(tokens.loc["prm_advantage", "tokens"]),
                     "no_signal_tokens": int(tokens.loc["prm_advantage", "no_signal_tokens"]),
                     **{f"{name}_{col}": tokens.loc[f"{name}_advantage", col]
                        for name in ("prm", "outcome") for col in ("rmse", "pearson", "wrong_sign_share")}})
        tables.append(nodes.assign(train_step=step))
        sizes.append(summary["by_size"].assign(train_step=step))
    out = ROOT / "figures" / "data"
    out.mkdir(parents=True, exist_ok=True)
    frame = pd.DataFrame(rows)
    frame.to_csv(out / f"prm_quality_{model}.csv", index=False)
    pd.concat(tables).to_csv(out / f"prm_quality_{model}_nodes.csv.gz", index=False)
    pd.concat(sizes).to_csv(out / f"prm_quality_{model}_by_size.csv", index=False)

    from prm_probe.views.plots import plot_prm_quality, save_figure, theme

    with theme():
        k = STEPS.index(FIGURE_STEP)
        fig = plot_prm_quality(tables[k], sizes[k], value="exact_value", label=f"{model}, GRPO step {FIGURE_STEP}")
        save_figure(fig, ROOT / "figures" / f"prm_quality_{model}")
    return frame


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=sorted(SETTINGS), default="tabular")
    result = run(parser.parse_args().model)
    pd.set_option("display.width", 200)
    print(result.to_string(index=False, float_format=lambda x: f"{x:.3f}"))
    sys.exit(0)
