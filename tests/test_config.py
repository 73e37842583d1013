"""Run configuration: TOML files, flag overrides, and clear errors."""

from __future__ import annotations

import json

import pytest

from prm_probe.errors import ConfigError
from prm_probe.training.config import apply_overrides, config_from_dict, config_to_dict, load_config
from tests.conftest import ROOT

EXAMPLE = ROOT / "analysis" / "experiments" / "toy_tree_lambda.toml"


def test_example_experiment_loads_and_flags_override_it():
    cfg = load_config(EXAMPLE)
    assert cfg.loss.weighting == "process_set" and cfg.sampling.group_size == 16
    assert cfg.task.options == {"depth": 4, "n": 1, "r_neg": -1.0}
    flipped = load_config(EXAMPLE, {"loss.weighting": "uniform", "steps": "10"})
    assert flipped.loss.weighting == "uniform" and flipped.steps == 10
    assert flipped.sampling == cfg.sampling  # everything else unchanged


def test_json_round_trip():
    cfg = load_config(EXAMPLE)
    again = config_from_dict(json.loads(json.dumps(config_to_dict(cfg))))
    assert again == cfg


@pytest.mark.parametrize(("overrides", "needle"), [
    ({"loss.weigting": "uniform"}, "weighting"),
    ({"loss.weighting": "lambda"}, "process_set"),
    ({"sampling.group_size": "1"}, "group_size"),
    ({"sampling.group_size": "many"}, "int"),
    ({"optim.lr": "-1"}, "lr"),
    ({"stepz": "3"}, "steps"),
    ({"nosection.x": 1}, "section"),
])
def test_bad_settings_name_the_setting(overrides, needle):
    with pytest.raises(ConfigError, match=needle):
        apply_overrides(config_from_dict({}), overrides)


def test_bad_toml_file(tmp_path):
    bad = tmp_path / "x.toml"
    bad.write_text("steps = [")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(bad)
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "missing.toml")


def test_train_flags_are_generated_from_the_config_fields():
    from dataclasses import fields

    from prm_probe.cli import build_parser
    from prm_probe.training.config import SamplingConfig, flag_specs

    specs = {s.key: s for s in flag_specs()}
    assert specs["sampling.group_size"].flag == "--group-size" and specs["task.name"].flag == "--task"
    assert specs["loss.weighting"].choices == ("uniform", "process_set")
    marked = {f"sampling.{f.name}" for f in fields(SamplingConfig) if f.metadata.get("cli")}
    assert marked == {k for k in specs if k.startswith("sampling.")}
    train = next(a for a in build_parser()._subparsers._group_actions[0].choices.values()
                 if a.prog.endswith(" train"))
    flags = {opt for action in train._actions for opt in action.option_strings}
    assert {s.flag for s in flag_specs()} <= flags
    args = build_parser().parse_args(["train", "--out", "x", "--group-size", "4", "--weighting", "process_set"])
    assert args.sampling__group_size == 4 and args.loss__weighting == "process_set"


def test_task_options_from_the_command_line_are_typed_by_the_task():
    from prm_probe.training.config import apply_overrides, load_config

    config = apply_overrides(load_config(), {"task.name": "toy-tree", "task.options.r_neg": "-0.7",
                                             "task.options.n": "2"})
    assert config.task.options == {"r_neg": -0.7, "n": 2}
    with pytest.raises(ConfigError, match=r"task\.options\.n='two' is not a int"):
        apply_overrides(load_config(), {"task.name": "toy-tree", "task.options.n": "two"})
    arithmetic = apply_overrides(load_config(), {"task.options.operands": "[1, 9]"})
    assert arithmetic.task.options == {"operands": [1, 9]}


@pytest.mark.parametrize(("raw", "like", "want"), [("true", False, True), ("3", 0, 3), ("0.5", 1.0, 0.5),
                                                   ("a b", "", "a b"), ("[1, 2]", [0], [1, 2]),
                                                   ("{\"a\": 1}", None, {"a": 1}), ("plain", None, "plain")])
def test_parse_value_types_by_the_default(raw, like, want):
    from prm_probe.training.config import parse_value

    assert parse_value(raw, like, "k") == want
