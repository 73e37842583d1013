"""The torch objective: docs/science.md §8 golden losses and gradients, and Theorem 1 checked with autograd."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from prm_probe import implied_prm, process_set_sizes
from prm_probe.errors import ConfigError
from prm_probe.training.losses import BatchNorms, aggregate, group_advantages, per_token_terms, token_weights
from prm_probe.training.models import tiny_model
from prm_probe.training.trainer import completion_logps
from tests.conftest import GOLDEN_DIR

CASES = ["ex1", "ex2", "ex3", "ex4", "ex5"]


def _padded(completions, values_per_row=None):
    g, width = len(completions), max(len(c) for c in completions)
    mask = torch.zeros(g, width)
    sizes = torch.ones(g, width)
    for i, (c, s) in enumerate(zip(completions, process_set_sizes(completions), strict=True)):
        mask[i, : len(c)] = 1
        sizes[i, : len(c)] = torch.as_tensor(s, dtype=torch.float32)
    return mask, sizes


def _golden_loss(completions, rewards, weighting, aggregation):
    mask, sizes = _padded(completions)
    logp = torch.zeros_like(mask, requires_grad=True)  # pass 1: ratio 1, gradient = log-prob gradient
    adv = group_advantages(torch.as_tensor(rewards, dtype=torch.float32), len(completions))
    terms = per_token_terms(logp, logp.detach(), adv)
    w = token_weights(weighting, mask, sizes)
    loss = aggregate(aggregation, terms["loss"], w, mask, BatchNorms(len(completions), int(mask.sum()), mask.shape[1]))
    loss.backward()
    return float(loss), logp.grad, mask


@pytest.mark.parametrize("case", CASES)
def test_golden_losses_and_gradients(case):
    data = json.loads((GOLDEN_DIR / "golden" / f"{case}.json").read_text())
    comps, rewards, exp = data["completions"], data["rewards"], data["expected"]
    loss, grad, _mask = _golden_loss(comps, rewards, "process_set", "seq_mean")
    assert loss == pytest.approx(exp["loss_grpo"], abs=1e-6)
    loss_dapo, _, _ = _golden_loss(comps, rewards, "process_set", "token_mean")
    assert loss_dapo == pytest.approx(exp["loss_dapo"], abs=1e-6)
    for i, row in enumerate(exp["grad_grpo"]):
        np.testing.assert_allclose(grad[i, : len(row)].numpy(), row, atol=1e-6)
        assert float(grad[i, len(row):].abs().sum()) == 0.0  # padding gets no gradient
    if "loss_grpo_vanilla" in exp:
        vanilla = _golden_loss(comps, rewards, "uniform", "seq_mean")[0]
        assert vanilla == pytest.approx(exp["loss_grpo_vanilla"], abs=1e-6)
    if "loss_dapo_vanilla" in exp:
        assert _golden_loss(comps, rewards, "uniform", "token_mean")[0] == pytest.approx(exp["loss_dapo_vanilla"],
                                                                                          abs=1e-6)


def test_group_advantages_match_science_table():
    # docs/science.md §8 binary advantages, G = 6 with 1 correct: 2.0407414 / -0.4081483
    a = group_advantages(torch.tensor([1.0, 0, 0, 0, 0, 0]), 6)
    assert float(a[0]) == pytest.approx(2.0407414, abs=1e-6)
    assert float(a[1]) == pytest.approx(-0.4081483, abs=1e-6)
    assert torch.equal(group_advantages(torch.tensor([0.3] * 4), 4), torch.zeros(4))
    assert torch.allclose(group_advantages(torch.tensor([1.0, 0.0]), 2, scale=False), torch.tensor([0.5, -0.5]))
    with pytest.raises(ConfigError):
        group_advantages(torch.tensor([1.0]), 1)


def test_clip_uses_separate_low_and_high_ranges():
    logp = torch.log(torch.tensor([[1.5, 0.5]]))
    old = torch.zeros(1, 2)
    pos = per_token_terms(logp, old, torch.tensor([1.0]), eps_low=0.2, eps_high=0.3)
    # a > 0: min(P a, clip(P) a): P = 1.5 is capped at 1.3; P = 0.5 stays (min picks the lower)
    assert pos["loss"].tolist()[0] == pytest.approx([-1.3, -0.5])
    neg = per_token_terms(logp, old, torch.tensor([-1.0]), eps_low=0.2, eps_high=0.3)
    assert neg["loss"].tolist()[0] == pytest.approx([1.5, 0.8])
    assert neg["clipped"].tolist() == [[False, True]]


def test_kl_is_k3_and_weighted_with_the_surrogate():
    logp = torch.log(torch.tensor([[0.5, 0.25]]))
    ref = torch.log(torch.tensor([[0.25, 0.25]]))
    terms = per_token_terms(logp, logp.detach(), torch.tensor([0.0]), ref, beta=0.1)
    rho = 0.25 / 0.5
    assert float(terms["kl"][0, 0]) == pytest.approx(rho - np.log(rho) - 1)
    assert float(terms["kl"][0, 1]) == pytest.approx(0.0)
    w = torch.tensor([[0.5, 1.0]])
    mask = torch.ones(1, 2)
    loss = aggregate("token_mean", terms["loss"], w, mask, BatchNorms(1, 2, 2))
    assert float(loss) == pytest.approx(0.5 * 0.1 * float(terms["kl"][0, 0]) / 2)  # KL scaled by 1/|λ| too


def test_micro_batching_does_not_change_the_loss():
    rng = np.random.default_rng(0)
    loss = torch.as_tensor(rng.normal(size=(8, 5)), dtype=torch.float32)
    mask = torch.as_tensor(rng.random((8, 5)) < 0.8, dtype=torch.float32)
    w = mask * torch.as_tensor(rng.random((8, 5)), dtype=torch.float32)
    norms = BatchNorms(8, int(mask.sum()), 5, float(w.sum()))
    for agg in ("seq_mean", "token_mean", "dr_grpo"):
        for renorm in (False, True):
            whole = aggregate(agg, loss, w, mask, norms, renorm)
            parts = sum(aggregate(agg, loss[s], w[s], mask[s], norms, renorm) for s in (slice(0, 3), slice(3, 8)))
            assert float(parts) == pytest.approx(float(whole), rel=1e-6)


def test_unknown_names_suggest_close_matches():
    with pytest.raises(ConfigError, match="process_set"):
        token_weights("proces_set", torch.ones(1, 1), torch.ones(1, 1))
    with pytest.raises(ConfigError, match="token_mean"):
        aggregate("token_men", torch.ones(1, 1), torch.ones(1, 1), torch.ones(1, 1), BatchNorms(1, 1, 1))


# --- Theorem 1 with a real model and autograd -------------------------------------------------------------

PROMPT = [5, 6, 7]
SHARED = [[10, 11, 12, 13], [10, 11, 12, 20], [10, 11, 30, 31], [10, 40, 41, 42], [50, 51, 52, 53],
          [10, 11, 12, 13]]
REWARDS = [1.0, 0.0, 0.0, 1.0, 0.0, 1.0]


def _close(g1: torch.Tensor, g2: torch.Tensor) -> bool:
    """Equal up to float32 rounding: Qwen2's RMSNorm computes in float32 even in a float64 model."""
    return float((g1 - g2).abs().max()) <= 1e-6 * float(g1.abs().max())


