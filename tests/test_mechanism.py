"""The update trace of the tabular toy tree: GRPO's and λ-GRPO's updates from the same batches."""

from __future__ import annotations

import numpy as np
import pytest

from prm_probe.experiments.lockstep import LockstepRun
from prm_probe.experiments.mechanism import _row_groups, update_trace
from prm_probe.experiments.sweeps import toy_config
from prm_probe.training.config import config_from_dict


def _cfg(optimizer: str, lr: float, weighting: str = "uniform", steps: int = 15, seed: int = 0):
    return config_from_dict(toy_config(model="tabular", n=1, r_neg=-1.0, seed=seed, weighting=weighting, lr=lr,
                                       optimizer=optimizer, steps=steps, rollouts_every=0))


def test_row_groups_split_the_table_at_the_targets_first_action():
    run = LockstepRun(_cfg("sgd", 1.0))  # seed 0: target RRRL; R is the second column
    groups = _row_groups(run)
    assert run.task.target == "RRRL"
    assert list(groups["root"]) == [0] and list(groups["target"]) == [2, 5, 6, 11, 12, 13, 14]
    assert sorted([*groups["root"], *groups["target"], *groups["other"]]) == list(range(15))


def test_under_sgd_updates_are_gradients_scaled_by_the_rate():
    trace = update_trace(_cfg("sgd", 0.5), {"seed": 0})
    assert len(trace) == 15 and trace["root_gap"].iloc[0] == 0.0
    both = trace.dropna(subset=["cos_update"])
    assert np.allclose(both["cos_update"], both["cos_grad"], atol=1e-5)
    for group in ("root", "target", "other"):
        for algo in ("grpo", "lambda"):
            assert np.allclose(trace[f"upd_{group}_{algo}"], 0.5 * trace[f"grad_{group}_{algo}"], atol=1e-6)
    # λ-GRPO's root row (the most shared tokens) gets a smaller step than GRPO's from the same batch
    moving = trace[trace["upd_root_grpo"] > 0]
    assert (moving["upd_root_lambda"] < moving["upd_root_grpo"]).mean() > 0.8


def test_under_adam_the_first_step_is_the_sign_of_the_gradient():
    trace = update_trace(_cfg("adam", 0.1, steps=3, seed=2))
    first = trace.iloc[0]  # Adam's first step: lr × sign(g) per parameter, whatever the gradient's scale
    assert first["grad_root_lambda"] < 0.5 * first["grad_root_grpo"]  # λ's root gradient is much smaller ...
    assert first["upd_root_grpo"] == pytest.approx(first["upd_root_lambda"], rel=1e-3)  # ... its step is not
    assert first["upd_root_grpo"] == pytest.approx(0.1 * np.sqrt(2), rel=1e-3)


def test_the_mechanism_figure_has_three_rows_per_setting():
    import pandas as pd

    from prm_probe.views.plots import plot_update_mechanism

    frames = [update_trace(_cfg(o, lr, w, steps=6), {"setting": f"{o} {lr}", "seed": 0})
              for o, lr in (("sgd", 1.0), ("adam", 0.1)) for w in ("uniform", "process_set")]
    fig = plot_update_mechanism(pd.concat(frames, ignore_index=True))
    assert len(fig.axes) == 6 and fig.axes[0].get_title() == "sgd 1.0"
