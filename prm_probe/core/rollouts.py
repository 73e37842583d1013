"""Reading and writing rollout logs, and packing their groups for the process-set engine.

A log is a Parquet file, a folder of Parquet part files (searched recursively), a glob pattern, or a
JSONL file (one object per line, token ids as JSON arrays; metadata in ``<name>.meta.json`` beside it).
Token columns never pass through pandas: :func:`pack_groups` reads the Arrow values and offsets directly.

Streaming: :func:`iter_steps` yields one training step at a time, reading Parquet row group by row group,
so memory is bounded by the largest step rather than the log. It needs each ``(run_id, step)`` to occupy
consecutive rows (as every writer here produces); otherwise it warns and sorts the log in memory.

This module does not compute statistics (``stats``) or define the columns (``schema``).
"""

from __future__ import annotations

import functools
import glob as globlib
import itertools
import json
import logging
import os
import shlex
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from prm_probe.core.files import atomic_path
from prm_probe.core.schema import ROLLOUT_SCHEMA, SCHEMA_VERSION, conform
from prm_probe.core.trie import PackedGroups
from prm_probe.errors import LogReadError, SchemaError

__all__ = [
    "BUNDLED_LOG",
    "BUNDLED_LOGS",
    "GroupedRollouts",
    "LogSource",
    "RolloutWriter",
    "iter_steps",
    "log_metadata",
    "pack_groups",
    "prefetch",
    "read_metadata",
    "read_rollouts",
    "resolve_log",
    "rollout_table",
    "write_rollouts",
]

logger = logging.getLogger(__name__)

_PARQUET = (".parquet", ".pq")
_JSONL = (".jsonl", ".ndjson", ".json")


@dataclass(frozen=True)
class LogSource:
    """The files of one log, in reading order."""

    files: tuple[Path, ...]

    @property
    def is_jsonl(self) -> bool:
        return bool(self.files) and self.files[0].suffix.lower() in _JSONL


#: The rollout log shipped in the package (one step of SmolLM2-135M-Instruct, 64 groups of 8).
BUNDLED_LOG = Path(__file__).resolve().parents[1] / "data" / "sample_rollouts.parquet"
#: Short names of packaged logs, accepted wherever a log path is (a file of that name in the working folder wins).
BUNDLED_LOGS = {"sample": BUNDLED_LOG}


def resolve_log(source: str | os.PathLike | Sequence[str | os.PathLike]) -> LogSource:
    """Find the files of a log given as a file, a folder, a glob pattern, a list of those, or the short name of a
    packaged log (``"sample"``: :data:`BUNDLED_LOG`, from any folder).

    Raises:
        LogReadError: nothing matches, or the files mix Parquet and JSONL.
    """
    if isinstance(source, (list, tuple)):
        files = [f for s in source for f in resolve_log(s).files]
        return _checked(files, str(source))
    text = os.fspath(source)
    path = Path(text)
    if text in BUNDLED_LOGS and not path.exists():
        path = BUNDLED_LOGS[text]
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in _PARQUET + _JSONL
                       and not p.name.startswith(".") and not p.name.endswith(".meta.json"))
        if not files:
            raise LogReadError(f"folder '{path}' holds no .parquet or .jsonl files; expected a rollout log; "
                               "point at the folder that holds the part files")
        return _checked(files, text)
    if path.is_file():
        return _checked([path], text)
    if any(ch in text for ch in "*?["):
        files = sorted(Path(p) for p in globlib.glob(text, recursive=True) if Path(p).is_file())
        if not files:
            raise LogReadError(f"pattern '{text}' matches no file; expected rollout log files; check the pattern")
        return _checked(files, text)
    raise LogReadError(f"'{text}' does not exist; expected a Parquet or JSONL rollout log, a folder of "
                       "parts or a glob; check the path")