def _grads(model, loss_fn):
    model.zero_grad(set_to_none=True)
    loss = loss_fn()
    loss.backward()
    return torch.cat([p.grad.reshape(-1) for p in model.parameters() if p.grad is not None]), float(loss)


@pytest.fixture(scope="module")
def model():
    m = tiny_model("tiny", vocab_size=64, seed=3).double().eval()
    return m


def _logps(model, completions):
    return completion_logps(model, [PROMPT] * len(completions), completions, 0, torch.device("cpu"))


def _outcome_and_prm_losses(model, comps, rewards, aggregation):
    """Two loss closures on one batch: with outcome advantages a_i, and with per-token PRM advantages A(i, t)."""
    width = max(len(c) for c in comps)
    frame = implied_prm(comps, rewards)
    prm_adv = torch.zeros(len(comps), width, dtype=torch.float64)
    prm_adv[frame["sample"].to_numpy(), frame["t"].to_numpy()] = torch.tensor(frame["prm_advantage"].to_numpy())
    adv = group_advantages(torch.tensor(rewards, dtype=torch.float64), len(comps))

    def loss(per_token_adv):
        logp, mask, _ = _logps(model, comps)
        terms = per_token_terms(logp, logp.detach(), per_token_adv)
        return aggregate(aggregation, terms["loss"], mask, mask, BatchNorms(len(comps), int(mask.sum()), width))

    return (lambda: loss(adv)), (lambda: loss(prm_adv))


