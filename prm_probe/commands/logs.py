"""Verbs over one rollout log: ``schema``, ``validate``, ``stats`` and ``prm``."""

from __future__ import annotations

import argparse
import sys

from prm_probe.commands._shared import format_columns, progress, step_bar

LOG_HELP = "rollout log: a .parquet/.jsonl file, a folder of parts, a glob, or 'sample' (the packaged log)"

#: the columns ``stats`` prints per table (``-o FILE`` writes them all).
SHOWN = {
    "step": ["run_id", "step", "groups", "nontrivial_fraction", "proper_branching_fraction", "path_depth_mean",
             "path_depth_median", "intermediate_proportion_mean", "intermediate_proportion_median",
             "gradient_mass_ratio", "reward_mean"],
    "group": ["run_id", "step", "group", "group_size", "nontrivial", "proper_branching", "node_count",
              "path_depth_mean", "path_depth_median", "intermediate_proportion_mean", "gradient_mass_ratio",
              "reward_mean"],
    "completion": ["run_id", "step", "group", "sample", "length", "reward", "path_depth", "depth_all",
                   "intermediate_proportion", "root_length", "first_divergence"],
    "histogram": ["run_id", "step", "process_set_size", "tokens"],
}


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def cmd_schema(args: argparse.Namespace) -> int:
    from prm_probe.core.schema import METADATA_KEYS, SCHEMA_VERSION, schema_markdown

    print(f"rollout-log schema, version {SCHEMA_VERSION} (one row per completion; Parquet, or JSONL on input)\n")
    print(schema_markdown())
    print("\nfile metadata (Parquet key-value metadata, or <name>.meta.json beside a JSONL file):")
    for key, doc in METADATA_KEYS.items():
        print(f"  {key:26s} {doc}")
    return 0


def cmd_validate(args: argparse.Namespace) -> int:
    from prm_probe.core.validate import validate_log

    report = validate_log(args.log)
    for p in report.notes:
        print(str(p))
    for p in report.errors:  # one line each, prefixed like every other error of the command line
        print(f"prm-probe: {p} (in '{args.log}')", file=sys.stderr)
    if report.ok:
        print(f"ok: {_plural(report.rows, 'row')}, {_plural(report.groups, 'group')}, "
              f"{_plural(report.steps, 'step')}; {_plural(len(report.notes), 'note')}")
        return 0
    if len(report.errors) > 1:
        print(f"prm-probe: {len(report.errors)} errors in '{args.log}'", file=sys.stderr)
    return 2


def cmd_stats(args: argparse.Namespace) -> int:
    from prm_probe.core.files import check_table_path
    from prm_probe.core.provenance import log_notes
    from prm_probe.core.stats import overlap_stats

    if args.output:
        check_table_path(args.output)  # before any work
    result = overlap_stats(args.log, progress=step_bar("stats") if progress(args) else False)
    s = result.summary()
    print(f"log: {args.log}")
    print(f"  {s['steps']} step(s), {s['groups']} group(s), {s['completions']} completions, {s['tokens']} tokens")
    for line in log_notes(result.metadata):
        print(f"  note: {line}")
    print(f"  non-trivial groups (some token shared, F1):  {s['nontrivial_fraction']:.1%}")
    print(f"  proper branching (1 < |λ| < G somewhere, F2): {s['proper_branching_fraction']:.1%}")
    print(f"  path depth: mean {s['path_depth_mean']:.3f}, median {s['path_depth_median']:.1f}")
    print(f"  intermediate proportion: mean {s['intermediate_proportion_mean']:.3f}, "
          f"median {s['intermediate_proportion_median']:.3f}")
    print(f"  gradient-mass ratio Σ1/|λ| / Σ1 (λ-GRPO's shrink of a token-mean update): "
          f"{s['gradient_mass_ratio']:.3f}")
    if s["singleton_groups"]:
        print(f"  note: {s['singleton_groups']} group(s) of size 1: advantages undefined, no overlap possible")
    if s["empty_completions"]:
        print(f"  note: {s['empty_completions']} empty completion(s): they contribute no tokens")
    cols = result.columns[args.by]
    if not args.quiet:
        shown = [c for c in SHOWN[args.by] if c in cols]
        print(f"\nper {args.by} ({len(shown)} of {len(cols)} columns; -o FILE writes them all):")
        print(format_columns(cols, shown))
    if args.output:
        out = result.write(args.output, by=args.by)
        print(f"\nwrote {len(cols[next(iter(cols))])} rows (per {args.by}) to {out}")
    return 0


def cmd_prm(args: argparse.Namespace) -> int:
    import numpy as np

    from prm_probe.core.files import check_table_path, write_table
    from prm_probe.core.group_trie import GroupTrie

    if args.output:
        check_table_path(args.output)
    trie = GroupTrie.from_log(args.log, args.step, args.group, args.run_id)
    g = len(trie)
    print(f"run {trie.run_id}, step {args.step}, group {args.group}: G={g}, {trie.n_nodes} nodes, "
          f"rewards {np.round(trie.rewards, 3).tolist()}")
    if g < 2:
        print("note: a group of size 1 has no std, so its advantages are undefined (NaN)")
    from prm_probe.training.models import load_decoder

    print(trie.render(decode=load_decoder(args.tokenizer), max_chars=args.max_chars))
    check = trie.identity_check()
    print(f"Theorem 1 identity Σ_(i∈λ) a_i = |λ|·A(λ): holds on {int(check['holds'].sum())}/{len(check)} nodes")
    if args.output:
        frame = trie.to_frame()
        out = write_table(frame, args.output)
        print(f"wrote {len(frame)} token rows to {out}")
    return 0


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("schema", parents=[common], help="print the rollout-log schema")
    p.set_defaults(func=cmd_schema)

    p = sub.add_parser("validate", parents=[common], help="check a rollout log and list every problem")
    p.add_argument("log", help=LOG_HELP)
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser("stats", parents=[common], help="overlap statistics of a rollout log")
    p.add_argument("log", help=LOG_HELP)
    g = p.add_argument_group("statistics")
    g.add_argument("--by", choices=list(SHOWN), default="step",
                   help="level of the printed and written table (default: step); histogram = tokens per |λ|")
    g.add_argument("-o", "--output", metavar="FILE", help="write the table to FILE.parquet or FILE.csv")
    p.set_defaults(func=cmd_stats)

    p = sub.add_parser("prm", parents=[common], help="one group's trie with implied step rewards")
    p.add_argument("log", help=LOG_HELP)
    g = p.add_argument_group("which group")
    g.add_argument("--step", type=int, required=True, help="training step")
    g.add_argument("--group", type=int, required=True, help="group index within the step")
    g.add_argument("--run-id", help="run, when the log holds several")
    g = p.add_argument_group("display")
    g.add_argument("--tokenizer", metavar="PATH",
                   help="tokenizer.json, model folder or built-in name (smollm2-135m), to show text instead of ids")
    g.add_argument("--max-chars", type=int, default=60, help="shorten spans to this many characters")
    g.add_argument("-o", "--output", metavar="FILE", help="write the per-token PRM table (.parquet or .csv)")
    p.set_defaults(func=cmd_prm)
