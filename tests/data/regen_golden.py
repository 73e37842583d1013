"""Write the golden JSON files of tests/data/golden/ from numbers TRANSCRIBED from docs/science.md.

Usage (from the repository root)::

    python tests/data/regen_golden.py

Every expected value below is typed in by hand from docs/science.md (the section is cited next
to it). Nothing here imports or calls prm_probe: computing the expectations with the library under test
would make the golden tests circular. The only arithmetic done here is bookkeeping on the transcribed
constants: process-set sizes c = 1/s from the listed weights s, tokens from letters (one token per letter,
``ord(letter)``), and "same as row 0" rows copied out.

Conventions (docs/science.md §8): pass 1, μ = 1, β = 0, N = G (one micro-batch); advantages are
(r − r̄)/(σ_unbiased + 1e-4); s = 1/c over completion tokens; row loss −Σ_t a_i·s(i,t)/|y_i|; 'grpo' loss =
mean of row losses; 'dapo' loss = −Σ a·s / Σ|y_i|; 'grpo' gradient −a_i·s(i,t)/(N·|y_i|). Listed floats are
float32 rounded to 7 decimals (compare with abs 1e-6). G6 values (§4.2, §6.7) are listed to 6 decimals.
"""

from __future__ import annotations

import datetime as _dt
import json
from fractions import Fraction
from pathlib import Path

OUT_DIR = Path(__file__).resolve().parent / "golden"
COMMAND = "python tests/data/regen_golden.py"

# docs/science.md §8 intro: "In EX1, EX2 and EX5, a = 0.8658754 (G = 4, two correct, r̄ = 0.5, σ + 1e-4 = 0.5774503)."
A4 = 0.8658754
# docs/science.md §8 EX3: "a = ±0.9127042" (G = 6, three correct, σ + 1e-4 = 0.5478226).
A6 = 0.9127042


def _made_by() -> dict:
    return {"command": COMMAND, "date": _dt.date.today().isoformat()}


def _sizes(s_rows: list[list[str]]) -> list[list[int]]:
    """Process-set sizes c = 1/s from weights listed as fraction strings ("1/3", "1")."""
    out = []
    for row in s_rows:
        sizes = []
        for s in row:
            inv = 1 / Fraction(s)
            assert inv.denominator == 1, s
            sizes.append(int(inv))
        out.append(sizes)
    return out


def _node(span: list[int], members: list[int]) -> dict:
    return {"span": span, "members": members, "size": len(members)}


# --------------------------------------------------------------------------------------------------- EX1
def ex1() -> dict:
    # docs/science.md §8 EX1: basic branching.
    s_rows = [["1/3", "1/2", "1"], ["1/3", "1/2", "1"], ["1/3", "1", "1"], ["1", "1", "1"]]
    return {
        "case": "ex1",
        "source": "docs/science.md §8 EX1",
        "made_by": _made_by(),
        "prompt": [100, 101],
        "prompt_note": "§8 EX1: the results are the same with or without a prompt such as [100,101]",
        "eos_note": "no EOS in the token lists; completions are used as given",
        "completions": [[1, 2, 3], [1, 2, 4], [1, 5, 6], [7, 8, 9]],
        "rewards": [1, 0, 1, 0],
        "expected": {
            "s_listed": s_rows,
            "process_set_sizes": _sizes(s_rows),
            "advantages": [A4, -A4, A4, -A4],
            "a_times_s": [
                [0.2886251, 0.4329377, 0.8658754],
                [-0.2886251, -0.4329377, -0.8658754],
                [0.2886251, 0.8658754, 0.8658754],
                [-0.8658754, -0.8658754, -0.8658754],
            ],
            "row_losses": [-0.5291461, 0.5291461, -0.6734587, 0.8658754],
            "loss_grpo": 0.0481042,  # "= a/18"
            "loss_dapo": 0.0481042,  # "'dapo' is the same, since all lengths are 3"
            "loss_grpo_vanilla": 0.0,  # "vanilla 0"
            "grad_grpo": [
                [-0.0240521, -0.0360781, -0.0721563],
                [0.0240521, 0.0360781, 0.0721563],  # "row 1 is its negation"
                [-0.0240521, -0.0721563, -0.0721563],
                [0.0721563, 0.0721563, 0.0721563],  # "row 3 [+0.0721563]×3"
            ],
            # Tree: root(empty) → { [1]{0,1,2} → { [2]{0,1} → {[3]{0}, [4]{1}}, [5,6]{2} }, [7,8,9]{3} }.
            "nodes": [
                _node([1], [0, 1, 2]),
                _node([2], [0, 1]),
                _node([3], [0]),
                _node([4], [1]),
                _node([5, 6], [2]),
                _node([7, 8, 9], [3]),
            ],
            "node_count": 6,
            # "Node means: node [1] gets (a − a + a)/3 = a/3 (vanilla: a); node [1,2] gets (a − a)/2 = 0."
            # Identified by the prefix that ends the node's span.
            "node_mean_advantage": [
                {"prefix": [1], "value": A4 / 3},
                {"prefix": [1, 2], "value": 0.0},
            ],
        },
    }


