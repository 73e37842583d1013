"""Benchmark of the built-in GRPO / λ-GRPO trainer (``prm_probe.training.trainer``), and of TRL's trainer beside it.

1. Step-time breakdown of ``prm_probe.training.trainer.train``: the per-step ``time_*`` keys of ``metrics.jsonl``
   (generate + score, process-set weights, reference forward, policy forward + loss, backward, clip +
   optimiser, writing the rollout part), median over the steps after the first (warm-up) step, for the
   built-in ``tiny`` model (2-layer Qwen2, character tokenizer, vocabulary 100) and for
   SmolLM2-135M-Instruct (``smollm2-135m``). The share of the process-set weights (the trie) in the step is
   the number to watch. Peak memory: the RSS high-water mark (``getrusage(RUSAGE_SELF).ru_maxrss``)
   sampled after each step, and ``torch.cuda.max_memory_allocated`` per step on CUDA.
2. Throughput (completion tokens per second of optimiser-step wall time) against TRL's ``GRPOTrainer`` on
   the same model, the same prompts in the same order, the same G, length, loss and optimiser settings.
   Completion lengths are forced to exactly ``--max-new-tokens`` on both sides (ours: a subclass of the
   arithmetic task with ``exact_new_tokens``, so end tokens do not stop a row; TRL:
   ``generation_kwargs={"min_new_tokens": L}``, so end tokens are suppressed), so both generate the same
   number of tokens per step. Tokens are counted from each side's own outputs (ours: the metrics'
   ``completion_length_mean`` × rows; TRL: its logged ``completions/mean_length`` × rows).

Each configuration runs in its own subprocess (this script with ``--_worker``), so neither side's imports,
caches or allocator state affect the other; model loading and the first step are excluded from the timings
(steps 2..N are timed).

The ours/TRL pair is repeated in alternating rounds (``--tiny-rounds`` 3, ``--smollm2-rounds`` 1) and each side's
fastest round is reported, since other jobs on a shared machine only ever slow a round down; "CPU s / wall s"
shows whether a run had the cores to itself.

Run:  .venv/bin/python benchmarks/bench_trainer.py            (tiny + SmolLM2, ours and TRL; ~7.5 min, 2 quiet cores)
      .venv/bin/python benchmarks/bench_trainer.py --quick    (tiny model only, 3 steps, 1 round; ~1 min)
      .venv/bin/python benchmarks/bench_trainer.py --device cuda   (a GPU machine: bf16 autocast on both sides)

TRL is a benchmark-only dependency (not in pyproject.toml): ``pip install -c <(echo torch==2.13.0) trl``.
Without it (or with ``--no-trl``) only the breakdown is measured. This is not a test; it prints tables.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from _common import code_version, cpu_model  # noqa: E402

from prm_probe.training.tasks import Arithmetic  # noqa: E402  (light: numpy only)

# (metrics key, label) in step order; "other" is time_step minus their sum.
PHASES = [
    ("generate_and_score", "generate + score"),
    ("process_sets", "process-set weights (trie)"),
    ("reference", "reference forward (no grad)"),
    ("policy_forward", "policy forward + loss"),
    ("backward", "backward"),
    ("optimizer", "clip + optimiser step"),
    ("write", "write rollout part"),
]
GOAL_WEIGHTS_SHARE = 0.01
GOAL_RATIO = 1.0


class FixedLengthArithmetic(Arithmetic):
    """The arithmetic task with completions of exactly ``exact_new_tokens`` tokens (end tokens do not stop a row).

    Used as ``__main__:FixedLengthArithmetic`` inside the worker subprocess; the length is set there.
    """

    exact_new_tokens: int | None = None


# ---------------------------------------------------------------------------------------------- helpers


def rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def machine_line(device: str) -> str:
    import importlib.metadata as md

    import torch

    def ver(name: str) -> str:
        try:
            return md.version(name)
        except md.PackageNotFoundError:
            return "not installed"

    mem = ""
    try:
        line = next(x for x in Path("/proc/meminfo").read_text().splitlines() if x.startswith("MemTotal"))
        mem = f", {int(line.split()[1]) / 2**20:.0f} GiB RAM"
    except (OSError, StopIteration, ValueError):
        pass
    gpu = ""
    if device == "cuda" and torch.cuda.is_available():
        gpu = f", GPU {torch.cuda.get_device_name(0)}"
    elif not torch.cuda.is_available():
        gpu = ", no GPU"
    return (f"machine: {cpu_model()}, {os.cpu_count()} logical CPUs{mem}{gpu}; torch threads "
            f"{torch.get_num_threads()}; Python {platform.python_version()}, torch {torch.__version__}, "
            f"transformers {ver('transformers')}, trl {ver('trl')}, {platform.system()} {platform.machine()}")


def median(xs):
    return statistics.median(xs) if xs else float("nan")


# ---------------------------------------------------------------------------------------------- workers


def _cuda_peak(torch, device: str) -> float | None:
    if device != "cuda":
        return None
    peak = torch.cuda.max_memory_allocated() / 2**20
    torch.cuda.reset_peak_memory_stats()
    return peak


def worker_ours(spec: dict) -> dict:
    """Train ``spec['steps']`` steps with prm_probe's trainer; return per-step metrics, timings and memory."""
    import torch

    from prm_probe.training.config import config_from_dict
    from prm_probe.training.trainer import train

    base_rss = rss_mib()
    task = "arithmetic"
    if spec["fixed_length"]:
        FixedLengthArithmetic.exact_new_tokens = spec["max_new_tokens"]
        task = "__main__:FixedLengthArithmetic"
    cfg = config_from_dict({
        "seed": spec["seed"], "steps": spec["steps"], "device": spec["device"],
        "model": {"name": spec["model"]},
        "task": {"name": task, "train_size": spec["train_size"], "val_size": 0},  # no validation pass at the end
        "sampling": {"group_size": spec["group_size"], "prompts_per_step": spec["prompts"],
                     "max_new_tokens": spec["max_new_tokens"], "temperature": 1.0},
        "loss": {"weighting": spec["weighting"], "aggregation": "token_mean", "beta": spec["beta"]},
        "optim": {"lr": spec["lr"]},
    })
    steps: list[dict] = []
    last = [time.perf_counter(), time.process_time()]

    def on_step(rec: dict) -> None:
        now, cpu = time.perf_counter(), time.process_time()
        row = {k: v for k, v in rec.items() if k.startswith("time_") or k in (
            "step", "completion_length_mean", "completion_length_min", "completion_length_max", "stop_fraction",
            "reward_mean", "grad_norm", "kl", "loss")}
        row.update(rows=spec["group_size"] * spec["prompts"], callback_wall=now - last[0], callback_cpu=cpu - last[1],
                   rss_mib=rss_mib(), cuda_peak_mib=_cuda_peak(torch, spec["device"]))
        steps.append(row)
        last[0], last[1] = time.perf_counter(), time.process_time()

    with tempfile.TemporaryDirectory(prefix="bench_trainer_") as tmp:
        t0 = time.perf_counter()
        train(cfg, Path(tmp) / "run", on_step=on_step)
        total = time.perf_counter() - t0
    return {"side": "ours", "steps": steps, "rss_after_imports_mib": base_rss, "rss_end_mib": rss_mib(),
            "train_wall_s": total}