def _checked(files: list[Path], what: str) -> LogSource:
    kinds = {f.suffix.lower() in _JSONL for f in files}
    if len(kinds) > 1:
        raise LogReadError(f"'{what}' mixes Parquet and JSONL files; expected one format; convert one of them")
    for f in files:
        if f.stat().st_size == 0:
            raise LogReadError(f"file '{f}' is empty (0 bytes); expected a Parquet or JSONL rollout log; "
                               "re-run whatever wrote it")
    return LogSource(tuple(files))


def read_metadata(source: str | os.PathLike | LogSource) -> dict[str, str]:
    """Return the key-value metadata of a log's first file (Parquet footer, or JSONL ``.meta.json``)."""
    log = source if isinstance(source, LogSource) else resolve_log(source)
    first = log.files[0]
    if log.is_jsonl:
        meta = first.with_name(first.name + ".meta.json")
        if not meta.exists():
            meta = first.with_suffix(".meta.json")
        if not meta.exists():
            return {}
        try:
            raw = json.loads(meta.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise LogReadError(f"metadata file '{meta}' is not valid JSON ({exc.msg}, line {exc.lineno}); "
                               "expected one JSON object; fix or delete it") from None
        return {str(k): v if isinstance(v, str) else json.dumps(v) for k, v in raw.items()}
    md = _parquet_file(first).schema_arrow.metadata or {}
    return {k.decode(): v.decode() for k, v in md.items() if not k.startswith(b"ARROW:") and k != b"pandas"}


def _check_version(meta: dict[str, str], where: str) -> None:
    version = meta.get("prm_probe.schema_version")
    if version is not None and version.isdigit() and int(version) > SCHEMA_VERSION:
        raise SchemaError(f"'{where}' has schema version {version}; this prm_probe reads up to {SCHEMA_VERSION}; "
                          "upgrade prm_probe")


#: What a rollout-log reader expects, for messages about a file that is something else.
_EXPECTED = "expected a Parquet rollout log (or JSONL with the columns of `prm-probe schema`)"
#: The import formats that read JSON (``prm-probe import --help``).
_JSON_FORMATS = "verl, grpo-prm, jsonl-ids or generic"


def _convert_with(path: Path) -> str:
    """The fix for another trainer's JSON log handed to a reader of rollout logs: the command that converts it."""
    return (f"if it is another trainer's log, convert it with `prm-probe import FORMAT {shlex.quote(str(path))} -o "
            f"LOG.parquet` (FORMAT: {_JSON_FORMATS})")


def _parquet_file(path: Path) -> pq.ParquetFile:
    if path.suffix.lower() in (".csv", ".tsv"):  # a table of another trainer, not a rollout log
        raise LogReadError(f"file '{path}' is a {path.suffix[1:].upper()} table; expected a Parquet or JSONL rollout "
                           f"log; convert it with `prm-probe import generic {path} -o LOG.parquet --tokenizer TOK` "
                           "(map its columns with --field completion=COLUMN and the like)")
    try:
        return pq.ParquetFile(path)
    except (pa.ArrowInvalid, pa.ArrowIOError, OSError) as exc:
        reason = str(exc).splitlines()[0]
        raise LogReadError(f"file '{path}' is not a readable Parquet file ({reason}); expected a complete "
                           "Parquet rollout log; it may be truncated or still being written: re-create it") from None


def _read_jsonl(path: Path) -> pa.Table:
    import pyarrow.json as pajson

    try:
        table = pajson.read_json(path)
    except (pa.ArrowInvalid, OSError) as exc:
        reason = str(exc).splitlines()[0]
        if path.suffix.lower() == ".json":  # one JSON document (a grpo-prm stats.json, say), not one row per line
            raise LogReadError(f"file '{path}' is a JSON file that is not one row per line ({reason}); {_EXPECTED}; "
                               f"fix: {_convert_with(path)}") from None
        raise LogReadError(f"file '{path}' is not valid JSONL ({reason}); expected one JSON object per line "
                           "with the columns of `prm-probe schema`; fix the offending line") from None
    return table


def _read_file(path: Path, columns: Sequence[str] | None, is_jsonl: bool) -> pa.Table:
    if is_jsonl:
        table = _read_jsonl(path)
        missing = [c for c in _required() if c not in table.column_names]
        if missing:  # said here, where every field of the file is known, with the way to convert it
            raise SchemaError(f"file '{path}' is a JSON file without the rollout-log column(s) "
                              f"{', '.join(repr(m) for m in missing)} (found: {', '.join(table.column_names) or 'none'}"
                              f"); {_EXPECTED}; fix: {_convert_with(path)}")
        return table.select([c for c in columns if c in table.column_names]) if columns else table
    pf = _parquet_file(path)
    cols = [c for c in columns if c in pf.schema_arrow.names] if columns else None
    try:
        return pf.read(columns=cols)
    except (pa.ArrowInvalid, OSError) as exc:
        raise LogReadError(f"file '{path}' could not be read ({str(exc).splitlines()[0]}); expected a complete "
                           "Parquet file; re-create it") from None


def read_rollouts(source: str | os.PathLike | LogSource, columns: Sequence[str] | None = None) -> pa.Table:
    """Read a whole log into one Arrow table conformed to the schema (types cast, extras kept).

    Args:
        source: a file, folder, glob or :class:`LogSource`.
        columns: read only these (required columns are always read).

    Raises:
        LogReadError: the log is missing, empty, truncated or not Parquet/JSONL.
        SchemaError: a required column is missing or has the wrong type.
    """
    log = source if isinstance(source, LogSource) else resolve_log(source)
    _check_version(read_metadata(log), str(log.files[0]))
    wanted = None if columns is None else list(dict.fromkeys([*_required(), *columns]))
    tables = [conform(_read_file(f, wanted, log.is_jsonl)) for f in log.files]
    try:
        table = pa.concat_tables(tables, promote_options="permissive")
    except pa.ArrowInvalid as exc:
        raise SchemaError(f"the files of the log have incompatible columns ({str(exc).splitlines()[0]}); "
                          "expected the same schema in every part; rewrite the odd part") from None
    return table


def _required() -> list[str]:
    from prm_probe.core.schema import REQUIRED_COLUMNS

    return list(REQUIRED_COLUMNS)


def iter_steps(source: str | os.PathLike | LogSource, columns: Sequence[str] | None = None) -> Iterator[pa.Table]:
    """Yield the log one ``(run_id, step)`` at a time, each table conformed to the schema.

    Reads Parquet row group by row group, so memory is bounded by one step plus one row group.
    """
    log = source if isinstance(source, LogSource) else resolve_log(source)
    _check_version(read_metadata(log), str(log.files[0]))
    wanted = None if columns is None else list(dict.fromkeys([*_required(), *columns]))
    if log.is_jsonl or not _steps_contiguous(log):
        if not log.is_jsonl:
            logger.warning("the rows of a step are not consecutive in '%s'; sorting the whole log in memory",
                           log.files[0])
        table = read_rollouts(log, wanted)
        yield from _split_steps(_sorted_by_step(table))
        return
    pending: pa.Table | None = None
    for batch in _iter_batches(log, wanted):
        batch = conform(batch)
        table = batch if pending is None else pa.concat_tables([pending, batch], promote_options="permissive")
        if table.num_rows == 0:
            continue
        codes = _step_codes(table)
        last_start = int(np.flatnonzero(codes != codes[-1])[-1]) + 1 if (codes != codes[-1]).any() else 0
        if last_start:
            yield from _split_steps(table.slice(0, last_start))
        pending = table.slice(last_start)
    if pending is not None and pending.num_rows:
        yield from _split_steps(pending)


def prefetch(items: Iterator, depth: int = 2) -> Iterator:
    """Iterate ``items`` in a background thread, up to ``depth`` ahead (Parquet decoding releases the GIL).

    Exceptions raised while producing an item are re-raised in the consumer, in order.
    """
    import queue
    import threading

    box: queue.Queue = queue.Queue(maxsize=depth)
    done = object()
    stop = threading.Event()

    def work() -> None:
        try:
            for item in items:
                if stop.is_set():
                    return
                box.put((item, None))
        except BaseException as exc:  # handed to the consumer
            box.put((None, exc))
        box.put((done, None))

    thread = threading.Thread(target=work, name="prm-probe-prefetch", daemon=True)
    thread.start()
    try:
        while True:
            item, exc = box.get()
            if exc is not None:
                raise exc
            if item is done:
                return
            yield item
    finally:
        stop.set()
        while thread.is_alive():  # unblock a producer waiting on a full queue
            try:
                box.get_nowait()
            except queue.Empty:
                thread.join(timeout=0.05)


def _iter_batches(log: LogSource, columns: list[str] | None) -> Iterator[pa.Table]:
    for f in log.files:
        pf = _parquet_file(f)
        cols = [c for c in columns if c in pf.schema_arrow.names] if columns else None
        for i in range(pf.num_row_groups):
            try:
                yield pf.read_row_group(i, columns=cols)
            except (pa.ArrowInvalid, OSError) as exc:
                raise LogReadError(f"row group {i} of '{f}' could not be read ({str(exc).splitlines()[0]}); "
                                   "expected a complete Parquet file; re-create it") from None


def _step_codes(table: pa.Table) -> np.ndarray:
    """(rows,) int64 code of each row's (run_id, step), equal codes for equal keys within the table."""
    run = pc.dictionary_encode(table.column("run_id")).combine_chunks().indices.to_numpy(zero_copy_only=False)
    step = table.column("step").to_numpy().astype(np.int64)
    return run.astype(np.int64) * (1 << 32) + (step - np.iinfo(np.int32).min)


def _strings(col) -> np.ndarray:
    """A string column as a numpy object array (pyarrow's own conversion would import pandas)."""
    return np.asarray(col.to_pylist(), dtype=object)


def _steps_contiguous(log: LogSource) -> bool:
    """True when each (run_id, step) occupies consecutive rows over all files (reads two columns only)."""
    seen: set[tuple[str, int]] = set()
    last: tuple[str, int] | None = None
    for f in log.files:
        pf = _parquet_file(f)
        if not {"run_id", "step"} <= set(pf.schema_arrow.names):
            return True  # conform() will report the missing column
        for i in range(pf.num_row_groups):
            t = pf.read_row_group(i, columns=["run_id", "step"])
            run = _strings(t.column("run_id"))
            step = t.column("step").to_numpy()
            if len(run) == 0:
                continue
            change = np.flatnonzero((run[1:] != run[:-1]) | (step[1:] != step[:-1])) + 1
            for k in np.concatenate([[0], change]):
                key = (str(run[k]), int(step[k]))
                if key != last:
                    if key in seen:
                        return False
                    seen.add(key)
                    last = key
    return True


def _sorted_by_step(table: pa.Table) -> pa.Table:
    codes = _step_codes(table) if table.num_rows else np.zeros(0, dtype=np.int64)
    order = np.argsort(codes, kind="stable")
    if len(order) and np.any(order != np.arange(len(order))):
        table = table.take(pa.array(order))
    return table


def _split_steps(table: pa.Table) -> Iterator[pa.Table]:
    if table.num_rows == 0:
        return
    codes = _step_codes(table)
    edges = np.concatenate([[0], np.flatnonzero(codes[1:] != codes[:-1]) + 1, [len(codes)]])
    for a, b in itertools.pairwise(edges):
        yield table.slice(int(a), int(b - a))


def rollout_table(columns: Mapping[str, Any], *, num_rows: int | None = None) -> pa.Table:
    """The one builder of rollout tables: every producer (trainer, sampler, importers, TRL telemetry, synthetic
    data) passes its columns here.

    Args:
        columns: column name → values (a sequence, numpy array or pyarrow array; a scalar is repeated over
            the rows). Known columns get their schema type (``prm-probe schema``), in the schema's order;
            ``reward_<name>`` components become float64; other extra columns keep pyarrow's inferred type.
        num_rows: the row count, needed only when every column is a scalar.

    Raises:
        SchemaError: a required column is missing, columns differ in length, or a value does not fit its type.
    """
    sized = [len(v) for v in columns.values() if not _is_scalar(v)]
    n = num_rows if num_rows is not None else (sized[0] if sized else 0)
    if any(k != n for k in sized):
        lengths = {name: len(v) for name, v in columns.items() if not _is_scalar(v)}
        raise SchemaError(f"rollout columns have different lengths {lengths}; expected {n} values in each; "
                          "build every column from the same rows")
    known = [name for name in ROLLOUT_SCHEMA.names if name in columns]
    extra = [name for name in columns if name not in ROLLOUT_SCHEMA.names]
    arrays = {}
    for name in known + extra:
        value = columns[name]
        typ = (ROLLOUT_SCHEMA.field(name).type if name in ROLLOUT_SCHEMA.names
               else pa.float64() if name.startswith("reward_") else None)
        if _is_scalar(value):
            value = [value] * n
        elif isinstance(value, np.ndarray) and value.ndim == 1 and typ is not None and pa.types.is_list(typ):
            value = list(value)
        if isinstance(value, (pa.Array, pa.ChunkedArray)):
            arrays[name] = value if typ is None or value.type == typ else value.cast(typ)
            continue
        try:
            arrays[name] = pa.array(value, type=typ)
        except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError) as exc:
            raise SchemaError(f"column {name!r} cannot be built as {typ} ({str(exc).splitlines()[0]}); expected "
                              "values of that type; fix the producer") from None
    return conform(pa.table(arrays))


