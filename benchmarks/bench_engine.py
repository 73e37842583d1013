"""Benchmark of the process-set engine (``prm_probe.core.trie.process_sets``) against its two references.

For each (G, L) it compares, in the same run and on one CPU core:

  (a) the engine: ``process_sets(PackedGroups(...))`` plus materialising the per-token ``.size`` array,
      on many realistic groups packed into one call (~6 M tokens per call, the way a log is processed);
  (b) the pure-Python dict trie ``_testing.dict_trie_process_set_sizes`` on a few of those groups
      (tokens already Python lists; only the trie is timed);
  (c) the literal brute force ``_testing.brute_force_process_set_sizes``, which is O(G² L²): it is timed on
      one fresh realistic group of the same G and the largest L' <= L (doubling from 64) whose predicted
      time fits ``--brute-budget`` seconds; L' is printed in the table.

The engine's output is checked against the dict trie on every group timed for (b), and against the brute
force on the group timed for (c) (assertions), so the benchmark is also a correctness check.

Run:  .venv/bin/python benchmarks/bench_engine.py            (full, about 30 s)
      .venv/bin/python benchmarks/bench_engine.py --quick    (smoke run, a few seconds)

This is not a test; it prints a table.
"""

from __future__ import annotations

import os

# One core: set thread counts before numpy is imported, then pin the process.
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ[_var] = "1"
if hasattr(os, "sched_setaffinity"):
    try:
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    except OSError:  # pragma: no cover - affinity not allowed
        pass

import argparse  # noqa: E402
import datetime as dt  # noqa: E402
import gc  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
from _common import code_version, cpu_model  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from prm_probe.core._testing import (  # noqa: E402
    brute_force_process_set_sizes,
    dict_trie_process_set_sizes,
    radix_trie_process_set_sizes,
    realistic_group,
)
from prm_probe.core.trie import PackedGroups, process_set_sizes, process_sets  # noqa: E402

SHAPES = ((8, 1024), (16, 2048), (64, 4096))
GOAL_MTOK = 100.0  # M tokens/s per core at (16, 2048)
GOAL_RATIO = 25.0  # engine / dict trie
GOAL_GROUP_RATIO = 5.0  # public per-group call / radix trie, one group of (16, 2048)


def radix_with_leaf_shortcut(completions: list[list[int]]) -> list[list[int]]:
    """The radix trie plus one optimisation: a node with one member fills the rest of its completion at once.
    Shown beside the literal baseline so the ratio is not read as the best pure Python can do."""
    out = [[0] * len(c) for c in completions]
    stack = [(list(range(len(completions))), 0)]
    while stack:
        members, t = stack.pop()
        if len(members) == 1:
            i = members[0]
            out[i][t:] = [1] * (len(completions[i]) - t)
            continue
        buckets: dict[int, list[int]] = {}
        for i in members:
            if len(completions[i]) > t:
                buckets.setdefault(completions[i][t], []).append(i)
        for bucket in buckets.values():
            for i in bucket:
                out[i][t] = len(bucket)
            stack.append((bucket, t + 1))
    return out


def per_group(rng: np.random.Generator, reps: int, vocab: int) -> list[dict]:
    """One group of G = 16, L = 2048 as users pass it (Python lists, or numpy arrays), per call."""
    group = realistic_group(rng, 16, 2048, vocab=vocab)
    lists = [c.tolist() for c in group]
    want = flat(brute_force_process_set_sizes([c[:256] for c in lists]))  # a brute-force spot check
    assert np.array_equal(flat([s.tolist() for s in process_set_sizes([c[:256] for c in lists])]), want)
    ref = flat(radix_trie_process_set_sizes(lists))
    cases = [("process_set_sizes(lists) (public)", lambda: process_set_sizes(lists)),
             ("process_set_sizes(numpy arrays)", lambda: process_set_sizes(group)),
             ("radix trie, literal (baseline)", lambda: radix_trie_process_set_sizes(lists)),
             ("radix trie + leaf shortcut", lambda: radix_with_leaf_shortcut(lists))]
    rows = []
    for name, fn in cases:
        got = fn()
        assert np.array_equal(flat([list(x) for x in got]), ref), name
        times = []
        for _ in range(reps):
            gc.collect()
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
        rows.append(dict(name=name, best=min(times), med=statistics.median(times), tok=len(ref)))
    return rows


def machine_line() -> str:
    aff = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else "n/a"
    return (f"machine: {cpu_model()}, {os.cpu_count()} logical CPUs (pinned to {aff}), "
            f"Python {platform.python_version()}, numpy {np.__version__}, {platform.system()} {platform.machine()}")


