"""prm_probe against the golden cases of docs/science.md (§4.2 G6, §4.3 G6b, §6.7 metrics, §8 EX1-EX5 and edge cases).

The expected numbers live in tests/data/golden/*.json, transcribed by hand from docs/science.md by
tests/data/regen_golden.py (never computed by prm_probe). Listed floats are float32 rounded to 7 decimals
(§8) or rounded to 6 decimals (§4.2, §6.7), so they are compared with an absolute tolerance of 1e-6;
integers (process-set sizes, node counts, depths) are compared exactly.

σ convention (docs/science.md §1.2, §8): GRPO's advantages are (r − r̄)/(σ_unbiased + 1e-4), prm_probe's default.
G6's "A exact (σ)" column and the §4.2 theorem sums use the exact unbiased σ, i.e. ``eps=0``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import prm_probe
from prm_probe.core.group_trie import GroupTrie
from prm_probe.core.prm import identity_check, node_values, outcome_advantages
from prm_probe.core.stats import completion_stats, group_stats
from prm_probe.core.trie import PackedGroups, process_sets

GOLDEN = Path(__file__).resolve().parent / "data" / "golden"
EX_CASES = ["ex1", "ex2", "ex3", "ex4", "ex5"]
ALL_CASES = [*EX_CASES, "g6", "g6b", "edge_cases"]
ATOL = 1e-6  # docs/science.md §8: "compare with an absolute tolerance of 1e-6"


def load(name: str) -> dict:
    return json.loads((GOLDEN / f"{name}.json").read_text(encoding="utf-8"))


def close(got, want, atol: float = ATOL) -> None:
    np.testing.assert_allclose(np.asarray(got, dtype=np.float64), np.asarray(want, dtype=np.float64),
                               rtol=0, atol=atol)


def one_group(completions) -> object:
    return process_sets(PackedGroups.from_lists([completions]))


def node_key(span, members) -> tuple:
    return tuple(int(x) for x in span), tuple(sorted(int(m) for m in members))


def engine_nodes(ps) -> list[tuple]:
    """(span tokens, members) of every engine node id of a one-group ProcessSets, from its segment table."""
    packed = ps.packed
    out = []
    for k in range(ps.n_nodes):
        segs = np.flatnonzero(ps.seg_node == k)
        comps = ps.seg_completion[segs]
        c0 = int(comps[0])
        off = int(packed.offsets[c0])
        span = packed.tokens[off + int(ps.node_start[k]): off + int(ps.node_end[k])]
        out.append(node_key(span, packed.completion_sample[comps]))
    return out


def library_nodes(completions, rewards=None) -> dict[tuple, dict]:
    """prm_probe's node table of one group keyed by (span tokens, members)."""
    trie = GroupTrie.from_completions(completions, rewards)
    table = trie.node_table()
    keys = [node_key(trie.tokens(k), trie.members(k)) for k in range(trie.n_nodes)]
    out = {}
    for k, row in table.iterrows():
        parent = int(row["parent"])
        out[keys[k]] = {"row": row, "parent": keys[parent] if parent >= 0 else None}
    return out


def golden_paths(case: dict) -> list[list[int]]:
    """For each sample, the indices of the golden nodes on its path (the JSON lists nodes parent-first)."""
    nodes = case["expected"]["nodes"]
    return [[k for k, nd in enumerate(nodes) if i in nd["members"]] for i in range(len(case["completions"]))]


def golden_parents(case: dict) -> list[int | None]:
    """Parent of each golden node: the node before it on its members' paths."""
    nodes = case["expected"]["nodes"]
    parent: list[int | None] = [None] * len(nodes)
    for path in golden_paths(case):
        for a, b in zip([None, *path[:-1]], path, strict=True):
            parent[b] = a
    return parent


# ------------------------------------------------------------------------------------------ bookkeeping
@pytest.mark.parametrize("name", ALL_CASES)
def test_golden_file_has_provenance(name):
    case = load(name)
    assert case["case"] == name
    assert case["source"].startswith("docs/science.md §")
    assert case["made_by"]["command"] == "python tests/data/regen_golden.py"
    assert len(case["made_by"]["date"]) == 10


