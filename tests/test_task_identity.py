"""A run's task travels with everything derived from it: task.json, samples of the run, prm-quality on the run.

The failure these tests pin down: a toy-tree run trained with seed 0 (target RRRL) was sampled with seed 1, whose
task draws another target (LRRR), and prm-quality then valued the run's policy under a reward it never trained on.
"""

from __future__ import annotations

import json

import numpy as np
import pyarrow.parquet as pq
import pytest

from prm_probe.cli import main
from prm_probe.core.rollouts import read_metadata, read_rollouts
from prm_probe.errors import ConfigError
from prm_probe.training.collect import log_settings, sample_log
from prm_probe.training.tasks import ToyTree, get_task, log_task_identity, run_task_identity
from prm_probe.training.tasks.identity import TaskIdentity

OPTIONS = {"n": 1, "r_neg": -1.0}


def _toy(seed: int, **options) -> ToyTree:
    return get_task("toy-tree", seed=seed, options={**OPTIONS, **options})


def test_the_two_seeds_of_the_reported_failure_draw_different_targets():
    assert _toy(0).target == "RRRL" and _toy(1).target == "LRRR"  # the premise of this file


def test_the_target_is_an_option_the_seed_draws_only_when_unset():
    drawn = _toy(0)
    assert drawn.identity().options["target"] == "RRRL" and drawn.identity().drawn == ("target",)
    pinned = _toy(1, target="RRRL")
    assert pinned.target == "RRRL" and pinned.identity().drawn == ()
    assert pinned.identity() == drawn.identity()  # the seed that drew it is not part of the task
    assert _toy(0, target="LLLL").identity() != drawn.identity()
    assert pinned.path_reward("RRRL") == 1.0 and pinned.path_reward("RLLL") == -1.0


@pytest.mark.parametrize("bad", ["RRR", "RRRX", 5])
def test_a_bad_target_is_refused_with_the_option_named(bad):
    with pytest.raises(ConfigError, match=r"target=.*fix \[task.options\] target"):
        _toy(0, target=bad)