def worker_trl(spec: dict) -> dict:
    """Train ``spec['steps']`` steps with TRL's GRPOTrainer on the same problems; return timings and logs."""
    import logging
    import warnings

    import torch
    from datasets import Dataset
    from transformers import TrainerCallback
    from transformers.utils import logging as hf_logging
    from trl import GRPOConfig, GRPOTrainer

    from prm_probe.training.models import load_policy, smollm2_folder
    from prm_probe.training.tasks import Problem, get_task
    from prm_probe.training.trainer import problem_order

    warnings.filterwarnings("ignore")
    hf_logging.set_verbosity_error()
    logging.getLogger("trl").setLevel(logging.ERROR)
    base_rss = rss_mib()
    g, k, n_steps, length = spec["group_size"], spec["prompts"], spec["steps"], spec["max_new_tokens"]
    task = get_task("arithmetic", seed=spec["seed"], train_size=spec["train_size"], val_size=0)
    problems = task.problems("train")
    # The problems our trainer takes, step by step, in the same order (TRL's shuffling is switched off).
    chosen = [problems[i] for s in range(n_steps) for i in problem_order(len(problems), spec["seed"], s, k)]
    tmp = tempfile.TemporaryDirectory(prefix="bench_trainer_trl_")
    if spec["model"] in ("tiny", "tiny-gpt2"):
        # TRL rebuilds the reference from the model's path (beta > 0): save the same seeded init to a folder.
        model, tok = load_policy(spec["model"], seed=spec["seed"])
        folder = Path(tmp.name) / spec["model"]
        model.save_pretrained(folder)
        tok.save_pretrained(folder)
        del model
        # No chat template: plain text; "<bos>" gives the same ids as our [bos] + encode(prompt).
        prompts = [tok.bos_token + p.prompt for p in chosen]
    elif spec["model"] == "smollm2-135m":
        folder = smollm2_folder()
        prompts = [[{"role": "user", "content": p.prompt}] for p in chosen]  # TRL applies the chat template
    else:
        folder = Path(spec["model"])
        prompts = [[{"role": "user", "content": p.prompt}] for p in chosen]
    data = Dataset.from_dict({"prompt": prompts, "answer": [p.answer for p in chosen]})

    def arithmetic_reward(prompts, completions, answer, **_):
        texts = [c[-1]["content"] if isinstance(c, list) else c for c in completions]
        return [float(task.score(Problem("trl", "", a), t, []).reward) for t, a in zip(texts, answer, strict=True)]

    class Timer(TrainerCallback):
        def __init__(self):
            self.rows: list[dict] = []
            self.t_begin = self.cpu_begin = 0.0

        def on_step_begin(self, args, state, control, **kw):
            self.t_begin, self.cpu_begin = time.perf_counter(), time.process_time()

        def on_step_end(self, args, state, control, **kw):
            if spec["device"] == "cuda":
                torch.cuda.synchronize()
            self.rows.append({"step": state.global_step - 1, "wall": time.perf_counter() - self.t_begin,
                              "cpu": time.process_time() - self.cpu_begin, "rss_mib": rss_mib(),
                              "cuda_peak_mib": _cuda_peak(torch, spec["device"])})

    cuda = spec["device"] == "cuda"
    args = GRPOConfig(
        output_dir=str(Path(tmp.name) / "trl_out"), use_cpu=not cuda, bf16=cuda, fp16=False,
        num_generations=g, per_device_train_batch_size=g * k, generation_batch_size=g * k,
        gradient_accumulation_steps=1, num_iterations=1, max_completion_length=length,
        generation_kwargs={"min_new_tokens": length} if spec["fixed_length"] else None,
        temperature=1.0, top_p=1.0, top_k=0,
        beta=spec["beta"], loss_type="dapo", scale_rewards="group", epsilon=0.2,
        learning_rate=spec["lr"], lr_scheduler_type="constant", warmup_steps=0, weight_decay=0.0,
        optim="adamw_torch", max_grad_norm=1.0, gradient_checkpointing=False, shuffle_dataset=False,
        max_steps=n_steps, logging_steps=1, report_to="none", save_strategy="no", disable_tqdm=True,
        seed=spec["seed"], dataloader_num_workers=0,
    )
    timer = Timer()
    t_load = time.perf_counter()
    trainer = GRPOTrainer(model=str(folder), reward_funcs=arithmetic_reward, args=args, train_dataset=data,
                          callbacks=[timer])
    load_s = time.perf_counter() - t_load
    gen_times: list[float] = []
    inner = trainer._generate_single_turn

    def timed_generate(*a, **kw):
        t = time.perf_counter()
        out = inner(*a, **kw)
        if cuda:
            torch.cuda.synchronize()
        gen_times.append(time.perf_counter() - t)
        return out

    trainer._generate_single_turn = timed_generate
    t0 = time.perf_counter()
    trainer.train()
    total = time.perf_counter() - t0
    logs = [h for h in trainer.state.log_history if "completions/mean_length" in h]
    keep = ("completions/mean_length", "completions/min_length", "completions/max_length", "num_tokens",
            "step_time", "kl", "reward", "grad_norm", "loss", "completions/clipped_ratio")
    steps = []
    for i, row in enumerate(timer.rows):
        log = logs[i] if i < len(logs) else {}
        steps.append({**row, **{k: log.get(k) for k in keep}, "rows": g * k,
                      "generate_s": gen_times[i] if i < len(gen_times) else None})
    tmp.cleanup()
    return {"side": "trl", "steps": steps, "rss_after_imports_mib": base_rss, "rss_end_mib": rss_mib(),
            "train_wall_s": total, "load_s": load_s, "optim": str(getattr(args.optim, "value", args.optim))}


