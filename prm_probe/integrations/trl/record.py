"""Record a TRL GRPO run in prm_probe's run-folder format, so ``prm-probe compare`` reads it.

:class:`RunRecordCallback` is a Hugging Face ``TrainerCallback``. On the main process it writes, into the
trainer's ``output_dir``:

* ``config.json``: the settings ``prm-probe compare`` matches and labels runs by (task, model, G, prompts per
  step, steps, completion length, weighting → GRPO / λ-GRPO), in the built-in trainer's layout, plus the
  TRL settings under ``trl``;
* ``metrics.jsonl``: one line per training log (``step`` = TRL's global step), with TRL's names mapped to
  the built-in trainer's where they mean the same (``reward`` → ``reward_mean``, ``overlap/path_depth_mean``
  → ``path_depth_mean``, ``learning_rate`` → ``lr``; other names kept, ``/`` → ``_``);
* ``validation.jsonl``: one line per evaluation, ``eval_reward`` → ``val_reward_mean`` and the other
  ``eval_*`` keys as ``val_*``.

On resume, lines after the checkpoint's step are dropped first, as the built-in trainer does.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

from prm_probe.core.files import append_jsonl, truncate_jsonl, write_text_atomic
from prm_probe.core.runs import RunFolder
from prm_probe.core.weightings import PROCESS_SET, UNIFORM, WEIGHTING_NAMES
from prm_probe.errors import ConfigError, close_matches

__all__ = ["TRL_SETTINGS", "RunRecordCallback", "metric_name", "trl_settings"]

#: The TRL arguments recorded with a run (``config.json``'s ``trl`` table, the rollout log's ``config``).
TRL_SETTINGS = ("num_generations", "loss_type", "beta", "epsilon", "epsilon_high", "learning_rate", "temperature",
                "max_completion_length", "scale_rewards", "num_iterations", "generation_batch_size",
                "steps_per_generation", "per_device_train_batch_size", "gradient_accumulation_steps", "use_vllm",
                "use_bias_correction_kl", "mask_truncated_completions", "process_set_weighting")

_RENAMES = {"reward": "reward_mean", "learning_rate": "lr", "completions/mean_length": "completion_length_mean",
            "frac_reward_zero_std": "zero_std_fraction"}
_SKIP = ("train_runtime", "train_samples_per_second", "train_steps_per_second", "train_loss", "total_flos",
         "epoch")


def trl_settings(args: Any) -> dict[str, Any]:
    """The :data:`TRL_SETTINGS` of TRL arguments ``args`` (None where a field does not exist)."""
    return {k: getattr(args, k, None) for k in TRL_SETTINGS}


def metric_name(key: str) -> str:
    """The built-in trainer's name for a TRL log key (training keys; ``eval_`` is handled by the caller).

    Example:
        >>> [metric_name(k) for k in ("reward", "overlap/path_depth_mean", "rewards/acc/mean", "kl")]
        ['reward_mean', 'path_depth_mean', 'rewards_acc_mean', 'kl']
    """
    if key in _RENAMES:
        return _RENAMES[key]
    if key.startswith("overlap/"):
        return key.removeprefix("overlap/")
    return key.replace("/", "_")


def _numbers(logs: dict[str, Any]) -> dict[str, float]:
    out = {}
    for key, value in logs.items():
        if key in _SKIP or isinstance(value, bool) or not isinstance(value, int | float):
            continue
        out[key] = float(value) if math.isfinite(value) else None
    return out


class RunRecordCallback(TrainerCallback):
    """Writes ``config.json``, ``metrics.jsonl`` and ``validation.jsonl`` for ``prm-probe compare``.

    Args:
        task: the task name recorded in ``config.json`` (runs are only compared when it matches).
        task_options: the task's options, recorded beside it.
        weighting: ``"process_set"`` (λ-GRPO) or ``"uniform"`` (GRPO), a name of
            :data:`~prm_probe.core.weightings.WEIGHTING_NAMES`; default: the trainer config's
            ``process_set_weighting`` when it has one, else ``"uniform"``.
        model_name: the model as the user named it; default: the model config's ``_name_or_path``.
    """

    def __init__(self, task: str | None = None, task_options: dict[str, Any] | None = None,
                 weighting: str | None = None, model_name: str | None = None) -> None:
        if weighting is not None and weighting not in WEIGHTING_NAMES:
            raise ConfigError(f"unknown weighting {weighting!r}; {close_matches(weighting, WEIGHTING_NAMES)}"
                              f"expected one of {', '.join(WEIGHTING_NAMES)}")
        self.task, self.task_options, self.weighting = task, task_options or {}, weighting
        self.model_name = model_name

    def config(self, args: Any, model: Any = None) -> dict[str, Any]:
        """The run's ``config.json`` content for TRL arguments ``args``."""
        import trl

        weighting = self.weighting or (PROCESS_SET if getattr(args, "process_set_weighting", False) else UNIFORM)
        g = int(args.num_generations)
        rows_per_step = args.per_device_train_batch_size * args.world_size * args.gradient_accumulation_steps
        name = self.model_name or getattr(getattr(model, "config", None), "_name_or_path", None)
        return {
            "run_id": args.run_name or Path(args.output_dir).name, "seed": int(args.seed),
            "steps": int(args.max_steps), "backend": f"trl {trl.__version__}",
            "task": {"name": self.task, "options": self.task_options},
            "model": {"name": name},
            "sampling": {"group_size": g, "prompts_per_step": rows_per_step / g,
                         "max_new_tokens": int(args.max_completion_length), "temperature": float(args.temperature)},
            "loss": {"weighting": weighting, "renormalise": False, "aggregation": args.loss_type,
                     "beta": float(args.beta)},
            "optim": {"lr": float(args.learning_rate)},
            "trl": trl_settings(args),
        }

    def on_train_begin(self, args: Any, state: Any, control: Any, model: Any = None, **kwargs: Any) -> None:
        if not state.is_world_process_zero:
            return
        out = Path(args.output_dir)
        write_text_atomic(RunFolder(out).config, json.dumps(self.config(args, model), indent=2, default=str) + "\n")
        for path in (RunFolder(out).metrics, RunFolder(out).validation):
            truncate_jsonl(path, state.global_step + 1)

    def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None,
               **kwargs: Any) -> None:
        if not state.is_world_process_zero or not logs or "train_runtime" in logs:
            return
        values = _numbers(logs)
        out = Path(args.output_dir)
        evals = {k.removeprefix("eval_"): v for k, v in values.items() if k.startswith("eval_")}
        if evals:
            record = {"val_" + metric_name(k): v for k, v in evals.items()}
            append_jsonl(RunFolder(out).validation, {"step": int(state.global_step), **record})
        train = {metric_name(k): v for k, v in values.items() if not k.startswith("eval_")}
        if train:
            append_jsonl(RunFolder(out).metrics, {"step": int(state.global_step), **train})
