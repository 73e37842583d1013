"""Atomic file output: write under a temporary name in the target folder, then rename.

A failed or interrupted write never leaves a half-written file at the final path, and an existing file
is replaced only once the new one is complete.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

__all__ = ["TABLE_SUFFIXES", "append_jsonl", "atomic_path", "check_table_path", "read_jsonl", "truncate_jsonl",
           "write_table", "write_text_atomic"]

#: the suffixes :func:`write_table` writes.
TABLE_SUFFIXES = (".csv", ".parquet")


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


def check_table_path(path: str | os.PathLike) -> Path:
    """Refuse an output path that :func:`write_table` cannot write; call it before any work is done.

    Raises:
        ConfigError: the suffix is not ``.csv`` or ``.parquet``.
    """
    from prm_probe.errors import ConfigError

    out = Path(path)
    if out.suffix.lower() not in TABLE_SUFFIXES:
        raise ConfigError(f"output '{path}' has suffix '{out.suffix}'; expected .csv or .parquet; rename the output")
    return out


def write_table(table: Any, path: str | os.PathLike) -> Path:
    """The one table writer: a pandas DataFrame or a pyarrow Table, as CSV or Parquet by the suffix of ``path``,
    atomically (see :func:`atomic_path`). Returns the path.

    Raises:
        ConfigError: the suffix is not ``.csv`` or ``.parquet`` (nothing is written).
    """
    out = check_table_path(path)
    csv = out.suffix.lower() == ".csv"
    with atomic_path(out) as tmp:
        if hasattr(table, "to_parquet"):  # pandas
            table.to_csv(tmp, index=False) if csv else table.to_parquet(tmp, index=False)
        elif csv:
            import pyarrow.csv as pacsv

            pacsv.write_csv(table, tmp)
        else:
            import pyarrow.parquet as pq

            pq.write_table(table, tmp)
    return out


def append_jsonl(path: str | os.PathLike, record: dict[str, Any]) -> None:
    """Append ``record`` as one JSON line and flush it to disk (a crash loses at most the line being written)."""
    with Path(path).open("a", encoding="utf-8") as fh:
        fh.write(json.dumps(record, allow_nan=True) + "\n")
        fh.flush()
        os.fsync(fh.fileno())


def read_jsonl_lines(path: str | os.PathLike, keep: Callable[[dict[str, Any]], bool] | None = None
                     ) -> tuple[list[dict[str, Any]], list[int]]:
    """The one JSONL reader: the JSON objects of a file, one per non-empty line, and the 1-based numbers of the
    lines that are not JSON objects (e.g. a last line cut mid-write by a killed run) or that ``keep`` rejects.
    A missing file has none; a ``.gz`` file is read decompressed.

    Raises:
        OSError: the file exists but cannot be read.
    """
    path = Path(path)
    if not path.is_file():
        return [], []
    records, bad = [], []
    if path.suffix == ".gz":  # an archived file (e.g. a finished run's metrics, committed gzipped)
        import gzip

        text = gzip.decompress(path.read_bytes()).decode("utf-8", errors="replace")
    else:
        text = path.read_text(encoding="utf-8", errors="replace")
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError:
            record = None
        if isinstance(record, dict) and (keep is None or keep(record)):
            records.append(record)
        else:
            bad.append(number)
    return records, bad


def read_jsonl_strict(path: str | os.PathLike, error: type[Exception]) -> list[tuple[int, dict[str, Any]]]:
    """``(line number, object)`` for every non-empty line of a JSONL input file that must be whole (a foreign log,
    a task file): the first line that is not a JSON object raises ``error`` naming the line and the fix."""
    out = []
    with Path(path).open(encoding="utf-8") as fh:
        for number, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise error(f"line {number} of '{path}' is not JSON ({exc.msg}); expected one JSON object per "
                            "line; fix or remove that line") from None
            if not isinstance(record, dict):
                raise error(f"line {number} of '{path}' holds a {type(record).__name__}; expected a JSON object; "
                            "write one object per line")
            out.append((number, record))
    return out


def read_jsonl(path: str | os.PathLike) -> list[dict[str, Any]]:
    """The JSON objects of a JSONL file (unreadable lines skipped; a missing file has none)."""
    return read_jsonl_lines(path)[0]


def truncate_jsonl(path: str | os.PathLike, before_step: int) -> None:
    """Keep only the records with ``step < before_step`` (atomically); a resumed run rewrites the rest."""
    path = Path(path)
    if not path.exists():
        return
    keep = [r for r in read_jsonl(path) if isinstance(r.get("step"), int) and r["step"] < before_step]
    write_text_atomic(path, "".join(json.dumps(r, allow_nan=True) + "\n" for r in keep))
