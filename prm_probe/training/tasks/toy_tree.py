"""The paper's toy tree (docs/science.md §7.1): depth-d binary paths, one target, a trap of n actions."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from prm_probe.errors import ConfigError
from prm_probe.training.tasks.base import Problem, Score, Task


class ToyTree(Task):
    """The depth-d binary tree of docs/science.md §7.1: one BOS-only prompt, d forced L/R actions.

    The target path T is option ``target`` (a string of ``depth`` actions); left unset (None), it is drawn
    uniformly from the seed, and :meth:`identity` records the drawn path, so a sample or analysis of a run
    keeps the run's T whatever seed it samples with. Rewards: 1.0 for T, ``r_neg`` for
    any other path sharing T's first ``n`` actions (the trap), ``r_other`` otherwise. Option ``reward="prefix"``
    instead gives the share of T's actions a path matches from the start (a dense signal for deep trees).
    A completion that is not a valid path (wrong length, or an id other than the two action ids) gets reward 0
    and target 0. Paths are read from ``completion_ids`` through the ids bound by :meth:`allowed_token_ids`
    (from the text if never bound).
    """

    name = "toy-tree"
    accuracy_component = "target"  # the target path T was sampled
    defaults: ClassVar[dict[str, Any]] = {"depth": 4, "n": 1, "r_neg": -1.0, "r_other": 0.7, "actions": ("L", "R"),
                                          "reward": "paper", "target": None}
    seed_drawn: ClassVar[tuple[str, ...]] = ("target",)

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        o = self.options
        d, n, acts = o["depth"], o["n"], o["actions"]
        if not (isinstance(d, int) and isinstance(n, int) and 1 <= d <= 64 and 0 <= n <= d):
            raise ConfigError(f"toy-tree depth={d!r}, n={n!r}; expected integers 1 <= depth <= 64, 0 <= n <= depth; "
                              "fix [task.options]")
        ok = isinstance(acts, list | tuple) and len(acts) == 2 and acts[0] != acts[1]
        if not (ok and all(isinstance(a, str) and len(a) == 1 for a in acts)):
            raise ConfigError(f"toy-tree actions={acts!r}; expected two distinct one-character strings; "
                              "fix [task.options] actions, e.g. ['L', 'R']")
        for key in ("r_neg", "r_other"):
            if isinstance(o[key], bool) or not isinstance(o[key], int | float) or not np.isfinite(o[key]):
                raise ConfigError(f"toy-tree {key}={o[key]!r}; expected a finite number; fix [task.options] {key}")
        if o["reward"] not in ("paper", "prefix"):
            raise ConfigError(f"toy-tree reward={o['reward']!r}; expected 'paper' (target / trap / other) or "
                              "'prefix' (share of T's actions matched from the start); fix [task.options] reward")
        self.reward_kind = o["reward"]
        self.depth, self.n, self.actions = d, n, (acts[0], acts[1])
        self.r_neg, self.r_other = float(o["r_neg"]), float(o["r_other"])
        self.exact_new_tokens = d
        target = o["target"]
        if target is None:  # drawn from the seed (the draw every earlier run used)
            target = "".join(self.actions[i] for i in np.random.default_rng(self.seed).integers(0, 2, size=d))
        elif not (isinstance(target, str) and len(target) == d and set(target) <= set(self.actions)):
            raise ConfigError(f"toy-tree target={target!r}; expected a string of {d} actions from "
                              f"{''.join(self.actions)}; fix [task.options] target (or leave it unset: the seed "
                              "draws it)")
        self.target = target
        self.options["target"] = target
        self._id_to_action: dict[int, str] | None = None

    def path_reward(self, path: str) -> float:
        """The reward of ``path`` (a string of ``depth`` action letters); 0.0 for an invalid path."""
        if len(path) != self.depth or any(c not in self.actions for c in path):
            return 0.0
        if path == self.target:
            return 1.0
        if self.reward_kind == "prefix":  # dense: how far the path follows T before leaving it
            return next(i for i, (a, b) in enumerate(zip(path, self.target, strict=True)) if a != b) / self.depth
        return self.r_neg if path[: self.n] == self.target[: self.n] else self.r_other

    def _make(self, split: str) -> list[Problem]:
        meta = {"target": self.target, "depth": self.depth, "n": self.n, "r_neg": self.r_neg, "r_other": self.r_other}
        problem = Problem(f"toy-tree-{split}-000000", "", self.target, meta)
        return [problem] * (self.train_size if split == "train" else 1)

    def prompt_ids(self, problem: Problem, tokenizer: Any, chat_template: bool = True) -> list[int]:
        """``[bos]`` only (``[eos]`` when the tokenizer has no bos); never a chat template."""
        for tok in (getattr(tokenizer, "bos_token_id", None), getattr(tokenizer, "eos_token_id", None)):
            if tok is not None:
                return [int(tok)]
        raise ConfigError("toy-tree found a tokenizer without bos or eos token; expected one to start the prompt; "
                          "use a tokenizer with a bos_token_id")

    def allowed_token_ids(self, tokenizer: Any) -> list[int]:
        """The ids of the two actions; each must encode to exactly one token. Binds them for :meth:`score`."""
        ids = []
        for a in self.actions:
            enc = list(tokenizer.encode(a, add_special_tokens=False))
            if len(enc) != 1:
                raise ConfigError(f"toy-tree action {a!r} encodes to {len(enc)} tokens {enc}; expected exactly one "
                                  "token; pick single-token actions in [task.options] actions")
            ids.append(int(enc[0]))
        if ids[0] == ids[1]:
            raise ConfigError(f"toy-tree actions {self.actions} share token id {ids[0]}; expected two distinct "
                              "tokens; pick other actions")
        self._id_to_action = dict(zip(ids, self.actions))
        return ids

    #: the most paths :meth:`enumerate_completions` lists (depth 12 with two actions)
    MAX_ENUMERATED: ClassVar[int] = 4096

    def enumerate_completions(self, tokenizer: Any) -> list[tuple[list[int], str]] | None:
        """All ``2^depth`` paths as (token ids, text) (None beyond :attr:`MAX_ENUMERATED` paths)."""
        if 2 ** self.depth > self.MAX_ENUMERATED:
            return None
        ids = self.allowed_token_ids(tokenizer)
        out = []
        for n in range(2 ** self.depth):
            bits = [(n >> (self.depth - 1 - i)) & 1 for i in range(self.depth)]
            out.append(([ids[b] for b in bits], "".join(self.actions[b] for b in bits)))
        return out

    def score(self, problem: Problem, completion: str, completion_ids: list[int]) -> Score:
        if self._id_to_action is None:
            path = completion if isinstance(completion, str) else ""
        else:
            path = "".join(self._id_to_action.get(int(i), "?") for i in completion_ids)
        reward = self.path_reward(path)
        return Score(reward, {"target": float(path == self.target)})
