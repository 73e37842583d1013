"""λ-GRPO on TRL's GRPOTrainer and overlap telemetry for any TRL run (tiny model, CPU, offline)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("trl")
torch = pytest.importorskip("torch")

from datasets import Dataset  # noqa: E402
from trl import GRPOConfig, GRPOTrainer  # noqa: E402

from prm_probe import process_set_sizes  # noqa: E402
from prm_probe.errors import ConfigError, PrmProbeError  # noqa: E402
from prm_probe.integrations.trl.grpo import WEIGHT_KEY, LambdaGRPOConfig, LambdaGRPOTrainer  # noqa: E402
from prm_probe.integrations.trl.loss import SUPPORTED_LOSS_TYPES, lambda_grpo_loss, per_token_objective  # noqa: E402
from prm_probe.integrations.trl.telemetry import (  # noqa: E402
    GatheredBatch,
    attach_overlap_telemetry,
    check_group_layout,
    completion_lengths,
)

ROOT = Path(__file__).resolve().parents[1]
G = 4
PROMPTS = ["<bos>1+1=", "<bos>2+3=", "<bos>4+4=", "<bos>5+1="]

# Two groups of G = 4 completions (char ids) with shared prefixes, a duplicate, unequal lengths; 0 pads.
COMPLETIONS = [
    [20, 21, 22, 2], [20, 21, 23], [20, 24], [20, 21, 22, 2],
    [30, 31], [30, 31, 32, 33, 2], [35], [30, 36, 37],
]


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory) -> Path:
    from prm_probe.training.models import char_tokenizer, tiny_model

    tok = char_tokenizer()
    folder = tmp_path_factory.mktemp("tiny")
    tiny_model("tiny", len(tok), seed=0).save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


def _reward(completions, **_):
    return [float(c.count("1")) - 0.5 * len(c) / 8 for c in completions]


def _config(out: Path, cls=LambdaGRPOConfig, **overrides):
    settings = dict(output_dir=str(out), use_cpu=True, bf16=False, num_generations=G, per_device_train_batch_size=8,
                    generation_batch_size=8, max_completion_length=6, max_steps=2, logging_steps=1,
                    report_to="none", save_strategy="no", disable_tqdm=True, learning_rate=1e-3,
                    gradient_checkpointing=False, seed=0, generation_kwargs={"top_k": 4}, shuffle_dataset=False)
    settings.update(overrides)
    return cls(**settings)


def _trainer(folder: Path, out: Path, cls=LambdaGRPOTrainer, config_cls=LambdaGRPOConfig, eval_prompts=None,
             **overrides):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(folder)
    evals = Dataset.from_dict({"prompt": eval_prompts}) if eval_prompts else None
    return cls(model=str(folder), reward_funcs=_reward, args=_config(out, config_cls, **overrides),
               train_dataset=Dataset.from_dict({"prompt": PROMPTS}), eval_dataset=evals, processing_class=tok)


def _batch(trainer, seed: int = 0) -> dict:
    """A hand-made TRL micro-batch over COMPLETIONS with off-policy old log-probs and a reference."""
    gen = torch.Generator().manual_seed(seed)
    width = max(len(c) for c in COMPLETIONS)
    ids = torch.zeros((len(COMPLETIONS), width), dtype=torch.long)
    mask = torch.zeros_like(ids)
    for i, c in enumerate(COMPLETIONS):
        ids[i, : len(c)], mask[i, : len(c)] = torch.tensor(c), 1
    prompt = torch.tensor([[1, 17, 11, 17, 29]] * 4 + [[1, 18, 11, 19, 29]] * 4)  # equal lengths: no padding
    inputs = {"prompt_ids": prompt, "prompt_mask": torch.ones_like(prompt), "completion_ids": ids,
              "completion_mask": mask, "advantages": torch.randn(len(COMPLETIONS), generator=gen),
              "num_items_in_batch": mask.sum()}
    with torch.no_grad():
        logp, _, _ = trainer._get_per_token_logps_and_entropies(
            trainer.model, torch.cat([prompt, ids], 1), torch.cat([torch.ones_like(prompt), mask], 1), width)
    inputs["old_per_token_logps"] = logp + 0.3 * torch.randn(logp.shape, generator=gen)  # some ratios clip
    inputs["ref_per_token_logps"] = logp + 0.5 * torch.randn(logp.shape, generator=gen)
    inputs["sampling_per_token_logps"] = inputs["old_per_token_logps"]
    return inputs


def _loss_and_grads(trainer, fn):
    trainer.model.zero_grad(set_to_none=True)
    trainer._metrics["train"].clear()
    loss = fn()
    loss.backward()
    grads = [p.grad.clone() for p in trainer.model.parameters() if p.grad is not None]
    metrics = {k: v[-1] for k, v in trainer._metrics["train"].items()}
    return loss.detach(), grads, metrics


CASES = [dict(loss_type=t, beta=b) for t in SUPPORTED_LOSS_TYPES for b in (0.0, 0.04)] + [
    dict(loss_type="grpo", beta=0.04, importance_sampling_level="sequence"),
    dict(loss_type="bnpo", beta=0.04, use_bias_correction_kl=False),
    dict(loss_type="dapo", beta=0.04, delta=1.2, epsilon_high=0.28, use_bias_correction_kl=True,
         top_entropy_quantile=0.5, off_policy_mask_threshold=0.05),
    # gradient accumulation of 2 micro-batches per step, 4 micro-batches per generation batch
    dict(loss_type="dapo", beta=0.04, per_device_train_batch_size=2, gradient_accumulation_steps=2),
    dict(loss_type="grpo", beta=0.04, per_device_train_batch_size=4, gradient_accumulation_steps=2),
    # vLLM's importance-sampling ratio and a tool mask, as TRL hands them to the loss
    dict(loss_type="dapo", beta=0.04, _vllm_is=True, _tool_mask=True),
    dict(loss_type="cispo", beta=0.0, _vllm_is=True),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: "-".join(f"{k.strip('_')}={v}" for k, v in c.items()))
def test_unit_weights_reproduce_trl_loss_gradients_and_metrics(tiny_folder, tmp_path, case):
    case = dict(case)
    vllm_is, tool_mask = case.pop("_vllm_is", False), case.pop("_tool_mask", False)
    trainer = _trainer(tiny_folder, tmp_path, **case)
    trainer.model.train()
    trainer.current_gradient_accumulation_steps = trainer.args.gradient_accumulation_steps
    inputs = _batch(trainer)
    if vllm_is:  # as if generated by vLLM with importance-sampling correction on
        trainer.use_vllm = trainer.vllm_importance_sampling_correction = True
        inputs["importance_sampling_ratio"] = torch.rand(inputs["completion_ids"].shape,
                                                         generator=torch.Generator().manual_seed(3)) + 0.5
    if tool_mask:  # tokens 1-2 of the first completion came from a tool
        inputs["tool_mask"] = torch.ones_like(inputs["completion_mask"])
        inputs["tool_mask"][0, 1:3] = 0
    ones = torch.ones(inputs["completion_ids"].shape)
    ref_loss, ref_grads, ref_metrics = _loss_and_grads(trainer, lambda: GRPOTrainer._compute_loss(
        trainer, trainer.model, inputs))
    loss, grads, metrics = _loss_and_grads(trainer, lambda: lambda_grpo_loss(trainer, trainer.model, inputs, ones))
    assert float(ref_loss) != 0.0
    if trainer.args.gradient_accumulation_steps > 1:  # the accumulation-dependent normalisers are exercised
        assert trainer.args.steps_per_generation == 8 // trainer.args.per_device_train_batch_size
    torch.testing.assert_close(loss, ref_loss, rtol=1e-5, atol=1e-7)
    for a, b in zip(grads, ref_grads, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-7)
    assert metrics.keys() == ref_metrics.keys()
    for key, value in ref_metrics.items():
        assert metrics[key] == pytest.approx(value, rel=1e-5, abs=1e-7, nan_ok=True), key


@pytest.mark.parametrize("temperature", [1.0, 0.7, 1.3])
@pytest.mark.parametrize(("loss_type", "aggregation"), [("dapo", "token_mean"), ("grpo", "seq_mean"),
                                                        ("dr_grpo", "dr_grpo")])
def test_per_token_loss_equals_builtin_lambda_grpo(tiny_folder, tmp_path, loss_type, aggregation, temperature):
    """Also at temperature != 1: TRL divides the logits by its temperature, and so must the built-in trainer."""
    from prm_probe.training.distribution import PolicyDistribution
    from prm_probe.training.losses import BatchNorms, aggregate, per_token_terms, token_weights
    from prm_probe.training.trainer import completion_logps

    beta, eps = 0.04, 0.2  # TRL 1.16 multiplies the KL by the ratio by default; the built-in trainer does not
    trainer = _trainer(tiny_folder, tmp_path, loss_type=loss_type, beta=beta, epsilon=eps,
                       use_bias_correction_kl=False, temperature=temperature)
    assert trainer.temperature == temperature
    trainer.model.train()
    trainer.current_gradient_accumulation_steps = 1
    inputs = _batch(trainer, seed=1)
    sizes = trainer.telemetry.observe(inputs)  # the trainer's own |λ| path (gather, tries, slice)
    expected_sizes = [s for g in (COMPLETIONS[:G], COMPLETIONS[G:]) for s in process_set_sizes(g)]
    mask = inputs["completion_mask"].float()
    for i, s in enumerate(expected_sizes):
        assert sizes[i, : len(s)].tolist() == s.tolist()
    assert sizes.masked_select(mask == 0).eq(1).all()

    theirs = per_token_objective(trainer, trainer.model, inputs, 1.0 / sizes)
    prompts = inputs["prompt_ids"].tolist()
    logp, our_mask, _ = completion_logps(trainer.model, prompts, COMPLETIONS, 0, torch.device("cpu"),
                                         dist=PolicyDistribution(temperature=temperature))
    if temperature != 1.0:  # the untempered log-probs would not match: the test can tell the two apart
        plain = completion_logps(trainer.model, prompts, COMPLETIONS, 0, torch.device("cpu"))[0].detach()
        assert float(((plain - logp.detach()) * our_mask).abs().max()) > 1e-2
    terms = per_token_terms(logp, inputs["old_per_token_logps"], inputs["advantages"],
                            inputs["ref_per_token_logps"], eps, eps, beta)
    weights = token_weights("process_set", our_mask, sizes)
    torch.testing.assert_close(our_mask, mask)
    torch.testing.assert_close(terms["loss"] * weights, theirs["loss"] * mask, rtol=1e-5, atol=1e-6)

    norms = BatchNorms(n_sequences=len(COMPLETIONS), n_tokens=int(mask.sum()),
                       max_new_tokens=trainer.max_completion_length)
    ours = aggregate(aggregation, terms["loss"], weights, our_mask, norms)
    trl_loss = lambda_grpo_loss(trainer, trainer.model, inputs, 1.0 / sizes)
    torch.testing.assert_close(trl_loss, ours, rtol=1e-5, atol=1e-7)


def test_training_logs_overlap_metrics_weights_and_a_valid_rollout_log(tiny_folder, tmp_path):
    from prm_probe import overlap_stats, read_rollouts, validate_log

    trainer = _trainer(tiny_folder, tmp_path / "out", beta=0.04, rollout_log_dir=str(tmp_path / "rollouts"))
    trainer.train()
    logged = [h for h in trainer.state.log_history if "overlap/gradient_mass_ratio" in h]
    assert len(logged) == 2 and all(np.isfinite(h["loss"]) for h in logged)
    parts = sorted((tmp_path / "rollouts").glob("step-*.parquet"))
    assert [p.name for p in parts] == ["step-000000.parquet", "step-000001.parquet"]
    assert validate_log(tmp_path / "rollouts").ok
    table = read_rollouts(parts[-1]).to_pylist()
    assert len(table) == 8 and all(r["prompt_ids"] and r["step"] == 1 for r in table)
    # One metadata shape: the log's config is the run folder's config.json (the built-in trainer's layout, TRL's
    # settings under "trl"), plus the trainer class.
    import json

    from prm_probe.core.rollouts import read_metadata

    logged_config = json.loads(read_metadata(parts[-1])["config"])
    assert logged_config.pop("trainer") == "LambdaGRPOTrainer"
    assert logged_config == json.loads((tmp_path / "out" / "config.json").read_text())
    assert logged_config["sampling"]["group_size"] == trainer.args.num_generations
    assert [r["reward"] for r in table] == pytest.approx(_reward(
        [trainer.processing_class.decode(r["completion_ids"], skip_special_tokens=True) for r in table]))
    # The weights the loss used are 1/|λ| of the logged completions; the logged ratio is recomputed from the log.
    weight = trainer._buffered_inputs[0][WEIGHT_KEY]
    ids = trainer._buffered_inputs[0]["completion_ids"]
    by_ids = {tuple(r["completion_ids"]): r for r in table}
    groups = [[r["completion_ids"] for r in table if r["group"] == g] for g in range(2)]
    sizes = {tuple(c): s for grp in groups for c, s in zip(grp, process_set_sizes(grp), strict=True)}
    for row_ids, row_w in zip(ids.tolist(), weight, strict=True):
        match = next(k for k in by_ids if list(k) == row_ids[: len(k)] and all(t == 0 for t in row_ids[len(k):]))
        assert row_w[: len(match)].tolist() == pytest.approx((1.0 / sizes[match]).tolist())
    stats = overlap_stats(parts[-1]).steps
    assert logged[-1]["overlap/gradient_mass_ratio"] == pytest.approx(float(stats["gradient_mass_ratio"].iloc[0]))


def test_weighting_off_trains_trls_loss_with_telemetry(tiny_folder, tmp_path):
    trainer = _trainer(tiny_folder, tmp_path / "a", process_set_weighting=False)
    trainer.train()
    assert WEIGHT_KEY not in trainer._buffered_inputs[0]
    assert any("overlap/path_depth_mean" in h for h in trainer.state.log_history)


def test_attached_telemetry_leaves_a_plain_trainers_loss_unchanged(tiny_folder, tmp_path):
    def losses(attach: bool, out: Path):
        trainer = _trainer(tiny_folder, out, cls=GRPOTrainer, config_cls=GRPOConfig, beta=0.04, max_steps=2)
        if attach:
            telemetry = attach_overlap_telemetry(trainer, rollout_log_dir=out / "rollouts")
            with pytest.raises(ConfigError, match="already has"):
                attach_overlap_telemetry(trainer)
        trainer.train()
        rows = [h for h in trainer.state.log_history if "loss" in h and "train_loss" not in h]
        return rows, (telemetry if attach else None)

    plain, _ = losses(False, tmp_path / "plain")
    probed, telemetry = losses(True, tmp_path / "probed")
    assert [(r["loss"], r["grad_norm"]) for r in probed] == [(r["loss"], r["grad_norm"]) for r in plain]
    assert all("overlap/path_depth_mean" in r for r in probed) and not any("overlap/path_depth_mean" in r
                                                                             for r in plain)
    assert telemetry.last_metrics["path_depth_mean"] >= 1
    assert len(list((tmp_path / "probed" / "rollouts").glob("*.parquet"))) == 2


@pytest.mark.parametrize(("settings", "named"), [
    (dict(loss_type="luspo", importance_sampling_level="sequence"), "luspo"),
    (dict(entropy_coef=0.01), "entropy"),
])
def test_unsupported_settings_are_refused_by_name(tiny_folder, tmp_path, settings, named):
    with pytest.raises(ConfigError, match=named):
        _trainer(tiny_folder, tmp_path, **settings)
    _trainer(tiny_folder, tmp_path, process_set_weighting=False, **settings)  # plain GRPO is fine


def test_group_layout_and_lengths_are_checked():
    ids = np.array([[5, 6], [5, 0], [7, 0], [7, 7]])
    good = GatheredBatch(ids, np.array([2, 1, 1, 2]), np.array([[1], [1], [2], [2]]), np.ones((4, 1), np.int64),
                         None, slice(0, 4), 2)
    check_group_layout(good)
    bad = GatheredBatch(ids, good.lengths, np.array([[1], [2], [2], [2]]), good.prompt_mask, None, slice(0, 4), 2)
    with pytest.raises(PrmProbeError, match=r"rows 0\.\.1 .* do not share one prompt"):
        check_group_layout(bad)
    with pytest.raises(PrmProbeError, match="not a multiple of num_generations=3"):
        check_group_layout(GatheredBatch(ids, good.lengths, good.prompt_ids, good.prompt_mask, None, slice(0, 4), 3))
    lengths = completion_lengths(torch.tensor(ids), torch.tensor([[1, 1], [0, 0], [1, 0], [0, 0]]), pad_id=0)
    assert lengths.tolist() == [2, 1, 1, 2]


def test_two_processes_with_groups_spanning_them_give_one_process_weights(tiny_folder, tmp_path):
    """torchrun starts 2 gloo processes; per-device batch 2 < G = 4, so groups span the processes."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           str(ROOT / "tests" / "trl_worker.py"), str(tiny_folder), str(tmp_path)]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert [r["world_size"] for r in ranks] == [2, 2] and [r["rank"] for r in ranks] == [0, 1]
    n_batches = len(ranks[0]["batches"])
    assert n_batches == 2 and len(ranks[1]["batches"]) == n_batches
    log_rows = {}
    for part in sorted((tmp_path / "rollouts").glob("*.parquet")):
        from prm_probe import read_rollouts

        for row in read_rollouts(part).to_pylist():
            log_rows.setdefault(row["step"], []).append(row["completion_ids"])
    for b in range(n_batches):
        rows0, rows1 = ranks[0]["batches"][b], ranks[1]["batches"][b]
        assert len(rows0["ids"]) == len(rows1["ids"]) == 6  # 6 rows per process, groups of 4
        ids = rows0["ids"] + rows1["ids"]
        weights = rows0["weights"] + rows1["weights"]
        groups = [ids[k: k + G] for k in range(0, len(ids), G)]
        reference = [s for grp in groups for s in process_set_sizes(grp)]  # one process, the public API
        for got, want in zip(weights, reference, strict=True):
            assert got == pytest.approx((1.0 / want).tolist())
        assert ids == log_rows[rows0["step"]]  # the main process logged the whole gathered batch
    # Group 1 (rows 4-7) has two rows on each process; counting only local rows would give other weights.
    local_only = [s for b in range(n_batches) for s in process_set_sizes(ranks[0]["batches"][b]["ids"][4:])]
    spanning = [w for b in range(n_batches) for w in ranks[0]["batches"][b]["weights"][4:]]
    assert any(list(w) != pytest.approx((1.0 / s).tolist()) for w, s in zip(spanning, local_only, strict=True))


