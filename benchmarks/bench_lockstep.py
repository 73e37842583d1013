"""The tabular toy tree: the lockstep engine against the trainer, on the path users call.

Times a whole 250-step tabular run (n = 1, r_neg = −1, SGD lr 1, G = 16) through `trainer.train` and through
`experiments.lockstep.train_lockstep`, alternating, one torch thread each (as sweep workers run), and checks that
both give the same metrics. Prints a table with the per-run times (best and median of the rounds) and their ratio
measured in the same run, with the machine and date. Goal: the engine at least 3× faster per run.

    python benchmarks/bench_lockstep.py [--rounds 5]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from _common import code_version, cpu_model


def main() -> None:
    import os

    import torch

    from prm_probe.experiments.lockstep import train_lockstep
    from prm_probe.experiments.sweeps import toy_config
    from prm_probe.training.config import config_from_dict
    from prm_probe.training.trainer import train

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(1)
    times: dict[str, list[float]] = {"trainer": [], "lockstep": []}
    finals: dict[str, list[float]] = {"trainer": [], "lockstep": []}
    runners = {"trainer": train, "lockstep": train_lockstep}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds + 1):  # round 0 warms both paths up (imports, caches) and is not counted
            for name, fn in runners.items():
                cfg = config_from_dict(toy_config(model="tabular", n=1, r_neg=-1.0, seed=r, weighting="uniform",
                                                  lr=1.0, optimizer="sgd", rollouts_every=0))
                t0 = time.perf_counter()
                out = fn(cfg, Path(tmp) / f"{name}{r}")
                elapsed = time.perf_counter() - t0
                last = json.loads((out / "metrics.jsonl").read_text().splitlines()[-1])
                if r:
                    times[name].append(elapsed)
                    finals[name].append(last["target_probability"])
    same = finals["trainer"] == finals["lockstep"]
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    print(f"tabular toy tree, 250 steps a run, {args.rounds} rounds; {cpu_model()}, {os.cpu_count()} cores, "
          f"{now}; {code_version()}")
    print(f"{'path':<10} {'best s/run':>11} {'median s/run':>13} {'ms/step (median)':>17}")
    for name, t in times.items():
        print(f"{name:<10} {min(t):>11.2f} {statistics.median(t):>13.2f} {statistics.median(t) / 250 * 1e3:>17.1f}")
    ratio = statistics.median(times["trainer"]) / statistics.median(times["lockstep"])
    verdict = "MET" if ratio >= 3 else "NOT MET"
    print(f"speed-up (median trainer / median lockstep): {ratio:.1f}x; goal >= 3x: {verdict}")
    print(f"same final π(T) in every round: {same}")


if __name__ == "__main__":
    main()
