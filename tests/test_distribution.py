"""One definition of the policy's log-probs: the sampler draws from it and the trainer differentiates it.

The bug these tests guard against: the sampler drew from ``softmax(mask(z) / T)`` while the trainer
differentiated ``log_softmax(z)`` over the whole vocabulary. Every test here fails on that trainer.
"""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest
import torch

from prm_probe.training.config import config_from_dict
from prm_probe.training.distribution import PolicyDistribution, policy_log_probs, token_log_probs, truncate
from prm_probe.training.models import load_policy
from prm_probe.training.sampling import sample_completions
from prm_probe.training.trainer import completion_logps, train


def test_policy_log_probs_by_hand():
    z = torch.tensor([[2.0, 0.0, -1.0, 1.0]])
    got = policy_log_probs(z, temperature=0.5, allowed=[0, 3]).exp()
    e0, e3 = np.exp(2.0 / 0.5), np.exp(1.0 / 0.5)
    assert got[0].tolist() == pytest.approx([e0 / (e0 + e3), 0.0, 0.0, e3 / (e0 + e3)], abs=1e-6)
    full = policy_log_probs(z, temperature=2.0).exp()
    w = np.exp(np.array([2.0, 0.0, -1.0, 1.0]) / 2.0)
    assert full[0].tolist() == pytest.approx((w / w.sum()).tolist(), abs=1e-6)


@pytest.mark.parametrize("temperature", [0.7, 1.0, 1.3])
@pytest.mark.parametrize("allowed", [None, (3, 7, 11)])
def test_token_log_probs_and_entropy_equal_the_full_distribution(temperature, allowed):
    gen = torch.Generator().manual_seed(0)
    z = torch.randn(2, 5, 16, generator=gen, dtype=torch.float64)
    full = policy_log_probs(z, temperature, allowed)  # (2, 5, 16)
    pool = torch.tensor(allowed) if allowed else torch.arange(16)
    tokens = pool[torch.randint(len(pool), (2, 5), generator=gen)]
    logp, ent = token_log_probs(z, tokens, temperature, allowed, with_entropy=True)
    torch.testing.assert_close(logp, full.gather(-1, tokens.unsqueeze(-1)).squeeze(-1))
    p = full.exp()
    expected = -(torch.where(p > 0, p * full, torch.zeros_like(p))).sum(-1)
    torch.testing.assert_close(ent, expected)
    if allowed:  # a token that cannot be sampled has probability 0
        assert token_log_probs(z, torch.zeros(2, 5, dtype=torch.long), temperature, allowed)[0].isneginf().all()


def test_truncation_is_the_samplers_only():
    lp = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]]))
    assert truncate(lp) is lp
    assert truncate(lp, top_k=2).exp()[0].tolist() == pytest.approx([0.625, 0.375, 0, 0], abs=1e-6)
    assert truncate(lp, top_p=0.7).exp()[0].tolist() == pytest.approx([0.625, 0.375, 0, 0], abs=1e-6)


@pytest.mark.parametrize(("temperature", "top_k"), [(0.7, 0), (1.3, 0), (1.0, 2)])
def test_the_sampler_draws_from_its_recorded_distribution(temperature, top_k):
    """20,000 first tokens of one prompt: their frequencies match exp(recorded log-probs) (untruncated) or, with
    top-k, that distribution renormalised over its top k; the recorded log-probs stay the untruncated policy's."""
    model, _ = load_policy("tiny", seed=3)
    model.eval()
    allowed = [5, 6, 7, 8]
    n = 20_000
    out = sample_completions(model, [[1, 20, 21]], n, max_new_tokens=1, end_ids=set(), pad_id=0,
                             generator=torch.Generator().manual_seed(0), temperature=temperature, top_k=top_k,
                             allowed_token_ids=allowed)
    tokens = np.array([c[0] for c in out.completion_ids])
    with torch.no_grad():
        z = model(input_ids=torch.tensor([[1, 20, 21]])).logits[0, -1]
    policy = policy_log_probs(z, temperature, allowed).exp().numpy()
    recorded = {c[0]: lp[0] for c, lp in zip(out.completion_ids, out.logps, strict=True)}
    for tok, lp in recorded.items():
        assert lp == pytest.approx(np.log(policy[tok]), abs=1e-5)
    target = policy.copy()
    if top_k:
        target[np.argsort(policy)[:-top_k]] = 0.0
        target /= target.sum()
    freq = np.bincount(tokens, minlength=len(policy)) / n
    tol = 5 * np.sqrt(target * (1 - target) / n) + 1e-9
    assert np.all(np.abs(freq - target) <= tol), (freq[allowed], target[allowed])


def _cfg(**over):
    base = {"steps": 2, "seed": 0, "device": "cpu", "model": {"name": "tiny"},
            "task": {"name": "arithmetic", "train_size": 8, "val_size": 1},
            "sampling": {"group_size": 4, "prompts_per_step": 2, "max_new_tokens": 10},
            "optim": {"lr": 1e-3}, "schedule": {"val_every": 0}}
    for key, value in over.items():
        base[key] = {**base.get(key, {}), **value} if isinstance(value, dict) else value
    return config_from_dict(base)


