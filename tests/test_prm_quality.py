"""prm-quality: R̂ of shared nodes against Monte-Carlo (and, on the toy tree, exact) values of their prefixes."""

from __future__ import annotations

import json

import numpy as np
import pyarrow.parquet as pq
import pytest

from prm_probe.cli import main
from prm_probe.errors import ConfigError
from prm_probe.experiments.prm_quality import prm_quality, prm_quality_summary

OPTIONS = {"n": 1, "r_neg": -1.0}


@pytest.fixture(scope="module")
def tabular_log(tmp_path_factory):
    """8 groups of 16 from the untrained (uniform) tabular policy on the toy tree."""
    from prm_probe.training.collect import sample_log

    path = tmp_path_factory.mktemp("pq") / "log.parquet"
    sample_log("tabular", "toy-tree", path, groups=8, group_size=16, split="train", seed=1, max_new_tokens=4,
               task_options=OPTIONS)
    return path


def test_mc_estimates_agree_with_the_exact_value_within_4_standard_errors(tabular_log):
    nodes = prm_quality("tabular", tabular_log, rollouts=64, seed=0)
    assert len(nodes) > 30 and nodes["exact_value"].notna().all() and (nodes["size"] > 1).all()
    ok = (nodes["mc_value"] - nodes["exact_value"]).abs() <= 4 * nodes["mc_stderr"] + 1e-9
    assert ok.mean() >= 0.95, nodes[~ok]
    # a check that can fail: the values differ between nodes, and R̂ is not V
    assert nodes["exact_value"].std() > 0.05 and (nodes["step_reward"] != nodes["exact_value"]).any()


def test_step_reward_is_the_mean_reward_of_the_node_members(tabular_log):
    from prm_probe import GroupTrie

    nodes = prm_quality("tabular", tabular_log, rollouts=2, seed=0, max_nodes=1000)
    for group, part in nodes.groupby("group"):
        trie = GroupTrie.from_log(tabular_log, 0, int(group))
        table = trie.node_table()
        rewards = np.asarray(trie.rewards)
        for _, row in part.iterrows():  # the trie numbers nodes depth first: match by span and size
            same = table[(table["start"] == row["start"]) & (table["end"] == row["end"])
                         & (table["members"].map(len) == row["size"])]
            assert len(same) >= 1
            means = [rewards[m].mean() for m in same["members"]]
            assert any(m == pytest.approx(row["step_reward"]) for m in means)


def test_a_fixed_seed_gives_the_same_estimates_and_a_killed_run_resumes(tabular_log, tmp_path):
    a = prm_quality("tabular", tabular_log, rollouts=8, seed=3, max_nodes=10)
    b = prm_quality("tabular", tabular_log, rollouts=8, seed=3, max_nodes=10)
    assert a.equals(b) and len(a) == 10
    out = tmp_path / "nodes.csv"
    first = prm_quality("tabular", tabular_log, rollouts=8, seed=3, max_nodes=10, out=out)
    mtime = out.stat().st_mtime_ns
    again = prm_quality("tabular", tabular_log, rollouts=8, seed=3, max_nodes=10, out=out)  # all done: nothing new
    assert out.stat().st_mtime_ns == mtime
    assert np.allclose(first["mc_value"], again["mc_value"])


def test_summary_by_hand():
    import pandas as pd

    nodes = pd.DataFrame({"size": [2, 2, 3, 4], "depth": [1, 1, 2, 2], "step_reward": [0.5, 1.0, 0.0, 0.25],
                          "group_mean": [0.5] * 4, "mc_value": [0.6, 0.8, 0.7, 0.25]})
    s = prm_quality_summary(nodes)
    o = s["overall"].iloc[0]
    assert o["bias"] == pytest.approx(np.mean([-0.1, 0.2, -0.7, 0.0]))
    assert o["rmse"] == pytest.approx(np.sqrt(np.mean([0.01, 0.04, 0.49, 0.0])))
    assert o["wrong_sign_share"] == pytest.approx(0.25)  # node 3: R̂ below the mean, V above it
    assert list(s["by_size"]["nodes"]) == [2, 1, 1]


def _rewrite(src, dst, drop=(), meta=None):
    table = pq.read_table(src)
    table = table.drop_columns([c for c in drop if c in table.column_names])
    md = {k.decode(): v.decode() for k, v in (table.schema.metadata or {}).items()}
    md.update(meta or {})
    pq.write_table(table.replace_schema_metadata(md), dst)
    return dst


def test_bad_inputs_are_one_line_errors(tabular_log, tmp_path, capsys):
    no_prompts = _rewrite(tabular_log, tmp_path / "a.parquet", drop=["prompt_ids"])
    with pytest.raises(ConfigError, match="no prompt_ids"):
        prm_quality("tabular", no_prompts)
    wrong_tok = _rewrite(tabular_log, tmp_path / "b.parquet", meta={"eos_token_id": "12345"})
    with pytest.raises(ConfigError, match="eos_token_id"):
        prm_quality("tabular", wrong_tok)
    no_task = _rewrite(tabular_log, tmp_path / "c.parquet", meta={"config": json.dumps({"note": "no task"})})
    with pytest.raises(ConfigError, match="no task and sampling settings"):
        prm_quality("tabular", no_task)
    for bad in (no_prompts, wrong_tok, no_task):
        assert main(["prm-quality", "tabular", str(bad), "-q"]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "expected" in err[0]


def test_cli_writes_the_node_table(tabular_log, tmp_path, capsys):
    out = tmp_path / "nodes.parquet"
    assert main(["prm-quality", "tabular", str(tabular_log), "--rollouts", "4", "--max-nodes", "5", "-o", str(out),
                 "-q"]) == 0
    assert "truth: exact_value" in capsys.readouterr().out
    frame = pq.read_table(out).to_pandas()
    assert len(frame) == 5 and {"step_reward", "mc_value", "mc_stderr", "K", "exact_value"} <= set(frame.columns)


def test_a_model_folder_is_not_a_run_folder(tmp_path):
    """A Hugging Face model folder has a config.json too; `sample` and `prm-quality` must take it as a model."""
    from prm_probe.core.runs import RunFolder, is_run_dir
    from prm_probe.training.models import char_tokenizer, tiny_model

    model = tmp_path / "model"
    tiny_model("tiny", len(char_tokenizer()), seed=0).save_pretrained(model)
    assert (model / "config.json").is_file() and not is_run_dir(model)
    run = RunFolder(tmp_path / "run")
    run.rollouts.mkdir(parents=True)
    run.config.write_text("{}")
    assert is_run_dir(run.path)