def _is_scalar(value: Any) -> bool:
    return isinstance(value, (str, bytes, int, float, np.generic)) or value is None


@functools.lru_cache(maxsize=1)
def _git_hash() -> str:
    """The commit of the checkout prm_probe runs from, or '' outside a git checkout (a wheel install)."""
    import subprocess

    root = Path(__file__).resolve().parents[2]
    if not (root / ".git").exists():
        return ""
    try:
        done = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True,
                              timeout=5, check=False)
    except (OSError, subprocess.SubprocessError):
        return ""
    return done.stdout.strip() if done.returncode == 0 else ""


def log_metadata(*, token_source: str, model: str = "", tokenizer: str = "", eos_token_id: Any = None,
                 pad_token_id: Any = None, config: Any = None, **extra: Any) -> dict[str, str]:
    """The file-level metadata of a rollout log, built in one place for every producer (the keys are listed
    by ``prm-probe schema``); ``schema_version``, ``prm_probe.version`` and ``git_hash`` are added here.

    Args:
        token_source: ``sampled`` (ids as the sampler produced them) or ``retokenized`` (ids re-made from text).
        config: a JSON string or a JSON-able object (dumped with ``default=str``).
        **extra: further keys (values dumped to JSON unless strings).
    """
    from prm_probe import __version__

    meta = {"prm_probe.schema_version": str(SCHEMA_VERSION), "prm_probe.version": __version__,
            "prm_probe.token_source": token_source, "model": str(model), "tokenizer": str(tokenizer or model)}
    if eos_token_id is not None:
        meta["eos_token_id"] = str(eos_token_id)
    if pad_token_id is not None:
        meta["pad_token_id"] = str(pad_token_id)
    if config is not None:
        meta["config"] = config if isinstance(config, str) else json.dumps(config, default=str)
    commit = _git_hash()
    if commit:
        meta["git_hash"] = commit
    for key, value in extra.items():
        meta[key] = value if isinstance(value, str) else json.dumps(value, default=str)
    return meta