def test_trl_run_module_trains_and_writes_a_log_prm_probe_reads(tmp_path, capsys):
    from prm_probe import overlap_stats
    from prm_probe.cli import main

    out = tmp_path / "run"
    assert main(["trl-train", "-q", "--model", "tiny", "--out", str(out), "--steps", "1", "--num-generations", "4",
                 "--per-device-batch", "8", "--max-completion-length", "6", "--lr", "1e-3",
                 "--set", "save_strategy=no", "--set", "disable_tqdm=true"]) == 0
    stats = overlap_stats(out / "rollouts")
    assert int(stats.steps["groups"].iloc[0]) == 2
    assert (out / "final" / "config.json").exists()
    assert main(["trl-train", "--model", "tiny", "--out", str(out), "--set", "not_a_field=1"]) == 2
    assert "not_a_field" in capsys.readouterr().err
    assert main(["trl-train", "--model", "tiny", "--out", str(out), "--set", "temperature=hot"]) == 2
    assert "temperature='hot' is not a float" in capsys.readouterr().err


def test_trl_runs_are_recorded_for_prm_probe_compare(tmp_path):
    from prm_probe import compare_runs
    from prm_probe.cli import main

    common = ["trl-train", "-q", "--model", "tiny", "--steps", "3", "--num-generations", "4", "--per-device-batch", "8",
              "--max-completion-length", "6", "--lr", "1e-3", "--no-rollout-log", "--set", "save_strategy=no",
              "--set", "disable_tqdm=true"]
    for name, extra in (("lambda", []), ("grpo", ["--no-lambda"])):
        assert main([*common, "--out", str(tmp_path / name), *extra]) == 0
    config = json.loads((tmp_path / "lambda" / "config.json").read_text())
    assert config["loss"]["weighting"] == "process_set" and config["task"]["name"] == "arithmetic"
    assert config["model"]["name"] == "tiny" and config["sampling"]["group_size"] == 4
    lines = [json.loads(x) for x in (tmp_path / "grpo" / "metrics.jsonl").read_text().splitlines()]
    assert [x["step"] for x in lines] == [1, 2, 3]
    assert {"reward_mean", "path_depth_mean", "gradient_mass_ratio", "loss", "entropy", "lr"} <= lines[0].keys()
    comparison = compare_runs([tmp_path / "lambda", tmp_path / "grpo"], metric="reward_mean")
    assert {r.algorithm for r in comparison.runs} == {"GRPO", "λ-GRPO"}
    assert set(comparison.curves()["step"]) == {1, 2, 3}