@pytest.mark.parametrize("name", [c for c in ALL_CASES if c != "edge_cases"])
def test_golden_transcription_is_self_consistent(name):
    """The golden tree spans, walked along each sample's path, spell the sample's tokens (transcription check)."""
    case = load(name)
    exp = case["expected"]
    if "nodes" in exp:
        for i, path in enumerate(golden_paths(case)):
            spelled = [tok for k in path for tok in exp["nodes"][k]["span"]]
            assert spelled == case["completions"][i], (name, i)
            assert all(exp["nodes"][k]["size"] == len(exp["nodes"][k]["members"]) for k in path)
    if "process_set_sizes" in exp:
        assert [len(c) for c in exp["process_set_sizes"]] == [len(c) for c in case["completions"]]


# ----------------------------------------------------------------------------------------- EX1 - EX5
@pytest.mark.parametrize("name", EX_CASES)
def test_ex_process_set_sizes(name):
    case = load(name)
    got = prm_probe.process_set_sizes(case["completions"])
    assert [g.tolist() for g in got] == case["expected"]["process_set_sizes"]
    assert all(g.dtype == np.int64 for g in got)


@pytest.mark.parametrize("name", ["ex1", "ex3", "ex4", "ex5"])
def test_ex_prompt_does_not_change_completion_sizes(name):
    """docs/science.md §2.3: a trie over prompt + completion, with the prompt dropped, gives the same sizes."""
    case = load(name)
    prompt = case["prompt"]
    full = prm_probe.process_set_sizes([prompt + c for c in case["completions"]])
    g = len(case["completions"])
    for got, want in zip(full, case["expected"]["process_set_sizes"], strict=True):
        assert got[: len(prompt)].tolist() == [g] * len(prompt)
        assert got[len(prompt):].tolist() == want
    if name == "ex3":
        assert full[0].tolist() == case["expected"]["row0_full_sequence_sizes"]


@pytest.mark.parametrize("name", EX_CASES)
def test_ex_outcome_advantages(name):
    case = load(name)
    a = outcome_advantages(case["rewards"])
    close(a, case["expected"]["advantages"])
    if name == "ex4":
        assert (a == 0).all()  # σ = 0: exactly 0/1e-4


def test_ex3_mean_and_sigma_plus_eps():
    case = load("ex3")
    gs = group_stats(one_group(case["completions"]), np.asarray(case["rewards"], dtype=np.float64))
    close(gs["reward_mean"], [case["expected"]["r_mean"]])
    close(gs["reward_std"] + 1e-4, [case["expected"]["sigma_plus_eps"]])


@pytest.mark.parametrize("name", EX_CASES)
def test_ex_loss_arithmetic(name):
    """§8 losses and gradients, done in numpy from prm_probe's weights s = 1/c and advantages a."""
    case = load(name)
    exp = case["expected"]
    sizes = prm_probe.process_set_sizes(case["completions"])
    a = outcome_advantages(case["rewards"])
    n = len(sizes)
    s = [1.0 / c for c in sizes]
    a_s = [a[i] * s[i] for i in range(n)]
    for got, want in zip(a_s, exp["a_times_s"], strict=True):
        close(got, want)
    row_losses = np.array([-a_s[i].sum() / len(a_s[i]) for i in range(n)])
    close(row_losses, exp["row_losses"])
    close(row_losses.mean(), exp["loss_grpo"])
    total_tokens = sum(len(x) for x in a_s)
    close(-sum(x.sum() for x in a_s) / total_tokens, exp["loss_dapo"])
    for i in range(n):
        close(-a[i] * s[i] / (n * len(s[i])), exp["grad_grpo"][i])
    # Vanilla GRPO (s ≡ 1).
    if "loss_grpo_vanilla" in exp:
        close(np.mean([-(a[i] * np.ones(len(s[i]))).sum() / len(s[i]) for i in range(n)]), exp["loss_grpo_vanilla"])
    if "loss_dapo_vanilla" in exp:
        close(-sum(a[i] * len(s[i]) for i in range(n)) / total_tokens, exp["loss_dapo_vanilla"])


