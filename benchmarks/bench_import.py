"""Importing a TRL completions log that holds text: the batched re-tokenisation against the per-row one.

Generates (fixture generator, seeded) a TRL 1.16-style completions folder: `completions_{step:05d}.parquet`
files of one generation batch each (64 prompts × G = 8, prompt-major), string prompts and completions of
SmolLM2-like length, one reward column and TRL's advantage, ~50k rows in all. Then times the path users call,
`prm_probe.integrations.importers.import_to_parquet("trl", ...)` (what `prm-probe import trl` runs), with the
SmolLM2-135M-Instruct tokenizer, twice per round: as the library does it (one batched encode and decode) and with
the per-row path it replaced (one `encode` and one `decode` per row, written here as the baseline). Both must
write the same log. Prints rows/s of each, the ratio measured in the same run, the machine and the date.
Goal: >= 10x the per-row path's rows/s.

    python benchmarks/bench_import.py [--rows 49664] [--rounds 2]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from _common import code_version, cpu_model

WORDS = ("To find the sum of", "we add", "the numbers", "together", "First,", "Let's", "compute", "step by step.",
         "The answer is", "\\boxed{", "}", "so", "equals", "\n\n", "Therefore,", "carry the one", "=", "+")


def write_trl_log(folder: Path, rows: int, seed: int = 0, prompts_per_batch: int = 64, group: int = 8) -> int:
    """A TRL-style completions folder of about ``rows`` rows; returns the rows written."""
    import pandas as pd

    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    batch = prompts_per_batch * group
    written = 0
    for step in range(1, max(rows // batch, 1) + 1):
        a, b = rng.integers(1, 100, size=(2, prompts_per_batch))
        prompts = [f"Compute {x} + {y}. Put the final answer in \\boxed{{}}." for x, y in zip(a, b, strict=True)]
        completions, rewards = [], []
        for k in range(batch):
            n = int(rng.integers(8, 40))
            text = " ".join(WORDS[i] for i in rng.integers(0, len(WORDS), size=n))
            right = rng.random() < 0.3
            completions.append(text + f" \\boxed{{{a[k // group] + b[k // group] + (0 if right else 1)}}}")
            rewards.append(float(right))
        r = np.array(rewards).reshape(-1, group)
        adv = (r - r.mean(1, keepdims=True)) / (r.std(1, ddof=1, keepdims=True) + 1e-4)
        pd.DataFrame({"step": step, "prompt": np.repeat(prompts, group), "completion": completions,
                      "correct": rewards, "advantage": adv.reshape(-1)}).to_parquet(
            folder / f"completions_{step:05d}.parquet", index=False)
        written += batch
    return written


def per_row_retokenize(df, tokenizer, fmt, warn=True):
    """The per-row path the library used before (one encode and one decode per row), as the baseline."""
    ids, changed = [], 0
    for text in df["completion"].fillna("").astype(str):
        enc = [int(i) for i in tokenizer.encode(text, add_special_tokens=False)]
        if tokenizer.decode(enc) != text:
            changed += 1
        ids.append(enc)
    return ids, changed


def main() -> None:
    import pyarrow.parquet as pq

    from prm_probe.integrations import importers, tokens
    from prm_probe.training.models import load_tokenizer, smollm2_folder

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=49_664)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    tokenizer = load_tokenizer(smollm2_folder())
    batched = tokens.retokenize
    times: dict[str, list[float]] = {"batched": [], "per-row": []}
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "completions"
        rows = write_trl_log(log, args.rows)
        outputs = {}
        for _ in range(args.rounds):
            for name, fn in (("batched", batched), ("per-row", per_row_retokenize)):
                tokens.retokenize = fn
                out = Path(tmp) / f"{name}.parquet"
                t0 = time.perf_counter()
                importers.import_to_parquet("trl", log, out, tokenizer=tokenizer, group_size=8)
                times[name].append(time.perf_counter() - t0)
                outputs[name] = pq.read_table(out)
        tokens.retokenize = batched
    same = outputs["batched"].equals(outputs["per-row"])
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    print(f"prm-probe import trl: {rows:,} rows, SmolLM2-135M tokenizer, {args.rounds} rounds; {cpu_model()}, "
          f"{os.cpu_count()} cores, {now}; {code_version()}")
    print(f"{'path':<9} {'best s':>8} {'median s':>9} {'rows/s (best)':>14}")
    for name, t in times.items():
        print(f"{name:<9} {min(t):>8.2f} {statistics.median(t):>9.2f} {rows / min(t):>14,.0f}")
    ratio = min(times["per-row"]) / min(times["batched"])
    print(f"ratio (best per-row / best batched): {ratio:.1f}x; goal >= 10x: {'MET' if ratio >= 10 else 'NOT MET'}")
    print(f"same log written by both paths: {same}")


if __name__ == "__main__":
    main()