def run_worker(spec: dict) -> dict:
    """Run one configuration in a fresh interpreter; return its JSON result (or raise with its stderr)."""
    with tempfile.NamedTemporaryFile("r", suffix=".json", delete=False) as fh:
        out = fh.name
    cmd = [sys.executable, str(Path(__file__).resolve()), "--_worker", json.dumps(spec), "--_out", out]
    load_before = os.getloadavg()[0]
    t0 = time.perf_counter()
    p = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    load_after = os.getloadavg()[0]
    if p.returncode != 0:
        raise RuntimeError(f"worker {spec['side']} {spec['model']} failed (rc {p.returncode}):\n{p.stderr[-4000:]}")
    result = json.loads(Path(out).read_text())
    os.unlink(out)
    result["process_wall_s"] = wall
    result["loadavg"] = (load_before, load_after)
    return result


# ---------------------------------------------------------------------------------------------- report


def done_line(label: str, n: int, r: dict) -> str:
    return (f"  done {label}: {n} steps, process {r['process_wall_s']:.0f} s, load average (1 min) "
            f"{r['loadavg'][0]:.1f} before / {r['loadavg'][1]:.1f} after")


def timed(steps: list[dict]) -> list[dict]:
    """The steps after the first (warm-up) one; the first when it is the only one."""
    return steps[1:] if len(steps) > 1 else steps