def _metrics(run):
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("case", [
    {"sampling": {"temperature": 0.7}},
    {"sampling": {"temperature": 1.3}},
    {"sampling": {"temperature": 1.3, "top_k": 5, "top_p": 0.9}},
    {"model": {"name": "tiny-gpt2"}, "task": {"name": "toy-tree"}, "sampling": {"group_size": 8}},
    {"model": {"name": "tiny-gpt2"}, "task": {"name": "toy-tree"}, "sampling": {"temperature": 0.7},
     "loss": {"mu": 2, "beta": 0.04}},
], ids=["T0.7", "T1.3", "T1.3-topk-topp", "toy-tree", "toy-tree-T0.7-mu2-kl"])
def test_logp_mismatch_is_logged_and_below_1e_4_on_cpu(tmp_path, case):
    records = _metrics(train(_cfg(**case), tmp_path / "run"))
    for r in records:
        assert 0.0 <= r["logp_mismatch_max"] < 1e-4, r["logp_mismatch_max"]


def test_a_sampler_trainer_difference_is_measured_and_warned_once(tmp_path, monkeypatch, caplog):
    """If the sampler used another distribution than the trainer, the field shows it and the run warns once."""
    import prm_probe.training.sampling as sampling

    real = sampling.policy_log_probs
    monkeypatch.setattr(sampling, "policy_log_probs", lambda z, t=1.0, a=None: real(z, t * 1.25, a))
    with caplog.at_level(logging.WARNING, logger="prm_probe.training.trainer"):
        records = _metrics(train(_cfg(steps=3), tmp_path / "run"))
    assert all(r["logp_mismatch_max"] > 1e-3 for r in records)
    warnings = [r for r in caplog.records if "logp_mismatch_max" in r.getMessage()]
    assert len(warnings) == 1 and "likely causes" in warnings[0].getMessage()


def _sgd_toy_config(model: str, weighting: str, temperature: float, lr: float):
    return config_from_dict({
        "steps": 1, "seed": 3, "device": "cpu", "model": {"name": model},
        "task": {"name": "toy-tree", "train_size": 1, "val_size": 1, "options": {"n": 1, "r_neg": -1.0}},
        "sampling": {"group_size": 16, "prompts_per_step": 1, "temperature": temperature},
        "loss": {"weighting": weighting, "aggregation": "token_mean"},
        "optim": {"optimizer": "sgd", "lr": lr, "max_grad_norm": 0.0}, "schedule": {"val_every": 0}})


@pytest.mark.parametrize("weighting", ["uniform", "process_set"])
def test_the_trainers_update_is_the_restricted_tempered_policy_gradient(tmp_path, weighting):
    """One SGD step of a transformer on the toy tree equals −lr × the gradient of the objective written here
    independently (log-softmax over the two actions only, logits ÷ T); the full-vocabulary gradient differs."""
    import pyarrow.parquet as pq

    from prm_probe import process_set_sizes
    from prm_probe.training.checkpoint import checkpoint_dirs

    lr, temperature = 0.05, 0.7
    run = train(_sgd_toy_config("tiny-gpt2", weighting, temperature, lr), tmp_path / "run")
    log = pq.read_table(run / "rollouts").to_pandas()
    start, tok = load_policy("tiny-gpt2", seed=3)
    start.eval()  # the trainer runs every forward without dropout
    end, _ = load_policy(str(checkpoint_dirs(run)[-1] / "model"))
    actions = [tok.convert_tokens_to_ids("L"), tok.convert_tokens_to_ids("R")]
    paths = [list(c) for c in log["completion_ids"]]
    adv = torch.tensor(log["advantage"].to_numpy(), dtype=torch.float32)
    sizes = torch.tensor(np.stack(process_set_sizes(paths)), dtype=torch.float32)  # (16, 4)
    w = 1.0 / sizes if weighting == "process_set" else torch.ones_like(sizes)
    ids = torch.tensor([[tok.bos_token_id, *p] for p in paths])  # (16, 5): the prompt is the BOS token

    def grads(restricted: bool):
        start.zero_grad(set_to_none=True)
        z = start(input_ids=ids).logits[:, :-1, :]  # (16, 4, V) position t predicts action t
        if restricted:
            cols = z[..., actions] / temperature  # (16, 4, 2)
            logp = torch.log_softmax(cols, -1).gather(-1, (ids[:, 1:] == actions[1]).long().unsqueeze(-1))
        else:
            logp = torch.log_softmax(z, -1).gather(-1, ids[:, 1:].unsqueeze(-1))
        loss = -(w * adv[:, None] * logp.squeeze(-1)).sum() / sizes.numel()  # ratio 1: ∇ratio = ∇logp
        loss.backward()
        return [p.grad.clone() for p in start.parameters()]

    moved = [(b - a).detach() for a, b in zip(start.parameters(), end.parameters(), strict=True)]
    right, wrong = grads(True), grads(False)
    for m, g in zip(moved, right, strict=True):
        torch.testing.assert_close(m, -lr * g, rtol=1e-3, atol=1e-6)
    assert max(float((m + lr * g).abs().max()) for m, g in zip(moved, wrong, strict=True)) > 1e-3


def test_restricted_and_full_vocabulary_objectives_differ_on_a_hand_made_batch():
    model, _ = load_policy("tiny", seed=0)
    model.eval()
    prompts, completions = [[1, 40], [1, 40]], [[5, 6, 5], [6, 6]]
    adv = torch.tensor([1.0, -1.0])

    def grad(dist):
        model.zero_grad(set_to_none=True)
        logp, mask, _ = completion_logps(model, prompts, completions, 0, torch.device("cpu"), dist=dist)
        (-(adv[:, None] * logp * mask).sum() / mask.sum()).backward()
        return torch.cat([p.grad.flatten() for p in model.parameters()])

    restricted = grad(PolicyDistribution(temperature=1.0, allowed=(5, 6)))
    tempered = grad(PolicyDistribution(temperature=1.3))
    full = grad(PolicyDistribution())
    assert float((restricted - full).norm()) > 0.05 * float(full.norm())
    assert float((tempered - full).norm()) > 0.05 * float(full.norm())