# --------------------------------------------------------------------------------------------------- EX2
def ex2() -> dict:
    # docs/science.md §8 EX2: duplicates and a strict prefix (EOS stripped, no prompt).
    s_rows = [["1/3", "1/3", "1/2"], ["1/3", "1/3", "1/2"], ["1/3", "1/3"], ["1"]]
    row0 = [0.2886251, 0.2886251, 0.4329377]
    g0 = [-0.0240521, -0.0240521, -0.0360781]
    return {
        "case": "ex2",
        "source": "docs/science.md §8 EX2",
        "made_by": _made_by(),
        "prompt": None,
        "eos_note": "EOS stripped (eos = pad, authors' code): [1,2] is a strict prefix of [1,2,3]. "
                    "With the EOS kept, row 2 would end in EOS and branch at position 2.",
        "completions": [[1, 2, 3], [1, 2, 3], [1, 2], [4]],
        "rewards": [1, 1, 0, 0],
        "expected": {
            "s_listed": s_rows,
            "process_set_sizes": _sizes(s_rows),
            "advantages": [A4, A4, -A4, -A4],
            "a_times_s": [row0, list(row0), [-0.2886251, -0.2886251], [-0.8658754]],  # row 1 "same as row 0"
            "row_losses": [-0.3367293, -0.3367293, 0.2886251, 0.8658754],
            "loss_grpo": 0.1202605,
            "loss_dapo": -0.0641389,  # 9 tokens
            "loss_grpo_vanilla": 0.0,
            "loss_dapo_vanilla": -0.2886251,  # [D]
            "grad_grpo": [g0, list(g0), [0.0360781, 0.0360781], [0.2164689]],
            # Tree: root → { [1,2]{0,1,2} → { [3]{0,1} (duplicate leaf), [] {2} (empty end leaf) }, [4]{3} }.
            # The empty end leaf holds no token, so it is not a (non-empty) node.
            "nodes": [
                _node([1, 2], [0, 1, 2]),
                _node([3], [0, 1]),
                _node([4], [3]),
            ],
            "node_count": 3,
        },
    }