def fmt_s(x: float) -> str:
    return "-" if x != x else (f"{x:.3f}" if x < 10 else f"{x:.2f}")


def breakdown_table(runs: list[tuple[str, dict]]) -> list[str]:
    head = "| phase | " + " | ".join(name for name, _ in runs) + " |"
    lines = [head, "|---|" + "---|" * len(runs)]
    meds = []
    for _, r in runs:
        st = timed(r["steps"])
        m = {key: median([s[f"time_{key}"] for s in st]) for key, _ in PHASES}
        m["step"] = median([s["time_step"] for s in st])
        m["other"] = median([s["time_step"] - sum(s[f"time_{key}"] for key, _ in PHASES) for s in st])
        meds.append(m)
    for key, label in [*PHASES, ("other", "other (untimed: advantages, per-token weight tensor, metrics)")]:
        cells = [f"{fmt_s(m[key])} ({100 * m[key] / m['step']:.{2 if key == 'process_sets' else 1}f}%)"
                 for m in meds]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    lines.append("| **step (time_step)** | " + " | ".join(f"**{fmt_s(m['step'])}**" for m in meds) + " |")
    lines.append("| steps timed (after 1 warm-up) | " + " | ".join(str(len(timed(r["steps"]))) for _, r in runs) + " |")
    lines.append("| completion length mean (min-max) | " + " | ".join(
        f"{statistics.mean(s['completion_length_mean'] for s in timed(r['steps'])):.1f} "
        f"({min(s['completion_length_min'] for s in timed(r['steps']))}-"
        f"{max(s['completion_length_max'] for s in timed(r['steps']))})" for _, r in runs) + " |")
    return lines


def memory_table(runs: list[tuple[str, dict]], device: str) -> list[str]:
    cuda = device == "cuda"
    head = "| run | RSS after imports MiB | RSS peak after step 1 MiB | RSS peak after last step MiB |"
    head += " CUDA peak allocated per step MiB (max) |" if cuda else ""
    lines = [head, "|---|---|---|---|" + ("---|" if cuda else "")]
    for name, r in runs:
        st = r["steps"]
        row = (f"| {name} | {r['rss_after_imports_mib']:.0f} | {st[0]['rss_mib']:.0f} | "
               f"{max(s['rss_mib'] for s in st):.0f} |")
        if cuda:
            row += f" {max(s['cuda_peak_mib'] or 0 for s in st):.0f} |"
        lines.append(row)
    return lines


