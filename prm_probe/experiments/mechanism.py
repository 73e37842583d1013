"""Why does Adam remove λ-GRPO's effect on the tabular toy tree? The two algorithms' updates, measured.

For a tabular run (:class:`~prm_probe.experiments.lockstep.LockstepRun` with ``shadow=True``) every step gives,
from the same batch, GRPO's and λ-GRPO's gradients and the updates their optimisers make (the run's own, and a
shadow optimiser's that has seen the other weighting's gradients along the same trajectory). :func:`update_trace`
turns them into one row per step:

* ``cos_update`` / ``cos_grad``: cosine between GRPO's and λ-GRPO's updates / gradients over the whole table;
* per group of table rows (``root``: the empty prefix, where the trap of n = 1 is entered or avoided; ``target``:
  the rows below T's first action, the trap's subtree; ``other``: the rest), the norm of each algorithm's update
  (``upd_<group>_grpo``, ``upd_<group>_lambda``) and gradient (``grad_…``);
* ``root_gap``: the root row's logit of T's first action minus the other action's (the trap row's trajectory),
  ``target_probability``: the exact π(T) before the step;
* ``root_sign_agree``: whether the two root-row updates point the same way (NaN when either is zero).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from prm_probe.core.weightings import PROCESS_SET, UNIFORM
from prm_probe.training.config import TrainConfig

__all__ = ["ROW_GROUPS", "update_trace"]

#: The groups of table rows the trace reports on.
ROW_GROUPS = ("root", "target", "other")

_SHORT = {UNIFORM: "grpo", PROCESS_SET: "lambda"}


def _row_groups(run) -> dict[str, np.ndarray]:
    """Row indices of each group of :data:`ROW_GROUPS` for the run's target path."""
    k, depth = run.k, run.depth
    first = run.task.actions.index(run.task.target[0])
    below = []  # the rows under T's first action: heap descendants of row 1 + first
    frontier = [1 + first]
    while frontier:
        below += [r for r in frontier if r < run.table.shape[0]]
        frontier = [c for r in frontier for c in range(r * k + 1, r * k + 1 + k) if c < run.table.shape[0]]
    rows = np.arange(run.table.shape[0])
    target = np.array(sorted(below), dtype=int)
    other = np.setdiff1d(rows[1:], target)
    assert depth >= 1
    return {"root": np.array([0]), "target": target, "other": other}


def _cos(a: np.ndarray, b: np.ndarray) -> float:
    na, nb = np.linalg.norm(a), np.linalg.norm(b)
    return float(a.ravel() @ b.ravel() / (na * nb)) if na > 0 and nb > 0 else float("nan")


def update_trace(config: TrainConfig, labels: dict[str, Any] | None = None):
    """Run ``config`` (tabular, lockstep) and return one row per step as described in the module docstring.

    Args:
        config: a tabular toy-tree run config (its weighting picks the trajectory; the other is the shadow).
        labels: columns added to every row (e.g. optimiser, lr, seed).
    """
    import pandas as pd

    from prm_probe.experiments.lockstep import LockstepRun

    run = LockstepRun(config, shadow=True)
    groups = _row_groups(run)
    first = run.task.actions.index(run.task.target[0])
    rows = []
    for step in range(config.steps):
        record = run.step(step)
        last = run.last
        g, u = last.grad, last.update
        row = {**(labels or {}), "algorithm": _SHORT[config.loss.weighting], "step": step,
               "target_probability": record["target_probability"],
               "root_gap": float(last.before[0, first] - last.before[0, 1 - first]),
               "cos_update": _cos(u[UNIFORM], u[PROCESS_SET]), "cos_grad": _cos(g[UNIFORM], g[PROCESS_SET])}
        for name, idx in groups.items():
            for weighting, short in _SHORT.items():
                row[f"upd_{name}_{short}"] = float(np.linalg.norm(u[weighting][idx]))
                row[f"grad_{name}_{short}"] = float(np.linalg.norm(g[weighting][idx]))
        a, b = u[UNIFORM][0, first], u[PROCESS_SET][0, first]
        row["root_sign_agree"] = float(np.sign(a) == np.sign(b)) if a != 0 and b != 0 else float("nan")
        rows.append(row)
    return pd.DataFrame(rows)
