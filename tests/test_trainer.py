"""The built-in trainer end to end on CPU with a tiny model: outputs, determinism, resume, bad input."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from prm_probe.cli import main
from prm_probe.core.validate import validate_log
from prm_probe.errors import CheckpointError, ConfigError, RewardError, UnknownNameError
from prm_probe.training.checkpoint import checkpoint_dirs
from prm_probe.training.config import config_from_dict
from prm_probe.training.tasks import Arithmetic, Score, ToyTree
from prm_probe.training.trainer import problem_order, train


def _config(**over):
    base = {"steps": 2, "seed": 0, "device": "cpu",
            "model": {"name": "tiny"},
            "task": {"name": "toy-tree", "train_size": 8, "val_size": 1},
            "sampling": {"group_size": 8, "prompts_per_step": 2, "max_new_tokens": 8},
            "optim": {"lr": 3e-3}}
    for key, value in over.items():
        if isinstance(value, dict):
            base.setdefault(key, {}).update(value)
        else:
            base[key] = value
    return config_from_dict(base)


def _metrics(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def _no_time(records):
    """Records without timings and validation (a shorter run validates at its own last step)."""
    return [{k: v for k, v in r.items() if not k.startswith(("time_", "val_"))} for r in records]


@pytest.mark.parametrize("weighting", ["uniform", "process_set"])
@pytest.mark.parametrize("aggregation", ["seq_mean", "token_mean", "dr_grpo"])
def test_both_weightings_run_and_write_valid_outputs(tmp_path, weighting, aggregation):
    from prm_probe.training.models import load_policy

    cfg = _config(loss={"weighting": weighting, "aggregation": aggregation})
    run = train(cfg, tmp_path / "run")
    records = _metrics(run)
    assert [r["step"] for r in records] == [0, 1]
    for r in records:
        assert math.isfinite(r["loss"]) and "reward_mean" in r and "gradient_mass_ratio" in r
        assert 0 < r["gradient_mass_ratio"] <= 1
    assert (run / "config.json").is_file()
    saved = json.loads((run / "config.json").read_text())
    assert saved["loss"]["weighting"] == weighting and saved["loss"]["aggregation"] == aggregation
    report = validate_log(run / "rollouts")
    assert report.ok, [str(p) for p in report.errors]
    assert report.rows == 2 * 2 * 8
    # Every trainable parameter moved (toy-tree rewards differ within groups, so advantages are non-zero).
    start, _ = load_policy("tiny", seed=0)
    end, _ = load_policy(str(checkpoint_dirs(run)[-1] / "model"))
    changed = [not torch.equal(a, b) for a, b in zip(start.parameters(), end.parameters(), strict=True)]
    assert all(changed), f"{changed.count(False)} parameter tensors did not change"
    assert main(["stats", str(run / "rollouts"), "-q"]) == 0


def test_process_set_weighting_uses_the_engine_sizes(tmp_path):
    """The logged gradient-mass ratio equals Σ1/|λ| / Σ1 recomputed from the written rollouts."""
    from prm_probe.core.stats import overlap_stats

    run = train(_config(loss={"weighting": "process_set"}), tmp_path / "run")
    stats = overlap_stats(run / "rollouts")
    for record, (_, row) in zip(_metrics(run), stats.steps.iterrows(), strict=True):
        assert record["gradient_mass_ratio"] == pytest.approx(row["gradient_mass_ratio"])
        assert record["nontrivial_fraction"] == pytest.approx(row["nontrivial_fraction"])


def test_process_set_weighting_is_the_update_that_is_made(tmp_path):
    """One SGD step of λ-GRPO on the tiny model: the logged loss and the parameter change are those of the
    hand-weighted objective −Σ_{i,t} a_i·log π(y_it)/|λ(i,t)| / N_tok, and the setup tells it from GRPO's.

    This fails when the trainer ignores ``loss.weighting`` (e.g. hard-wired to uniform)."""
    import pyarrow.parquet as pq

    from prm_probe.training.distribution import PolicyDistribution
    from prm_probe.training.models import load_policy
    from prm_probe.training.tasks import get_task
    from prm_probe.training.trainer import completion_logps

    lr = 0.05
    cfg = _config(steps=1, loss={"weighting": "process_set", "aggregation": "token_mean"},
                  optim={"optimizer": "sgd", "lr": lr, "max_grad_norm": 0.0})
    run = train(cfg, tmp_path / "run")
    log = pq.read_table(run / "rollouts").to_pandas()
    completions = [[int(x) for x in c] for c in log["completion_ids"]]
    prompts = [[int(x) for x in p] for p in log["prompt_ids"]]
    groups = log["group"].to_numpy()
    adv = log["advantage"].to_numpy(dtype=np.float64)
    # |λ(i, t)| by its definition: the completions of y_i's group that share y_i's first t + 1 tokens.
    lam = [[sum(groups[j] == groups[i] and other[: t + 1] == c[: t + 1] for j, other in enumerate(completions))
            for t in range(len(c))] for i, c in enumerate(completions)]
    assert any(s > 1 for sizes in lam for s in sizes)  # shared prefixes: the two weightings differ
    n_tok = sum(map(len, completions))
    # At μ = 1 the ratio is 1, so each token's loss is −a_i, and the token_mean loss is −Σ w·a / N_tok.
    lambda_loss = -sum(a * sum(1.0 / s for s in sizes) for a, sizes in zip(adv, lam, strict=True)) / n_tok
    uniform_loss = -sum(a * len(c) for a, c in zip(adv, completions, strict=True)) / n_tok
    assert abs(lambda_loss - uniform_loss) > 1e-2
    assert _metrics(run)[0]["loss"] == pytest.approx(lambda_loss, rel=1e-5, abs=1e-6)

    # The update: SGD without clipping moves θ by −lr·∇ of the hand-weighted objective at the start policy.
    task = get_task("toy-tree", seed=0, train_size=8, val_size=1)
    model, tok = load_policy("tiny", seed=0)
    model.eval()
    allowed = task.allowed_token_ids(tok)
    dist = PolicyDistribution(temperature=1.0, allowed=None if allowed is None else tuple(allowed))
    logp, mask, _ = completion_logps(model, prompts, completions, int(tok.pad_token_id), torch.device("cpu"),
                                     dist=dist)
    weights = torch.zeros_like(logp)  # (N, T)
    for i, sizes in enumerate(lam):
        weights[i, : len(sizes)] = 1.0 / torch.tensor(sizes, dtype=logp.dtype)
    loss = -(torch.as_tensor(adv, dtype=logp.dtype)[:, None] * weights * mask * logp).sum() / n_tok
    loss.backward()
    end, _ = load_policy(str(checkpoint_dirs(run)[-1] / "model"))
    moved = 0
    for (name, p0), p1 in zip(model.named_parameters(), end.parameters(), strict=True):
        expected = p0.detach() - lr * p0.grad
        torch.testing.assert_close(p1.detach(), expected, rtol=1e-4, atol=1e-6, msg=name)
        moved += int(not torch.equal(p1.detach(), p0.detach()))
    assert moved > 0


def test_same_seed_same_metrics_and_other_seed_differs(tmp_path):
    a = _metrics(train(_config(), tmp_path / "a"))
    b = _metrics(train(_config(), tmp_path / "b"))
    c = _metrics(train(_config(seed=1), tmp_path / "c"))
    assert _no_time(a) == _no_time(b)
    assert _no_time(a) != _no_time(c)


def test_resume_equals_uninterrupted_run(tmp_path):
    straight = train(_config(steps=4, schedule={"save_every": 2}), tmp_path / "straight")
    part = train(_config(steps=2, schedule={"save_every": 2}), tmp_path / "resumed")
    # A crash after step 2's checkpoint: a stray metrics line and rollout part from an unfinished step 2.
    with (part / "metrics.jsonl").open("a") as fh:
        fh.write(json.dumps({"step": 2, "loss": 123.0}) + "\n")
    resumed = train(resume=part, steps=4)  # the saved config; only the step count is new
    assert resumed == part
    assert _no_time(_metrics(resumed)) == _no_time(_metrics(straight))
    import pyarrow.parquet as pq

    for step in range(4):
        name = f"rollouts/step-{step:06d}.parquet"
        t1, t2 = pq.read_table(straight / name), pq.read_table(resumed / name)
        assert t1.column("completion_ids").to_pylist() == t2.column("completion_ids").to_pylist()


def test_a_run_another_process_trains_is_refused(tmp_path):
    """Two trainers on one folder interleave their steps (a resume truncates what the other appends), so a live
    lock refuses the second, before anything is read or written; a dead process's lock is taken over."""
    import os
    import socket
    import subprocess
    import sys
    import time

    from prm_probe.training.checkpoint import LOCK_FILE, STALE_AFTER

    run = train(_config(steps=2, schedule={"save_every": 1}), tmp_path / "run")
    lock = run / LOCK_FILE
    assert not lock.exists()  # released after training
    before = (run / "metrics.jsonl").read_bytes()
    host = socket.gethostname()
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        lock.write_text(json.dumps({"pid": sleeper.pid, "host": host}))
        with pytest.raises(CheckpointError, match=f"being trained by process {sleeper.pid}"):
            train(resume=run, steps=3)
        assert (run / "metrics.jsonl").read_bytes() == before and lock.exists()  # untouched, lock kept
    finally:
        sleeper.kill()
        sleeper.wait()
    train(resume=run, steps=3)  # its process is gone: the lock is taken over
    assert [r["step"] for r in _metrics(run)] == [0, 1, 2] and not lock.exists()
    lock.write_text(json.dumps({"pid": os.getpid(), "host": "elsewhere"}))  # another host, touched just now
    with pytest.raises(CheckpointError, match="on elsewhere"):
        train(resume=run, steps=4)
    old = time.time() - STALE_AFTER - 60
    os.utime(lock, (old, old))  # untouched for longer than a step could take: a machine that is gone
    train(resume=run, steps=4)
    assert [r["step"] for r in _metrics(run)] == [0, 1, 2, 3] and not lock.exists()


