"""A task's identity: what defines its rewards, so that everything derived from a run keeps the run's task.

A :class:`TaskIdentity` is a task's registry name and its options with every seed-drawn option filled in (the toy
tree's target path, which the seed draws when the option is unset). Two tasks with equal identities score every
completion alike; the seed that drew an option and the list of drawn options are kept for the record, and are not
part of the comparison.

Where it is written: ``task.json`` in a run folder (by the trainer) and the metadata key ``prm_probe.task`` of a
rollout log (by the trainer and ``prm-probe sample``). Where it is read: :func:`run_task_identity` and
:func:`log_task_identity`, which rebuild it from the saved settings for runs and logs written before it was
recorded (the draw is the same code, so the rebuilt identity is the one the run trained on).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prm_probe.errors import ConfigError, PrmProbeError

__all__ = ["METADATA_KEY", "TaskIdentity", "identity_from_config", "log_task_identity",
           "run_task_identity", "write_run_identity"]

#: The rollout-log metadata key holding the identity as JSON.
METADATA_KEY = "prm_probe.task"


def _plain(value: Any) -> Any:
    """``value`` as JSON would give it back (tuples become lists), so identities compare by content."""
    return json.loads(json.dumps(value, sort_keys=True, default=str))


@dataclass(frozen=True)
class TaskIdentity:
    """A task's registry ``name`` and resolved ``options`` (seed-drawn ones included); ``drawn`` names the options
    the ``seed`` drew. Equality compares ``name`` and ``options`` only."""

    name: str
    options: dict[str, Any]
    drawn: tuple[str, ...] = field(default=(), compare=False)
    seed: int | None = field(default=None, compare=False)

    @classmethod
    def of(cls, name: str, options: Mapping[str, Any], *, drawn: tuple[str, ...] = (),
           seed: int | None = None) -> TaskIdentity:
        return cls(str(name), _plain(dict(options)), tuple(drawn), None if seed is None else int(seed))

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "options": self.options, "drawn": list(self.drawn), "seed": self.seed}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str = "the task record") -> TaskIdentity:
        if not (isinstance(data, Mapping) and isinstance(data.get("name"), str)
                and isinstance(data.get("options"), Mapping)):
            raise ConfigError(f"{where} is {str(data)[:80]!r}; expected an object with 'name' and 'options'; "
                              "restore it or delete it (prm_probe rebuilds it from the config)")
        seed = data.get("seed")
        return cls.of(data["name"], data["options"], drawn=tuple(data.get("drawn") or ()),
                      seed=seed if isinstance(seed, int) else None)

    def differences(self, other: TaskIdentity) -> dict[str, tuple[Any, Any]]:
        """The settings on which the two differ: ``task.name`` (then alone: two tasks' options do not compare), or
        each ``task.options.<key>`` -> (self's, other's)."""
        if self.name != other.name:
            return {"task.name": (self.name, other.name)}
        out: dict[str, tuple[Any, Any]] = {}
        for key in sorted(set(self.options) | set(other.options)):
            a, b = self.options.get(key), other.options.get(key)
            if a != b:
                out[f"task.options.{key}"] = (a, b)
        return out

    def describe(self, other: TaskIdentity, names: tuple[str, str] = ("this", "that")) -> str:
        """The differences in words, e.g. ``task.options.target ('RRRL' in the run, 'LRRR' in the log)``."""
        return "; ".join(f"{key} ({a!r} in {names[0]}, {b!r} in {names[1]})"
                         for key, (a, b) in self.differences(other).items())

    def build(self, *, seed: int = 0, train_size: int = 2000, val_size: int = 64):
        """The task itself (its seed then only picks problems: every seed-drawn option is fixed here)."""
        from prm_probe.training.tasks import get_task

        return get_task(self.name, seed=seed, options=dict(self.options), train_size=train_size, val_size=val_size)

    def __str__(self) -> str:
        opts = ", ".join(f"{k}={v!r}" for k, v in self.options.items())
        return f"{self.name}({opts})"


def identity_from_config(config: Mapping[str, Any]) -> TaskIdentity:
    """The identity of the task a run config (``config.json``, or a log's ``config`` metadata) describes.

    Accepts the trainer's config (``task`` a table) and the flat shape older ``prm-probe sample`` logs wrote
    (``task`` a name, ``task_options``, ``seed``).

    Raises:
        ConfigError: the config names no task, or its task cannot be built.
    """
    from prm_probe.training.tasks import get_task

    task = config.get("task")
    seed = config.get("seed", 0)
    seed = int(seed) if isinstance(seed, int | float) else 0
    if isinstance(task, Mapping) and isinstance(task.get("name"), str):
        built = get_task(task["name"], seed=seed, options=dict(task.get("options") or {}),
                         train_size=int(task.get("train_size", 2000)), val_size=int(task.get("val_size", 64)))
    elif isinstance(task, str):
        n = max(int(config.get("groups", 1) or 1), 1)
        built = get_task(task, seed=seed, options=dict(config.get("task_options") or {}), train_size=n, val_size=n)
    else:
        raise ConfigError(f"the config names no task (task = {task!r}); expected a run's config.json or a log's "
                          "'config' metadata; check the file")
    return built.identity()


def run_task_identity(run_dir: str | os.PathLike) -> TaskIdentity:
    """The task a run trained on: its ``task.json``, or rebuilt from its ``config.json`` for older runs.

    Raises:
        ConfigError: neither file can be read, or they disagree.
    """
    from prm_probe.core.runs import RunFolder

    folder = RunFolder(run_dir)
    try:
        config = json.loads(folder.config.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"run '{run_dir}' has no readable config.json ({exc}); expected a run folder; "
                          "check the path") from None
    record = folder.task
    if not record.is_file():
        return identity_from_config(config)
    try:
        saved = TaskIdentity.from_dict(json.loads(record.read_text(encoding="utf-8")), f"'{record}'")
    except ValueError as exc:
        raise ConfigError(f"'{record}' is not valid JSON ({exc}); expected the run's task record; restore or "
                          "delete it") from None
    try:
        rebuilt = identity_from_config(config)
    except PrmProbeError:  # the config's task cannot be built here (e.g. a moved JSONL file): the record stands
        return saved
    if saved != rebuilt:
        raise ConfigError(f"run '{run_dir}' records task {saved} in task.json but its config.json builds "
                          f"{rebuilt} ({saved.describe(rebuilt, ('task.json', 'config.json'))}); expected the two to "
                          "agree; restore the run's files")
    return saved


def log_task_identity(meta: Mapping[str, str]) -> TaskIdentity | None:
    """The task a rollout log was scored with: its ``prm_probe.task`` metadata, or rebuilt from its ``config``
    metadata for older logs; None when the log records neither (e.g. an imported log).

    Raises:
        ConfigError: the recorded identity is unreadable, or its task cannot be built.
    """
    raw = meta.get(METADATA_KEY)
    if raw:
        try:
            return TaskIdentity.from_dict(json.loads(raw), f"the log's {METADATA_KEY} metadata")
        except ValueError:
            raise ConfigError(f"the log's {METADATA_KEY} metadata is not JSON ({raw[:60]!r}); expected the task "
                              "record prm_probe writes; rewrite the log") from None
    raw = meta.get("config")
    try:
        config = json.loads(raw) if raw else None
    except ValueError:
        config = None
    if not isinstance(config, Mapping) or config.get("task") is None:
        return None
    return identity_from_config(config)


def write_run_identity(run_dir: str | os.PathLike, identity: TaskIdentity) -> Path:
    """Write ``task.json`` into a run folder (atomically)."""
    from prm_probe.core.files import write_text_atomic
    from prm_probe.core.runs import RunFolder

    return write_text_atomic(RunFolder(run_dir).task, json.dumps(identity.to_dict(), indent=2, sort_keys=True))
