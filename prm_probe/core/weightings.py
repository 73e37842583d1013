"""The loss weightings, named once (standard library only).

GRPO weights every completion token by 1 (``uniform``); λ-GRPO by ``1/|λ(i, t)|``, the size of the token's process
set (``process_set``). The names below are the only spelling of them: the training config's ``loss.weighting``
choices, the losses' dispatch (:data:`prm_probe.training.losses.WEIGHTINGS`), the ``loss.weighting`` written into
every run's ``config.json`` (built-in trainer and TRL callback) and the algorithm labels of ``compare``
(:func:`prm_probe.core.runs.algorithm_label`) all come from here; ``tests/test_losses.py`` ties them together.
"""

from __future__ import annotations

from typing import Literal, get_args

__all__ = ["ALGORITHM_LABELS", "PROCESS_SET", "UNIFORM", "WEIGHTING_NAMES", "Weighting"]

#: a weighting's name, as a type (the training config takes its choices from it)
Weighting = Literal["uniform", "process_set"]
#: every weighting name, GRPO's first
WEIGHTING_NAMES: tuple[str, ...] = get_args(Weighting)
UNIFORM, PROCESS_SET = WEIGHTING_NAMES
#: weighting -> the algorithm it makes, as runs are labelled
ALGORITHM_LABELS: dict[str, str] = {UNIFORM: "GRPO", PROCESS_SET: "λ-GRPO"}