def test_run_record_maps_trl_names_and_splits_evaluations(tmp_path):
    from types import SimpleNamespace

    from prm_probe.integrations.trl.record import RunRecordCallback

    cb, args = RunRecordCallback(), SimpleNamespace(output_dir=str(tmp_path))
    state = SimpleNamespace(is_world_process_zero=True, global_step=4)
    cb.on_log(args, state, None, logs={"reward": 0.5, "overlap/path_depth_mean": 2.0, "rewards/acc/mean": 1.0,
                                       "epoch": 0.1, "kl": float("nan")})
    cb.on_log(args, state, None, logs={"eval_reward": 0.25, "eval_overlap/nontrivial_fraction": 0.5})
    cb.on_log(args, state, None, logs={"train_runtime": 3.0, "train_loss": 0.1})
    assert json.loads((tmp_path / "metrics.jsonl").read_text()) == {
        "step": 4, "reward_mean": 0.5, "path_depth_mean": 2.0, "rewards_acc_mean": 1.0, "kl": None}
    assert json.loads((tmp_path / "validation.jsonl").read_text()) == {
        "step": 4, "val_reward_mean": 0.25, "val_nontrivial_fraction": 0.5}


def test_cli_trl_train_forwards_every_argument(tmp_path, capsys, monkeypatch):
    import importlib.util

    from prm_probe.cli import main

    with pytest.raises(SystemExit) as done:
        main(["trl-train", "--help"])
    assert done.value.code == 0 and "usage: prm-probe trl-train" in capsys.readouterr().out
    assert main(["trl-train", "--model", "tiny", "--out", str(tmp_path), "--task", "bogus"]) == 2
    assert "unknown task 'bogus'" in capsys.readouterr().err
    # every launcher option reaches run() with the flag's value (or its default), plus the --set settings
    import prm_probe.integrations.trl.run as trl_run

    seen = {}
    monkeypatch.setattr(trl_run, "run", lambda **kw: seen.update(kw) or tmp_path)
    assert main(["trl-train", "--model", "tiny", "--out", str(tmp_path), "--task", "toy-tree", "--num-generations",
                 "4", "--per-device-batch", "2", "--generation-batch", "16", "--max-completion-length", "12",
                 "--steps", "3", "--lr", "0.5", "--beta", "0.1", "--loss-type", "grpo", "--train-size", "7",
                 "--seed", "5", "--no-lambda", "--no-rollout-log", "--set", "temperature=0.7"]) == 0
    assert seen == {"model": "tiny", "out": str(tmp_path), "settings": {"temperature": "0.7"}, "task": "toy-tree",
                    "num_generations": 4, "per_device_batch": 2, "generation_batch": 16,
                    "max_completion_length": 12, "steps": 3, "lr": 0.5, "beta": 0.1, "loss_type": "grpo",
                    "lambda_weighting": False, "rollout_log": False, "train_size": 7, "seed": 5}
    assert set(seen) - {"model", "out", "settings"} == set(trl_run.OPTIONS)
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "trl" else real(name, *a))
    assert main(["trl-train", "--model", "tiny", "--out", str(tmp_path)]) == 2
    assert "pip install 'prm-probe[trl]'" in capsys.readouterr().err


