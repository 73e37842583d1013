"""Atomic file output: write under a temporary name in the target folder, then rename.

A failed or interrupted write never leaves a half-written file at the final path, and an existing file
is replaced only once the new one is complete.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

__all__ = ["append_jsonl", "atomic_path", "read_jsonl", "truncate_jsonl", "write_text_atomic"]


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it to ``path`` if the block succeeds.

    Example:
        >>> import tempfile
        >>> d = Path(tempfile.mkdtemp())
        >>> with atomic_path(d / "out.txt") as tmp:
        ...     _ = tmp.write_text("done")
        >>> (d / "out.txt").read_text(), sorted(p.name for p in d.iterdir())
        ('done', ['out.txt'])
    """
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.with_name(f".{final.name}.tmp-{os.getpid()}")
    try:
        yield tmp
        os.replace(tmp, final)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` to ``path`` atomically and return the path."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def append_jsonl(path: str | os.PathLike, record: dict[str, Any]) -> None:
    """Append ``record`` as one JSON line and flush it to disk (a crash loses at most the line being written)."""
    with Path(path).open("a", encoding="utf-8") as fh:
        fh.write(json.dumps(record, allow_nan=True) + "\n")
        fh.flush()
        os.fsync(fh.fileno())


def read_jsonl(path: str | os.PathLike) -> list[dict[str, Any]]:
    """The JSON objects of a JSONL file, one per non-empty line (a missing file has none)."""
    path = Path(path)
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def truncate_jsonl(path: str | os.PathLike, before_step: int) -> None:
    """Keep only the records with ``step < before_step`` (atomically); a resumed run rewrites the rest."""
    path = Path(path)
    if not path.exists():
        return
    keep = [line for line in path.read_text(encoding="utf-8").splitlines()
            if line.strip() and json.loads(line).get("step", -1) < before_step]
    write_text_atomic(path, "".join(k + "\n" for k in keep))
