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
