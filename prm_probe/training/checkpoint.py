"""Run folders and checkpoints: atomic save, newest-complete lookup, and exact resume.

A run folder holds ``config.json``, ``metrics.jsonl``, ``validation.jsonl``, ``rollouts/step-NNNNNN.parquet``
and ``checkpoints/step-NNNNNN/``. A checkpoint folder holds ``model/`` (``save_pretrained``, safetensors,
with the tokenizer, so any checkpoint loads with ``--model`` or ``prm-probe sample``), ``optimizer.pt``,
``scheduler.pt`` and ``rng.pt`` (tensors only; loaded with ``weights_only=True``) and ``state.json`` (step,
data position, seed). It is written under a temporary name and renamed when complete, so an interruption or a
full disk never leaves a checkpoint that looks complete; the previous checkpoints stay intact.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from prm_probe.core.runs import RunFolder, checkpoint_dirs, is_run_dir, latest_checkpoint
from prm_probe.errors import CheckpointError

logger = logging.getLogger(__name__)

__all__ = [
    "checkpoint_dirs",
    "is_run_dir",
    "latest_checkpoint",
    "load_training_state",
    "prune_checkpoints",
    "save_checkpoint",
]


def save_checkpoint(run_dir: str | os.PathLike, step: int, model, tokenizer, optimizer, scheduler,
                    state: dict[str, Any]) -> Path:
    """Write ``checkpoints/step-{step:06d}/`` atomically and return its path."""
    import torch

    final = RunFolder(run_dir).checkpoint(step)
    root = final.parent
    root.mkdir(parents=True, exist_ok=True)
    tmp = root / f".{final.name}.tmp-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    try:
        tmp.mkdir()
        model.save_pretrained(tmp / "model", safe_serialization=True)
        tokenizer.save_pretrained(tmp / "model")
        torch.save(optimizer.state_dict(), tmp / "optimizer.pt")
        torch.save(scheduler.state_dict(), tmp / "scheduler.pt")
        torch.save(_rng_states(), tmp / "rng.pt")
        (tmp / "state.json").write_text(json.dumps({"step": step, **state}, indent=2), encoding="utf-8")
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


def _rng_states() -> dict[str, Any]:
    """Global torch RNG states. The trainer draws from per-step generators seeded from (seed, step), so
    these are saved for code that uses the global generators (dropout in a user's model, say)."""
    import torch

    states = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def load_training_state(checkpoint: Path, optimizer, scheduler) -> dict[str, Any]:
    """Restore optimizer, scheduler and global RNG states from ``checkpoint``; return its ``state.json``."""
    import torch

    try:
        optimizer.load_state_dict(torch.load(checkpoint / "optimizer.pt", weights_only=True))
        scheduler.load_state_dict(torch.load(checkpoint / "scheduler.pt", weights_only=True))
        rng = checkpoint / "rng.pt"
        if rng.is_file():
            states = torch.load(rng, weights_only=True)
            torch.set_rng_state(states["torch"])
            if "cuda" in states and torch.cuda.is_available():
                torch.cuda.set_rng_state_all(states["cuda"])
        return json.loads((checkpoint / "state.json").read_text(encoding="utf-8"))
    except (OSError, RuntimeError, ValueError, KeyError) as exc:
        raise CheckpointError(f"checkpoint '{checkpoint}' is incomplete or corrupt ({str(exc).splitlines()[0]}); "
                              "expected model/, optimizer.pt, scheduler.pt and state.json; delete it to resume "
                              "from the previous one") from None


def prune_checkpoints(run_dir: str | os.PathLike, keep: int) -> None:
    """Delete all but the ``keep`` newest complete checkpoints (and stale temporary folders)."""
    root = Path(run_dir) / "checkpoints"
    if not root.is_dir():
        return
    for stale in root.glob(".step-*.tmp-*"):
        shutil.rmtree(stale, ignore_errors=True)
    dirs = checkpoint_dirs(run_dir)
    for old in dirs[: max(len(dirs) - max(keep, 1), 0)]:
        shutil.rmtree(old, ignore_errors=True)


#: The file a training process holds in its run folder: ``{"pid": ..., "host": ...}``.
LOCK_FILE = "train.lock"
#: A lock another host wrote is stale once untouched this long (the trainer touches it at every step).
STALE_AFTER = 1800.0


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


@contextmanager
def training_lock(run_dir: str | os.PathLike) -> Iterator[Path]:
    """Hold ``run_dir/train.lock`` while a process trains the run, so that a second one refuses instead of
    interleaving its steps with the first's (a resume truncates the metrics the other is still appending to).

    The trainer touches the file at every step. A lock is taken over (logged) when its process no longer runs on
    this host, or when another host wrote it and it is older than :data:`STALE_AFTER` seconds (a machine that
    restarted, or a new session with another host name); otherwise it is refused.

    Raises:
        CheckpointError: another live process holds the lock.
    """
    import socket

    path = Path(run_dir) / LOCK_FILE
    host = socket.gethostname()
    mine = json.dumps({"pid": os.getpid(), "host": host})
    for _ in range(3):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            try:
                held = json.loads(path.read_text(encoding="utf-8") or "{}")
            except (OSError, json.JSONDecodeError):
                held = {}
            pid, where = held.get("pid"), held.get("host")
            try:
                age = time.time() - path.stat().st_mtime
            except FileNotFoundError:  # released meanwhile
                continue
            dead = isinstance(pid, int) and where == host and not _alive(pid)
            if dead or (where != host and age > STALE_AFTER):
                logger.warning("'%s': taking over the lock of process %s on %s (%s)", run_dir, pid, where,
                               "no longer running" if dead else f"untouched for {age:.0f} s")
                path.unlink(missing_ok=True)
                continue
            raise CheckpointError(f"'{run_dir}' is being trained by process {pid} on {where} ({path} exists); "
                                  "expected a run no other process is training; wait for it to finish or stop it "
                                  f"(delete {path} only if that process is gone)") from None
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(mine)
        break
    else:
        raise CheckpointError(f"could not take {path}: other processes keep taking it; expected one trainer per run "
                              "folder; stop the others")
    try:
        yield path
    finally:
        path.unlink(missing_ok=True)
