"""λ-GRPO on TRL's ``GRPOTrainer``: multi-GPU, DeepSpeed/FSDP and vLLM generation come from TRL.

Install with ``pip install 'prm_probe[trl]'``. Use it where you would use ``GRPOTrainer``::

    from prm_probe.integrations.trl.grpo import LambdaGRPOConfig, LambdaGRPOTrainer

    args = LambdaGRPOConfig(output_dir="out", num_generations=8, rollout_log_dir="out/rollouts")
    trainer = LambdaGRPOTrainer(model="Qwen/Qwen2.5-0.5B-Instruct", reward_funcs=my_reward, args=args,
                                train_dataset=dataset)
    trainer.train()

What changes against ``GRPOTrainer`` (docs/science.md §5): after each generation batch the completion ids of all
processes are gathered, each group's token-prefix trie gives ``|λ(i, t)|``, and every token's per-token loss
(clipped surrogate **and** ``β·KL``) is multiplied by ``1/|λ(i, t)|`` before TRL's aggregation, whose token-
or sequence-count denominators stay as they are. ``process_set_weighting=False`` gives TRL's GRPO loss
unchanged, with the same telemetry: the matched baseline for a comparison.

Everything else is TRL's: rewards, advantages, sampling, vLLM, distribution, logging, checkpoints.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any

import torch
import trl
from trl import GRPOConfig, GRPOTrainer

from prm_probe.core.weightings import PROCESS_SET, UNIFORM
from prm_probe.errors import ConfigError
from prm_probe.integrations.trl.loss import lambda_grpo_loss, unsupported_settings
from prm_probe.integrations.trl.record import RunRecordCallback
from prm_probe.integrations.trl.telemetry import OverlapTelemetry

__all__ = ["TESTED_TRL", "LambdaGRPOConfig", "LambdaGRPOTrainer"]

#: TRL minor versions whose private loss internals the tests have checked this module against.
TESTED_TRL = ("1.16",)

#: Key of the (B, T) ``1/|λ|`` tensor carried in TRL's batch dict; shuffled and split with the other tensors.
WEIGHT_KEY = "process_set_weight"


def _check_trl_version() -> None:
    minor = ".".join(trl.__version__.split(".")[:2])
    if minor not in TESTED_TRL:
        warnings.warn(f"prm_probe's λ-GRPO trainer was tested with TRL {', '.join(TESTED_TRL)}; found "
                      f"{trl.__version__}; run `pytest tests/test_trl.py` to check it against this version",
                      stacklevel=3)


@dataclass
class LambdaGRPOConfig(GRPOConfig):
    """``GRPOConfig`` plus the λ-GRPO switches (all other fields and defaults are TRL's)."""

    process_set_weighting: bool = field(default=True, metadata={
        "help": "Multiply each token's loss (surrogate and KL) by 1/|λ(i,t)|, the size of its process set "
                "(λ-GRPO). False trains TRL's GRPO loss unchanged, with the same overlap telemetry."})
    overlap_telemetry: bool = field(default=True, metadata={
        "help": "Log the process-set statistics of every generation batch as overlap/* metrics."})
    rollout_log_dir: str | None = field(default=None, metadata={
        "help": "Write every training generation batch as a prm_probe rollout log with token ids "
                "(step-NNNNNN.parquet) into this folder; None writes nothing."})
    run_record: bool = field(default=True, metadata={
        "help": "Write config.json, metrics.jsonl and validation.jsonl into output_dir in prm_probe's run "
                "format, so `prm-probe compare` reads this run beside others."})
    task_name: str | None = field(default=None, metadata={
        "help": "Name of the task, recorded in config.json: prm-probe compare only pools runs of one task."})


class LambdaGRPOTrainer(GRPOTrainer):
    """TRL's ``GRPOTrainer`` with λ-GRPO's per-token ``1/|λ|`` loss weights and overlap telemetry.

    Accepts exactly ``GRPOTrainer``'s arguments; ``args`` may be a :class:`LambdaGRPOConfig` or a plain
    ``GRPOConfig`` (then λ-GRPO and telemetry are on and no rollout log is written).

    Attributes:
        telemetry: the :class:`~prm_probe.integrations.trl.telemetry.OverlapTelemetry` of this run
            (``telemetry.last_metrics`` holds the latest batch's statistics).
        run_record: the :class:`~prm_probe.integrations.trl.record.RunRecordCallback` writing the run files, or None.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        _check_trl_version()
        super().__init__(*args, **kwargs)
        self.process_set_weighting = bool(getattr(self.args, "process_set_weighting", True))
        if self.process_set_weighting:
            bad = unsupported_settings(self)
            if bad:
                raise ConfigError(f"λ-GRPO cannot weight this TRL configuration: {'; '.join(bad)}; expected a "
                                  "per-token loss type without the entropy bonus or Liger kernel; change those "
                                  "settings or set process_set_weighting=False")
        self.telemetry = OverlapTelemetry(self, getattr(self.args, "rollout_log_dir", None),
                                          log_metrics=bool(getattr(self.args, "overlap_telemetry", True)))
        self._prm_probe_telemetry = self.telemetry  # attach_overlap_telemetry refuses to add a second one
        self.run_record: RunRecordCallback | None = None
        if getattr(self.args, "run_record", True):
            self.run_record = RunRecordCallback(task=getattr(self.args, "task_name", None),
                                                weighting=PROCESS_SET if self.process_set_weighting else UNIFORM)
            self.add_callback(self.run_record)

    def _calculate_rewards(self, *args: Any, **kwargs: Any) -> torch.Tensor:
        rewards = super()._calculate_rewards(*args, **kwargs)
        self.telemetry.record_rewards(rewards)
        return rewards

    def _generate_and_score_completions(self, inputs: Any) -> dict[str, Any]:
        output = super()._generate_and_score_completions(inputs)
        sizes = self.telemetry.observe(output)  # (B, T) |λ| of this process's rows
        if self.process_set_weighting:
            output[WEIGHT_KEY] = sizes.reciprocal()
        return output

    def _compute_loss(self, model: Any, inputs: dict[str, Any]) -> torch.Tensor:
        weight = inputs.get(WEIGHT_KEY)
        if weight is None:
            return super()._compute_loss(model, inputs)
        return lambda_grpo_loss(self, model, inputs, weight)