def throughput(r: dict) -> dict:
    st = timed(r["steps"])
    if r["side"] == "ours":
        walls = [s["time_step"] for s in st]
        util = sum(s["callback_cpu"] for s in st) / sum(s["callback_wall"] for s in st)
        tokens = [s["completion_length_mean"] * s["rows"] for s in st]
        lens = (statistics.mean(s["completion_length_mean"] for s in st),
                min(s["completion_length_min"] for s in st), max(s["completion_length_max"] for s in st))
        gen = [s["time_generate_and_score"] for s in st]
    else:
        walls = [s["wall"] for s in st]
        util = sum(s["cpu"] for s in st) / sum(walls)
        tokens = [s["completions/mean_length"] * s["rows"] for s in st]
        lens = (statistics.mean(s["completions/mean_length"] for s in st),
                min(s["completions/min_length"] for s in st), max(s["completions/max_length"] for s in st))
        gen = [s["generate_s"] for s in st if s["generate_s"] is not None]
    best = max(tok / w for tok, w in zip(tokens, walls, strict=True))
    return {"n": len(st), "tokens": sum(tokens), "wall": sum(walls), "tps": sum(tokens) / sum(walls),
            "step_med": median(walls), "lens": lens, "gen_tps": sum(tokens) / sum(gen) if gen else float("nan"),
            "gen_med": median(gen), "util": util, "best_step_tps": best}


def best_round(runs: list[dict]) -> tuple[dict, dict]:
    """The round with the highest tokens/s over its timed steps (contention only ever slows a round down)."""
    stats = [throughput(r) for r in runs]
    i = max(range(len(runs)), key=lambda j: stats[j]["tps"])
    return runs[i], stats[i]