def test_identity_differences_name_each_setting():
    a, b = _toy(0).identity(), _toy(1).identity()
    assert a.differences(b) == {"task.options.target": ("RRRL", "LRRR")}
    assert "task.options.target ('RRRL' in the run, 'LRRR' in the log)" == a.describe(b, ("the run", "the log"))
    assert TaskIdentity.from_dict(json.loads(a.to_json())) == a


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A GRPO run on the toy tree with seed 0 (target RRRL), tabular policy, 12 steps, checkpoints at 6 and 12."""
    from prm_probe.experiments.sweeps import toy_config
    from prm_probe.training.config import config_from_dict
    from prm_probe.training.trainer import train

    cfg = toy_config(model="tabular", n=1, r_neg=-1.0, seed=0, weighting="uniform", lr=1.0, optimizer="sgd",
                     steps=12, rollouts_every=6)
    cfg["schedule"].update(save_every=6, keep_checkpoints=5)
    return train(config_from_dict(cfg), tmp_path_factory.mktemp("identity") / "run")


def test_a_run_folder_records_its_task_with_the_drawn_target(run):
    record = json.loads((run / "task.json").read_text())
    assert record["options"]["target"] == "RRRL" and record["drawn"] == ["target"] and record["seed"] == 0
    assert run_task_identity(run).options["target"] == "RRRL"
    assert log_task_identity(read_metadata(run / "rollouts")) == run_task_identity(run)


def test_a_run_without_task_json_is_rebuilt_from_its_config(run, tmp_path):
    import shutil

    old = tmp_path / "old"
    shutil.copytree(run, old)
    (old / "task.json").unlink()
    assert run_task_identity(old) == run_task_identity(run)
    record = json.loads((run / "task.json").read_text())
    record["options"]["target"] = "LLLL"
    (old / "task.json").write_text(json.dumps(record))
    with pytest.raises(ConfigError, match=r"task\.options\.target"):
        run_task_identity(old)


@pytest.mark.parametrize("checkpoint", ["run", "checkpoints/step-000006/model", "checkpoints/step-000012"])
def test_sampling_a_run_with_another_seed_keeps_the_run_target(run, tmp_path, checkpoint):
    """The exact failure: train with seed 0, sample with seed 1 (also naming the task, as the old script did)."""
    source = run if checkpoint == "run" else run / checkpoint
    log = sample_log(str(source), "toy-tree", tmp_path / "s1.parquet", groups=4, group_size=16, split="train",
                     seed=1)
    meta = read_metadata(log)
    assert log_task_identity(meta).options["target"] == "RRRL"
    assert meta["prm_probe.sampled_from"] == str(run)
    settings = log_settings(meta)
    assert settings.seed == 1 and settings.task.options["target"] == "RRRL"
    assert settings.sampling.group_size == 16 and settings.sampling.max_new_tokens == 64  # the run's settings
    rows = read_rollouts(log).to_pylist()
    task = _toy(7, target="RRRL")
    for r in rows:  # every reward is the run's reward of the sampled path
        assert r["reward"] == task.path_reward(r["completion"])
    assert {r["completion"] for r in rows if r["reward"] == 1.0} <= {"RRRL"}


def test_a_run_sample_needs_no_task_and_defaults_to_the_run_seed(run, tmp_path):
    log = sample_log(str(run), out=tmp_path / "d.parquet", groups=2)
    settings = log_settings(read_metadata(log))
    assert settings.seed == 0 and settings.task.name == "toy-tree" and settings.sampling.group_size == 16


@pytest.mark.parametrize(("options", "setting"), [({"target": "LRRR"}, "task.options.target"),
                                                  ({"r_neg": -0.5}, "task.options.r_neg")])
def test_a_task_override_of_a_run_is_refused_with_the_setting_named(run, tmp_path, options, setting):
    out = tmp_path / "o.parquet"
    with pytest.raises(ConfigError, match=setting.replace(".", r"\.")) as err:
        sample_log(str(run), out=out, groups=2, task_options=options)
    assert "--allow-task-override" in str(err.value) and "\n" not in str(err.value)
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_another_task_name_is_refused_for_a_run(run, tmp_path):
    with pytest.raises(ConfigError, match=r"task\.name"):
        sample_log(str(run), "arithmetic", tmp_path / "a.parquet", groups=2)


def test_an_allowed_override_is_recorded_in_the_log(run, tmp_path):
    log = sample_log(str(run), out=tmp_path / "o.parquet", groups=2, task_options={"target": "LRRR"},
                     allow_task_override=True)
    meta = read_metadata(log)
    assert "task.options.target ('RRRL' in the run, 'LRRR' in this sample)" == meta["prm_probe.task_override"]
    assert log_task_identity(meta).options["target"] == "LRRR"


def test_a_checkpoint_outside_a_run_needs_a_task(tmp_path):
    with pytest.raises(ConfigError, match="pass --task"):
        sample_log("tabular", out=tmp_path / "x.parquet", groups=2)


def test_prm_quality_refuses_a_log_of_another_target_than_the_run(run, tmp_path):
    """The analysis that went wrong: the run's checkpoint valued on a log whose task drew another target."""
    from prm_probe.training.prm_quality import measure_prm_quality

    foreign = sample_log("tabular", "toy-tree", tmp_path / "f.parquet", groups=4, group_size=16, split="train",
                         seed=1, task_options=OPTIONS)
    assert log_task_identity(read_metadata(foreign)).options["target"] == "LRRR"
    for checkpoint in (run, run / "checkpoints" / "step-000006" / "model"):
        with pytest.raises(ConfigError, match=r"task\.options\.target \('RRRL' in the run, 'LRRR' in the log\)"):
            measure_prm_quality(checkpoint, foreign, rollouts=2, out=tmp_path / "n.csv")
    assert not (tmp_path / "n.csv").exists()
    nodes = measure_prm_quality(run, foreign, rollouts=2, allow_task_override=True)  # explicitly allowed
    assert len(nodes) > 0
    own = sample_log(str(run), out=tmp_path / "own.parquet", groups=4, split="train", seed=1)
    assert len(measure_prm_quality(run, own, rollouts=2)) > 0


def test_prm_quality_refuses_a_log_whose_rewards_are_not_its_task(run, tmp_path):
    """The mechanism check: re-scoring the log's completions under its recorded task must give its rewards."""
    from prm_probe.training.prm_quality import measure_prm_quality

    log = sample_log(str(run), out=tmp_path / "own.parquet", groups=4, split="train")
    table = pq.read_table(log)
    rewards = np.array(table.column("reward").to_numpy(), dtype=float)
    rewards[3] = 0.123
    import pyarrow as pa

    bad = table.set_column(table.schema.get_field_index("reward"), "reward", pa.array(rewards))
    pq.write_table(bad.replace_schema_metadata(table.schema.metadata), tmp_path / "bad.parquet")
    with pytest.raises(ConfigError, match=r"reward 0\.123 of step 0 group 0 sample 3 is .* under its recorded task"):
        measure_prm_quality(run, tmp_path / "bad.parquet", rollouts=2)