# --------------------------------------------------------------------------------------------------- EX3
def ex3() -> dict:
    # docs/science.md §8 EX3: G = 6, prompt [10,11], unequal lengths, one duplicate.
    s_rows = [
        ["1/5", "1/4", "1/3", "1/2"],
        ["1/5", "1/4", "1/3", "1", "1"],
        ["1/5", "1/4", "1"],
        ["1/5", "1"],
        ["1", "1"],
        ["1/5", "1/4", "1/3", "1/2"],
    ]
    row0 = [0.1825408, 0.2281761, 0.3042348, 0.4563521]
    g0 = [-0.0076059, -0.0095073, -0.0126764, -0.0190147]
    return {
        "case": "ex3",
        "source": "docs/science.md §8 EX3",
        "made_by": _made_by(),
        "prompt": [10, 11],
        "eos_note": "no EOS in the token lists; completions are used as given",
        "completions": [[1, 2, 3, 4], [1, 2, 3, 5, 6], [1, 2, 7], [1, 8], [9, 9], [1, 2, 3, 4]],
        "rewards": [1, 0, 0, 1, 0, 1],
        "expected": {
            "r_mean": 0.5,
            "sigma_plus_eps": 0.5478226,
            "s_listed": s_rows,
            "process_set_sizes": _sizes(s_rows),
            # "prompt {0..5} (s = 1/6, discarded; row 0's full-sequence weights are [1/6, 1/6, 1/5, 1/4, 1/3, 1/2])"
            "row0_full_sequence_s_listed": ["1/6", "1/6", "1/5", "1/4", "1/3", "1/2"],
            "row0_full_sequence_sizes": _sizes([["1/6", "1/6", "1/5", "1/4", "1/3", "1/2"]])[0],
            "advantages": [A6, -A6, -A6, A6, -A6, A6],
            "a_times_s": [
                row0,
                [-0.1825408, -0.2281761, -0.3042348, -0.9127042, -0.9127042],
                [-0.1825408, -0.2281761, -0.9127042],
                [0.1825408, 0.9127042],
                [-0.9127042, -0.9127042],
                list(row0),  # "same as row 0"
            ],
            "row_losses": [-0.2928259, 0.5080720, 0.4411404, -0.5476225, 0.9127042, -0.2928259],
            "loss_grpo": 0.1214404,
            "loss_dapo": 0.1125669,  # 20 tokens
            "loss_grpo_vanilla": 0.0,
            "loss_dapo_vanilla": 0.0,  # "Σ a_i·|y_i| happens to vanish [D]"
            "grad_grpo": [
                g0,  # row 0 (= row 5)
                [0.0060847, 0.0076059, 0.0101412, 0.0304235, 0.0304235],  # [D]
                [0.0101412, 0.0126764, 0.0507058],  # [D]
                [-0.0152117, -0.0760587],  # [D]
                [0.0760587, 0.0760587],
                list(g0),
            ],
            # Tree: prompt {0..5} → { [1]{0,1,2,3,5} → { [2]{0,1,2,5} → { [3]{0,1,5} → {[4]{0,5}, [5,6]{1}},
            # [7]{2} }, [8]{3} }, [9,9]{4} }.
            "nodes": [
                _node([1], [0, 1, 2, 3, 5]),
                _node([2], [0, 1, 2, 5]),
                _node([3], [0, 1, 5]),
                _node([4], [0, 5]),
                _node([5, 6], [1]),
                _node([7], [2]),
                _node([8], [3]),
                _node([9, 9], [4]),
            ],
            "node_count": 8,
        },
    }


# --------------------------------------------------------------------------------------------------- EX4
def ex4() -> dict:
    # docs/science.md §8 EX4: all rewards equal.
    s_rows = [["1/3", "1/2"], ["1/3", "1/2"], ["1/3", "1"], ["1"]]
    return {
        "case": "ex4",
        "source": "docs/science.md §8 EX4",
        "made_by": _made_by(),
        "prompt": [10, 11],
        "eos_note": "no EOS in the token lists; completions are used as given",
        "completions": [[5, 6], [5, 6], [5, 7], [8]],
        "rewards": [1, 1, 1, 1],
        "expected": {
            "s_listed": s_rows,
            "process_set_sizes": _sizes(s_rows),
            # "σ = 0, so every a_i is exactly 0 (0/1e-4), and every loss and gradient is 0."
            "advantages": [0.0, 0.0, 0.0, 0.0],
            "a_times_s": [[0.0, 0.0], [0.0, 0.0], [0.0, 0.0], [0.0]],
            "row_losses": [0.0, 0.0, 0.0, 0.0],
            "loss_grpo": 0.0,
            "loss_dapo": 0.0,
            "grad_grpo": [[0.0, 0.0], [0.0, 0.0], [0.0, 0.0], [0.0]],
        },
    }


