"""``import``: a TRL, verl, grpo-prm, JSONL-ids or generic log converted to the canonical rollout log."""

from __future__ import annotations

import argparse

from prm_probe.commands._shared import parse_sets
from prm_probe.errors import ConfigError


def _weights(text: str | None) -> list[float] | None:
    if not text:
        return None
    try:
        return [float(w) for w in text.split(",")]
    except ValueError:
        raise ConfigError(f"--reward-weights {text!r} is not a comma-separated list of numbers; "
                          "expected e.g. --reward-weights 1.0,0.5; fix it") from None


def cmd_import(args: argparse.Namespace) -> int:
    from prm_probe.core.provenance import log_notes
    from prm_probe.core.rollouts import read_metadata
    from prm_probe.integrations.importers import import_to_parquet

    tokenizer = None
    if args.tokenizer:
        from prm_probe.training.models import load_tokenizer

        tokenizer = load_tokenizer(args.tokenizer)
    fields = parse_sets(args.field, strip_values=False, flag="--field") if args.field else None
    columns = [c for c in args.reward_columns.split(",") if c] if args.reward_columns else None
    out = import_to_parquet(args.format, args.source, args.output, tokenizer=tokenizer, group_size=args.group_size,
                            fields=fields, run_id=args.run_id, reward_columns=columns,
                            reward_weights=_weights(args.reward_weights))
    meta = read_metadata(out)
    print(f"wrote {out} (token ids: {meta.get('prm_probe.token_source', 'sampled')}; try `prm-probe stats {out}`)")
    for line in log_notes(meta):
        print(f"note: {line}")
    return 0


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("import", parents=[common], help="convert a TRL / verl / grpo-prm / JSONL log to ours")
    p.add_argument("format", help="trl, verl, grpo-prm, jsonl-ids or generic")
    p.add_argument("source", help="the foreign log: a file, a folder or a glob")
    p.add_argument("-o", "--output", required=True, metavar="LOG.parquet", help="canonical rollout log to write")
    p.add_argument("--tokenizer", metavar="CHECKPOINT",
                   help="tokenizer.json, model folder or built-in name (smollm2-135m), for text-only logs")
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