def _schema_metadata(existing: Mapping[bytes, bytes] | None, metadata: Mapping[str, Any] | None) -> dict:
    from prm_probe import __version__

    meta = dict(existing or {})
    meta.update({b"prm_probe.schema_version": str(SCHEMA_VERSION).encode(),
                 b"prm_probe.version": __version__.encode()})
    for k, v in (metadata or {}).items():
        meta[k.encode()] = (v if isinstance(v, str) else json.dumps(v)).encode()
    return meta


class RolloutWriter:
    """Write a rollout log as a stream of tables (row groups), atomically: the file appears, complete, when the
    ``with`` block ends without an error, and never half-written. Every table is conformed first.

    Example::

        with RolloutWriter("log.parquet", metadata=log_metadata(token_source="sampled")) as writer:
            for table in tables:
                writer.write(table)
    """

    def __init__(self, path: str | os.PathLike, metadata: Mapping[str, Any] | None = None) -> None:
        self.path = Path(path)
        self._metadata = metadata
        self._writer: pq.ParquetWriter | None = None
        self._atomic: Any = None
        self._tmp: Path | None = None

    def __enter__(self) -> RolloutWriter:
        self._atomic = atomic_path(self.path)
        self._tmp = self._atomic.__enter__()
        return self

    def write(self, table: pa.Table) -> None:
        table = conform(table)
        table = table.replace_schema_metadata(_schema_metadata(table.schema.metadata, self._metadata))
        if self._writer is None:
            self._writer = pq.ParquetWriter(self._tmp, table.schema, compression="zstd")
        self._writer.write_table(table)

    def __exit__(self, *exc: Any) -> bool:
        if self._writer is not None:
            self._writer.close()
        elif exc[0] is None:  # nothing written: fail through the atomic context, so no temporary file stays
            error = SchemaError(f"no rows were written to '{self.path}'; expected at least one table; check the "
                                "producer")
            self._atomic.__exit__(SchemaError, error, None)
            raise error
        return bool(self._atomic.__exit__(*exc))


