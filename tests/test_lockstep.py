"""The lockstep engine takes the trainer's steps on the tabular policy: same samples, same losses, same updates."""

from __future__ import annotations

import json

import numpy as np
import pytest

from prm_probe.errors import ConfigError
from prm_probe.experiments.lockstep import LockstepRun, train_lockstep
from prm_probe.experiments.sweeps import toy_config
from prm_probe.training.config import config_from_dict
from prm_probe.training.trainer import train


def _cfg(**kw):
    base = {"model": "tabular", "n": 1, "r_neg": -1.0, "seed": 4, "weighting": "uniform", "lr": 1.0,
            "optimizer": "sgd", "steps": 30, "rollouts_every": 0}
    renorm = kw.pop("renormalise", False)
    cfg = toy_config(**{**base, **kw}, renormalise=renorm)
    return cfg


def _metrics(run) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("kw", [{}, {"optimizer": "adam", "lr": 0.1, "weighting": "process_set", "n": 2},
                                {"weighting": "process_set", "renormalise": True, "lr": 3.0, "seed": 11},
                                {"r_neg": -1.5, "seed": 2, "optimizer": "adam", "lr": 1.0}])
def test_a_lockstep_run_is_the_trainer_run(tmp_path, kw):
    cfg = config_from_dict(_cfg(**kw))
    a = _metrics(train(cfg, tmp_path / "trainer"))
    b = _metrics(train_lockstep(cfg, tmp_path / "lockstep"))
    assert len(a) == len(b) == 30
    for x, y in zip(a, b, strict=True):
        for key in ("reward_mean", "reward_target_mean", "zero_std_fraction", "target_probability",
                    "expected_reward", "loss", "grad_norm", "lr"):
            assert y[key] == pytest.approx(x[key], abs=1e-7), (x["step"], key)
        assert y["gradient_mass_ratio"] == pytest.approx(x["gradient_mass_ratio"], abs=1e-12)
    # a check that can fail: the policy moved, and differently in the two algorithms' runs
    assert abs(b[-1]["target_probability"] - b[0]["target_probability"]) > 0.01
    assert json.loads((tmp_path / "lockstep" / "task.json").read_text()) == \
        json.loads((tmp_path / "trainer" / "task.json").read_text())


def test_process_set_sizes_are_the_trie_sizes():
    from prm_probe.core.trie import PackedGroups, process_sets

    cfg = _cfg()
    cfg["sampling"]["prompts_per_step"] = 3
    cfg["task"]["options"]["depth"] = 6
    run = LockstepRun(config_from_dict(cfg))
    for step in range(5):
        ids = run.sample(step)  # (48, 6)
        n, d = ids.shape
        packed = PackedGroups(ids.numpy().astype(np.int32).reshape(-1), np.arange(0, n * d + 1, d),
                              np.arange(0, n + 1, 16))
        expected = packed.to_padded(process_sets(packed).size, d, fill=1)
        assert (run.process_set_sizes(ids).numpy() == expected).all()
        assert expected.max() > 1 and expected.min() == 1


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_the_shadow_update_leaves_the_run_unchanged_and_measures_the_other_weighting(optimizer):
    cfg = config_from_dict(_cfg(optimizer=optimizer, lr=0.5, steps=12))
    plain, shadowed = LockstepRun(cfg), LockstepRun(cfg, shadow=True)
    differ = 0
    for step in range(12):
        a, b = plain.step(step), shadowed.step(step)
        assert a["target_probability"] == b["target_probability"] and a["loss"] == b["loss"]
        last = shadowed.last
        assert set(last.grad) == {"uniform", "process_set"}
        assert np.allclose(shadowed.table.detach().numpy() - last.before, last.update["uniform"], atol=1e-7)
        if optimizer == "sgd":  # SGD's update is −lr × gradient, for both weightings
            for w in ("uniform", "process_set"):
                assert np.allclose(last.update[w], -0.5 * last.grad[w], atol=1e-6)
        # λ-GRPO's gradient differs from GRPO's (the 1/|λ| weights) on the same batch, unless all rewards are equal
        same = np.allclose(last.grad["uniform"], last.grad["process_set"])
        assert same == (not np.abs(last.grad["uniform"]).any())
        differ += not same
    assert differ >= 3
    other = LockstepRun(config_from_dict(_cfg(optimizer=optimizer, lr=0.5, steps=12, weighting="process_set")),
                        shadow=True)
    other.step(0)  # the first step: both start from the same table and the same (zero) optimiser state
    first = LockstepRun(cfg, shadow=True)
    first.step(0)
    for w in ("uniform", "process_set"):
        assert np.allclose(other.last.update[w], first.last.update[w], atol=1e-7)


def test_the_engine_refuses_what_it_does_not_step(tmp_path):
    cfg = _cfg()
    with pytest.raises(ConfigError, match=r"model\.name"):
        LockstepRun(config_from_dict({**cfg, "model": {"name": "tiny"}}))
    with pytest.raises(ConfigError, match=r"loss.mu = 1 and loss.beta = 0"):
        LockstepRun(config_from_dict({**cfg, "loss": {**cfg["loss"], "mu": 2}}))


def test_sweeps_take_the_engine_for_the_tabular_policy_only(tmp_path):
    from prm_probe.experiments.sweeps import RunSpec, run_specs, uses_lockstep

    cfg = _cfg(steps=5)
    assert uses_lockstep(cfg) and not uses_lockstep(cfg, "trainer")
    assert not uses_lockstep({**cfg, "model": {"name": "tiny-gpt2"}})
    with pytest.raises(ConfigError, match="engine"):
        uses_lockstep(cfg, "fast")
    (path,) = run_specs([RunSpec("a", cfg)], tmp_path, workers=1)
    assert [r["step"] for r in _metrics(path)] == list(range(5))
    assert not (path / "checkpoints").exists() and (path / "task.json").is_file()
