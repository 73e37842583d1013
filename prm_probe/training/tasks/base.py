"""The task interface: :class:`Problem`, :class:`Score` and the :class:`Task` base class."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import numpy as np

from prm_probe.errors import ConfigError, close_matches

if TYPE_CHECKING:
    from prm_probe.training.tasks.identity import TaskIdentity

BOXED_INSTRUCTION = "Let's think step by step and output the final answer within \\boxed{}."
_INSTALL = "run `pip install 'prm-probe[tasks]'`"


@dataclass(frozen=True)
class Problem:
    """One prompt: a stable ``id``, the user message ``prompt``, the gold ``answer`` text and extra ``meta``."""

    id: str
    prompt: str
    answer: str
    meta: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Score:
    """A scalar outcome ``reward`` and its named ``components`` (logged as ``reward_<name>``)."""

    reward: float
    components: dict[str, float]


def _int_range(task: str, key: str, value: Any, lo: int) -> tuple[int, int]:
    ok = (isinstance(value, list | tuple) and len(value) == 2
          and all(isinstance(v, int) and not isinstance(v, bool) for v in value))
    if not ok or not lo <= value[0] <= value[1]:
        raise ConfigError(f"{task} option {key}={value!r}; expected [low, high] integers with {lo} <= low <= high; "
                          f"fix [task.options] {key}")
    return int(value[0]), int(value[1])


class Task:
    """Base class of every task; subclasses set ``name``, ``defaults`` and override what they need.

    Args:
        seed: seed of problem generation (and of the toy-tree target).
        options: task options; keys must be in ``defaults`` (unknown keys are refused).
        train_size: problems in the training split.
        val_size: problems in the validation split.
    """

    name: str = "task"
    exact_new_tokens: int | None = None
    #: the :class:`Score` component that says whether a completion is right (0 or 1): its mean over the
    #: validation problems is the run's ``val_accuracy``. None: the task has no accuracy (``val_accuracy`` is NaN).
    #: A task that names one must return it in every score.
    accuracy_component: ClassVar[str | None] = None
    defaults: ClassVar[dict[str, Any]] = {}
    #: options whose default (None) the seed draws, e.g. the toy tree's ``target``; :meth:`identity` records
    #: the drawn values, so whatever is derived from a run keeps the run's rewards whatever seed it uses
    seed_drawn: ClassVar[tuple[str, ...]] = ()

    def __init__(self, *, seed: int = 0, options: dict | None = None, train_size: int = 2000,
                 val_size: int = 64) -> None:
        if train_size < 1 or val_size < 0:
            raise ConfigError(f"task sizes train_size={train_size}, val_size={val_size}; expected train_size >= 1 "
                              "and val_size >= 0; fix [task] train_size / val_size")
        self.seed, self.train_size, self.val_size = int(seed), int(train_size), int(val_size)
        if not isinstance(options or {}, Mapping):
            raise ConfigError(f"task options are {type(options).__name__}; expected a table; fix [task.options]")
        opts = dict(options or {})
        for key in opts:
            if key not in self.defaults:
                raise ConfigError(f"unknown option {key!r} for task {self.name}; expected one of "
                                  f"{', '.join(self.defaults) or '(none)'}; {close_matches(key, self.defaults)}"
                                  "fix [task.options]")
        self.options = {**self.defaults, **opts}
        self.drawn = tuple(k for k in self.seed_drawn if self.options.get(k) is None)
        #: the name :func:`~prm_probe.training.tasks.get_task` resolved (e.g. ``reasoning-gym:chain_sum``)
        self.registry_name = self.name
        self._splits: dict[str, list[Problem]] = {}

    def identity(self) -> TaskIdentity:
        """What defines this task's rewards: its registry name and its options, the seed-drawn ones filled in.

        Subclasses that draw an option from the seed store the drawn value in ``self.options`` in their
        ``__init__`` (after ``super().__init__``).
        """
        from prm_probe.training.tasks.identity import TaskIdentity

        return TaskIdentity.of(self.registry_name, self.options, drawn=self.drawn, seed=self.seed)

    def problems(self, split: Literal["train", "validation"]) -> list[Problem]:
        """The problems of ``split``, deterministic from the seed and sizes; the splits are disjoint."""
        if split not in ("train", "validation"):
            raise ConfigError(f"split {split!r}; expected 'train' or 'validation'; fix the caller")
        if split not in self._splits:
            self._splits[split] = self._make(split)
        return self._splits[split]

    def _make(self, split: str) -> list[Problem]:
        raise NotImplementedError(f"{type(self).__name__} must override problems() or _make()")

    def prompt_ids(self, problem: Problem, tokenizer: Any, chat_template: bool = True) -> list[int]:
        """Chat template (one user message plus the generation prompt) when asked and available, else
        ``[bos] + encode(prompt)`` (without bos when the tokenizer has none)."""
        if chat_template and getattr(tokenizer, "chat_template", None):
            out = tokenizer.apply_chat_template([{"role": "user", "content": problem.prompt}],
                                                add_generation_prompt=True, tokenize=True)
            if isinstance(out, Mapping):
                out = out["input_ids"]
            out = list(out)
            if out and isinstance(out[0], list | tuple):
                out = list(out[0])
            return [int(i) for i in out]
        bos = getattr(tokenizer, "bos_token_id", None)
        return ([] if bos is None else [int(bos)]) + list(tokenizer.encode(problem.prompt, add_special_tokens=False))

    def allowed_token_ids(self, tokenizer: Any) -> list[int] | None:
        """Token ids the policy may sample (all others masked); None: no restriction."""
        return None

    def score(self, problem: Problem, completion: str, completion_ids: list[int]) -> Score:
        """Score one completion of ``problem``; never raises on garbage (reward 0)."""
        raise NotImplementedError

    def enumerate_completions(self, tokenizer: Any) -> list[tuple[list[int], str]] | None:
        """Every completion the policy can produce (token ids, text), when that set is finite and small; else None.

        Tasks that return a list let the trainer log exact expectations under the current policy
        (``expected_reward``, ``target_probability``) instead of estimates from the step's samples.
        """
        return None

    def _generated(self, split: str, make_one: Callable[[np.random.Generator], tuple[str, str, dict]]) -> list[Problem]:
        """Problems from ``make_one(rng)``; validation prompts are unique and never appear in train."""
        if split == "train":
            banned = {p.prompt for p in self.problems("validation")}
            size, rng = self.train_size, np.random.default_rng([self.seed, 0])
        else:
            banned, size, rng = set(), self.val_size, np.random.default_rng([self.seed, 1])
        out: list[Problem] = []
        for _ in range(200 * size + 1000):
            if len(out) == size:
                break
            prompt, answer, meta = make_one(rng)
            if prompt not in banned:
                out.append(Problem(f"{self.name}-{split}-{len(out):06d}", prompt, answer, meta))
                if split == "validation":
                    banned.add(prompt)
        if len(out) < size:
            raise ConfigError(f"task {self.name} found only {len(out)} distinct {split} problems of {size}; "
                              "expected a larger problem space; widen the options or lower the sizes")
        return out