def throughput_table(pairs: list[tuple[str, list[dict], list[dict]]]) -> tuple[list[str], list[tuple]]:
    lines = ["| model | trainer | rounds | steps timed | completion tokens | length mean (min-max) | wall s "
             "| s/step median | **tokens/s** | tokens/s of each round | best single step tokens/s "
             "| generation s/step median | generation tokens/s | CPU s / wall s | ours / TRL |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    ratios = []
    for model, ours_runs, trl_runs in pairs:
        (_, a), (_, b) = best_round(ours_runs), best_round(trl_runs)
        ratio = a["tps"] / b["tps"]
        per_round = [throughput(o)["tps"] / throughput(t)["tps"] for o, t in zip(ours_runs, trl_runs, strict=True)]
        ratios.append((model, ratio, per_round, a["best_step_tps"] / b["best_step_tps"]))
        for name, runs, t, cell in (("prm_probe (λ-GRPO)", ours_runs, a, f"**{ratio:.2f}x**"),
                                    ("TRL GRPOTrainer", trl_runs, b, "1.00x")):
            each = ", ".join(f"{throughput(r)['tps']:,.0f}" for r in runs)
            lines.append(f"| {model} | {name} | {len(runs)} | {t['n']} | {t['tokens']:,.0f} | {t['lens'][0]:.1f} "
                         f"({t['lens'][1]:.0f}-{t['lens'][2]:.0f}) | {fmt_s(t['wall'])} | {fmt_s(t['step_med'])} | "
                         f"**{t['tps']:,.0f}** | {each} | {t['best_step_tps']:,.0f} | {fmt_s(t['gen_med'])} | "
                         f"{t['gen_tps']:,.0f} | {t['util']:.2f} | {cell} |")
    return lines, ratios


# ---------------------------------------------------------------------------------------------- main


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="tiny model only, 3 steps (smoke run)")
    ap.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    ap.add_argument("--models", default=None, help="comma-separated (default: tiny,smollm2-135m; --quick: tiny)")
    ap.add_argument("--tiny-steps", type=int, default=10)
    ap.add_argument("--smollm2-steps", type=int, default=4)
    ap.add_argument("--tiny-rounds", type=int, default=3, help="alternating ours/TRL rounds on tiny (best is kept)")
    ap.add_argument("--smollm2-rounds", type=int, default=1, help="alternating ours/TRL rounds on SmolLM2")
    ap.add_argument("--group-size", type=int, default=8)
    ap.add_argument("--prompts", type=int, default=4, help="prompts per step")
    ap.add_argument("--max-new-tokens", type=int, default=32)
    ap.add_argument("--beta", type=float, default=0.04)
    ap.add_argument("--lr", type=float, default=1e-5)
    ap.add_argument("--weighting", default="process_set", choices=["process_set", "uniform"])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--train-size", type=int, default=2000)
    ap.add_argument("--no-trl", action="store_true", help="skip TRL (breakdown only)")
    ap.add_argument("--natural", default="tiny",
                    help="models that also get a breakdown run with natural end-token stopping (comma-separated, "
                         "'all' or 'none'; default tiny)")
    ap.add_argument("--_worker", help=argparse.SUPPRESS)
    ap.add_argument("--_out", help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args._worker:
        spec = json.loads(args._worker)
        result = worker_ours(spec) if spec["side"] == "ours" else worker_trl(spec)
        Path(args._out).write_text(json.dumps(result))
        return

    models = (args.models or ("tiny" if args.quick else "tiny,smollm2-135m")).split(",")
    natural = set(models) if args.natural == "all" else set() if args.natural == "none" else set(
        args.natural.split(","))
    have_trl = not args.no_trl
    if have_trl:
        import importlib.util

        if importlib.util.find_spec("trl") is None:
            print("note: trl is not installed; measuring the breakdown only "
                  "(pip install -c <(echo torch==2.13.0) trl)")
            have_trl = False
    import torch

    if args.device == "cuda" and not torch.cuda.is_available():
        sys.exit("--device cuda: torch sees no CUDA GPU here; run on a GPU machine or use --device cpu")

    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    print(f"prm_probe trainer benchmark, {now}")
    print(machine_line(args.device))
    print(code_version())
    precision = "bf16 autocast (fp32 weights)" if args.device == "cuda" else "fp32"
    print(f"setting: arithmetic task (seed {args.seed}), G={args.group_size} x {args.prompts} prompts = "
          f"{args.group_size * args.prompts} rollouts per step, max_new_tokens {args.max_new_tokens}, temperature 1, "
          f"{args.weighting} weighting + token_mean, beta={args.beta} (frozen reference), AdamW lr {args.lr:g}, "
          f"grad clip 1.0, {args.device} {precision}; each run in its own subprocess; medians over steps 2..N")
    print()

    def steps_for(model: str) -> int:
        if args.quick:
            return 3
        return args.tiny_steps if model.startswith("tiny") else args.smollm2_steps

    base = {"device": args.device, "group_size": args.group_size, "prompts": args.prompts,
            "max_new_tokens": args.max_new_tokens, "beta": args.beta, "lr": args.lr, "seed": args.seed,
            "train_size": args.train_size, "weighting": args.weighting}
    breakdown_runs: list[tuple[str, dict]] = []
    pairs: list[tuple[str, dict, dict]] = []
    mem_runs: list[tuple[str, dict]] = []
    for model in models:
        n = steps_for(model)
        if model in natural or "all" in natural:
            spec = {**base, "side": "ours", "model": model, "steps": n, "fixed_length": False}
            r = run_worker(spec)
            print(done_line(f"ours {model} natural stopping", n, r))
            breakdown_runs.append((f"{model}, natural stopping", r))
            mem_runs.append((f"prm_probe {model}, natural stopping", r))
        spec = {**base, "side": "ours", "model": model, "steps": n, "fixed_length": True}
        rounds = 1 if args.quick else (args.tiny_rounds if model.startswith("tiny") else args.smollm2_rounds)
        ours_runs, trl_runs = [], []
        for i in range(rounds):  # alternate the sides: ours, TRL, ours, TRL, ...
            ours = run_worker(spec)
            print(done_line(f"ours {model} fixed length, round {i + 1}", n, ours))
            ours_runs.append(ours)
            if have_trl:
                trl = run_worker({**spec, "side": "trl"})
                print(done_line(f"TRL  {model} fixed length, round {i + 1}", n, trl)
                      + f", GRPOTrainer construction (model + reference load) {trl['load_s']:.1f} s")
                trl_runs.append(trl)
        ours, _ = best_round(ours_runs)
        label = f", best of {rounds} rounds" if rounds > 1 else ""
        breakdown_runs.append((f"{model}, fixed length {args.max_new_tokens}{label}", ours))
        mem_runs.append((f"prm_probe {model}, fixed length{label}", ours))
        if trl_runs:
            pairs.append((model, ours_runs, trl_runs))
            mem_runs.append((f"TRL {model}, fixed length{label}", best_round(trl_runs)[0]))
    print()

    print("step-time breakdown of prm_probe's trainer (median seconds over the timed steps; share of the median step):")
    print()
    print("\n".join(breakdown_table(breakdown_runs)))
    print()
    for name, r in breakdown_runs:
        st = timed(r["steps"])
        share = median([s["time_process_sets"] / s["time_step"] for s in st])
        bound = median([(s["time_process_sets"] + s["time_step"] - sum(s[f"time_{k}"] for k, _ in PHASES))
                        / s["time_step"] for s in st])
        verdict = "MET" if share < GOAL_WEIGHTS_SHARE else "MISSED"
        print(f"goal: process-set weights < 1% of the step [{name}]: {100 * share:.3f}% -> {verdict} "
              f"(upper bound with all untimed work: {100 * bound:.2f}%)")
    print()
    print("peak memory (RSS high-water mark of each run's process, sampled after every step):")
    print()
    print("\n".join(memory_table(mem_runs, args.device)))
    print()
    if pairs:
        print("throughput, completions forced to exactly "
              f"{args.max_new_tokens} tokens on both sides (timed steps 2..N; model loading and step 1 excluded):")
        print()
        lines, ratios = throughput_table(pairs)
        print("\n".join(lines))
        print()
        for model, ratio, per_round, best_step in ratios:
            verdict = "MET" if ratio >= GOAL_RATIO else "MISSED"
            rounds = f"; per round {', '.join(f'{x:.2f}x' for x in per_round)}" if len(per_round) > 1 else ""
            print(f"goal: prm_probe >= 1.0x TRL tokens/s on {args.device} [{model}]: {ratio:.2f}x -> {verdict} "
                  f"(best round vs best round{rounds}; best single step vs best single step {best_step:.2f}x)")
        threads = torch.get_num_threads()
        for model, ours_runs, trl_runs in pairs:
            if model.startswith("tiny") or args.device == "cuda":
                continue  # tiny steps are dominated by single-threaded Python; the check means nothing there
            for side, runs in (("prm_probe", ours_runs), ("TRL", trl_runs)):
                util = best_round(runs)[1]["util"]
                if util < 0.8 * threads:
                    print(f"warning: {side} on {model} used {util:.2f} CPU s per wall s with {threads} torch threads: "
                          "the machine was busy during that run (other jobs), so its tokens/s and the ratio are "
                          "understated/overstated; rerun on a quiet machine")
        optim = pairs[0][2][0].get("optim")
        print()
        print("notes: step wall = prm_probe's time_step (sampling through writing the rollout part and the step's "
              "overlap metrics; the metrics.jsonl append is outside) vs TRL's on_step_begin -> on_step_end "
              "(generation, rewards, reference, forward, backward, clip, optimiser; its logging is outside). "
              f"Generation: ours = time_generate_and_score (incl. scoring), TRL = _generate_single_turn. TRL: "
              f"loss_type=dapo, scale_rewards=group, beta={args.beta}, epsilon=0.2, num_iterations=1, optim={optim}, "
              "lr_scheduler constant, gradient_checkpointing=False, shuffle_dataset=False, "
              f"min_new_tokens={args.max_new_tokens}; ours uses {args.weighting} weights (TRL has none) and ignores "
              "end tokens (exact_new_tokens) instead of suppressing them. CPU s / wall s: the process's CPU time over "
              f"the wall time of the timed steps ({os.cpu_count()} logical CPUs): well below the thread count means "
              "the process waited (other jobs on the machine, or single-threaded Python overhead on tiny models).")


if __name__ == "__main__":
    main()
