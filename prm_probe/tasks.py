"""Tasks and outcome rewards of the built-in GRPO trainer, in a small registry users extend by module path.

A :class:`Task` makes deterministic, disjoint train/validation :class:`Problem` lists from its seed and sizes,
turns a problem into prompt token ids, and scores a completion into a :class:`Score` (a finite scalar reward
plus named components, logged as ``reward_<name>``). :func:`get_task` resolves:

* built-ins ``toy-tree`` (SCIENCE.md §7.1), ``arithmetic`` and ``countdown`` (generated in code, offline);
* ``reasoning-gym:<name>`` (needs ``reasoning-gym``) and ``jsonl:<path>`` (problem/answer rows, graded by
  math-verify on the last ``\\boxed{}``, or by an exact string match);
* ``pkg.module:ClassName``: any :class:`Task` subclass, built with ``seed``, ``options``, ``train_size``,
  ``val_size``.

Scorers never raise on garbage completions: they give reward 0. Left out: sampling, stop rules and
batching (the trainer's), and anything that downloads data. Pure Python + numpy; tokenizers are passed in
as objects with the Hugging Face API, so this module never imports torch or transformers.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import json
import logging
import operator
import re
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np

from prm_probe.errors import ConfigError, UnknownNameError, close_matches

__all__ = ["TASKS", "Problem", "Score", "Task", "extract_answer", "get_task", "last_boxed", "list_tasks"]

logger = logging.getLogger(__name__)

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


def last_boxed(text: str) -> str | None:
    """The content of the last complete ``\\boxed{...}`` in ``text`` (nested braces allowed), else None.

    Example:
        >>> last_boxed(r"so \\boxed{1} or rather \\boxed{\\frac{1}{2}}.")
        '\\\\frac{1}{2}'
        >>> last_boxed(r"\\boxed{unbalanced") is None
        True
    """
    if not isinstance(text, str):
        return None
    pos = text.rfind("\\boxed")
    while pos >= 0:
        i = pos + len("\\boxed")
        while i < len(text) and text[i] == " ":
            i += 1
        if i < len(text) and text[i] == "{":
            depth = 0
            for j in range(i, len(text)):
                depth += {"{": 1, "}": -1}.get(text[j], 0)
                if depth == 0:
                    return text[i + 1 : j]
        pos = text.rfind("\\boxed", 0, pos)
    return None


def extract_answer(text: str) -> str | None:
    """The answer of a completion: the last ``\\boxed{}`` content if any, else the last integer, else None.

    Example:
        >>> extract_answer(r"12 + 3 = 15, so \\boxed{15}")
        '15'
        >>> extract_answer("it is -7, I think")
        '-7'
        >>> extract_answer("no idea") is None
        True
    """
    boxed = last_boxed(text)
    if boxed is not None:
        return boxed.strip()
    found = re.findall(r"-?\d+", text) if isinstance(text, str) else []
    return found[-1] if found else None


def _to_int(text: str | None) -> int | None:
    """``text`` as an integer (spaces and ``$`` ignored), None if it is not one or has over 30 digits."""
    if text is None:
        return None
    s = text.replace(" ", "").strip("$")
    return int(s) if re.fullmatch(r"[-+]?\d{1,30}", s) else None


_OPS: dict[str, Callable[[Any, Any], Any]] = {"+": operator.add, "-": operator.sub, "*": operator.mul,
                                             "/": operator.truediv}
_BINOPS = {ast.Add: _OPS["+"], ast.Sub: _OPS["-"], ast.Mult: _OPS["*"], ast.Div: _OPS["/"]}


def _safe_eval(expr: str, numbers: list[int] | None = None) -> Fraction | None:
    """Evaluate ``+ - * /`` integer arithmetic exactly through ``ast`` (never ``eval``); None if not allowed.

    With ``numbers``, the literals must be exactly that multiset. Division by zero gives None.
    """
    if len(expr) > 300 or "**" in expr or not re.fullmatch(r"[\d+\-*/()\s]+", expr):
        return None
    try:
        tree = ast.parse(expr.strip(), mode="eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None
    literals: list[int] = []

    def walk(node: ast.AST) -> Fraction:
        if isinstance(node, ast.Constant) and type(node.value) is int:
            literals.append(node.value)
            return Fraction(node.value)
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            return -walk(node.operand)
        if isinstance(node, ast.BinOp) and type(node.op) in _BINOPS:
            return _BINOPS[type(node.op)](walk(node.left), walk(node.right))
        raise ValueError("disallowed node")

    try:
        value = walk(tree.body)
    except (ValueError, ZeroDivisionError, RecursionError):
        return None
    if numbers is not None and sorted(literals) != sorted(numbers):
        return None
    return value


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
    defaults: ClassVar[dict[str, Any]] = {}

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
        self._splits: dict[str, list[Problem]] = {}

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


class ToyTree(Task):
    """The depth-d binary tree of SCIENCE.md §7.1: one BOS-only prompt, d forced L/R actions.

    The target path T is drawn uniformly from the seed (attribute ``target``). Rewards: 1.0 for T, ``r_neg`` for
    any other path sharing T's first ``n`` actions (the trap), ``r_other`` otherwise. Option ``reward="prefix"``
    instead gives the share of T's actions a path matches from the start (a dense signal for deep trees).
    A completion that is not a valid path (wrong length, or an id other than the two action ids) gets reward 0
    and target 0. Paths are read from ``completion_ids`` through the ids bound by :meth:`allowed_token_ids`
    (from the text if never bound).
    """

    name = "toy-tree"
    defaults: ClassVar[dict[str, Any]] = {"depth": 4, "n": 1, "r_neg": -1.0, "r_other": 0.7, "actions": ("L", "R"),
                                          "reward": "paper"}

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
        self.target = "".join(self.actions[i] for i in np.random.default_rng(self.seed).integers(0, 2, size=d))
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


class Arithmetic(Task):
    """Seeded multi-step integer arithmetic (``Compute 12 + 7 * 3.``), graded on the exact integer.

    Options: ``operations`` [low, high] operator count, ``operands`` [low, high] operand values, ``operators``
    (a string over ``+-*``), ``boxed`` (ask for the answer in ``\\boxed{}``). The answer is read with
    :func:`extract_answer`.
    """

    name = "arithmetic"
    defaults: ClassVar[dict[str, Any]] = {"operations": (2, 3), "operands": (2, 20), "operators": "+-*", "boxed": True}

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.ops_range = _int_range(self.name, "operations", self.options["operations"], 1)
        self.operand_range = _int_range(self.name, "operands", self.options["operands"], 0)
        ops = self.options["operators"]
        if not (isinstance(ops, str) and ops and set(ops) <= set("+-*")):
            raise ConfigError(f"arithmetic operators={ops!r}; expected a non-empty string over '+-*'; "
                              "fix [task.options] operators")

    def _one(self, rng: np.random.Generator) -> tuple[str, str, dict]:
        k = int(rng.integers(self.ops_range[0], self.ops_range[1] + 1))
        lo, hi = self.operand_range
        expr = str(int(rng.integers(lo, hi + 1)))
        for _ in range(k):
            expr += f" {rng.choice(list(self.options['operators']))} {int(rng.integers(lo, hi + 1))}"
        value = _safe_eval(expr)  # integer: the operators are + - * only
        prompt = f"Compute {expr}." + (" Put the final answer in \\boxed{}." if self.options["boxed"] else "")
        return prompt, str(int(value or 0)), {"expression": expr}

    def _make(self, split: str) -> list[Problem]:
        return self._generated(split, self._one)

    def score(self, problem: Problem, completion: str, completion_ids: list[int]) -> Score:
        got = _to_int(extract_answer(completion))
        correct = float(got is not None and got == int(problem.answer))
        return Score(correct, {"correct": correct, "format": float(last_boxed(completion) is not None)})


class Countdown(Task):
    """Reach a target with each given number once, using ``+ - * /`` (``/`` only when exact in generation).

    Options: ``count`` [low, high] how many numbers, ``values`` [low, high] their range, ``max_target``. The
    target comes from a random expression tree over the numbers (kept as ``meta["solution"]`` and ``answer``).
    A completion (last ``\\boxed{}``, else its last line) is correct when it uses only digits, ``+ - * /``,
    parentheses and spaces, uses exactly the given numbers, and evaluates (exactly, via ``ast``) to the target.
    """

    name = "countdown"
    defaults: ClassVar[dict[str, Any]] = {"count": (3, 4), "values": (1, 25), "max_target": 1000}

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.count_range = _int_range(self.name, "count", self.options["count"], 2)
        self.value_range = _int_range(self.name, "values", self.options["values"], 1)
        mt = self.options["max_target"]
        if isinstance(mt, bool) or not isinstance(mt, int) or mt < 1:
            raise ConfigError(f"countdown max_target={mt!r}; expected a positive integer; fix [task.options]")

    def _one(self, rng: np.random.Generator) -> tuple[str, str, dict]:
        for _ in range(10_000):
            k = int(rng.integers(self.count_range[0], self.count_range[1] + 1))
            numbers = [int(v) for v in rng.integers(self.value_range[0], self.value_range[1] + 1, size=k)]
            items: list[tuple[Fraction, str]] = [(Fraction(v), str(v)) for v in numbers]
            while len(items) > 1:
                i, j = (int(x) for x in rng.choice(len(items), size=2, replace=False))
                (a, sa), (b, sb) = items[i], items[j]
                op = str(rng.choice(["+", "-", "*", "/"]))
                if op == "/" and (b == 0 or a % b != 0):
                    op = "+"
                items = [it for m, it in enumerate(items) if m not in (i, j)]
                items.append((_OPS[op](a, b), f"({sa} {op} {sb})"))
            value, expr = items[0]
            if value.denominator == 1 and 0 < value <= self.options["max_target"]:
                break
        else:
            raise ConfigError(f"countdown found no positive integer target <= {self.options['max_target']} in 10000 "
                              "tries; expected a reachable target; widen values or raise max_target")
        target, solution = int(value), expr[1:-1]
        prompt = (f"Using the numbers {', '.join(map(str, numbers))} exactly once each with + - * /, make {target}. "
                  "Answer with the expression in \\boxed{}.")
        return prompt, solution, {"numbers": numbers, "target": target, "solution": solution}

    def _make(self, split: str) -> list[Problem]:
        return self._generated(split, self._one)

    def score(self, problem: Problem, completion: str, completion_ids: list[int]) -> Score:
        text = completion if isinstance(completion, str) else ""
        expr = last_boxed(text)
        if expr is None:
            lines = [ln for ln in text.strip().splitlines() if ln.strip()]
            expr = lines[-1] if lines else ""
        value = _safe_eval(expr, list(problem.meta["numbers"]))
        correct = float(value is not None and abs(float(value - problem.meta["target"])) <= 1e-9)
        return Score(correct, {"correct": correct, "format": float(last_boxed(text) is not None)})


class ReasoningGym(Task):
    """A ``reasoning-gym`` dataset (``reasoning-gym:<name>``); its scorer thresholded to a binary reward.

    The first ``train_size`` entries are train, the rest validation. The answer is the last ``\\boxed{}``.
    """

    name = "reasoning-gym"

    def __init__(self, dataset_name: str, **kwargs: Any) -> None:
        self.dataset_name = dataset_name
        super().__init__(**kwargs)
        if importlib.util.find_spec("reasoning_gym") is None:
            raise ConfigError(f"task {self.name}:{self.dataset_name} needs reasoning-gym, which is not installed; "
                              f"expected the tasks extra; {_INSTALL}")
        import reasoning_gym

        try:
            self._dataset = reasoning_gym.create_dataset(self.dataset_name, size=self.train_size + self.val_size,
                                                         seed=self.seed)
        except (KeyError, ValueError, LookupError) as exc:
            names = sorted(getattr(getattr(reasoning_gym, "factory", None), "DATASETS", {}) or [])
            raise UnknownNameError(f"reasoning-gym dataset {self.dataset_name!r} failed ({exc}); expected one of "
                                   f"{len(names)} names; {close_matches(self.dataset_name, names)}") from None
        self._entries: dict[str, Any] = {}  # problem id -> reasoning-gym entry (its scorer needs it)
        for split, start, size in (("train", 0, self.train_size), ("validation", self.train_size, self.val_size)):
            for n in range(size):
                self._entries[f"reasoning-gym-{self.dataset_name}-{split}-{n:06d}"] = self._dataset[start + n]

    def _make(self, split: str) -> list[Problem]:
        prefix = f"reasoning-gym-{self.dataset_name}-{split}-"
        return [Problem(pid, f"{e['question']}\n\nPut the final answer in \\boxed{{}}.", str(e["answer"]),
                        {"dataset": self.dataset_name}) for pid, e in self._entries.items() if pid.startswith(prefix)]

    def score(self, problem: Problem, completion: str, completion_ids: list[int]) -> Score:
        boxed = last_boxed(completion)
        try:
            raw = self._dataset.score_answer(answer=boxed, entry=self._entries[problem.id]) if boxed else 0.0
            correct = float(raw == 1.0)
        except Exception:  # a scorer failing on garbage is a wrong answer, not a crash
            correct = 0.0
        return Score(correct, {"correct": correct, "format": float(boxed is not None)})


def _normalise(text: str) -> str:
    """The ``exact`` matcher's form: no spaces, ``\\left``/``\\right``, thin spaces, outer ``$`` or final dot."""
    return re.sub(r"\\left|\\right|\\!|\\,|\s", "", text).strip("$").rstrip(".").lower()


