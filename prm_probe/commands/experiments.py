"""Verbs that reproduce the paper's experiments and this project's figures: ``experiment``, ``figures``, ``demo``."""

from __future__ import annotations

import argparse
from pathlib import Path

from prm_probe.commands._shared import progress
from prm_probe.errors import ConfigError


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
                                                progress=progress(args))
        print((figures / "toy_tree_table1.md").read_text(encoding="utf-8"))
    else:
        written = reproduce.overlap_experiment(out, figures, group_sizes=args.group_sizes, steps=args.steps or 200,
                                               model=args.model or "tiny-gpt2", task=args.task or "toy-tree",
                                               workers=args.workers, progress=progress(args))
    for name, path in written.items():
        print(f"wrote {name}: {path}")
    return 0


def cmd_figures(args: argparse.Namespace) -> int:
    from prm_probe.core.rollouts import BUNDLED_LOG
    from prm_probe.experiments.reproduce import make_figures

    inputs = args.inputs or [str(BUNDLED_LOG)]
    written = make_figures(inputs, args.out, tokenizer=args.tokenizer)
    for name, path in written.items():
        print(f"wrote {name}: {path}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from prm_probe.experiments.reproduce import demo

    seeds, steps = (3, 60) if args.quick else (args.seeds, args.steps)
    # progress on stderr whenever not -q (also when stderr is not a terminal: the demo runs for minutes)
    report = demo(args.out, log=args.log, seeds=seeds, steps=steps, workers=args.workers, progress=not args.quiet)
    print(f"demo report: {report.resolve()}")
    return 0


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
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
    p.set_defaults(func=cmd_experiment, extras=("train", "plots"))

    p = sub.add_parser("figures", parents=[common], help="regenerate the figures from logs, runs and experiments")
    p.add_argument("inputs", nargs="*", metavar="RUN_DIR_OR_LOG",
                   help="rollout logs, experiment folders or run folders (default: the bundled sample log)")
    p.add_argument("--out", default="figures", metavar="DIR", help="default figures/")
    p.add_argument("--tokenizer", metavar="PATH", help="tokenizer.json or model folder, to show text in the trie")
    p.set_defaults(func=cmd_figures, extras=("plots",))

    p = sub.add_parser("demo", parents=[common], help="GRPO vs λ-GRPO on the toy tree + the sample log, in minutes")
    p.add_argument("--out", default="prm-probe-demo", metavar="DIR", help="output folder (default prm-probe-demo)")
    p.add_argument("--log", metavar="LOG", help="rollout log to analyse (default: the bundled real SmolLM2 log)")
    p.add_argument("--seeds", type=int, default=10, help="seeds per algorithm (default 10)")
    p.add_argument("--steps", type=int, default=250, help="steps per run (default 250, as in the paper)")
    p.add_argument("--workers", type=int, help="runs in parallel (default: the number of cores)")
    p.add_argument("--quick", action="store_true",
                   help="3 seeds × 60 steps: a smoke test (λ-GRPO needs the default 250 steps to learn)")
    p.set_defaults(func=cmd_demo, extras=("train", "plots"))