# --------------------------------------------------------------------------------------------------- EX5
def ex5() -> dict:
    # docs/science.md §8 EX5: EOS kept (eos ≠ pad, EOS id 99).
    s_rows = [["1/3", "1/2", "1"], ["1/3", "1/2", "1", "1"], ["1/3", "1"], ["1", "1"]]
    return {
        "case": "ex5",
        "source": "docs/science.md §8 EX5",
        "made_by": _made_by(),
        "prompt": [10],
        "eos_id": 99,
        "eos_note": "EOS kept (eos ≠ pad): id 99 is the last completion token, in the trie and in the loss",
        "completions": [[1, 2, 99], [1, 2, 3, 99], [1, 99], [4, 99]],
        "rewards": [0, 1, 0, 1],
        "expected": {
            "s_listed": s_rows,
            "process_set_sizes": _sizes(s_rows),
            "advantages": [-A4, A4, -A4, A4],
            "a_times_s": [
                [-0.2886251, -0.4329377, -0.8658754],
                [0.2886251, 0.4329377, 0.8658754, 0.8658754],
                [-0.2886251, -0.8658754],
                [0.8658754, 0.8658754],
            ],
            "row_losses": [0.5291461, -0.6133284, 0.5772503, -0.8658754],
            "loss_grpo": -0.0932019,
            "loss_dapo": -0.1311932,  # 11 tokens
            "grad_grpo": [  # [D]
                [0.0240521, 0.0360781, 0.0721563],
                [-0.0180391, -0.0270586, -0.0541172, -0.0541172],
                [0.0360781, 0.1082344],
                [-0.1082344, -0.1082344],
            ],
        },
    }


# ---------------------------------------------------------------------------------------------------- G6
G6_STRINGS = ["ABCD", "ABEFHI", "JKLM", "JKLNQST", "JKLNQU", "VWYZ"]


def _ids(text: str) -> list[int]:
    """One token per letter: the token id is ord(letter)."""
    return [ord(ch) for ch in text]


def _letters_node(name: str, members: list[int], **values) -> dict:
    return {"name": name, "span_letters": name, "span": _ids(name), "members": members,
            "size": len(members), "tokens": len(name), **values}


