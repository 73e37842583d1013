"""Benchmark of ``prm-probe stats`` end to end on generated rollout logs.

1. Generates Parquet rollout logs in the canonical schema (``prm_probe.core.schema.ROLLOUT_SCHEMA``) under
   ``benchmarks/_work/`` (git-ignored): every step holds ``--groups`` groups of ``--group-size``
   completions of ``realistic_group`` tokens, lengths drawn uniformly in [1000, 2000]; one row group per
   step. Steps are seeded by their index, so a smaller log is a prefix of a larger one. A log is reused
   when its footer and its ``.bench.json`` sidecar record the same generation parameters.
2. Times the CLI as a subprocess (``.venv/bin/prm-probe stats LOG -q -o OUT.parquet``): wall time and peak
   RSS (``getrusage(RUSAGE_CHILDREN)`` in a fresh launcher process per run, so each number is one run's),
   on a one-step log (the fixed cost: interpreter, imports, output) and on logs of 1/4, 1/2 and all of
   ``--tokens`` (same per-step shape, more steps), repetitions interleaved over the logs. The largest log
   gives the headline throughput; the three sizes show how peak RSS changes with the log size.
3. Times ``prm_probe.core.stats.overlap_stats(log)`` in this process (imports paid beforehand), and splits one
   call into phases by wrapping the functions it calls with timers.

Run:  .venv/bin/python benchmarks/bench_stats.py                 (20 M tokens; about a minute)
      .venv/bin/python benchmarks/bench_stats.py --quick         (2 M tokens, one repetition)
      .venv/bin/python benchmarks/bench_stats.py --tokens 8e7    (another size: 20 M, 40 M and 80 M)
      .venv/bin/python benchmarks/bench_stats.py --one-core      (pin the CLI runs to one core)

This is not a test; it prints tables.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from _common import code_version, cpu_model

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

WORK = Path(__file__).resolve().parent / "_work"
GOAL_MTOK = 30.0  # M tokens/s end to end

# A launcher that runs one command and reports its wall time and peak RSS (KiB on Linux) as JSON.
_LAUNCHER = r"""
import json, os, resource, subprocess, sys, time
cmd = json.loads(sys.argv[1])
cpus = json.loads(sys.argv[2])
pre = (lambda: os.sched_setaffinity(0, set(cpus))) if cpus else None
t0 = time.perf_counter()
p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=pre)
wall = time.perf_counter() - t0
ru = resource.getrusage(resource.RUSAGE_CHILDREN)
print(json.dumps({"rc": p.returncode, "wall": wall, "maxrss_kib": ru.ru_maxrss, "user": ru.ru_utime,
                  "sys": ru.ru_stime, "stdout": p.stdout[-2000:], "stderr": p.stderr[-2000:]}))