def test_a_recorded_identity_that_its_settings_do_not_build_is_refused(run, tmp_path):
    log = sample_log(str(run), out=tmp_path / "own.parquet", groups=2)
    table = pq.read_table(log)
    meta = {k.decode(): v.decode() for k, v in table.schema.metadata.items()}
    record = json.loads(meta["prm_probe.task"])
    record["options"]["target"] = "LLLL"
    meta["prm_probe.task"] = json.dumps(record)
    with pytest.raises(ConfigError, match="the log records task"):
        log_settings(meta)


def test_cli_sample_of_a_run_and_its_refusal(run, tmp_path, capsys):
    out = tmp_path / "cli.parquet"
    assert main(["sample", str(run), "--seed", "1", "--groups", "2", "-o", str(out), "-q"]) == 0
    assert log_task_identity(read_metadata(out)).options["target"] == "RRRL"
    bad = tmp_path / "bad.parquet"
    capsys.readouterr()
    assert main(["sample", str(run), "--option", "target=LRRR", "--groups", "2", "-o", str(bad), "-q"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("prm-probe:") and "task.options.target" in err and len(err.splitlines()) == 1
    assert not bad.exists()
    assert main(["prm-quality", str(run), str(out), "--rollouts", "2", "-q"]) == 0
    foreign = sample_log("tabular", "toy-tree", tmp_path / "f.parquet", groups=2, group_size=16, split="train",
                         seed=1, task_options=OPTIONS)  # target LRRR
    capsys.readouterr()
    nodes = tmp_path / "nodes.csv"
    assert main(["prm-quality", str(run), str(foreign), "--rollouts", "2", "-o", str(nodes), "-q"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("prm-probe:") and "task.options.target ('RRRL' in the run, 'LRRR' in the log)" in err
    assert len(err.splitlines()) == 1 and not nodes.exists()


def test_compare_refuses_runs_of_one_seed_with_different_targets(tmp_path):
    """Runs of different seeds draw different targets by design; the two algorithms of one seed must share T."""
    from prm_probe.experiments.lockstep import train_lockstep
    from prm_probe.experiments.sweeps import toy_config
    from prm_probe.training.config import config_from_dict
    from prm_probe.views.compare import compare_runs

    def run(name, seed, weighting, **options):
        cfg = toy_config(model="tabular", n=1, r_neg=-1.0, seed=seed, weighting=weighting, lr=1.0, optimizer="sgd",
                         steps=4, rollouts_every=0)
        cfg["task"]["options"].update(options)
        return train_lockstep(config_from_dict(cfg), tmp_path / name)

    ok = [run("g0", 0, "uniform"), run("l0", 0, "process_set"), run("g1", 1, "uniform"), run("l1", 1, "process_set")]
    assert len(compare_runs(ok, metric="target_probability").runs) == 4  # targets RRRL and LRRR, one per seed
    bad = [run("gx", 2, "uniform"), run("lx", 2, "process_set", target="LLLL")]
    with pytest.raises(ConfigError, match=r"task\.options\.target \(seed 2\)") as err:
        compare_runs(bad, metric="target_probability")
    assert "\n" not in str(err.value)


def test_the_packaged_log_carries_the_one_metadata_shape_and_the_early_flat_shape_is_refused(tmp_path):
    """The packaged log's settings are a run config with its task identity; a log with an early sample's flat
    settings is refused with the fix, not read by guessing."""
    import json

    import pyarrow.parquet as pq

    from prm_probe.core.rollouts import BUNDLED_LOG, read_metadata
    from prm_probe.errors import ConfigError
    from prm_probe.training.collect import log_settings

    meta = read_metadata(BUNDLED_LOG)
    settings = log_settings(meta)
    assert settings.task.name == "arithmetic" and settings.sampling.max_new_tokens == 48
    assert log_task_identity(meta).options["operands"] == [1, 9]
    flat = {**meta, "config": json.dumps({"task": "arithmetic", "groups": 64, "task_options": {}})}
    with pytest.raises(ConfigError, match=r"flat settings of an early `prm-probe sample`.*re-sample"):
        log_settings(flat)
    table = pq.read_table(BUNDLED_LOG)
    assert table.num_rows == 512