@pytest.mark.parametrize("name", ["ex1", "ex2", "ex3"])
def test_ex_node_table(name):
    case = load(name)
    exp = case["expected"]
    got = library_nodes(case["completions"])
    want = {node_key(nd["span"], nd["members"]): nd for nd in exp["nodes"]}
    assert set(got) == set(want)
    assert len(got) == exp["node_count"]
    for key, nd in want.items():
        assert int(got[key]["row"]["size"]) == nd["size"] == len(nd["members"])
    gold_keys = [node_key(nd["span"], nd["members"]) for nd in exp["nodes"]]
    for k, p in enumerate(golden_parents(case)):
        assert got[gold_keys[k]]["parent"] == (gold_keys[p] if p is not None else None)


@pytest.mark.parametrize("name", ["ex1", "ex2", "ex3"])
def test_ex_implied_prm(name):
    """Per token: c, R(i,t) = mean member reward of its node, A(i,t) = mean member advantage (§3.1), a_i."""
    case = load(name)
    exp = case["expected"]
    rewards = np.asarray(case["rewards"], dtype=np.float64)
    a = np.asarray(exp["advantages"])
    df = prm_probe.implied_prm(case["completions"], case["rewards"])
    nodes = exp["nodes"]
    want = {"sample": [], "t": [], "process_set_size": [], "step_reward": [], "prm_advantage": [],
            "outcome_advantage": []}
    for i, path in enumerate(golden_paths(case)):
        t = 0
        for k in path:
            mem = nodes[k]["members"]
            for _ in nodes[k]["span"]:
                want["sample"].append(i)
                want["t"].append(t)
                want["process_set_size"].append(nodes[k]["size"])
                want["step_reward"].append(rewards[mem].mean())
                want["prm_advantage"].append(a[mem].mean())
                want["outcome_advantage"].append(a[i])
                t += 1
    for col in ("sample", "t", "process_set_size"):
        assert df[col].tolist() == want[col], col
    assert df["process_set_size"].tolist() == [c for row in exp["process_set_sizes"] for c in row]
    for col in ("step_reward", "prm_advantage", "outcome_advantage"):
        close(df[col].to_numpy(), want[col])
    if name == "ex1":
        for item in exp["node_mean_advantage"]:
            pre = item["prefix"]
            i = next(i for i, c in enumerate(case["completions"]) if c[: len(pre)] == pre)
            row = df[(df["sample"] == i) & (df["t"] == len(pre) - 1)]
            close(row["prm_advantage"].to_numpy(), [item["value"]])


def test_ex4_all_equal_rewards_give_zero_prm():
    case = load("ex4")
    df = prm_probe.implied_prm(case["completions"], case["rewards"])
    assert df["process_set_size"].tolist() == [c for row in case["expected"]["process_set_sizes"] for c in row]
    assert (df["prm_advantage"] == 0).all() and (df["outcome_advantage"] == 0).all()
    assert (df["step_reward"] == 1).all()


@pytest.mark.parametrize("name", EX_CASES)
def test_ex_identity_check(name):
    case = load(name)
    ps = one_group(case["completions"])
    chk = identity_check(ps, np.asarray(case["rewards"], dtype=np.float64))
    assert chk["holds"].all()
    assert len(chk) == ps.n_nodes
    if "nodes" in case["expected"]:
        a = np.asarray(case["expected"]["advantages"])
        keys = engine_nodes(ps)
        want = {node_key(nd["span"], nd["members"]) for nd in case["expected"]["nodes"]}
        assert set(keys) == want
        for k, (_, members) in enumerate(keys):
            close(chk["sum_advantage"][k], a[list(members)].sum())
            close(chk["size_times_advantage"][k], a[list(members)].sum())
            assert int(chk["size"][k]) == len(members)


# ---------------------------------------------------------------------------------------------- G6
@pytest.fixture(scope="module")
def g6():
    return load("g6")


def test_g6_process_set_sizes(g6):
    got = prm_probe.process_set_sizes(g6["completions"])
    assert [x.tolist() for x in got] == g6["expected"]["metrics"]["process_set_sizes"]
    assert sum(len(x) for x in got) == g6["expected"]["sum_lengths"] == 31


def test_g6_mean_and_unbiased_sigma(g6):
    exp = g6["expected"]
    gs = group_stats(one_group(g6["completions"]), np.asarray(g6["rewards"]))
    close(gs["reward_mean"], [exp["r_mean"]])
    close(gs["reward_mean"], [exp["r_mean_fraction"][0] / exp["r_mean_fraction"][1]], atol=1e-12)
    close(gs["reward_std"], [exp["sigma_unbiased"]])
    assert abs(gs["reward_std"][0] - exp["sigma_population"]) > 0.03  # the population std is not used
    assert gs["tokens"].tolist() == [31]
    # The empty root: R̂(root) = r̄ and A(root) = 0; it is no (non-empty) node of the table.
    root = exp["root"]
    close(gs["reward_mean"], [root["step_reward"]])
    assert root["tokens"] == 0
    assert (one_group(g6["completions"]).node_size < root["size"]).all()


