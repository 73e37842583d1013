"""Generated arithmetic tasks: ``arithmetic`` (expressions to compute) and ``countdown`` (reach a target)."""

from __future__ import annotations

from fractions import Fraction
from typing import Any, ClassVar

import numpy as np

from prm_probe.errors import ConfigError
from prm_probe.training.tasks.answers import _OPS, _safe_eval, _to_int, extract_answer, last_boxed
from prm_probe.training.tasks.base import Problem, Score, Task, _int_range


class Arithmetic(Task):
    """Seeded multi-step integer arithmetic (``Compute 12 + 7 * 3.``), graded on the exact integer.

    Options: ``operations`` [low, high] operator count, ``operands`` [low, high] operand values, ``operators``
    (a string over ``+-*``), ``boxed`` (ask for the answer in ``\\boxed{}``). The answer is read with
    :func:`extract_answer`.
    """

    name = "arithmetic"
    accuracy_component = "correct"
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
    accuracy_component = "correct"
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
