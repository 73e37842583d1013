"""Tasks and outcome rewards of the built-in GRPO trainer, in a small registry users extend by module path.

A :class:`Task` makes deterministic, disjoint train/validation :class:`Problem` lists from its seed and sizes,
turns a problem into prompt token ids, and scores a completion into a :class:`Score` (a finite scalar reward
plus named components, logged as ``reward_<name>``; ``accuracy_component`` names the one whose validation mean is
``val_accuracy``). :func:`get_task` resolves:

* built-ins ``toy-tree`` (docs/science.md §7.1), ``arithmetic`` and ``countdown`` (generated in code, offline);
* ``reasoning-gym:<name>`` (needs ``reasoning-gym``) and ``jsonl:<path>`` (problem/answer rows, graded by
  math-verify on the last ``\\boxed{}``, or by an exact string match);
* ``pkg.module:ClassName``: any :class:`Task` subclass, built with ``seed``, ``options``, ``train_size``,
  ``val_size``.

Scorers never raise on garbage completions: they give reward 0. Left out: sampling, stop rules and
batching (the trainer's), and anything that downloads data. Pure Python + numpy; tokenizers are passed in
as objects with the Hugging Face API, so this module never imports torch or transformers.

A task's :class:`TaskIdentity` (``identity``: registry name and resolved options, seed-drawn ones included)
travels with every run folder (``task.json``) and rollout log (metadata ``prm_probe.task``), so samples and
analyses of a run use the run's rewards and refuse another's.

Modules: ``base`` (the interface), ``identity``, ``answers`` (answer extraction), ``toy_tree``, ``arithmetic``
(``arithmetic``, ``countdown``), ``external`` (reasoning-gym, JSONL); the registry is here.
"""

from __future__ import annotations

import importlib
from typing import Any

from prm_probe.errors import ConfigError, UnknownNameError, close_matches
from prm_probe.training.tasks.answers import extract_answer, last_boxed
from prm_probe.training.tasks.arithmetic import Arithmetic, Countdown
from prm_probe.training.tasks.base import Problem, Score, Task
from prm_probe.training.tasks.external import JsonlTask, ReasoningGym
from prm_probe.training.tasks.identity import (
    TaskIdentity,
    identity_from_config,
    log_task_identity,
    run_task_identity,
)
from prm_probe.training.tasks.toy_tree import ToyTree

__all__ = ["TASKS", "Arithmetic", "Countdown", "JsonlTask", "Problem", "ReasoningGym", "Score", "Task", "TaskIdentity",
           "ToyTree", "extract_answer", "get_task", "identity_from_config", "last_boxed", "list_tasks",
           "log_task_identity", "option_defaults", "run_task_identity"]

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
                          "prm_probe.training.tasks.Task; subclass Task")
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
        task = (ReasoningGym if prefix == "reasoning-gym" else JsonlTask)(rest, **kwargs)
        task.registry_name = name
        return task
    elif colon:
        cls = _load_class(name)
    else:
        raise UnknownNameError(f"unknown task {name!r}; expected one of {', '.join(list_tasks())}, "
                               f"reasoning-gym:<name>, jsonl:<path> or pkg.module:Class; "
                               f"{close_matches(name, [*TASKS, *_PREFIXES])}pick one of those")
    task = cls(**kwargs)
    task.registry_name = name
    return task


def option_defaults(name: str) -> dict[str, Any]:
    """The option defaults of task ``name`` (what ``[task.options]`` may set, and the type of each), without
    building the task; empty for a name that cannot be resolved (building it then says why)."""
    prefix, colon, _ = name.partition(":")
    if name in TASKS:
        return dict(TASKS[name].defaults)
    if colon and prefix in _PREFIXES:
        return dict((ReasoningGym if prefix == "reasoning-gym" else JsonlTask).defaults)
    try:
        return dict(_load_class(name).defaults) if colon else {}
    except (UnknownNameError, ConfigError):
        return {}