def pack(groups: list[list[np.ndarray]]) -> PackedGroups:
    """PackedGroups straight from numpy arrays (no Python lists of tokens)."""
    comps = [c for g in groups for c in g]
    tokens = np.concatenate(comps).astype(np.int32, copy=False) if comps else np.zeros(0, np.int32)
    offsets = np.zeros(len(comps) + 1, dtype=np.int64)
    np.cumsum([len(c) for c in comps], out=offsets[1:])
    goff = np.zeros(len(groups) + 1, dtype=np.int64)
    np.cumsum([len(g) for g in groups], out=goff[1:])
    return PackedGroups(tokens, offsets, goff)


def time_engine(packed: PackedGroups, reps: int) -> tuple[list[float], np.ndarray]:
    times = []
    size = None
    for _ in range(reps):
        gc.collect()
        t0 = time.perf_counter()
        ps = process_sets(packed)
        size = ps.size
        times.append(time.perf_counter() - t0)
        del ps
    return times, size


def time_dict(groups_lists: list[list[list[int]]], reps: int) -> tuple[list[float], list]:
    times = []
    out = None
    for _ in range(reps):
        gc.collect()
        t0 = time.perf_counter()
        out = [dict_trie_process_set_sizes(g) for g in groups_lists]
        times.append(time.perf_counter() - t0)
    return times, out


def flat(nested: list[list[int]]) -> np.ndarray:
    return np.fromiter((x for row in nested for x in row), dtype=np.int64)


def engine_sizes(group: list[np.ndarray]) -> np.ndarray:
    return process_sets(pack([group])).size.astype(np.int64)


