"""The tabular policy: closed-form policy-gradient updates, exact expectations, save/load/resume, bad input."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch

from prm_probe import process_set_sizes
from prm_probe.cli import main
from prm_probe.errors import ConfigError
from prm_probe.training.checkpoint import checkpoint_dirs
from prm_probe.training.config import config_from_dict
from prm_probe.training.models import char_tokenizer, load_policy
from prm_probe.training.tabular import TabularPolicy, tabular_policy
from prm_probe.training.tasks import Score, Task, get_task
from prm_probe.training.trainer import train


def _cfg(**over):
    base = {"steps": 1, "seed": 2, "device": "cpu", "model": {"name": "tabular"},
            "task": {"name": "toy-tree", "train_size": 1, "val_size": 1, "options": {"n": 1, "r_neg": -1.0}},
            "sampling": {"group_size": 16, "prompts_per_step": 1, "temperature": 0.7},
            "loss": {"weighting": "process_set", "aggregation": "token_mean"},
            "optim": {"optimizer": "sgd", "lr": 0.5, "max_grad_norm": 0.0}, "schedule": {"val_every": 0}}
    for key, value in over.items():
        base[key] = {**base.get(key, {}), **value} if isinstance(value, dict) else value
    return config_from_dict(base)


def _metrics(run):
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def _prefix_ids(path: list[int], k: int = 2) -> list[int]:
    """Heap ids of the prefixes before each action of ``path`` (action indices 0..k-1)."""
    ids, s = [], 0
    for a in path:
        ids.append(s)
        s = s * k + 1 + a
    return ids


def test_uniform_at_start_and_forward_reads_the_table():
    task = get_task("toy-tree", seed=0, train_size=1, val_size=1)
    tok = char_tokenizer()
    model = tabular_policy(task, tok)
    assert model.table.shape == (15, 2) and float(model.table.detach().abs().sum()) == 0.0
    with torch.no_grad():
        model.table.copy_(torch.arange(30, dtype=torch.float32).view(15, 2))
    lr = [tok.convert_tokens_to_ids("L"), tok.convert_tokens_to_ids("R")]
    ids = torch.tensor([[tok.bos_token_id, lr[1], lr[0], lr[1], lr[1]]])  # BOS R L R R
    logits = model(input_ids=ids).logits[0]  # (5, V)
    for t, s in enumerate(_prefix_ids([1, 0, 1, 1])):
        assert logits[t, lr].tolist() == model.table[s].tolist()
    assert torch.isneginf(logits[0, 3])  # not an action
    # the KV-cache path: one token at a time gives the same logits
    past, rows = None, []
    for t in range(4):
        out = model(input_ids=ids[:, t:t + 1], attention_mask=torch.ones(1, t + 1, dtype=torch.long),
                    position_ids=torch.tensor([[t]]), past_key_values=past, use_cache=True)
        past, rows = out.past_key_values, [*rows, out.logits[0, -1]]
    torch.testing.assert_close(torch.stack(rows), logits[:4])


@pytest.mark.parametrize("weighting", ["uniform", "process_set"])
@pytest.mark.parametrize("temperature", [1.0, 0.7])
def test_one_sgd_step_is_the_closed_form_policy_gradient(tmp_path, weighting, temperature):
    """θ_s ← θ_s + lr/N_tok · Σ_{(i,t) at s} w(i,t)·a_i·(e_{y_it} − π_s)/T: written here with numpy loops."""
    lr = 0.5
    run = train(_cfg(loss={"weighting": weighting}, sampling={"temperature": temperature}), tmp_path / "run")
    log = pq.read_table(run / "rollouts").to_pandas()
    tok = char_tokenizer()
    col = {tok.convert_tokens_to_ids("L"): 0, tok.convert_tokens_to_ids("R"): 1}
    paths = [[col[int(x)] for x in c] for c in log["completion_ids"]]
    adv = log["advantage"].to_numpy(dtype=np.float64)
    sizes = process_set_sizes([list(c) for c in log["completion_ids"]])
    expected = np.zeros((15, 2))
    pi = np.full(2, 0.5)  # the zero table is uniform at every prefix, at any temperature
    n_tok = sum(len(p) for p in paths)
    for i, path in enumerate(paths):
        for t, (s, a) in enumerate(zip(_prefix_ids(path), path, strict=True)):
            w = 1.0 / sizes[i][t] if weighting == "process_set" else 1.0
            expected[s] += lr / n_tok * w * adv[i] * (np.eye(2)[a] - pi) / temperature
    got = TabularPolicy.from_pretrained(checkpoint_dirs(run)[-1] / "model").table.detach().numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-7)
    assert np.abs(expected).max() > 1e-3  # the step did something


def test_exact_expectations_equal_the_policy_of_the_table(tmp_path):
    """Step k's ``target_probability`` and ``expected_reward`` are those of the table after k updates."""
    run = train(_cfg(steps=3, schedule={"save_every": 1, "keep_checkpoints": 5}), tmp_path / "run")
    task = get_task("toy-tree", seed=2, train_size=1, val_size=1, options={"n": 1, "r_neg": -1.0})
    records = _metrics(run)
    for record, ckpt in zip(records[1:], checkpoint_dirs(run), strict=False):  # ckpt step-k: after k updates
        pi = TabularPolicy.from_pretrained(ckpt / "model").action_probabilities(0.7).numpy()
        target_p = expected = 0.0
        for path in itertools.product("LR", repeat=4):
            p = np.prod([pi[s][a] for s, a in zip(_prefix_ids(["LR".index(c) for c in path]),
                                                   ["LR".index(c) for c in path], strict=True)])
            expected += p * task.path_reward("".join(path))
            target_p += p * ("".join(path) == task.target)
        assert record["target_probability"] == pytest.approx(target_p, abs=1e-6)
        assert record["expected_reward"] == pytest.approx(expected, abs=1e-6)
        assert record["exact_probability_total"] == pytest.approx(1.0, abs=1e-6)
    assert records[0]["target_probability"] == pytest.approx(1 / 16)