def test_theorem1_grpo_gradient_equals_prm_gradient(model):
    """(a) token_mean, μ = 1, β = 0: ∇L_GRPO = ∇L_PRM with per-token advantages A(i, t)."""
    grpo, prm = _outcome_and_prm_losses(model, SHARED, REWARDS, "token_mean")
    g_grpo, l_grpo = _grads(model, grpo)
    g_prm, l_prm = _grads(model, prm)
    assert l_grpo == pytest.approx(l_prm, abs=1e-12)
    assert _close(g_grpo, g_prm)
    assert float(g_grpo.abs().max()) > 1e-4  # a real, non-trivial gradient


def test_theorem1_fails_for_seq_mean_with_unequal_lengths(model):
    """The per-sequence mean breaks the identity when lengths differ (docs/science.md §3.2) — a control."""
    grpo, prm = _outcome_and_prm_losses(model, [[10, 11, 12], [10, 11, 20, 21, 22], [30]], [1.0, 0.0, 0.0],
                                        "seq_mean")
    g1, _ = _grads(model, grpo)
    g2, _ = _grads(model, prm)
    assert float((g1 - g2).abs().max()) > 1e-3 * float(g1.abs().max())


def test_lambda_grpo_counts_each_node_once_with_its_mean_advantage(model):
    """(b) equal lengths, process_set weighting, seq_mean: the gradient is Σ_nodes A(λ)·∇logp(node tokens)."""
    comps, rewards = SHARED, REWARDS
    g = len(comps)
    adv = group_advantages(torch.tensor(rewards, dtype=torch.float64), g)
    _mask, sizes = _padded(comps)

    def lam_loss():
        logp, m, _ = _logps(model, comps)
        terms = per_token_terms(logp, logp.detach(), adv)
        w = token_weights("process_set", m, sizes.double())
        return aggregate("seq_mean", terms["loss"], w, m, BatchNorms(g, int(m.sum()), 4))

    frame = implied_prm(comps, rewards)
    first = frame.drop_duplicates(["node", "t"])  # one representative token per (node, position)

    def node_loss():
        logp, _, _ = _logps(model, comps)
        a = torch.as_tensor(first["prm_advantage"].to_numpy())
        picked = logp[first["sample"].to_numpy(), first["t"].to_numpy()]
        return -(a * picked).sum() / (g * 4)

    g_lam, _ = _grads(model, lam_loss)
    g_node, _ = _grads(model, node_loss)
    assert _close(g_lam, g_node)


def test_lambda_grpo_equals_grpo_when_first_tokens_differ(model):
    """(c) no shared prefix: every |λ| = 1, so the two weightings give the same gradient."""
    comps = [[10, 11], [20, 21, 22], [30], [40, 41]]
    rewards = [1.0, 0.0, 1.0, 0.0]
    adv = group_advantages(torch.tensor(rewards, dtype=torch.float64), 4)
    _mask, sizes = _padded(comps)
    assert float(sizes.max()) == 1.0

    def loss(weighting, aggregation):
        logp, m, _ = _logps(model, comps)
        terms = per_token_terms(logp, logp.detach(), adv)
        w = token_weights(weighting, m, sizes.double())
        return aggregate(aggregation, terms["loss"], w, m, BatchNorms(4, int(m.sum()), 3))

    for agg in ("seq_mean", "token_mean", "dr_grpo"):
        g1, _ = _grads(model, lambda agg=agg: loss("uniform", agg))
        g2, _ = _grads(model, lambda agg=agg: loss("process_set", agg))
        assert torch.allclose(g1, g2, atol=0, rtol=0)