@pytest.mark.parametrize("eps_name", ["exact", "eps"])
def test_g6_node_values(g6, eps_name):
    exp = g6["expected"]
    eps = 0.0 if eps_name == "exact" else 1e-4
    ps = one_group(g6["completions"])
    vals = node_values(ps, np.asarray(g6["rewards"]), eps=eps)
    index = {key: k for k, key in enumerate(engine_nodes(ps))}
    assert ps.n_nodes == len(index) == len(exp["nodes"]) == 9
    for nd in exp["nodes"]:
        k = index[node_key(nd["span"], nd["members"])]
        assert int(ps.node_size[k]) == nd["size"]
        assert int(ps.node_end[k] - ps.node_start[k]) == nd["tokens"] == len(nd["span_letters"])
        close(vals["step_reward"][k], nd["step_reward"])
        close(vals["prm_advantage"][k], nd[f"prm_advantage_{eps_name}"])
        if eps_name == "exact":
            assert round(float(vals["prm_advantage"][k]), 2) == nd["prm_advantage_2dp"]
            close(vals["size_times_advantage"][k], nd["grpo_coefficient"])
            close(vals["sum_advantage"][k], nd["grpo_coefficient"])
            close(vals["prm_advantage"][k], nd["lambda_grpo_coefficient"])


def test_g6_tree_parents(g6):
    exp = g6["expected"]
    got = library_nodes(g6["completions"])
    by_name = {nd["name"]: node_key(nd["span"], nd["members"]) for nd in exp["nodes"]}
    assert set(got) == set(by_name.values())
    for name, parent in exp["parents"].items():
        assert got[by_name[name]]["parent"] == (by_name[parent] if parent else None), name


@pytest.mark.parametrize("eps_name", ["exact", "eps"])
def test_g6_implied_prm_per_token(g6, eps_name):
    exp = g6["expected"]
    eps = 0.0 if eps_name == "exact" else 1e-4
    df = prm_probe.implied_prm(g6["completions"], g6["rewards"], eps=eps)
    assert len(df) == 31
    assert df["process_set_size"].tolist() == [c for row in exp["metrics"]["process_set_sizes"] for c in row]
    want_r, want_a, want_o = [], [], []
    nodes = exp["nodes"]
    leaf_of = {nd["members"][0]: nd for nd in nodes if nd["size"] == 1}
    for i, path in enumerate(golden_paths(g6)):
        for k in path:
            want_r += [nodes[k]["step_reward"]] * nodes[k]["tokens"]
            want_a += [nodes[k][f"prm_advantage_{eps_name}"]] * nodes[k]["tokens"]
        # Every G6 completion ends in a singleton leaf, whose A is the completion's own outcome advantage.
        want_o += [leaf_of[i][f"prm_advantage_{eps_name}"]] * len(g6["completions"][i])
    close(df["step_reward"].to_numpy(), want_r)
    close(df["prm_advantage"].to_numpy(), want_a)
    close(df["outcome_advantage"].to_numpy(), want_o)
    assert df["t"].tolist() == [t for c in g6["completions"] for t in range(len(c))]


def test_g6_theorem_sums_use_exact_sigma(g6):
    """§4.2: Σ a_i = Σ A(i,t) = −5.092286 and Σ a_i/c = −1.992633, both with the exact unbiased σ (eps = 0).

    With σ + 1e-4 the sums are −5.090934 and −1.992104, which miss the listed values by > 1e-3.
    """
    th = g6["expected"]["theorem"]
    for eps, match in ((0.0, True), (1e-4, False)):
        df = prm_probe.implied_prm(g6["completions"], g6["rewards"], eps=eps)
        sums = {"sum_a": df["outcome_advantage"].sum(), "sum_A": df["prm_advantage"].sum(),
                "sum_a_over_c": (df["outcome_advantage"] / df["process_set_size"]).sum()}
        for key, value in sums.items():
            assert bool(abs(value - th[key]) <= ATOL) is match, (eps, key, value)
    # λ-GRPO reading (§5.3): Σ a_i/c = Σ_λ span·A(λ).
    lam = sum(nd["tokens"] * nd["lambda_grpo_coefficient"] for nd in g6["expected"]["nodes"])
    close(lam, th["sum_a_over_c"])