"""


def machine_line() -> str:
    import pyarrow as pa

    mem = ""
    try:
        line = next(x for x in Path("/proc/meminfo").read_text().splitlines() if x.startswith("MemTotal"))
        kib = int(line.split()[1])
        mem = f", {kib / 2**20:.0f} GiB RAM"
    except (OSError, StopIteration, ValueError):
        pass
    return (f"machine: {cpu_model()}, {os.cpu_count()} logical CPUs{mem}, Python {platform.python_version()}, "
            f"numpy {np.__version__}, pyarrow {pa.__version__}, {platform.system()} {platform.machine()}")


# ---------------------------------------------------------------------------------------------- the log


def _params(args: argparse.Namespace, tokens: float) -> dict:
    return {"tokens": int(tokens), "groups": args.groups, "group_size": args.group_size,
            "min_len": args.min_len, "max_len": args.max_len, "vocab": args.vocab, "seed": args.seed,
            "generator": 1}


def _step_table(step: int, p: dict):
    """One step of the log: ``groups`` groups of ``group_size`` completions, as a canonical Arrow table."""
    import pyarrow as pa

    from prm_probe.core._testing import realistic_group
    from prm_probe.core.schema import ROLLOUT_SCHEMA

    rng = np.random.default_rng([p["seed"], step])
    g, n_groups = p["group_size"], p["groups"]
    share = 0.05 + 0.5 * (1 - np.exp(-step / 20))  # overlap grows over training (a stand-in for convergence)
    comps = []
    for _ in range(n_groups):
        group = realistic_group(rng, g, p["max_len"], vocab=p["vocab"], mean_shared=share)
        lengths = rng.integers(p["min_len"], p["max_len"] + 1, size=g)
        comps.extend(c[:n] for c, n in zip(group, lengths))
    offsets = np.zeros(len(comps) + 1, dtype=np.int32)
    np.cumsum([len(c) for c in comps], out=offsets[1:])
    ids = pa.ListArray.from_arrays(pa.array(offsets), pa.array(np.concatenate(comps), type=pa.int32()))
    n = len(comps)
    grp = np.repeat(np.arange(n_groups, dtype=np.int32), g)
    cols = {
        "run_id": pa.array(["bench"] * n, type=pa.string()),
        "step": pa.array(np.full(n, step, dtype=np.int32)),
        "group": pa.array(grp),
        "sample": pa.array(np.tile(np.arange(g, dtype=np.int16), n_groups)),
        "prompt_id": pa.array([f"p{step}-{k}" for k in grp], type=pa.string()),
        "completion_ids": ids,
        "reward": pa.array((rng.random(n) < 0.5).astype(np.float64)),
    }
    schema = pa.schema([ROLLOUT_SCHEMA.field(k) for k in cols])
    return pa.Table.from_arrays(list(cols.values()), schema=schema), int(offsets[-1])


def ensure_log(args: argparse.Namespace, tokens: float) -> tuple[Path, dict]:
    """Write (or reuse) a log of at least ``tokens`` completion tokens; return its path and facts."""
    import pyarrow.parquet as pq

    from prm_probe import __version__
    from prm_probe.core.schema import SCHEMA_VERSION

    p = _params(args, tokens)
    path = WORK / (f"log_t{p['tokens']}_g{p['groups']}x{p['group_size']}_"
                   f"l{p['min_len']}-{p['max_len']}_s{p['seed']}.parquet")
    sidecar = path.with_name(path.name + ".bench.json")  # params and facts, written once the log is complete
    if path.exists() and sidecar.exists():
        try:
            info = json.loads(sidecar.read_text())
            md = pq.ParquetFile(path).schema_arrow.metadata or {}
            if info["params"] == p and json.loads(md.get(b"bench.params", b"{}")) == p:
                return path, info["facts"] | {"generated_s": None}
        except Exception:  # anything odd: regenerate
            pass
    WORK.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    tmp = path.with_name(path.name + ".tmp")
    writer = None
    total, step, rows = 0, 0, 0
    try:
        while total < p["tokens"]:
            table, n_tok = _step_table(step, p)
            if writer is None:
                meta = {b"prm_probe.schema_version": str(SCHEMA_VERSION).encode(),
                        b"prm_probe.version": __version__.encode(),
                        b"bench.params": json.dumps(p).encode()}
                writer = pq.ParquetWriter(tmp, table.schema.with_metadata(meta), compression="zstd")
            writer.write_table(table, row_group_size=table.num_rows)  # one row group per step
            total += n_tok
            rows += table.num_rows
            step += 1
    finally:
        if writer is not None:
            writer.close()
    os.replace(tmp, path)
    facts = {"tokens": total, "steps": step, "rows": rows}
    sidecar.write_text(json.dumps({"params": p, "facts": facts}, indent=1))
    return path, facts | {"generated_s": time.perf_counter() - t0}


# ---------------------------------------------------------------------------------------------- runs


def run_cli(log: Path, out: Path, cpus: list[int] | None) -> dict:
    exe = ROOT / ".venv" / "bin" / "prm-probe"
    cmd = [str(exe), "stats", str(log), "-q", "-o", str(out)] if exe.exists() else \
        [sys.executable, "-m", "prm_probe", "stats", str(log), "-q", "-o", str(out)]
    res = subprocess.run([sys.executable, "-c", _LAUNCHER, json.dumps(cmd), json.dumps(cpus or [])],
                         capture_output=True, text=True, check=True)
    info = json.loads(res.stdout)
    if info["rc"] != 0:
        raise RuntimeError(f"prm-probe stats failed (rc {info['rc']}):\n{info['stderr']}")
    return info


def run_inprocess(log: Path, **kwargs) -> float:
    from prm_probe.core.stats import overlap_stats

    t0 = time.perf_counter()
    result = overlap_stats(log, **kwargs)
    result.summary()
    return time.perf_counter() - t0


def phase_breakdown(log: Path, passes: int = 3) -> dict[str, float]:
    """Seconds per phase inside ``overlap_stats(log)``, from the pass with the smallest total.

    The functions ``overlap_stats`` calls through ``prm_probe.core.stats``' module globals (``iter_steps``,
    ``pack_groups``, ``process_sets``, ``completion_stats``, ``group_stats``) are wrapped with timers for
    the duration of the measurement, in this process only; the rest (per-step rows, the final
    concatenation) is the total minus those phases. The breakdown runs sequentially (no read-ahead
    thread, one worker) so that the phases add up; the timed runs above overlap reading with compute.
    """
    import prm_probe.core.stats as st

    names = {"iter_steps": "read + split steps (iter_steps)", "pack_groups": "pack_groups",
             "process_sets": "engine (process_sets)", "completion_stats": "completion_stats",
             "group_stats": "group_stats"}
    names = {k: v for k, v in names.items() if hasattr(st, k)}  # tolerate a refactored stats module
    originals = {k: getattr(st, k) for k in names}
    acc: dict[str, float] = {}

    def timed(key, fn):
        def wrapper(*a, **kw):
            t0 = time.perf_counter()
            try:
                return fn(*a, **kw)
            finally:
                acc[key] = acc.get(key, 0.0) + time.perf_counter() - t0
        return wrapper

    def timed_iter(*a, **kw):
        it = iter(originals["iter_steps"](*a, **kw))  # only installed when stats.iter_steps exists
        while True:
            t0 = time.perf_counter()
            item = next(it, None)
            acc["iter_steps"] = acc.get("iter_steps", 0.0) + time.perf_counter() - t0
            if item is None:
                return
            yield item

    best: dict[str, float] | None = None
    try:
        for k in names:
            setattr(st, k, timed_iter if k == "iter_steps" else timed(k, originals[k]))
        if hasattr(st, "prefetch"):
            originals["prefetch"] = st.prefetch
            st.prefetch = lambda items, depth=2: items
        for _ in range(passes):
            acc.clear()
            total = run_inprocess(log, workers=1)
            if best is None or total < best["overlap_stats total"]:
                best = {names[k]: acc.get(k, 0.0) for k in names}
                best["per-step rows + concat (the rest)"] = total - sum(best.values())
                best["overlap_stats total"] = total
    finally:
        for k, fn in originals.items():
            setattr(st, k, fn)
    return best


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tokens", type=float, default=20e6, help="completion tokens of the main log (default 2e7)")
    ap.add_argument("--quick", action="store_true", help="smoke run: 2 M tokens, one repetition")
    ap.add_argument("--reps", type=int, default=5, help="repetitions of each timing (best and median shown)")
    ap.add_argument("--groups", type=int, default=16, help="groups per step (default 16)")
    ap.add_argument("--group-size", type=int, default=16, help="G (default 16)")
    ap.add_argument("--min-len", type=int, default=1000)
    ap.add_argument("--max-len", type=int, default=2000)
    ap.add_argument("--vocab", type=int, default=50_000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--one-core", action="store_true", help="pin the CLI subprocesses to one core")
    ap.add_argument("--no-scaling", action="store_true", help="only the main log (no 1/4 and 1/2 size logs)")
    args = ap.parse_args(argv)
    if args.quick:
        args.tokens = min(args.tokens, 2e6)
        args.reps = 1
    cpus = [sorted(os.sched_getaffinity(0))[0]] if args.one_core and hasattr(os, "sched_getaffinity") else None

    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    print(f"prm_probe stats benchmark, {now}")
    print(machine_line())
    print(code_version())
    print(f"log shape: {args.groups} groups x G={args.group_size} per step, lengths U[{args.min_len}, "
          f"{args.max_len}], realistic_group tokens (vocab {args.vocab}), one row group per step, zstd; "
          f"CLI {'pinned to one core' if cpus else 'unpinned'}; {args.reps} repetition(s) per timing\n")

    sizes = [args.tokens] if args.no_scaling else [args.tokens / 4, args.tokens / 2, args.tokens]
    logs = {}
    for tok in [1.0, *sizes]:  # 1 token -> a one-step log, to measure the CLI's fixed cost
        path, facts = ensure_log(args, tok)
        logs[tok] = (path, facts)
        how = "reused" if facts["generated_s"] is None else f"generated in {facts['generated_s']:.1f} s"
        print(f"  log {path.relative_to(ROOT)}: {facts['tokens']:,} tokens, {facts['rows']:,} rows, "
              f"{facts['steps']} steps, {path.stat().st_size / 2**20:.1f} MiB ({how})", flush=True)
    print()
    out = WORK / "stats_out.parquet"

    # (a) the CLI end to end, on every log (the largest is the headline; the others show memory vs size)
    # Repetitions are interleaved over the logs, so a slow spell of the machine hits every size alike.
    cli: dict[float, list[dict]] = {tok: [] for tok in [1.0, *sizes]}
    for _ in range(args.reps):
        for tok in cli:
            cli[tok].append(run_cli(logs[tok][0], out, cpus))
    # (b) in process, on the main log
    main_path, main_facts = logs[args.tokens]
    n_tok = main_facts["tokens"]
    run_inprocess(logs[1.0][0])  # warm-up: pays the imports (pandas, pyarrow.parquet) outside the timing
    inproc = [run_inprocess(main_path) for _ in range(args.reps)]

    def row(what: str, walls: list[float], tokens: int, rss: str) -> str:
        best, med = min(walls), statistics.median(walls)
        return (f"| {what} | {tokens:,} | {best:.2f} | {med:.2f} | {tokens / best / 1e6:.1f} "
                f"| {tokens / med / 1e6:.1f} | {rss} |")

    walls = [c["wall"] for c in cli[args.tokens]]
    print(f"end to end on the main log ({n_tok:,} tokens, {main_facts['steps']} steps, "
          f"{main_facts['rows']:,} completions):\n")
    print("| what | tokens | wall s best | wall s median | M tokens/s (best) | M tokens/s (median) | peak RSS MiB |")
    print("|---|---|---|---|---|---|---|")
    print(row("`prm-probe stats LOG -q -o OUT.parquet` (subprocess)", walls, n_tok,
              f"{max(c['maxrss_kib'] for c in cli[args.tokens]) / 1024:.0f}"))
    print(row("`overlap_stats(log)` (in process, imports excluded)", inproc, n_tok, "-"))
    w1 = [c["wall"] for c in cli[1.0]]
    print(row("CLI fixed cost: the same command on a one-step log", w1, logs[1.0][1]["tokens"],
              f"{max(c['maxrss_kib'] for c in cli[1.0]) / 1024:.0f}"))
    cpu_s = statistics.median(c["user"] + c["sys"] for c in cli[args.tokens])
    print(f"\nCLI CPU time (user+sys, median): {cpu_s:.2f} s for {statistics.median(walls):.2f} s wall")
    best = n_tok / min(walls) / 1e6
    print(f"goal: >= {GOAL_MTOK:.0f} M tokens/s end to end (CLI, best of {args.reps}): {best:.1f} -> "
          f"{'MET' if best >= GOAL_MTOK else 'MISSED'}")

    if not args.no_scaling:
        print("\npeak memory vs log size (CLI; peak RSS of each run, max and min-median over the repetitions):\n")
        print("| log tokens | steps | completions | file MiB | wall s best | M tokens/s (best) "
              "| peak RSS MiB, max | min-median over reps |")
        print("|---|---|---|---|---|---|---|---|")
        peaks, bests = [], []
        for tok in sizes:
            path, facts = logs[tok]
            rss_runs = [c["maxrss_kib"] / 1024 for c in cli[tok]]
            peaks.append(max(rss_runs))
            bests.append(min(c["wall"] for c in cli[tok]))
            print(f"| {facts['tokens']:,} | {facts['steps']} | {facts['rows']:,} | "
                  f"{path.stat().st_size / 2**20:.0f} | {bests[-1]:.2f} | {facts['tokens'] / bests[-1] / 1e6:.1f} "
                  f"| {peaks[-1]:.0f} | {min(rss_runs):.0f}-{statistics.median(rss_runs):.0f} |")
        t0, t1 = logs[sizes[0]][1]["tokens"], logs[sizes[-1]][1]["tokens"]
        growth = peaks[-1] / peaks[0]
        per_m = (peaks[-1] - peaks[0]) / ((t1 - t0) / 1e6)
        print(f"\ngoal: peak memory does not grow with the log: {peaks[0]:.0f} -> {peaks[-1]:.0f} MiB "
              f"(x{growth:.2f}, {per_m:+.2f} MiB per extra M tokens, for x{t1 / t0:.1f} tokens) -> "
              f"{'MET' if growth < 1.25 else 'MISSED'} (threshold: < 1.25x)")

    print("\nwhere the in-process time goes on the main log (one overlap_stats call, fastest of 3):\n")
    print("| phase | s | share |")
    print("|---|---|---|")
    phases = phase_breakdown(main_path)
    total = phases["overlap_stats total"]
    for k, v in phases.items():
        print(f"| {k} | {v:.3f} | {v / total:.0%} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