def g6() -> dict:
    # docs/science.md §4.2 (table and checks) and §6.7 (metrics).
    return {
        "case": "g6",
        "source": "docs/science.md §4.2 G6 (worked example) and §6.7 (golden metrics)",
        "made_by": _made_by(),
        "prompt": None,
        "token_note": "one token per letter; token id = ord(letter)",
        "completion_strings": G6_STRINGS,
        "completions": [_ids(s) for s in G6_STRINGS],
        "rewards": [0.5, 0.5, 1.0, 0.0, 0.0, 0.5],
        "expected": {
            "r_mean": 0.416667,  # "r̄ = 5/12 = 0.416667"
            "r_mean_fraction": [5, 12],
            "sigma_unbiased": 0.3763863,
            "sigma_population": 0.3435921,  # "does not reproduce the paper"
            "sum_lengths": 31,
            # Root (empty): members all 6, c = 6, 0 tokens, R̂ = 0.416667, A = 0. Not a non-empty node.
            "root": {"members": [0, 1, 2, 3, 4, 5], "size": 6, "tokens": 0, "step_reward": 0.416667,
                     "prm_advantage": 0.0},
            # Columns: R̂; A [P, 2 dp]; A exact (σ); A with σ+1e-4 [C]; GRPO per-token coefficient c·A
            # (exact σ); λ-GRPO coefficient A (exact σ).
            "nodes": [
                _letters_node("AB", [0, 1], step_reward=0.5, prm_advantage_2dp=0.22,
                              prm_advantage_exact=0.221404, prm_advantage_eps=0.221345,
                              grpo_coefficient=0.442807, lambda_grpo_coefficient=0.221404),
                _letters_node("CD", [0], step_reward=0.5, prm_advantage_2dp=0.22,
                              prm_advantage_exact=0.221404, prm_advantage_eps=0.221345,
                              grpo_coefficient=0.221404, lambda_grpo_coefficient=0.221404),
                _letters_node("EFHI", [1], step_reward=0.5, prm_advantage_2dp=0.22,
                              prm_advantage_exact=0.221404, prm_advantage_eps=0.221345,
                              grpo_coefficient=0.221404, lambda_grpo_coefficient=0.221404),
                _letters_node("JKL", [2, 3, 4], step_reward=0.333333, prm_advantage_2dp=-0.22,
                              prm_advantage_exact=-0.221404, prm_advantage_eps=-0.221345,
                              grpo_coefficient=-0.664211, lambda_grpo_coefficient=-0.221404),
                _letters_node("M", [2], step_reward=1.0, prm_advantage_2dp=1.55,
                              prm_advantage_exact=1.549826, prm_advantage_eps=1.549414,
                              grpo_coefficient=1.549826, lambda_grpo_coefficient=1.549826),
                _letters_node("NQ", [3, 4], step_reward=0.0, prm_advantage_2dp=-1.11,
                              prm_advantage_exact=-1.107019, prm_advantage_eps=-1.106725,
                              grpo_coefficient=-2.214037, lambda_grpo_coefficient=-1.107019),
                _letters_node("ST", [3], step_reward=0.0, prm_advantage_2dp=-1.11,
                              prm_advantage_exact=-1.107019, prm_advantage_eps=-1.106725,
                              grpo_coefficient=-1.107019, lambda_grpo_coefficient=-1.107019),
                _letters_node("U", [4], step_reward=0.0, prm_advantage_2dp=-1.11,
                              prm_advantage_exact=-1.107019, prm_advantage_eps=-1.106725,
                              grpo_coefficient=-1.107019, lambda_grpo_coefficient=-1.107019),
                _letters_node("VWYZ", [5], step_reward=0.5, prm_advantage_2dp=0.22,
                              prm_advantage_exact=0.221404, prm_advantage_eps=0.221345,
                              grpo_coefficient=0.221404, lambda_grpo_coefficient=0.221404),
            ],
            # Tree: root (empty) → { AB → {CD, EFHI}, JKL → {M, NQ → {ST, U}}, VWYZ }: parent by name.
            "parents": {"AB": None, "CD": "AB", "EFHI": "AB", "JKL": None, "M": "JKL", "NQ": "JKL",
                        "ST": "NQ", "U": "NQ", "VWYZ": None},
            # §4.2 checks [D]: "Σ_{i,t} a_i = Σ_{i,t} A(i,t) = −5.092286, which is the theorem on this group.
            # Σ_{i,t} a_i/c(i,t) = −1.992633." Both use the exact unbiased σ (no +1e-4): with σ + 1e-4 the sums
            # would be −5.090934 and −1.992104.
            "theorem": {"sigma": "exact unbiased (eps = 0)", "sum_a": -5.092286, "sum_A": -5.092286,
                        "sum_a_over_c": -1.992633},
            # §6.7 golden metrics.
            "metrics": {
                "process_set_sizes": [
                    [2, 2, 1, 1],
                    [2, 2, 1, 1, 1, 1],
                    [3, 3, 3, 1],
                    [3, 3, 3, 2, 2, 1, 1],
                    [3, 3, 3, 2, 2, 1],
                    [1, 1, 1, 1],
                ],
                "path_depth": [2, 2, 2, 3, 3, 1],
                "depth_all": [2, 2, 2, 3, 3, 1],  # "`depth_all` = `depth`, because the root is empty"
                "intermediate_proportion": [0.5, 0.333333, 0.75, 0.714286, 0.833333, 0.0],
                "path_depth_mean": 2.166667,  # 13/6
                "path_depth_mean_fraction": [13, 6],
                "path_depth_median": 2.0,
                "intermediate_proportion_mean": 0.521825,
                "intermediate_proportion_median": 0.607143,
                "F1": True,
                "F2": True,
                "F3": True,
                "node_count": 9,
                "gradient_mass_ratio": 0.677419,  # ρ = 21/31
                "gradient_mass_ratio_fraction": [21, 31],
                "frequency_mass": 0.276923,  # 18/65
                "frequency_mass_fraction": [18, 65],
                "prm_orm_differ_share": 0.290323,  # 9/31, the JKL tokens of its three members
                "prm_orm_differ_share_fraction": [9, 31],
            },
        },
    }