def _mv_timeout(key: str) -> dict[str, None]:
    """math-verify's timeouts use SIGALRM, which fails outside the main thread: switch them off there."""
    return {} if threading.current_thread() is threading.main_thread() else {key: None}


class JsonlTask(Task):
    """Problem/answer rows of a JSONL file (``jsonl:<path>``): the last ``val_size`` rows are validation, the first
    ``train_size`` of the rest train. Reward (the paper's): 1 when the last ``\\boxed{}`` matches the answer under
    math-verify (``matcher="math-verify"``) or after string normalisation (``matcher="exact"``). As in the authors'
    code, a gold answer math-verify cannot parse marks every completion correct (logged, ``gold_unparsed`` 1).
    """

    name = "jsonl"
    defaults: ClassVar[dict[str, Any]] = {"problem_field": "problem", "answer_field": "answer", "id_field": None,
                                          "matcher": "math-verify", "instruction": BOXED_INSTRUCTION}

    def __init__(self, path: str, **kwargs: Any) -> None:
        self.path = path
        super().__init__(**kwargs)
        o = self.options
        if o["matcher"] not in ("math-verify", "exact"):
            raise ConfigError(f"jsonl matcher={o['matcher']!r}; expected 'math-verify' or 'exact'; "
                              "fix [task.options] matcher")
        if o["matcher"] == "math-verify" and importlib.util.find_spec("math_verify") is None:
            raise ConfigError(f"jsonl matcher 'math-verify' needs math-verify, which is not installed; expected the "
                              f"tasks extra; {_INSTALL}, or set [task.options] matcher = 'exact'")
        file = Path(self.path)
        if not file.is_file():
            raise ConfigError(f"jsonl task file {self.path!r} does not exist; expected a JSONL file of problems; "
                              "fix the path after 'jsonl:'")
        self._rows: list[tuple[str, str, str]] = []
        for line_no, line in enumerate(file.read_text(encoding="utf-8").splitlines(), start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ConfigError(f"{self.path} line {line_no} is not valid JSON ({exc.msg}); expected one JSON "
                                  "object per line; fix that line") from None
            for key in [o["problem_field"], o["answer_field"]] + ([o["id_field"]] if o["id_field"] else []):
                if not isinstance(row, dict) or key not in row:
                    raise ConfigError(f"{self.path} line {line_no} has no field {key!r}; expected it in every row; "
                                      "fix the file or the [task.options] *_field names")
            rid = str(row[o["id_field"]]) if o["id_field"] else str(line_no)
            self._rows.append((rid, str(row[o["problem_field"]]), str(row[o["answer_field"]])))
        if len(self._rows) <= self.val_size:
            raise ConfigError(f"{self.path} has {len(self._rows)} rows; expected more than val_size={self.val_size} "
                              "(the last val_size rows are validation); lower val_size or add rows")
        self._gold: dict[str, Any] = {}

    def _make(self, split: str) -> list[Problem]:
        cut = len(self._rows) - self.val_size
        rows = self._rows[:cut][: self.train_size] if split == "train" else self._rows[cut:]
        suffix = f"\n\n{self.options['instruction']}" if self.options["instruction"] else ""
        return [Problem(f"jsonl-{split}-{rid}", text + suffix, answer, {"row_id": rid}) for rid, text, answer in rows]

    def _gold_parsed(self, answer: str) -> list | None:
        """math-verify's parse of the gold answer (cached); None when math-verify itself failed (not cached)."""
        if answer not in self._gold:
            from math_verify import parse

            wrapped = answer if "\\boxed" in answer or "$" in answer else f"\\boxed{{{answer}}}"
            try:
                self._gold[answer] = list(parse(wrapped, **_mv_timeout("parsing_timeout")))
            except Exception as exc:
                logger.warning("math-verify failed on gold answer %r (%s); scoring 0", answer, exc)
                return None
            if not self._gold[answer]:
                logger.warning("gold answer %r cannot be parsed by math-verify: every completion counts as correct "
                               "(the authors' behaviour)", answer)
        return self._gold[answer]

    def score(self, problem: Problem, completion: str, completion_ids: list[int]) -> Score:
        boxed = last_boxed(completion)
        fmt = float(boxed is not None)
        if self.options["matcher"] == "exact":
            correct = float(boxed is not None and _normalise(boxed) == _normalise(problem.answer))
            return Score(correct, {"correct": correct, "format": fmt})
        gold = self._gold_parsed(problem.answer)
        if gold == []:
            return Score(1.0, {"correct": 1.0, "format": fmt, "gold_unparsed": 1.0})
        correct = 0.0
        if boxed is not None and gold is not None:
            try:
                from math_verify import parse, verify

                pred = parse(f"\\boxed{{{boxed}}}", **_mv_timeout("parsing_timeout"))
                correct = float(bool(verify(gold, pred, **_mv_timeout("timeout_seconds"))))
            except Exception:  # math-verify failing on garbage is a wrong answer
                correct = 0.0
        return Score(correct, {"correct": correct, "format": fmt, "gold_unparsed": 0.0})


TASKS: dict[str, type] = {"toy-tree": ToyTree, "arithmetic": Arithmetic, "countdown": Countdown}
_PREFIXES = ("reasoning-gym", "jsonl")


def list_tasks() -> list[str]:
    """The built-in task names (``reasoning-gym:<name>``, ``jsonl:<path>`` and module paths come on top)."""
    return sorted(TASKS)


def _load_class(name: str) -> type:
    module_name, _, attr = name.partition(":")
    try:
        module = importlib.import_module(module_name)
    except (ImportError, ValueError) as exc:
        raise UnknownNameError(f"task {name!r}: module {module_name!r} cannot be imported ({exc}); expected a "
                               f"built-in ({', '.join(list_tasks())}), reasoning-gym:<name>, jsonl:<path> or "
                               f"pkg.module:Class; {close_matches(module_name, _PREFIXES)}") from None
    cls = getattr(module, attr, None)
    if cls is None:
        raise UnknownNameError(f"task {name!r}: module {module_name!r} has no {attr!r}; expected a Task subclass; "
                               f"{close_matches(attr, [n for n in dir(module) if not n.startswith('_')])}")
    if not (isinstance(cls, type) and issubclass(cls, Task)):
        raise ConfigError(f"task {name!r} is {type(cls).__name__} {cls!r}; expected a subclass of "
                          "prm_probe.tasks.Task; subclass Task")
    return cls


def get_task(name: str, *, seed: int = 0, options: dict | None = None, train_size: int = 2000,
             val_size: int = 64) -> Task:
    """Build the task ``name``: a built-in, ``reasoning-gym:<name>``, ``jsonl:<path>`` or ``pkg.module:Class``.

    Raises:
        UnknownNameError: an unknown name (with close matches and the available names).
        ConfigError: bad options or sizes, a missing extra, or a bad JSONL file.
    """
    kwargs = {"seed": seed, "options": options, "train_size": train_size, "val_size": val_size}
    prefix, colon, rest = name.partition(":")
    if name in TASKS:
        cls = TASKS[name]
    elif colon and prefix in _PREFIXES:
        if not rest:
            raise ConfigError(f"task {name!r} has nothing after ':'; expected {prefix}:<name or path>; add it")
        return (ReasoningGym if prefix == "reasoning-gym" else JsonlTask)(rest, **kwargs)
    elif colon:
        cls = _load_class(name)
    else:
        raise UnknownNameError(f"unknown task {name!r}; expected one of {', '.join(list_tasks())}, "
                               f"reasoning-gym:<name>, jsonl:<path> or pkg.module:Class; "
                               f"{close_matches(name, [*TASKS, *_PREFIXES])}pick one of those")
    return cls(**kwargs)