def test_resume_via_cli_raises_steps(tmp_path):
    run = tmp_path / "run"
    args = ["train", "--out", str(run), "--task", "toy-tree", "--model", "tiny", "--steps", "1", "--group-size", "4",
            "--device", "cpu", "--set", "task.train_size=4", "--set", "task.val_size=1", "-q"]
    assert main(args) == 0
    assert main(["train", "--resume", str(run), "--steps", "2", "-q"]) == 0
    assert [r["step"] for r in _metrics(run)] == [0, 1]


def test_resume_takes_only_the_step_count(tmp_path, capsys):
    """A resumed run keeps its saved settings: a flag that would change them is refused, not silently dropped."""
    run = tmp_path / "run"
    args = ["train", "--out", str(run), "--task", "toy-tree", "--model", "tiny", "--steps", "1", "--group-size", "4",
            "--device", "cpu", "--set", "task.train_size=4", "--set", "task.val_size=1", "-q"]
    assert main(args) == 0
    capsys.readouterr()
    assert main(["train", "--resume", str(run), "--steps", "2", "--lr", "0.1", "-q"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("prm-probe: error: --resume takes the run's saved settings, but optim.lr was given")
    assert [r["step"] for r in _metrics(run)] == [0]
    assert train(resume=run) == run  # without steps: the saved count, already reached, so nothing new
    assert [r["step"] for r in _metrics(run)] == [0]


def test_a_new_run_of_zero_steps_is_refused_before_any_folder(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "--out", str(run), "--model", "tiny", "--task", "toy-tree", "--steps", "0", "-q"]) == 2
    assert capsys.readouterr().err.startswith("prm-probe: error: steps is 0 for a new run")
    assert not run.exists()


def test_data_order_is_a_permutation_per_epoch():
    order = [i for step in range(5) for i in problem_order(10, 3, step, 2)]
    assert sorted(order) == list(range(10))
    assert problem_order(10, 3, 0, 2) == problem_order(10, 3, 0, 2)


def test_micro_batches_give_the_same_update(tmp_path):
    a = _metrics(train(_config(), tmp_path / "a"))
    b = _metrics(train(_config(optim={"micro_batch_size": 3}), tmp_path / "b"))
    for ra, rb in zip(a, b, strict=True):
        assert ra["loss"] == pytest.approx(rb["loss"], rel=1e-5, abs=1e-7)
        assert ra["grad_norm"] == pytest.approx(rb["grad_norm"], rel=1e-4)


def test_kl_and_mu_paths_run(tmp_path):
    run = train(_config(loss={"beta": 0.04, "mu": 2, "weighting": "process_set"}), tmp_path / "run")
    records = _metrics(run)
    assert records[0]["kl"] == pytest.approx(0.0, abs=1e-9)  # policy == reference before the first update
    assert records[1]["kl"] > 0


# --- bad input ---------------------------------------------------------------------------------------------


class LengthTask(Arithmetic):
    """Arithmetic prompts rewarded by completion length mod 3: reward variance and unequal lengths."""

    accuracy_component = None  # its scores have no component

    def score(self, problem, completion, completion_ids):
        return Score(float(len(completion_ids) % 3), {})


def test_mu_and_kl_with_micro_batches_of_unequal_widths(tmp_path):
    """μ = 2 and β > 0 with one completion per micro-batch: old and reference log-probs of unequal widths."""
    def run(micro: int, name: str) -> list[dict]:
        cfg = _config(task={"name": "tests.test_trainer:LengthTask", "train_size": 8, "val_size": 0},
                      sampling={"max_new_tokens": 12}, loss={"beta": 0.04, "mu": 2},
                      optim={"micro_batch_size": micro})
        return _metrics(train(cfg, tmp_path / name))

    whole, single = run(0, "whole"), run(1, "single")
    assert whole[0]["completion_length_min"] < whole[0]["completion_length_max"]  # unequal widths happen
    assert any(r["reward_std"] > 0 for r in whole)
    for a, b in zip(whole, single, strict=True):
        for key in ("loss", "grad_norm", "kl", "clip_fraction"):
            assert a[key] == pytest.approx(b[key], rel=1e-4, abs=1e-7), key


class HitTask(ToyTree):
    """A toy tree whose declared accuracy is ``hit`` (always 1), beside a ``correct`` that is always 0."""

    accuracy_component = "hit"

    def score(self, problem, completion, completion_ids):
        base = super().score(problem, completion, completion_ids)
        return Score(base.reward, {**base.components, "hit": 1.0, "correct": 0.0})


class NoAccuracyTask(HitTask):
    accuracy_component = None


class MissingAccuracyTask(HitTask):
    accuracy_component = "solved"


def _val_accuracy(run: Path) -> list[float]:
    return [json.loads(line)["val_accuracy"] for line in (run / "validation.jsonl").read_text().splitlines()]


def test_val_accuracy_is_the_component_the_task_declares(tmp_path):
    """``val_accuracy`` is the validation mean of the task's ``accuracy_component``, never a guessed name."""
    from prm_probe.training.tasks import TASKS, get_task

    def run(task: str, name: str) -> Path:
        return train(_config(steps=1, task={"name": task, "val_size": 3}), tmp_path / name)

    assert _val_accuracy(run("tests.test_trainer:HitTask", "hit")) == [1.0]  # "hit", not "correct" (0)
    assert all(math.isnan(a) for a in _val_accuracy(run("tests.test_trainer:NoAccuracyTask", "none")))
    with pytest.raises(RewardError, match="accuracy_component 'solved'"):
        run("tests.test_trainer:MissingAccuracyTask", "missing")
    # The built-in tasks declare a component their scores have: the toy tree's target, the others' correct.
    from prm_probe.training.tasks import JsonlTask, ReasoningGym

    assert ToyTree.accuracy_component == "target" and JsonlTask.accuracy_component == "correct"
    assert ReasoningGym.accuracy_component == "correct"
    for name in TASKS:
        task = get_task(name, train_size=2, val_size=1)
        assert task.accuracy_component in ("correct", "target"), name
        problem = task.problems("validation")[0]
        assert task.accuracy_component in task.score(problem, "\\boxed{0}", []).components, name


class NanTask(ToyTree):
    """A toy tree whose reward function returns NaN (a user's broken reward)."""

    def score(self, problem, completion, completion_ids):
        return Score(float("nan"), {})


class RaisingTask(ToyTree):
    def score(self, problem, completion, completion_ids):
        raise ZeroDivisionError("boom")


@pytest.mark.parametrize("task", ["tests.test_trainer:NanTask", "tests.test_trainer:RaisingTask"])
def test_broken_reward_stops_with_the_prompt_named(tmp_path, task):
    with pytest.raises(RewardError, match=r"toy-tree-train-0000|prompt"):
        train(_config(task={"name": task}), tmp_path / "run")
    # The CLI turns it into one line and exit 2.
    code = main(["train", "--out", str(tmp_path / "cli"), "--task", task, "--model", "tiny", "--steps", "1",
                 "--device", "cpu", "-q"])
    assert code == 2


def test_unknown_task_and_model_suggest_names(tmp_path, capsys):
    assert main(["train", "--out", str(tmp_path / "r1"), "--task", "toytree", "--steps", "1", "-q"]) == 2
    err = capsys.readouterr().err
    assert "toy-tree" in err and len(err.strip().splitlines()) == 1
    with pytest.raises(UnknownNameError, match="tiny"):
        train(_config(model={"name": "tinny"}), tmp_path / "r2")


def test_group_size_below_two_is_refused():
    with pytest.raises(ConfigError, match="group_size"):
        _config(sampling={"group_size": 1})


def test_resume_on_a_folder_that_is_not_a_run(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match="not a run folder"):
        train(_config(), tmp_path / "empty", resume=True)
    assert main(["train", "--resume", str(tmp_path / "empty"), "-q"]) == 2


def test_new_run_refuses_an_existing_run_folder(tmp_path):
    run = train(_config(steps=1), tmp_path / "run")
    with pytest.raises(CheckpointError, match="already holds a run"):
        train(_config(steps=1), run)


def test_corrupt_model_folder_is_reported(tmp_path):
    bad = tmp_path / "model"
    bad.mkdir()
    (bad / "config.json").write_text("{not json")
    with pytest.raises(CheckpointError):
        train(_config(model={"name": str(bad)}), tmp_path / "run")
    empty = tmp_path / "nomodel"
    empty.mkdir()
    with pytest.raises(CheckpointError, match=r"config\.json"):
        train(_config(model={"name": str(empty)}), tmp_path / "run2")


def test_interrupted_checkpoint_leaves_previous_one_intact(tmp_path, monkeypatch):
    import prm_probe.training.checkpoint as ck

    run = train(_config(steps=2, schedule={"save_every": 1, "keep_checkpoints": 5}), tmp_path / "run")
    before = [p.name for p in checkpoint_dirs(run)]
    real = torch.save

    def full_disk(obj, path, *a, **k):
        if str(path).endswith("scheduler.pt"):
            raise OSError(28, "No space left on device")
        return real(obj, path, *a, **k)

    monkeypatch.setattr(ck.torch if hasattr(ck, "torch") else torch, "save", full_disk)
    with pytest.raises(OSError):
        train(_config(steps=3), run, resume=True)
    monkeypatch.setattr(torch, "save", real)
    assert [p.name for p in checkpoint_dirs(run)] == before  # no half checkpoint, old ones intact
    assert not list((run / "checkpoints").glob(".step-*"))
    assert validate_log(run / "rollouts").ok  # every rollout logged so far is readable
    resumed = train(_config(steps=3), run, resume=True)
    assert [r["step"] for r in _metrics(resumed)] == [0, 1, 2]


def test_sample_command_writes_a_valid_log(tmp_path):
    run = train(_config(steps=1), tmp_path / "run")
    out = tmp_path / "probe.parquet"
    assert main(["sample", str(run), "--task", "arithmetic", "--groups", "3", "--group-size", "4",
                 "--max-new-tokens", "6", "--device", "cpu", "-o", str(out), "-q"]) == 2  # not the run's task
    assert not out.exists()
    assert main(["sample", str(run), "--task", "arithmetic", "--allow-task-override", "--groups", "3",
                 "--group-size", "4", "--max-new-tokens", "6", "--device", "cpu", "-o", str(out), "-q"]) == 0
    from prm_probe.core.rollouts import read_metadata

    override = read_metadata(out)["prm_probe.task_override"]
    assert override == "task.name ('toy-tree' in the run, 'arithmetic' in this sample)"
    report = validate_log(out)
    assert report.ok and report.rows == 12 and report.groups == 3
    import pyarrow.parquet as pq

    table = pq.read_table(out)
    assert set(table.column("finish_reason").to_pylist()) <= {"stop", "length"}
    assert np.all(np.isfinite(table.column("reward").to_numpy()))


def test_lora_run_with_kl_to_the_adapter_disabled_reference(tmp_path):
    pytest.importorskip("peft")
    cfg = _config(steps=2, model={"lora_rank": 4}, loss={"beta": 0.04, "weighting": "process_set"},
                  schedule={"save_every": 1})
    run = train(cfg, tmp_path / "run")
    records = _metrics(run)
    assert records[0]["kl"] == pytest.approx(0.0, abs=1e-9) and records[1]["kl"] > 0
    model_dir = checkpoint_dirs(run)[-1] / "model"
    assert (model_dir / "adapter_config.json").is_file()
    resumed = train(_config(steps=3, model={"lora_rank": 4}, loss={"beta": 0.04}), run, resume=True)
    assert [r["step"] for r in _metrics(resumed)] == [0, 1, 2]
