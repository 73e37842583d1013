"""prm-quality: R̂ of shared nodes against Monte-Carlo (and, on the toy tree, exact) values of their prefixes."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from prm_probe.cli import main
from prm_probe.core.prm_quality import (
    prm_quality_summary,
    prm_quality_token_summary,
    prm_quality_tokens,
)
from prm_probe.errors import ConfigError
from prm_probe.training.prm_quality import measure_prm_quality

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
    nodes = measure_prm_quality("tabular", tabular_log, rollouts=64, seed=0)
    assert len(nodes) > 30 and nodes["exact_value"].notna().all() and (nodes["size"] > 1).all()
    ok = (nodes["mc_value"] - nodes["exact_value"]).abs() <= 4 * nodes["mc_stderr"] + 1e-9
    assert ok.mean() >= 0.95, nodes[~ok]
    # a check that can fail: the values differ between nodes, and R̂ is not V
    assert nodes["exact_value"].std() > 0.05 and (nodes["step_reward"] != nodes["exact_value"]).any()


def test_step_reward_is_the_mean_reward_of_the_node_members(tabular_log):
    from prm_probe import GroupTrie

    nodes = measure_prm_quality("tabular", tabular_log, rollouts=2, seed=0, max_nodes=1000)
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
    a = measure_prm_quality("tabular", tabular_log, rollouts=8, seed=3, max_nodes=10)
    b = measure_prm_quality("tabular", tabular_log, rollouts=8, seed=3, max_nodes=10)
    assert a.equals(b) and len(a) == 10
    out = tmp_path / "nodes.csv"
    first = measure_prm_quality("tabular", tabular_log, rollouts=8, seed=3, max_nodes=10, out=out)
    mtime = out.stat().st_mtime_ns
    # all done: nothing new
    again = measure_prm_quality("tabular", tabular_log, rollouts=8, seed=3, max_nodes=10, out=out)
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
    assert o["rmse_corrected"] == pytest.approx(o["rmse"])  # no mc_stderr column: nothing to take out
    noisy = prm_quality_summary(nodes.assign(mc_stderr=[0.1, 0.1, 0.1, 0.1]))["overall"].iloc[0]
    assert noisy["rmse_corrected"] == pytest.approx(np.sqrt(np.mean([0.01, 0.04, 0.49, 0.0]) - 0.01))


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
        measure_prm_quality("tabular", no_prompts)
    wrong_tok = _rewrite(tabular_log, tmp_path / "b.parquet", meta={"eos_token_id": "12345"})
    with pytest.raises(ConfigError, match="eos_token_id"):
        measure_prm_quality("tabular", wrong_tok)
    no_task = _rewrite(tabular_log, tmp_path / "c.parquet", meta={"config": json.dumps({"note": "no task"})})
    with pytest.raises(ConfigError, match="no task and sampling settings"):
        measure_prm_quality("tabular", no_task)
    big_vocab = _rewrite(tabular_log, tmp_path / "d.parquet", meta={"vocab_size": "50000"})
    with pytest.raises(ConfigError, match="tokens but the log was written with 50000"):
        measure_prm_quality("tabular", big_vocab)
    table = pq.read_table(tabular_log)  # a token id the checkpoint's vocabulary does not have
    ids = table.column("completion_ids").to_pylist()
    ids[0] = [99999, *ids[0][1:]]
    foreign_ids = tmp_path / "e.parquet"
    pq.write_table(table.set_column(table.column_names.index("completion_ids"), "completion_ids",
                                    pa.array(ids, type=table.schema.field("completion_ids").type)), foreign_ids)
    with pytest.raises(ConfigError, match="token id 99999"):
        measure_prm_quality("tabular", foreign_ids)
    for bad in (no_prompts, wrong_tok, no_task, big_vocab, foreign_ids):
        assert main(["prm-quality", "tabular", str(bad), "-q"]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "expected" in err[0]


def test_cli_writes_the_node_table_the_token_view_and_the_figure(tabular_log, tmp_path, capsys):
    out, tokens, figure = tmp_path / "nodes.parquet", tmp_path / "tokens.csv", tmp_path / "fig"
    assert main(["prm-quality", "tabular", str(tabular_log), "--rollouts", "4", "--max-nodes", "5", "-o", str(out),
                 "--tokens", str(tokens), "--figure", str(figure), "-q"]) == 0
    printed = capsys.readouterr().out
    assert "truth: exact_value" in printed and "prm_advantage" in printed
    frame = pq.read_table(out).to_pandas()
    assert len(frame) == 5 and {"step_reward", "mc_value", "mc_stderr", "K", "exact_value"} <= set(frame.columns)
    import pandas as pd

    view = pd.read_csv(tokens)
    assert len(view) == int((frame["size"] * (frame["end"] - frame["start"])).sum())
    assert (tmp_path / "fig.png").stat().st_size > 1000 and (tmp_path / "fig.pdf").is_file()
    # a bad output suffix is refused before any sampling
    assert main(["prm-quality", "tabular", str(tabular_log), "--tokens", str(tmp_path / "t.txt"), "-q"]) == 2
    assert "expected .csv or .parquet" in capsys.readouterr().err


def test_token_view_against_a_brute_force_of_its_definition(tabular_log):
    """Every token of a measured node: A(i,t) is the member mean of the outcome advantages (Theorem 1's identity),
    and the value advantage is (V − r̄)/(σ + eps) with r̄ and σ recomputed here from the log's rewards."""
    from prm_probe.core.prm import ADVANTAGE_EPS

    nodes = measure_prm_quality("tabular", tabular_log, rollouts=4, seed=0, max_nodes=12)
    tokens = prm_quality_tokens(nodes, tabular_log, value="exact_value")
    assert len(tokens) == int((nodes["size"] * (nodes["end"] - nodes["start"])).sum())
    by_token = tokens.groupby(["group", "node", "t"])
    assert np.allclose(by_token["outcome_advantage"].mean(), by_token["prm_advantage"].first())
    assert (by_token.size() == by_token["size"].first()).all()
    log = pq.read_table(tabular_log).to_pandas()
    for _, row in tokens.sample(20, random_state=0).iterrows():
        rewards = log[log["group"] == row["group"]]["reward"].to_numpy(dtype=float)
        node = nodes[(nodes["group"] == row["group"]) & (nodes["node"] == row["node"])].iloc[0]
        want = (node["exact_value"] - rewards.mean()) / (rewards.std(ddof=1) + ADVANTAGE_EPS)
        assert row["value_advantage"] == pytest.approx(want)
        assert row["reward"] == pytest.approx(log[(log["group"] == row["group"])
                                                  & (log["sample"] == row["sample"])]["reward"].iloc[0])
        assert node["start"] <= row["t"] < node["end"]
    # a node the log does not have is refused
    foreign = nodes.copy()
    foreign.loc[foreign.index[0], "group"] += 1000  # one foreign node among known ones
    with pytest.raises(ConfigError, match="nodes the log does not have"):
        prm_quality_tokens(foreign, tabular_log)
    with pytest.raises(ConfigError, match="no column"):
        prm_quality_tokens(nodes, tabular_log, value="true_value")


def test_token_summary_by_hand():
    import pandas as pd

    tokens = pd.DataFrame({"prm_advantage": [1.0, -0.5, 0.2], "outcome_advantage": [1.5, 1.5, -1.0],
                           "value_advantage": [0.5, -0.5, -0.2]})
    s = prm_quality_token_summary(tokens).set_index("advantage")
    assert s.loc["prm_advantage", "rmse"] == pytest.approx(np.sqrt((0.25 + 0.0 + 0.16) / 3))
    assert s.loc["prm_advantage", "bias"] == pytest.approx((0.5 + 0.0 + 0.4) / 3)
    assert s.loc["prm_advantage", "wrong_sign_share"] == pytest.approx(1 / 3)
    assert s.loc["outcome_advantage", "wrong_sign_share"] == pytest.approx(1 / 3)
    assert s.loc["outcome_advantage", "rmse"] == pytest.approx(np.sqrt((1.0 + 4.0 + 0.64) / 3))
    # a token of a group with equal rewards (σ = 0, value advantage NaN) is counted apart, not averaged in
    flat = pd.concat([tokens, pd.DataFrame({"prm_advantage": [0.0], "outcome_advantage": [0.0],
                                            "value_advantage": [np.nan]})], ignore_index=True)
    f = prm_quality_token_summary(flat).set_index("advantage")
    assert f.loc["prm_advantage", "no_signal_tokens"] == 1 and f.loc["prm_advantage", "tokens"] == 3
    assert f.loc["prm_advantage", "rmse"] == pytest.approx(s.loc["prm_advantage", "rmse"])


def test_figure_draws_one_point_per_node_and_one_error_point_per_size():
    import pandas as pd

    from prm_probe.views.plots import plot_prm_quality

    nodes = pd.DataFrame({"size": [2, 2, 3, 5], "step_reward": [0.5, 1.0, 0.0, 0.25],
                          "exact_value": [0.6, 0.8, 0.7, np.nan], "group_mean": [0.5] * 4, "depth": [1, 1, 2, 2]})
    by_size = prm_quality_summary(nodes, "exact_value")["by_size"]
    fig = plot_prm_quality(nodes, by_size, value="exact_value")
    scatter, errors = fig.axes[0], fig.axes[1]
    assert len(scatter.collections[0].get_offsets()) == 3  # the NaN node is not drawn
    assert list(errors.lines[0].get_xdata()) == [2, 3] and np.allclose(errors.lines[0].get_ydata(), by_size["rmse"])
    assert "exact value" in scatter.get_xlabel()


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


def test_exact_values_of_a_trained_table_match_an_enumeration_written_here(tmp_path):
    """An independent check of ``exact_value``: from a trained tabular checkpoint's saved table (read with
    safetensors, no prm_probe code), the run's task.json (its target) and the toy tree's reward written out
    here, enumerate every continuation of each node's prefix and compare V with prm-quality's."""
    import itertools

    from safetensors.numpy import load_file

    from prm_probe.experiments.sweeps import toy_config
    from prm_probe.training.collect import sample_log
    from prm_probe.training.config import config_from_dict
    from prm_probe.training.trainer import train

    cfg = toy_config(model="tabular", n=1, r_neg=-1.0, seed=3, weighting="uniform", lr=0.5, optimizer="sgd",
                     steps=10, rollouts_every=0)
    run = train(config_from_dict(cfg), tmp_path / "run")
    log = sample_log(str(run), out=tmp_path / "log.parquet", groups=6, split="train", seed=5)
    nodes = measure_prm_quality(run, log, rollouts=2, seed=0, max_nodes=1000)

    model = run / "checkpoints" / "step-000010" / "model"
    theta = load_file(str(model / "model.safetensors"))["table"].astype(np.float64)  # (15, 2)
    actions = json.loads((model / "config.json").read_text())["actions"]  # token ids, in column order
    task = json.loads((run / "task.json").read_text())["options"]
    target, n, r_neg, r_other = task["target"], task["n"], task["r_neg"], task["r_other"]
    assert theta.shape == (15, 2) and np.abs(theta).max() > 0.3  # the table has moved away from uniform

    def reward(path: str) -> float:
        if path == target:
            return 1.0
        return r_neg if path[:n] == target[:n] else r_other

    rows = pq.read_table(log).to_pylist()
    letter = {i: c for r in rows for i, c in zip(r["completion_ids"], r["completion"], strict=True)}
    column = {letter[a]: j for j, a in enumerate(actions)}

    def value(prefix: str) -> float:
        """Σ over continuations of π(continuation | prefix)·r: the probabilities of the prefix's own actions
        are not part of it."""
        state = 0
        for ch in prefix:
            state = state * 2 + 1 + column[ch]
        total = 0.0
        for rest in itertools.product("LR", repeat=4 - len(prefix)):
            s, prob = state, 1.0
            for ch in rest:
                z = theta[s]
                prob *= (np.exp(z - z.max()) / np.exp(z - z.max()).sum())[column[ch]]
                s = s * 2 + 1 + column[ch]
            total += prob * reward(prefix + "".join(rest))
        return total

    pinned = 0
    for _, node in nodes.iterrows():
        group = [r for r in rows if r["group"] == node["group"]]
        counts: dict[str, list[float]] = {}
        for r in group:
            counts.setdefault(r["completion"][: int(node["end"])], []).append(r["reward"])
        candidates = [p for p, rs in counts.items() if len(rs) == node["size"]
                      and np.mean(rs) == pytest.approx(node["step_reward"])]
        values = [value(p) for p in candidates]
        assert any(v == pytest.approx(node["exact_value"], abs=1e-6) for v in values), (node, candidates, values)
        # pinned down: one candidate prefix, or candidates (siblings alike in size and rewards) of one value
        pinned += all(v == pytest.approx(node["exact_value"], abs=1e-6) for v in values)
    assert len(nodes) > 20 and pinned >= 0.8 * len(nodes)
    assert (nodes["exact_std"] > 0.1).sum() >= 10  # nodes whose value is not trivially every member's reward


def test_the_result_object_agrees_with_the_functions_and_with_overlap_stats(tabular_log, tmp_path):
    """PrmQuality: summary() a dict of headline numbers (as OverlapStats.summary()), frame(by) the frames the
    functions compute, write(path, by) one table file that reads back, plot() the figure; the facade returns it."""
    import pandas as pd

    import prm_probe
    from prm_probe.core.stats import overlap_stats
    from prm_probe.views.prm_quality import PrmQuality

    result = prm_probe.prm_quality("tabular", tabular_log, rollouts=4, seed=0, max_nodes=12)
    assert isinstance(result, PrmQuality) and result.value == "exact_value" and len(result) == 12
    nodes = measure_prm_quality("tabular", tabular_log, rollouts=4, seed=0, max_nodes=12)
    pd.testing.assert_frame_equal(result.nodes, nodes)
    expected = prm_quality_summary(nodes, "exact_value")
    summary = result.summary()
    assert isinstance(summary, dict) and isinstance(overlap_stats(tabular_log).summary(), dict)
    assert summary == pytest.approx(expected["overall"].iloc[0].to_dict(), nan_ok=True)
    pd.testing.assert_frame_equal(result.frame("size"), expected["by_size"])
    pd.testing.assert_frame_equal(result.frame("token"), prm_quality_tokens(nodes, tabular_log, "exact_value"))
    written = result.write(tmp_path / "nodes.parquet")
    again = PrmQuality.read(written, tabular_log)
    pd.testing.assert_frame_equal(again.nodes, nodes)
    assert again.summary() == pytest.approx(summary, nan_ok=True)
    assert len(result.plot().axes[0].collections[0].get_offsets()) == len(nodes)  # the R̂-vs-V scatter
    with pytest.raises(ConfigError, match=r"expected \.csv or \.parquet"):
        result.write(tmp_path / "nodes.txt")
    assert not (tmp_path / "nodes.txt").exists()
    with pytest.raises(ConfigError, match="needs the rollout log"):
        PrmQuality(nodes).tokens()
    with pytest.raises(ConfigError, match="lacks column"):
        PrmQuality(nodes.drop(columns=["mc_value"]))


def test_the_summary_correlations_equal_scipy(rng):
    """The core computes Pearson and Spearman with numpy and pandas; scipy (a second implementation) agrees."""
    import pandas as pd
    from scipy import stats

    n = 40
    nodes = pd.DataFrame({"step_reward": rng.integers(0, 5, n) / 4, "mc_value": rng.random(n), "mc_stderr": 0.01,
                          "group_mean": 0.5, "size": rng.integers(2, 6, n), "depth": rng.integers(1, 4, n)})
    overall = prm_quality_summary(nodes)["overall"].iloc[0]
    assert overall["pearson"] == pytest.approx(stats.pearsonr(nodes["step_reward"], nodes["mc_value"])[0])
    assert overall["spearman"] == pytest.approx(stats.spearmanr(nodes["step_reward"], nodes["mc_value"])[0])
    dr, dv = nodes["step_reward"] - 0.5, nodes["mc_value"] - 0.5
    assert overall["grpo_weight_corr"] == pytest.approx(stats.pearsonr(nodes["size"] * dr, nodes["size"] * dv)[0])
