"""``prm-quality``: R̂ of each shared node against a Monte-Carlo (or exact) estimate of its prefix's value."""

from __future__ import annotations

import argparse

from prm_probe.commands._shared import progress, step_bar


def _frame(frame) -> str:
    return frame.to_string(index=False, float_format=lambda x: f"{x:.4g}")


def cmd_prm_quality(args: argparse.Namespace) -> int:
    import pandas as pd

    from prm_probe.core.files import check_table_path
    from prm_probe.training.prm_quality import measure_prm_quality
    from prm_probe.views.prm_quality import PrmQuality

    for path in (args.output, args.tokens):  # before any work
        if path:
            check_table_path(path)
    result = PrmQuality(measure_prm_quality(
        args.checkpoint, args.log, rollouts=args.rollouts, max_nodes=args.max_nodes, step=args.step, seed=args.seed,
        device=args.device, out=args.output, allow_task_override=args.allow_task_override,
        progress=step_bar("prm-quality", "batch") if progress(args) else None), args.log)
    print(f"{len(result)} shared nodes, K = {args.rollouts} continuations each; truth: {result.value}")
    print(_frame(pd.DataFrame([result.summary()])))
    print("\nby |λ|:")
    print(_frame(result.frame("size")))
    print("\nby depth:")
    print(_frame(result.frame("depth")))
    if args.output:
        print(f"\nwrote {len(result)} rows to {args.output}")
    if args.tokens:
        result.write(args.tokens, by="token")
        print(f"\nper token, against the advantage from V with the same group baseline ({len(result.tokens())} "
              "tokens):")
        print(_frame(result.frame("token_summary")))
        print(f"wrote {len(result.tokens())} rows to {args.tokens}")
    if args.figure:
        from prm_probe.views.plots import save_figure

        written = save_figure(result.plot(), args.figure)
        print(f"wrote {', '.join(map(str, written))}")
    return 0


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("prm-quality", parents=[common],
                       help="R̂ of each shared node against a Monte-Carlo estimate of its prefix's true value")
    p.add_argument("checkpoint", help="model folder, run folder (newest checkpoint), or built-in model name")
    p.add_argument("log", help="a rollout log sampled from that checkpoint (needs prompt_ids); its recorded task and "
                               "sampling settings are used")
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
    p.set_defaults(func=cmd_prm_quality, extras=("train",))