def test_g6_metrics(g6):
    m = g6["expected"]["metrics"]
    ps = one_group(g6["completions"])
    cs = completion_stats(ps)
    assert cs["path_depth"].tolist() == m["path_depth"]
    assert cs["depth_all"].tolist() == m["depth_all"]
    close(cs["intermediate_proportion"], m["intermediate_proportion"])
    gs = group_stats(ps, np.asarray(g6["rewards"]))

    def frac(key):
        return m[key][0] / m[key][1]

    close(gs["path_depth_mean"], [m["path_depth_mean"]])
    close(gs["path_depth_mean"], [frac("path_depth_mean_fraction")], atol=1e-12)
    close(gs["path_depth_median"], [m["path_depth_median"]])
    close(gs["intermediate_proportion_mean"], [m["intermediate_proportion_mean"]])
    close(gs["intermediate_proportion_median"], [m["intermediate_proportion_median"]])
    assert gs["nontrivial"].tolist() == [m["F1"]]
    assert gs["proper_branching"].tolist() == [m["F2"]]
    assert gs["informative_branching"].tolist() == [m["F3"]]
    assert gs["node_count"].tolist() == [m["node_count"]]
    for key in ("gradient_mass_ratio", "frequency_mass", "prm_orm_differ_share"):
        close(gs[key], [m[key]])
        close(gs[key], [frac(f"{key}_fraction")], atol=1e-12)


# ---------------------------------------------------------------------------------------------- G6b
def test_g6b_values():
    case = load("g6b")
    exp = case["expected"]
    rewards = np.asarray(case["rewards"])
    ps = one_group(case["completions"])
    gs = group_stats(ps, rewards)
    close(gs["reward_mean"], [exp["r_mean"]])
    close(gs["reward_std"], [exp["sigma_unbiased"]])
    vals = node_values(ps, rewards, eps=0.0)
    index = {key: k for k, key in enumerate(engine_nodes(ps))}
    assert len(index) == ps.n_nodes == len(exp["nodes"])
    for nd in exp["nodes"]:
        k = index[node_key(nd["span"], nd["members"])]
        close(vals["prm_advantage"][k], nd["prm_advantage_exact"])
        if "step_reward" in nd:
            close(vals["step_reward"][k], nd["step_reward"])
        if "step_reward_fraction" in nd:
            close(vals["step_reward"][k], nd["step_reward_fraction"][0] / nd["step_reward_fraction"][1], 1e-12)
    assert identity_check(ps, rewards)["holds"].all()


# ------------------------------------------------------------------------------------------ edge cases
EDGE = load("edge_cases")


@pytest.mark.parametrize("case", EDGE["cases"], ids=[str(c["input"])[:40] for c in EDGE["cases"]])
def test_edge_case_sizes(case):
    got = prm_probe.process_set_sizes(case["input"])
    assert [g.tolist() for g in got] == case["required_sizes"]
    assert [len(g) for g in got] == [len(c) for c in case["input"]]
    if len(case["input"]) == 1:  # G = 1: the advantage is undefined
        assert np.isnan(outcome_advantages([1.0])).all()


@pytest.mark.parametrize("row", EDGE["binary_advantages"], ids=lambda r: f"G{r['G']}k{r['k']}")
def test_binary_advantages(row):
    g, k = row["G"], row["k"]
    a = outcome_advantages([1.0] * k + [0.0] * (g - k))
    close(a[:k], [row["a_correct"]] * k)
    close(a[k:], [row["a_wrong"]] * (g - k))


@pytest.mark.parametrize("row", EDGE["binary_sigma"], ids=lambda r: f"G{r['G']}k{r['k']}")
def test_binary_sigma(row):
    g, k = row["G"], row["k"]
    gs = group_stats(one_group([[0]] * g), np.asarray([1.0] * k + [0.0] * (g - k)))
    close(gs["reward_std"], [row["sigma_unbiased"]])