def write_rollouts(table: pa.Table, path: str | os.PathLike, metadata: dict[str, str] | None = None,
                   row_group_size: int | None = None) -> Path:
    """Write a table as a Parquet rollout log, atomically, with prm_probe's metadata keys.

    The table is conformed first (types cast), so a written log always reads back valid types.
    """
    table = conform(table)
    table = table.replace_schema_metadata(_schema_metadata(table.schema.metadata, metadata))
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp, row_group_size=row_group_size, compression="zstd")
    return Path(path)


def _check_values(table: pa.Table) -> None:
    """Raise SchemaError for values the statistics cannot use (nulls, non-finite rewards, negative ids): the
    first of :func:`prm_probe.core.schema.value_problems`, in one line."""
    from prm_probe.core.schema import value_problems

    problems = value_problems(table)
    if problems:
        p = problems[0]
        raise SchemaError(f"column '{p.column}' at {p.where}: {p.message}; expected valid values; {p.fix} "
                          "(`prm-probe validate LOG` lists every problem)")


def _check_samples(sample: np.ndarray, group_offsets: np.ndarray, runs: list, run_codes: np.ndarray,
                   step: np.ndarray, group: np.ndarray) -> None:
    """Raise SchemaError unless each group's sample indices are exactly 0..G-1 (rows already sorted)."""
    sizes = np.diff(group_offsets)
    expected = np.arange(len(sample)) - np.repeat(group_offsets[:-1], sizes)
    wrong = sample != expected
    if wrong.any():
        row = int(np.flatnonzero(wrong)[0])
        g = int(np.searchsorted(group_offsets, row, side="right") - 1)
        a, b = int(group_offsets[g]), int(group_offsets[g + 1])
        key = (str(runs[int(run_codes[a])]), int(step[a]), int(group[a]))
        found = sorted(int(x) for x in sample[a:b])
        shown = ", ".join(map(str, found[:10])) + (", ..." if len(found) > 10 else "")
        raise SchemaError(f"column 'sample' of group (run_id, step, group) = {key} holds indices [{shown}]; "
                          f"expected exactly 0..{b - a - 1} with no duplicates or gaps; number the completions "
                          "of each group 0..G-1")


