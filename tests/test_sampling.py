"""The sampler: logit filtering, stop rules, seeded sampling, and padding-invariant log-probs."""

from __future__ import annotations

import pytest
import torch

from prm_probe.training.models import load_policy
from prm_probe.training.sampling import left_pad, process_logits, sample_completions
from prm_probe.training.trainer import completion_logps


@pytest.fixture(scope="module")
def policy():
    model, tok = load_policy("tiny", seed=1)
    return model.eval(), tok


def test_process_logits_filters():
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]]))
    assert torch.allclose(process_logits(logits).exp(), torch.tensor([[0.5, 0.3, 0.15, 0.05]]), atol=1e-6)
    top2 = process_logits(logits, top_k=2).exp()
    assert torch.allclose(top2, torch.tensor([[0.625, 0.375, 0.0, 0.0]]), atol=1e-6)
    nucleus = process_logits(logits, top_p=0.7).exp()  # smallest prefix with mass >= 0.7: {0.5, 0.3}
    assert torch.allclose(nucleus, torch.tensor([[0.625, 0.375, 0.0, 0.0]]), atol=1e-6)
    allowed = process_logits(logits, allowed=torch.tensor([1, 3])).exp()
    assert torch.allclose(allowed, torch.tensor([[0.0, 0.857143, 0.0, 0.142857]]), atol=1e-5)
    hot = process_logits(logits, temperature=0.5).exp()
    assert hot[0, 0] > 0.5


def test_left_pad():
    ids, mask = left_pad([[1, 2, 3], [4]], pad_id=0)
    assert ids.tolist() == [[1, 2, 3], [0, 0, 4]] and mask.tolist() == [[1, 1, 1], [0, 0, 1]]


def test_seeded_sampling_is_reproducible_and_groups_are_prompt_major(policy):
    model, tok = policy
    prompts = [tok("1+1=")["input_ids"], tok("22*3=")["input_ids"]]

    def run(seed):
        return sample_completions(model, prompts, 3, max_new_tokens=6, end_ids={2}, pad_id=0,
                                  generator=torch.Generator().manual_seed(seed))

    a, b, c = run(0), run(0), run(1)
    assert a.completion_ids == b.completion_ids and a.completion_ids != c.completion_ids
    assert a.prompt_ids[:3] == [prompts[0]] * 3 and a.prompt_ids[3:] == [prompts[1]] * 3


def test_stop_at_first_end_token_kept_as_last_token(policy):
    model, _ = policy
    # Only the end token (2) and one other token are allowed: completions must stop at their first 2.
    out = sample_completions(model, [[1, 5, 6]], 16, max_new_tokens=10, end_ids={2}, pad_id=0,
                             generator=torch.Generator().manual_seed(0), allowed_token_ids=[2, 7])
    for ids, reason in zip(out.completion_ids, out.finish_reason, strict=True):
        if reason == "stop":
            assert ids[-1] == 2 and 2 not in ids[:-1]
        else:
            assert len(ids) == 10 and 2 not in ids
    assert {"stop", "length"} >= set(out.finish_reason)
    assert "stop" in out.finish_reason


def test_exact_length_ignores_end_tokens(policy):
    model, _ = policy
    out = sample_completions(model, [[1]], 8, max_new_tokens=99, end_ids={2}, pad_id=0,
                             generator=torch.Generator().manual_seed(0), allowed_token_ids=[2, 7],
                             exact_new_tokens=4)
    assert all(len(c) == 4 for c in out.completion_ids)


def test_sampler_logps_equal_the_training_forward(policy):
    """Left-padded prompts of different lengths: the sampler's log-probs match a padded re-scoring."""
    model, tok = policy
    prompts = [tok("12+3=")["input_ids"], tok("7*8+100=")["input_ids"]]
    out = sample_completions(model, prompts, 3, max_new_tokens=12, end_ids={2}, pad_id=0,
                             generator=torch.Generator().manual_seed(0))
    logp, mask, _ = completion_logps(model, out.prompt_ids, out.completion_ids, 0, torch.device("cpu"))
    for i, lp in enumerate(out.logps):
        assert torch.allclose(logp[i, : len(lp)], torch.tensor(lp), atol=1e-5)
        assert int(mask[i].sum()) == len(lp)


class _NoLogitsToKeep(torch.nn.Module):
    """The same model behind a forward without ``logits_to_keep``: the full-logits path."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, input_ids, attention_mask, position_ids):
        return self.model(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids)


@pytest.mark.parametrize("name", ["tiny", "tiny-gpt2"])
def test_completion_logps_with_logits_to_keep_equal_the_full_logits(name):
    from prm_probe.training.sampling import last_logits_kwargs

    model, tok = load_policy(name, seed=2)
    model.eval()
    assert last_logits_kwargs(model, 3) == {"logits_to_keep": 3}
    assert last_logits_kwargs(_NoLogitsToKeep(model), 3) == {}
    prompts = [tok("12+3=")["input_ids"], tok("7*8+100=")["input_ids"]]
    completions = [tok("15", add_special_tokens=False)["input_ids"] + [2],
                   tok("156 or so", add_special_tokens=False)["input_ids"]]
    fast = completion_logps(model, prompts, completions, 0, torch.device("cpu"), with_entropy=True)
    full = completion_logps(_NoLogitsToKeep(model), prompts, completions, 0, torch.device("cpu"), with_entropy=True)
    for a, b in zip(fast, full, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_greedy_is_deterministic_without_a_seed(policy):
    model, _ = policy
    a = sample_completions(model, [[1, 9]], 2, max_new_tokens=5, end_ids={2}, pad_id=0,
                           generator=torch.Generator().manual_seed(0), greedy=True)
    b = sample_completions(model, [[1, 9]], 2, max_new_tokens=5, end_ids={2}, pad_id=0,
                           generator=torch.Generator().manual_seed(9), greedy=True)
    assert a.completion_ids == b.completion_ids and a.completion_ids[0] == a.completion_ids[1]
