"""``compare``: GRPO against λ-GRPO runs of the built-in trainer: curves, peaks and paired tests."""

from __future__ import annotations

import argparse
from pathlib import Path

from prm_probe.errors import ConfigError


def _expand(patterns: list[str]) -> list[str]:
    import glob

    paths: list[str] = []
    for pattern in patterns:
        found = sorted(glob.glob(pattern)) if glob.has_magic(pattern) else [pattern]
        if not found:
            raise ConfigError(f"'{pattern}' matches no run folder; expected run folders or a glob such as "
                              "'runs/*'; check the pattern")
        paths += found
    return paths


def _labels(pairs: list[str] | None) -> list[tuple[str, str]]:
    labels = []
    for pair in pairs or []:
        name, sep, pattern = pair.partition("=")
        if not sep or not name.strip() or not pattern.strip():
            raise ConfigError(f"--label {pair!r} is not NAME=GLOB; expected e.g. --label 'λ-GRPO=runs/lam*'; "
                              "fix the flag")
        labels.append((name.strip(), pattern.strip()))
    return labels


def cmd_compare(args: argparse.Namespace) -> int:
    from prm_probe.errors import CheckpointError
    from prm_probe.views.compare import compare_runs

    comparison = compare_runs(_expand(args.runs), labels=_labels(args.label), force=args.force, metric=args.metric,
                              paired=args.paired)
    if len(comparison.runs) < 2:
        total = len(comparison.runs) + len(comparison.skipped)
        raise CheckpointError(f"only {len(comparison.runs)} of {total} run folder(s) could be read; expected "
                              "at least two runs to compare; fix or add run folders")
    print(comparison.to_markdown())
    if args.out:
        written = comparison.write(args.out)
        print(f"wrote {len(written)} files to {Path(args.out)}")
    elif not args.quiet:
        print("(write summary.md, runs.csv, tests.csv, curves.csv and figures with --out DIR)")
    return 0


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("compare", parents=[common], help="compare GRPO and λ-GRPO runs: curves, peaks and tests")
    p.add_argument("runs", nargs="+", metavar="RUN_DIR", help="run folders of `prm-probe train` (globs allowed)")
    g = p.add_argument_group("comparison")
    g.add_argument("--metric", default="val_accuracy",
                   help="curve to compare: val_accuracy, val_reward_mean, reward_mean, path_depth_mean, ... "
                        "(default val_accuracy)")
    g.add_argument("--label", action="append", metavar="NAME=GLOB",
                   help="call the runs whose path matches GLOB NAME (default: GRPO / λ-GRPO from the config)")
    g.add_argument("--force", action="store_true",
                   help="compare runs whose task, model, group size, prompts per step, steps or length differ")
    g.add_argument("--paired", action="store_true",
                   help="also test the runs of one seed as pairs: exact Wilcoxon signed-rank and a bootstrap interval "
                        "of the mean difference (one run per algorithm and seed)")
    g.add_argument("--out", metavar="DIR", help="write summary.md, runs.csv, tests.csv, curves.csv (and figures)")
    p.set_defaults(func=cmd_compare, extras=("plots",))