@dataclass(frozen=True)
class GroupedRollouts:
    """A conformed table ordered by group, with its groups packed for the engine.

    Attributes:
        table: rows sorted by (run_id, step, group, sample).
        packed: completion token ids as flat arrays with completion and group offsets.
        group_keys: per group (g,) arrays ``run_id`` (str objects), ``step``, ``group``, ``prompt_id``.
        reward: (n,) float64 rewards aligned with the completions.
        sample: (n,) int64 sample index of each completion.
    """

    table: pa.Table
    packed: PackedGroups
    group_keys: dict[str, np.ndarray]
    reward: np.ndarray
    sample: np.ndarray

    @property
    def groups(self):
        """One row per group: ``run_id, step, group, group_size, prompt_id`` (a pandas DataFrame)."""
        import pandas as pd

        k = self.group_keys
        return pd.DataFrame({"run_id": pd.array(k["run_id"], dtype="string"), "step": k["step"],
                             "group": k["group"], "group_size": self.packed.group_sizes,
                             "prompt_id": pd.array(k["prompt_id"], dtype="string")})


def pack_groups(table: pa.Table) -> GroupedRollouts:
    """Order a conformed table by group and pack its completions for :func:`prm_probe.core.trie.process_sets`.

    Groups are the rows sharing ``(run_id, step, group)``; within a group, rows are ordered by ``sample``.
    """
    _check_values(table)
    run = pc.dictionary_encode(table.column("run_id")).combine_chunks()
    run_codes = run.indices.to_numpy(zero_copy_only=False).astype(np.int64)
    step = table.column("step").to_numpy().astype(np.int64)
    group = table.column("group").to_numpy().astype(np.int64)
    sample = table.column("sample").to_numpy().astype(np.int64)
    order = np.lexsort((sample, group, step, run_codes))
    if len(order) and np.any(order != np.arange(len(order))):
        table = table.take(pa.array(order))
        run_codes, step, group, sample = run_codes[order], step[order], group[order], sample[order]
    n = table.num_rows
    new = np.ones(n, dtype=bool)
    if n > 1:
        new[1:] = (run_codes[1:] != run_codes[:-1]) | (step[1:] != step[:-1]) | (group[1:] != group[:-1])
    starts = np.flatnonzero(new)
    group_offsets = np.append(starts, n).astype(np.int64)
    ids = table.column("completion_ids").combine_chunks()
    if isinstance(ids, pa.ChunkedArray):  # pragma: no cover - pyarrow < 15
        ids = ids.chunk(0)
    raw_offsets = ids.offsets.to_numpy().astype(np.int64)
    values = ids.values.to_numpy(zero_copy_only=False)
    offsets = raw_offsets - raw_offsets[0]
    tokens = np.ascontiguousarray(values[raw_offsets[0]:raw_offsets[-1]], dtype=np.int32)
    _check_samples(sample, group_offsets, run.dictionary.to_pylist(), run_codes, step, group)
    packed = PackedGroups(tokens, offsets, group_offsets)
    run_names = np.asarray(run.dictionary.to_pylist(), dtype=object)
    prompt = _strings(table.column("prompt_id"))
    keys = {"run_id": run_names[run_codes[starts]] if n else np.zeros(0, dtype=object),
            "step": step[starts], "group": group[starts],
            "prompt_id": prompt[starts] if n else np.zeros(0, dtype=object)}
    reward = table.column("reward").to_numpy(zero_copy_only=False).astype(np.float64)
    return GroupedRollouts(table=table, packed=packed, group_keys=keys, reward=reward, sample=sample)
