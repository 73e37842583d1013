"""Tasks from outside: reasoning-gym datasets (extra ``tasks``) and JSONL problem/answer files."""

from __future__ import annotations

import importlib
import importlib.util
import logging
from pathlib import Path
from typing import Any, ClassVar

from prm_probe.core.files import read_jsonl_strict
from prm_probe.errors import ConfigError, UnknownNameError, close_matches
from prm_probe.training.tasks.answers import _mv_timeout, _normalise, last_boxed
from prm_probe.training.tasks.base import _INSTALL, BOXED_INSTRUCTION, Problem, Score, Task

logger = logging.getLogger(__name__)

#: What a third-party scorer may raise on a garbage answer (counted as wrong); anything else propagates.
#: (Programming errors of ours, such as NameError or ImportError, and interrupts are not among them.)
SCORER_FAILURES: tuple[type[BaseException], ...] = (ValueError, TypeError, ArithmeticError, AttributeError,
                                                    IndexError, KeyError, LookupError, RecursionError,
                                                    RuntimeError, TimeoutError, SyntaxError)


class ReasoningGym(Task):
    """A ``reasoning-gym`` dataset (``reasoning-gym:<name>``); its scorer thresholded to a binary reward.

    The first ``train_size`` entries are train, the rest validation. The answer is the last ``\\boxed{}``.
    """

    name = "reasoning-gym"
    accuracy_component = "correct"

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
        entry = self._entries.get(problem.id)
        if entry is None:
            raise ConfigError(f"problem {problem.id!r} is not one of task {self.name}'s problems; expected a problem "
                              "from this task's problems(); score problems of the task that made them")
        try:
            raw = self._dataset.score_answer(answer=boxed, entry=entry) if boxed else 0.0
            correct = float(raw == 1.0)
        except SCORER_FAILURES:  # a scorer failing on a garbage answer is a wrong answer, not a crash
            correct = 0.0
        return Score(correct, {"correct": correct, "format": float(boxed is not None)})




class JsonlTask(Task):
    """Problem/answer rows of a JSONL file (``jsonl:<path>``): the last ``val_size`` rows are validation, the first
    ``train_size`` of the rest train. Reward (the paper's): 1 when the last ``\\boxed{}`` matches the answer under
    math-verify (``matcher="math-verify"``) or after string normalisation (``matcher="exact"``). As in the authors'
    code, a gold answer math-verify cannot parse marks every completion correct (logged, ``gold_unparsed`` 1).
    """

    name = "jsonl"
    accuracy_component = "correct"
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
        for line_no, row in read_jsonl_strict(file, ConfigError):
            for key in [o["problem_field"], o["answer_field"]] + ([o["id_field"]] if o["id_field"] else []):
                if key not in row:
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
            except SCORER_FAILURES as exc:
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
            except SCORER_FAILURES:  # math-verify failing on a garbage answer is a wrong answer
                correct = 0.0
        return Score(correct, {"correct": correct, "format": fmt, "gold_unparsed": 0.0})
