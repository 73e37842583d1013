"""A TRL run's saved settings, read without running its pickle.

``transformers.Trainer`` saves the run's ``GRPOConfig`` with ``torch.save`` as ``training_args.bin`` in every
checkpoint folder (``output_dir/checkpoint-N/``); TRL's completions files live in ``output_dir/completions/``. The
file is a zip holding one pickle. :func:`read_training_args` unpickles it with a loader that builds inert stand-ins
for every class the pickle names (no import, no constructor of the pickled program runs) and returns the fields as
plain values, so an import can check the settings it would otherwise have to trust: ``num_generations``,
``reward_weights``, ``scale_rewards``, ``chat_template_kwargs``, ``steps_per_generation``, ``num_iterations``,
``logging_steps``, ``eval_strategy`` and ``eval_steps``.
"""

from __future__ import annotations

import io
import pickle
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["read_training_args", "run_args"]

_CONTAINERS = {("builtins", "set"): set, ("builtins", "frozenset"): frozenset, ("builtins", "tuple"): tuple,
               ("builtins", "list"): list, ("builtins", "dict"): dict, ("builtins", "complex"): complex}


class _Inert:
    """A stand-in for any pickled object: keeps its constructor arguments and state, runs nothing."""

    def __init__(self, *args: Any, **_: Any) -> None:
        self.args = args
        self.state: Any = None

    def __setstate__(self, state: Any) -> None:
        self.state = state


class _Loader(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _CONTAINERS:
            return _CONTAINERS[(module, name)]
        if (module, name) == ("collections", "OrderedDict"):
            return dict
        if (module, name) == ("copyreg", "_reconstructor"):
            return lambda cls, base, state: _Inert()
        return type(name, (_Inert,), {})

    def persistent_load(self, pid: Any) -> None:  # torch's tensor storages: a config holds none
        return None


def _plain(value: Any) -> Any:
    if isinstance(value, _Inert):
        if isinstance(value.state, dict):
            return {str(k): _plain(v) for k, v in value.state.items()}
        return _plain(value.args[0]) if len(value.args) == 1 else [_plain(a) for a in value.args]  # an enum
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_plain(v) for v in value]
    return value


def read_training_args(path: str | Path) -> dict[str, Any] | None:
    """The fields of a ``training_args.bin`` as plain values (enums as their values); None if it is unreadable."""
    try:
        with zipfile.ZipFile(path) as z:
            name = next((n for n in z.namelist() if n.endswith("data.pkl")), None)
            if name is None:
                return None
            data = z.read(name)
        obj = _Loader(io.BytesIO(data)).load()
    except (OSError, zipfile.BadZipFile, pickle.UnpicklingError, EOFError, AttributeError, TypeError, ValueError):
        return None
    out = _plain(obj)
    return out if isinstance(out, dict) else None


def run_args(completions: Sequence[str | Path]) -> tuple[dict[str, Any] | None, str | None]:
    """The saved settings of the TRL run that wrote these completions files: the ``training_args.bin`` of its newest
    checkpoint (``output_dir/checkpoint-N/``, beside ``output_dir/completions/``), and its path; (None, None)."""
    dirs = {Path(f).resolve().parent for f in completions}
    found = []
    for d in dirs:
        root = d.parent if d.name == "completions" else d
        found += [*root.glob("checkpoint-*/training_args.bin"), root / "training_args.bin"]

    def step(p: Path) -> int:
        tail = p.parent.name.rpartition("-")[2]
        return int(tail) if tail.isdigit() else -1

    for f in sorted((p for p in found if p.is_file()), key=step, reverse=True):
        args = read_training_args(f)
        if args is not None:
            return args, str(f)
    return None, None