def time_brute(rng: np.random.Generator, g: int, length: int, budget: float) -> tuple[int, float, str]:
    """Brute force on one fresh realistic group of G=g and the largest L' <= length fitting ``budget``."""
    lp = min(64, length)
    while True:
        group = realistic_group(rng, g, lp)
        lists = [c.tolist() for c in group]
        t0 = time.perf_counter()
        ref = brute_force_process_set_sizes(lists)
        elapsed = time.perf_counter() - t0
        assert np.array_equal(engine_sizes(group), flat(ref)), f"engine != brute force at G={g}, L'={lp}"
        # Brute force costs ~L^2 per completion pair: doubling L' multiplies the time by ~4.
        if lp >= length or elapsed * 4 > budget:
            note = "full L" if lp >= length else f"L'={lp}"
            return lp, elapsed, note
        lp = min(2 * lp, length)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="smoke run: ~1 M tokens per call, 2 repetitions")
    p.add_argument("--tokens", type=float, default=6e6, help="tokens per measured engine call (default 6e6)")
    p.add_argument("--reps", type=int, default=5, help="engine repetitions (best and median are shown)")
    p.add_argument("--dict-tokens", type=float, default=1e6,
                   help="tokens timed for the dict trie per row (at least 2 groups; default 1e6)")
    p.add_argument("--brute-budget", type=float, default=8.0,
                   help="seconds allowed for one brute-force group; L is reduced until it fits (default 8)")
    p.add_argument("--vocab", type=int, default=50_000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--group-reps", type=int, default=20, help="calls timed per row of the per-group table")
    args = p.parse_args(argv)
    if args.quick:
        args.tokens, args.reps, args.dict_tokens, args.brute_budget, args.group_reps = 1e6, 2, 2e5, 0.5, 3

    rng = np.random.default_rng(args.seed)
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    print(f"prm_probe engine benchmark, {now}")
    print(machine_line())
    print(code_version())
    print(f"groups: realistic_group (geometric shared prefix, mean 0.1 L; ~5% duplicates), vocab {args.vocab}; "
          f"engine: ~{args.tokens / 1e6:g} M tokens per call, {args.reps} reps\n")

    rows = []
    for g, length in SHAPES:
        n_groups = max(1, round(args.tokens / (g * length)))
        groups = [realistic_group(rng, g, length, vocab=args.vocab) for _ in range(n_groups)]
        packed = pack(groups)
        n_tok = len(packed.tokens)
        times, size = time_engine(packed, args.reps)
        best, med = min(times), statistics.median(times)

        # The dict trie runs on the first n_dict of the groups the engine just processed.
        n_dict = min(n_groups, max(2, int(np.ceil(args.dict_tokens / (g * length)))))
        lists = [[c.tolist() for c in grp] for grp in groups[:n_dict]]
        d_tok = sum(len(c) for grp in lists for c in grp)
        d_times, d_out = time_dict(lists, 1 if args.quick else 3)
        d_best = min(d_times)
        # Correctness: the engine (on the big packed call) equals the dict trie on the groups timed for it.
        c_end = int(packed.group_offsets[n_dict])
        engine_part = size[: int(packed.offsets[c_end])].astype(np.int64)
        assert np.array_equal(engine_part, np.concatenate([flat(o) for o in d_out])), \
            f"engine != dict trie at G={g}, L={length}"

        lp, b_time, b_note = time_brute(rng, g, length, args.brute_budget)
        b_tok = g * lp
        rows.append(dict(g=g, l=length, groups=n_groups, tok=n_tok, best=n_tok / best / 1e6,
                         med=n_tok / med / 1e6, best_s=best, dict_tok=d_tok, dict=d_tok / d_best / 1e6,
                         brute_tok=b_tok, brute=b_tok / b_time / 1e6, brute_note=b_note, brute_s=b_time,
                         brute_full_s=b_time * (length / lp) ** 2))
        r = rows[-1]
        print(f"  done G={g} L={length}: engine best {r['best']:.1f} Mtok/s, dict {r['dict']:.2f} Mtok/s, "
              f"brute {r['brute']:.4f} Mtok/s ({b_note})", flush=True)

    print()
    hdr = ("|  G |    L | engine tokens/call | engine Mtok/s best | median | s/call best | dict tokens "
           "| dict Mtok/s | brute measured on | brute Mtok/s | brute s/group at full L (est.) | engine/dict |")
    print(hdr)
    print("|" + "|".join("-" * (len(c)) for c in hdr.split("|")[1:-1]) + "|")
    for r in rows:
        print(f"| {r['g']:>2} | {r['l']:>4} | {r['tok']:>10,} ({r['groups']} groups) | {r['best']:>8.1f} "
              f"| {r['med']:>6.1f} | {r['best_s']:.4f} | {r['dict_tok']:>9,} | {r['dict']:>6.2f} "
              f"| G={r['g']}, {r['brute_note']} ({r['brute_tok']:,} tok, {r['brute_s']:.2f} s) "
              f"| {r['brute']:.4f} | {r['brute_full_s']:,.3g} | {r['best'] / r['dict']:>6.0f}x |")
    print()
    target = next((r for r in rows if (r["g"], r["l"]) == (16, 2048)), None)
    if target is not None:
        ok1 = target["best"] >= GOAL_MTOK
        print(f"goal: >= {GOAL_MTOK:.0f} M tokens/s per core at (16, 2048): best {target['best']:.1f}, "
              f"median {target['med']:.1f} -> {'MET' if ok1 else 'MISSED'}")
    worst = min(r["best"] / r["dict"] for r in rows)
    print(f"goal: >= {GOAL_RATIO:.0f}x the dict trie: lowest ratio {worst:.0f}x -> "
          f"{'MET' if worst >= GOAL_RATIO else 'MISSED'}")
    print("\nper-group call, one group of G = 16, L = 2048 (realistic_group), best / median of "
          f"{args.group_reps} calls:\n")
    grows = per_group(rng, args.group_reps, args.vocab)
    base = next(r for r in grows if r["name"].startswith("radix trie, literal"))
    print("| call | ms best | ms median | Mtok/s | baseline / call |")
    print("|---|---|---|---|---|")
    for r in grows:
        print(f"| {r['name']} | {r['best'] * 1e3:.2f} | {r['med'] * 1e3:.2f} | {r['tok'] / r['best'] / 1e6:.2f} "
              f"| {base['best'] / r['best']:.1f}x |")
    public = grows[0]
    shortcut = next(r for r in grows if "shortcut" in r["name"])
    ratio = base["best"] / public["best"]
    print(f"\ngoal: public per-group call >= {GOAL_GROUP_RATIO:.0f}x the literal radix trie: {ratio:.1f}x -> "
          f"{'MET' if ratio >= GOAL_GROUP_RATIO else 'MISSED'} (against the leaf-shortcut variant: "
          f"{shortcut['best'] / public['best']:.1f}x)")
    print("correctness: engine == dict trie on every dict-timed group, engine == brute force on every "
          "brute-timed group (asserted)")
    print("notes: engine time = process_sets(PackedGroups) + .size; dict/brute time only the Python function "
          "(token lists prepared beforehand); the brute-force full-L estimate scales the measured time by "
          "(L/L')^2 and is not measured.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