def test_save_load_resume_and_sample(tmp_path):
    full = train(_cfg(steps=6, optim={"optimizer": "adam", "lr": 0.1}), tmp_path / "full")
    part = train(_cfg(steps=3, optim={"optimizer": "adam", "lr": 0.1}), tmp_path / "part")
    train(_cfg(steps=6), part, resume=True)

    def strip(rs):
        return [{k: v for k, v in r.items() if not k.startswith(("time_", "val_"))} for r in rs]

    assert strip(_metrics(full)) == strip(_metrics(part))
    a = load_policy(str(checkpoint_dirs(full)[-1] / "model"))[0]
    b = load_policy(str(checkpoint_dirs(part)[-1] / "model"))[0]
    assert isinstance(a, TabularPolicy) and torch.equal(a.table, b.table) and float(a.table.detach().abs().sum()) > 0
    out = tmp_path / "probe.parquet"
    assert main(["sample", str(full), "--task", "toy-tree", "--groups", "4", "--group-size", "8", "-o", str(out),
                 "-q"]) == 0
    assert pq.read_table(out).num_rows == 32


class _OpenEnded(Task):
    name = "open-ended"

    def _make(self, split):
        from prm_probe.training.tasks import Problem

        return [Problem(f"p{split}", "x", "y")]

    def allowed_token_ids(self, tokenizer):
        return [5, 6]

    def score(self, problem, completion, completion_ids):
        return Score(0.0, {})


@pytest.mark.parametrize(("task", "needle"), [
    ("arithmetic", "allowed-token set"),
    ("tests.test_tabular:_OpenEnded", "fixed completion length"),
])
def test_tasks_it_cannot_tabulate_are_refused_in_one_line(tmp_path, capsys, task, needle):
    code = main(["train", "--model", "tabular", "--task", task, "--steps", "1", "--out", str(tmp_path / "r")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and needle in err[0] and "--task toy-tree" in err[0]


def test_a_task_with_several_prompts_is_refused():
    class Two(_OpenEnded):
        exact_new_tokens = 2

        def _make(self, split):
            from prm_probe.training.tasks import Problem

            return [Problem("a", "x", "1"), Problem("b", "yz", "2")]

    with pytest.raises(ConfigError, match="one prompt"):
        tabular_policy(Two(), char_tokenizer())
    with pytest.raises(ConfigError, match="LoRA"):
        load_policy("tabular", lora_rank=4)