def test_shared_positions_have_identical_logps_under_padding(model):
    """The identity needs padding-invariant forwards (docs/science.md §9.1): shared tokens, same log-prob."""
    logp, _mask, _ = _logps(model, [*SHARED, [60]])
    assert torch.allclose(logp[0, :3], logp[1, :3], atol=1e-12)
    assert torch.allclose(logp[0, :2], logp[2, :2], atol=1e-12)
    assert torch.allclose(logp[0], logp[5], atol=1e-12)


def test_weighting_names_are_defined_once(tmp_path):
    """The config's choices, the losses' dispatch, the names written into a run's config.json (built-in trainer
    and TRL callback) and the compare labels are all :data:`prm_probe.core.weightings.WEIGHTING_NAMES`."""
    from types import SimpleNamespace

    from prm_probe.core.runs import algorithm_label
    from prm_probe.core.weightings import ALGORITHM_LABELS, PROCESS_SET, UNIFORM, WEIGHTING_NAMES
    from prm_probe.training.config import TrainConfig, config_from_dict, flag_specs, save_config_json
    from prm_probe.training.losses import WEIGHTINGS

    assert WEIGHTING_NAMES == (UNIFORM, PROCESS_SET) == ("uniform", "process_set")
    (spec,) = [s for s in flag_specs() if s.key == "loss.weighting"]
    assert spec.choices == WEIGHTING_NAMES and spec.default == UNIFORM == TrainConfig().loss.weighting
    assert tuple(WEIGHTINGS) == WEIGHTING_NAMES
    assert tuple(ALGORITHM_LABELS) == WEIGHTING_NAMES
    with pytest.raises(ConfigError, match="process_set"):
        config_from_dict({"loss": {"weighting": "proces_set"}})
    mask, sizes = torch.ones(1, 2), torch.tensor([[2.0, 1.0]])
    for name in WEIGHTING_NAMES:
        written = json.loads(save_config_json(config_from_dict({"loss": {"weighting": name}})))  # config.json
        assert written["loss"]["weighting"] == name
        assert algorithm_label(written) == ALGORITHM_LABELS[name]
        token_weights(name, mask, sizes)  # every name is dispatched
    assert [algorithm_label({"loss": {"weighting": n}}) for n in WEIGHTING_NAMES] == ["GRPO", "λ-GRPO"]

    pytest.importorskip("trl")
    from prm_probe.integrations.trl.record import RunRecordCallback

    args = SimpleNamespace(run_name="r", output_dir=str(tmp_path), seed=0, max_steps=1, num_generations=2,
                           per_device_train_batch_size=2, world_size=1, gradient_accumulation_steps=1,
                           max_completion_length=8, temperature=1.0, loss_type="dapo", beta=0.0, learning_rate=1e-6)
    for flag, name in [(False, UNIFORM), (True, PROCESS_SET)]:
        assert RunRecordCallback().config(SimpleNamespace(**vars(args), process_set_weighting=flag))["loss"][
            "weighting"] == name
        assert RunRecordCallback(weighting=name).config(args)["loss"]["weighting"] == name
    with pytest.raises(ConfigError, match="process_set"):
        RunRecordCallback(weighting="proces_set")


def test_trainer_advantages_equal_the_log_advantages(rng):
    """The trainer's torch advantages and core.prm's NumPy ones (which the statistics and the implied PRM use)
    are the same formula, including exact zeros for all-equal groups and the Dr. GRPO variant."""
    from prm_probe.core.prm import outcome_advantages

    rewards = np.concatenate([rng.integers(0, 2, 4 * 8).astype(np.float64), np.full(8, 0.3), rng.normal(size=8)])
    offsets = np.arange(0, len(rewards) + 1, 8)
    for scale, numpy_scale in ((True, "group"), (False, "none")):
        ours = group_advantages(torch.as_tensor(rewards), 8, scale=scale).numpy()
        np.testing.assert_allclose(ours, outcome_advantages(rewards, offsets, scale=numpy_scale), rtol=1e-12,
                                   atol=1e-12)
        assert (ours[32:40] == 0).all()