def g6b() -> dict:
    # docs/science.md §4.3: same strings, rewards read from Figure 1 of the ICML version.
    return {
        "case": "g6b",
        "source": "docs/science.md §4.3 G6b (Figure 1 of the ICML version)",
        "made_by": _made_by(),
        "prompt": None,
        "token_note": "one token per letter; token id = ord(letter)",
        "completion_strings": G6_STRINGS,
        "completions": [_ids(s) for s in G6_STRINGS],
        "rewards": [1.0, 0.0, 0.0, 0.0, 1.0, 1.0],
        "expected": {
            "r_mean": 0.5,
            "sigma_unbiased": 0.5477226,
            # Step rewards given by the paper [P]: AB 0.5, JKL 1/3, NQ 0.5. Advantages [D], exact σ (eps = 0):
            # A(AB) = A(NQ) = 0; A(JKL) = −0.304290; +0.912871 for CD, U, VWYZ; −0.912871 for EFHI, M, ST.
            # The leaves' step rewards are not listed; a singleton's R̂ is its own reward (an input), so they
            # are left out here.
            "nodes": [
                _letters_node("AB", [0, 1], step_reward=0.5, prm_advantage_exact=0.0),
                _letters_node("CD", [0], prm_advantage_exact=0.912871),
                _letters_node("EFHI", [1], prm_advantage_exact=-0.912871),
                _letters_node("JKL", [2, 3, 4], step_reward_fraction=[1, 3], prm_advantage_exact=-0.304290),
                _letters_node("M", [2], prm_advantage_exact=-0.912871),
                _letters_node("NQ", [3, 4], step_reward=0.5, prm_advantage_exact=0.0),
                _letters_node("ST", [3], prm_advantage_exact=-0.912871),
                _letters_node("U", [4], prm_advantage_exact=0.912871),
                _letters_node("VWYZ", [5], prm_advantage_exact=0.912871),
            ],
        },
    }


