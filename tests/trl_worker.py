"""Worker of ``test_trl.py``'s two-process test: run under ``torchrun --nproc_per_node 2``.

Usage: trl_worker.py MODEL_FOLDER OUT_FOLDER. Trains LambdaGRPOTrainer for two generation batches with a
per-device batch of 2 and G = 4, so groups span the two processes, and writes ``rankN.json`` with this
process's rows and the 1/|λ| weights it computed for them (the main process also writes the rollout log).
"""

from __future__ import annotations

import json
import sys
import warnings
from pathlib import Path

import torch.distributed as dist
from datasets import Dataset
from transformers import AutoTokenizer

from prm_probe.integrations.trl.grpo import WEIGHT_KEY, LambdaGRPOConfig, LambdaGRPOTrainer


class RecordingTrainer(LambdaGRPOTrainer):
    """Keeps each generation batch's local completion ids and weights before TRL shuffles them."""

    records: list[dict]

    def _generate_and_score_completions(self, inputs):
        output = super()._generate_and_score_completions(inputs)
        lengths = output["completion_mask"].sum(1).tolist()
        self.records.append({
            "step": int(self.state.global_step),
            "ids": [row[:n] for row, n in zip(output["completion_ids"].tolist(), lengths, strict=True)],
            "weights": [row[:n] for row, n in zip(output[WEIGHT_KEY].tolist(), lengths, strict=True)],
        })
        return output


def main() -> None:
    warnings.filterwarnings("ignore")
    folder, out = Path(sys.argv[1]), Path(sys.argv[2])
    args = LambdaGRPOConfig(
        output_dir=str(out / "trl"), use_cpu=True, bf16=False, num_generations=4, per_device_train_batch_size=2,
        generation_batch_size=12, max_completion_length=5, max_steps=6, logging_steps=1, report_to="none",
        save_strategy="no", disable_tqdm=True, learning_rate=1e-3, gradient_checkpointing=False, seed=0,
        beta=0.04, generation_kwargs={"top_k": 2}, rollout_log_dir=str(out / "rollouts"))
    prompts = [f"<bos>{a}+{b}=" for a in range(1, 4) for b in range(1, 4)]
    trainer = RecordingTrainer(model=str(folder), reward_funcs=lambda completions, **_: [
        float(c.count("1")) for c in completions], args=args, train_dataset=Dataset.from_dict({"prompt": prompts}),
        processing_class=AutoTokenizer.from_pretrained(folder))
    trainer.records = []
    trainer.train()
    rank, world = dist.get_rank(), dist.get_world_size()
    (out / f"rank{rank}.json").write_text(json.dumps({"rank": rank, "world_size": world,
                                                      "batches": trainer.records}))


if __name__ == "__main__":
    main()