def test_evaluation_batches_get_eval_overlap_metrics_and_validation_records(tiny_folder, tmp_path):
    trainer = _trainer(tiny_folder, tmp_path / "out", rollout_log_dir=str(tmp_path / "rollouts"),
                       eval_strategy="steps", eval_steps=1, per_device_eval_batch_size=8, eval_prompts=PROMPTS[:2])
    trainer.train()
    evals = [h for h in trainer.state.log_history if "eval_reward" in h]
    assert len(evals) == 2 and all("eval_overlap/path_depth_mean" in h for h in evals)
    lines = [json.loads(x) for x in (tmp_path / "out" / "validation.jsonl").read_text().splitlines()]
    assert [x["step"] for x in lines] == [1, 2]
    assert {"val_reward_mean", "val_path_depth_mean", "val_gradient_mass_ratio"} <= lines[0].keys()
    assert len(list((tmp_path / "rollouts").glob("*.parquet"))) == 2  # training batches only


def test_attaching_telemetry_to_a_lambda_trainer_is_refused(tiny_folder, tmp_path):
    trainer = _trainer(tiny_folder, tmp_path)
    with pytest.raises(ConfigError, match="built in"):
        attach_overlap_telemetry(trainer)


def test_the_trl_run_loads_its_tokenizer_offline_safely(tiny_folder, tmp_path, monkeypatch):
    """A local folder loads from disk only; a hub id only from the cache when HF_HUB_OFFLINE is set (a clear
    CheckpointError when it is not cached), and from the hub otherwise."""
    from huggingface_hub import constants
    from transformers import AutoTokenizer

    from prm_probe.errors import CheckpointError
    from prm_probe.integrations.trl.run import load_run_tokenizer

    calls = []
    real = AutoTokenizer.from_pretrained.__func__

    def spy(cls, path, *args, **kwargs):
        calls.append((str(path), kwargs.get("local_files_only", False)))
        if str(path).startswith("online-org/"):
            return "downloaded"  # never reach the network in a test
        return real(cls, path, *args, **kwargs)

    monkeypatch.setattr(AutoTokenizer, "from_pretrained", classmethod(spy))
    assert load_run_tokenizer(str(tiny_folder)).pad_token_id is not None
    assert calls == [(str(tiny_folder), True)]

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(CheckpointError, match=r"not a local folder.*HF_HUB_OFFLINE is set"):
        load_run_tokenizer("no-such-org/no-such-model")
    assert calls[-1] == ("no-such-org/no-such-model", True)

    for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    assert load_run_tokenizer("online-org/model") == "downloaded"
    assert calls[-1] == ("online-org/model", False)