# ------------------------------------------------------------------------------------------- edge cases
def edge_cases() -> dict:
    # docs/science.md §8 "Edge cases (weights s over full sequences, no prompt)": the "required of prm_probe" column.
    def case(inp, s_rows, authors_code, note=""):
        return {"input": inp, "required_s_listed": s_rows, "required_sizes": _sizes(s_rows),
                "authors_code": authors_code, "note": note}

    cases = [
        case([[1], [1, 2]], [["1/2"], ["1/2", "1"]], "IndexError (sentinel defect, §9)"),
        case([[1, 2], [1, 2, 3]], [["1/2", "1/2"], ["1/2", "1/2", "1"]], "same"),
        case([[1], [1, 2, 3]], [["1/2"], ["1/2", "1", "1"]], "same"),
        case([[5], [5]], [["1/2"], ["1/2"]], "same"),
        case([[7, 7, 7]] * 6, [["1/6"] * 3] * 6, "same", "every entry 1/6"),
        case([[1, 2, 3, 4, 5], [1, 2, 3, 4, 5], [1, 2, 3, 4, 5, 6]],
             [["1/3"] * 5, ["1/3"] * 5, ["1/3"] * 5 + ["1"]], "same"),
        case([[1], [2]], [["1"], ["1"]], "same"),
        case([[1, 2, 3]], [["1", "1", "1"]], "[[1,1,1]]; the advantage would be NaN",
             "G = 1: weights [[1,1,1]]; the trainer rejects G < 2; the advantage is NaN"),
        # "a completion of length 0 → empty array". The group around it is our choice: the table's second row
        # ([[1,2],[1,2,3]] → [[1/2,1/2],[1/2,1/2,1]]) plus an empty completion, which lies in no process set
        # (|y_j| > t fails for every t), so the other rows are unchanged.
        case([[1, 2], [1, 2, 3], []], [["1/2", "1/2"], ["1/2", "1/2", "1"], []],
             "whole-sequence weights returned (slice defect, §9)", "a completion of length 0 gives an empty array"),
    ]
    return {
        "case": "edge_cases",
        "source": "docs/science.md §8 Edge cases; §8 Binary advantages; §1.2 binary σ",
        "made_by": _made_by(),
        "cases": cases,
        # §8 "Binary advantages (σ + 1e-4)": G → k correct → [a(correct), a(wrong)].
        "binary_advantages": [
            {"G": 4, "k": 1, "a_correct": 1.4997001, "a_wrong": -0.4999000},
            {"G": 4, "k": 2, "a_correct": 0.8658754, "a_wrong": -0.8658754},
            {"G": 4, "k": 3, "a_correct": 0.4999000, "a_wrong": -1.4997001},
            {"G": 6, "k": 1, "a_correct": 2.0407414, "a_wrong": -0.4081483},
            {"G": 6, "k": 2, "a_correct": 1.2907444, "a_wrong": -0.6453723},
            {"G": 6, "k": 3, "a_correct": 0.9127042, "a_wrong": -0.9127042},
            {"G": 6, "k": 4, "a_correct": 0.6453722, "a_wrong": -1.2907445},
            {"G": 6, "k": 5, "a_correct": 0.4081483, "a_wrong": -2.0407414},
        ],
        # §1.2: "σ = sqrt( k(G−k)/(G(G−1)) ); e.g. 0.5773503 for G = 4, k = 2 and 0.5477226 for G = 6, k = 3."
        "binary_sigma": [
            {"G": 4, "k": 2, "sigma_unbiased": 0.5773503},
            {"G": 6, "k": 3, "sigma_unbiased": 0.5477226},
        ],
    }


BUILDERS = {"ex1": ex1, "ex2": ex2, "ex3": ex3, "ex4": ex4, "ex5": ex5, "g6": g6, "g6b": g6b,
            "edge_cases": edge_cases}


def _dumps(obj, indent: int = 0) -> str:
    """JSON with every value that fits in 100 characters on one line, so the files stay readable."""
    pad, inner = " " * indent, " " * (indent + 1)
    flat = json.dumps(obj, ensure_ascii=False)
    if not isinstance(obj, (dict, list)) or len(flat) <= 100:
        return flat
    if isinstance(obj, list):
        body = ",\n".join(inner + _dumps(x, indent + 1) for x in obj)
        return "[\n" + body + "\n" + pad + "]"
    body = ",\n".join(f"{inner}{json.dumps(k, ensure_ascii=False)}: {_dumps(v, indent + 1)}" for k, v in obj.items())
    return "{\n" + body + "\n" + pad + "}"


def main() -> None:
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    for name, build in BUILDERS.items():
        path = OUT_DIR / f"{name}.json"
        path.write_text(_dumps(build()) + "\n", encoding="utf-8")
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
