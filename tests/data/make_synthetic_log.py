"""Regenerate ``tests/data/synthetic_rollouts.parquet``: a small synthetic rollout log for the tests.

    python tests/data/make_synthetic_log.py     # writes tests/data/synthetic_rollouts.parquet (seed 0)

What it holds: 1 run × 4 steps × 4 groups × G = 8 completions over a toy vocabulary (ids 3..999, EOS = 2).
Each group is sampled from a random "policy" that, with a probability growing over the steps, re-uses an
earlier member's opening before continuing on its own: a stand-in for the rising overlap the paper reports
as GRPO converges. Completions end with EOS ("stop") or are cut at 48 tokens ("length"). Rewards are
binary (``reward_correct``) plus a small format bonus (``reward_format``); one group has all-equal rewards.
Sampler log-probs and GRPO advantages are included so every optional column is exercised.

It is synthetic: it exercises every column and several steps in the tests; it says nothing about real
models (``data/sample_rollouts.parquet`` is a real SmolLM2 log).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pyarrow as pa

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT.parents[1]))

from prm_probe.core.prm import outcome_advantages  # noqa: E402
from prm_probe.core.rollouts import write_rollouts  # noqa: E402
from prm_probe.core.schema import ROLLOUT_SCHEMA  # noqa: E402

EOS = 2
MAX_NEW = 48


def sample_group(rng: np.random.Generator, g: int, reuse: float) -> list[list[int]]:
    """G completions; each re-uses an earlier member's opening with probability ``reuse``."""
    out: list[list[int]] = []
    for _ in range(g):
        seq: list[int] = []
        if out and rng.random() < reuse:
            parent = out[int(rng.integers(0, len(out)))]
            keep = min(int(rng.geometric(0.12)), len(parent))
            seq = [t for t in parent[:keep] if t != EOS]
        while len(seq) < MAX_NEW:
            if len(seq) >= 6 and rng.random() < 0.07:
                seq.append(EOS)
                break
            seq.append(int(rng.integers(3, 1000)))
        out.append(seq)
    return out


def build(seed: int = 0, steps: int = 4, groups: int = 4, g: int = 8) -> pa.Table:
    rng = np.random.default_rng(seed)
    rows: dict[str, list] = {k: [] for k in ("run_id", "step", "group", "sample", "prompt_id", "prompt",
                                             "completion_ids", "reward", "finish_reason", "advantage", "logps",
                                             "reward_correct", "reward_format")}
    for step in range(steps):
        reuse = 0.2 + 0.6 * step / max(steps - 1, 1)
        for grp in range(groups):
            comps = sample_group(rng, g, reuse)
            correct = (rng.random(g) < 0.4).astype(float)
            if step == 1 and grp == 3:
                correct[:] = 0.0  # a zero-variance group: every advantage is 0
            fmt = np.array([0.1 if c[-1] == EOS else 0.0 for c in comps])
            reward = correct + fmt
            adv = outcome_advantages(reward)
            pid = f"arith-{step * groups + grp:04d}"
            for i, c in enumerate(comps):
                rows["run_id"].append("sample-grpo")
                rows["step"].append(step)
                rows["group"].append(grp)
                rows["sample"].append(i)
                rows["prompt_id"].append(pid)
                rows["prompt"].append(f"Problem {pid}: compute the answer and put it in \\boxed{{}}.")
                rows["completion_ids"].append(c)
                rows["reward"].append(float(reward[i]))
                rows["finish_reason"].append("stop" if c[-1] == EOS else "length")
                rows["advantage"].append(float(adv[i]))
                rows["logps"].append((-rng.gamma(0.5, 1.0, size=len(c))).astype(np.float32))
                rows["reward_correct"].append(float(correct[i]))
                rows["reward_format"].append(float(fmt[i]))
    arrays = {}
    for k, v in rows.items():
        typ = ROLLOUT_SCHEMA.field(k).type if k in ROLLOUT_SCHEMA.names else pa.float64()
        arrays[k] = pa.array(v, type=typ)
    return pa.table(arrays)


def main() -> None:
    table = build()
    out = write_rollouts(table, ROOT / "synthetic_rollouts.parquet", metadata={
        "prm_probe.token_source": "sampled", "eos_token_id": str(EOS), "pad_token_id": "0",
        "tokenizer": "none (synthetic ids 3..999)",
        "model": "synthetic generator (tests/data/make_synthetic_log.py, seed 0)"})
    print(f"wrote {table.num_rows} rows to {out}")


if __name__ == "__main__":
    main()
