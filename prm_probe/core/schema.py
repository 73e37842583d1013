"""The rollout-log contract: column types, per-column documentation, and validation.

A rollout log has one row per sampled completion (the columns are listed by ``prm-probe schema``). Parquet
is canonical; JSONL with the same column names is accepted on input. Run-level facts (tokenizer, EOS/pad
ids, config, versions) live in the file's key-value metadata under the keys of :data:`METADATA_KEYS`.

This module checks tables; it does not read files (``rollouts``) or compute anything (``trie``, ``stats``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from prm_probe.errors import SchemaError

__all__ = [
    "FINISH_REASONS",
    "GROUP_KEYS",
    "METADATA_KEYS",
    "REQUIRED_COLUMNS",
    "ROLLOUT_SCHEMA",
    "SCHEMA_VERSION",
    "LogProblem",
    "conform",
    "find_problems",
    "schema_markdown",
    "type_name",
]

#: Version of the rollout-log format written by this library. Logs with a newer version are refused.
SCHEMA_VERSION = 1

#: Columns that identify a group: one prompt's G completions at one step of one run.
GROUP_KEYS = ("run_id", "step", "group")

FINISH_REASONS = ("stop", "length")


def _f(name: str, typ: pa.DataType, required: bool, doc: str) -> pa.Field:
    return pa.field(name, typ, nullable=not required,
                    metadata={"doc": doc, "required": "yes" if required else "no"})


ROLLOUT_SCHEMA = pa.schema([
    _f("run_id", pa.string(), True, "run identifier"),
    _f("step", pa.int32(), True, "optimizer step at which the group was sampled"),
    _f("group", pa.int32(), True, "group index within (run_id, step)"),
    _f("sample", pa.int16(), True, "index within the group, 0..G-1"),
    _f("prompt_id", pa.string(), True, "stable prompt identity across steps (dataset id, or a hash of the prompt)"),
    _f("completion_ids", pa.list_(pa.int32()), True,
       "completion token ids, pads removed; EOS kept as the last token when the sampler emitted one"),
    _f("reward", pa.float64(), True, "scalar outcome reward"),
    _f("prompt", pa.string(), False, "prompt text"),
    _f("prompt_ids", pa.list_(pa.int32()), False, "prompt token ids as fed to the policy (chat template applied)"),
    _f("completion", pa.string(), False, "decoded completion text"),
    _f("finish_reason", pa.string(), False, "'stop' (EOS or stop rule) or 'length' (truncated)"),
    _f("advantage", pa.float32(), False, "outcome advantage the trainer used, if any"),
    _f("logps", pa.list_(pa.float32()), False, "sampler per-token log-probs, same length as completion_ids"),
])

REQUIRED_COLUMNS = tuple(f.name for f in ROLLOUT_SCHEMA if f.metadata[b"required"] == b"yes")

#: Parquet key-value metadata written with every log (all values are strings; ``config`` is JSON).
METADATA_KEYS = {
    "prm_probe.schema_version": f"rollout-log format version (this library writes {SCHEMA_VERSION})",
    "prm_probe.version": "prm_probe version that wrote the file",
    "prm_probe.token_source": "'sampled' (ids as generated) or 'retokenized' (statistics are approximate)",
    "tokenizer": "tokenizer name or path",
    "eos_token_id": "EOS token id",
    "pad_token_id": "padding token id",
    "model": "policy model name or path",
    "git_hash": "commit of the code that made the log",
    "config": "the resolved run configuration as JSON",
    "prm_probe.trl_eval_check": "TRL imports: how completions files written at evaluation steps were found, or why not",
    "prm_probe.trl_eval_steps_dropped": "TRL imports: steps whose file held evaluation completions (left out)",
    "prm_probe.task": "the task that scored the log: name and options, seed-drawn ones (toy tree: target) filled in",
    "prm_probe.sampled_from": "`prm-probe sample` of a run: the run folder whose task and settings it used",
    "prm_probe.task_override": "a sample whose task settings differ from its run's, allowed explicitly: what differs",
    "prm_probe.step_origin": "the first step's number: '0' (prm_probe, the authors' code) or '1' (TRL, verl)",
    "prm_probe.step_meaning": "what the step column counts, in words",
    "prm_probe.step_coverage": "which steps the log holds; prm_probe.step_sample 'true' when steps were not logged",
    "prm_probe.retokenization_text_changed": "re-tokenised logs: completions whose decode(encode(text)) != text",
    "prm_probe.retokenization_note": "re-tokenised logs: what their ids can and cannot tell",
    "prm_probe.retokenization_ids_differ": "logs with sampled ids and text: how many re-tokenised ids would differ",
}

_FIX_TEXT_IDS = ("log token ids rather than text, or convert a text log with "
                 "`prm-probe import FORMAT LOG --tokenizer PATH`")


@dataclass(frozen=True)
class LogProblem:
    """One validation finding: where it is, what is wrong, and how to fix it."""

    column: str
    where: str
    message: str
    fix: str
    severity: str = field(default="error")  # "error" or "note" (legal but unusual data)

    def __str__(self) -> str:
        if self.column == "-":  # a problem with the whole log: its message already says how to fix it
            return f"{self.severity}: {self.message}"
        return f"{self.severity}: column '{self.column}' ({self.where}): {self.message}; fix: {self.fix}"


def _is_text(t: pa.DataType) -> bool:
    return pa.types.is_string(t) or pa.types.is_large_string(t) or (pa.types.is_dictionary(t) and (
        pa.types.is_string(t.value_type) or pa.types.is_large_string(t.value_type)))


def _is_list(t: pa.DataType) -> bool:
    return pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t)


def _cast_column(col: pa.ChunkedArray, name: str, target: pa.DataType) -> pa.ChunkedArray:
    """Cast one column to its schema type, or raise a SchemaError saying what was found."""
    src = col.type
    if col.type == target:
        return col
    if pa.types.is_dictionary(src):
        col = pc.cast(col, src.value_type)
        src = col.type
    if _is_list(target):
        if _is_text(src):
            raise SchemaError(f"column '{name}' holds text ({type_name(src)}); expected {type_name(target)} token ids; "
                              f"{_FIX_TEXT_IDS}")
        if not _is_list(src):
            raise SchemaError(f"column '{name}' holds {src}; expected {target}; write one list of numbers per row")
        value = src.value_type
        if pa.types.is_null(value):  # every list empty (JSONL of empty arrays)
            return pc.cast(col, target)
        ok = pa.types.is_integer(value) if pa.types.is_integer(target.value_type) else (
            pa.types.is_integer(value) or pa.types.is_floating(value))
        if not ok:
            raise SchemaError(f"column '{name}' holds lists of {value}; expected {target}; "
                              "write numbers, not strings, inside the lists")
    elif pa.types.is_string(target):
        if not (_is_text(src) or pa.types.is_integer(src)):
            raise SchemaError(f"column '{name}' holds {src}; expected string; write it as text")
    elif pa.types.is_integer(target):
        if pa.types.is_floating(src):
            arr = col.to_numpy(zero_copy_only=False)
            if not np.all(np.isfinite(arr) & (arr == np.round(arr))):
                raise SchemaError(f"column '{name}' holds non-integer floats; expected {target}; write whole numbers")
        elif not pa.types.is_integer(src):
            raise SchemaError(f"column '{name}' holds {src}; expected {target}; write whole numbers")
    elif pa.types.is_floating(target):
        if not (pa.types.is_floating(src) or pa.types.is_integer(src) or pa.types.is_boolean(src)):
            raise SchemaError(f"column '{name}' holds {src}; expected {target}; write numbers")
    try:
        return pc.cast(col, target)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        first = str(exc).splitlines()[0]
        raise SchemaError(f"column '{name}' of type {src} cannot be cast to {target} ({first}); "
                          f"write values that fit {target}") from None


def conform(table: pa.Table) -> pa.Table:
    """Check the required columns and cast every known column to its schema type.

    Extra columns (reward components ``reward_<name>`` and others) pass through untouched.

    Raises:
        SchemaError: a required column is missing or a column cannot be cast losslessly.
    """
    missing = [c for c in REQUIRED_COLUMNS if c not in table.column_names]
    if missing:
        raise SchemaError(
            f"missing required column(s) {', '.join(repr(m) for m in missing)} (found: "
            f"{', '.join(table.column_names) or 'none'}); expected {', '.join(REQUIRED_COLUMNS)}; "
            "see `prm-probe schema` for what each column holds")
    for i, name in enumerate(table.column_names):
        if name in ROLLOUT_SCHEMA.names:
            target = ROLLOUT_SCHEMA.field(name).type
            if table.column(i).type != target:
                table = table.set_column(i, ROLLOUT_SCHEMA.field(name).with_nullable(True),
                                         _cast_column(table.column(i), name, target))
    return table


def _rows(idx: np.ndarray, limit: int = 5) -> str:
    shown = ", ".join(str(int(i)) for i in idx[:limit])
    more = f" and {len(idx) - limit} more" if len(idx) > limit else ""
    return f"row(s) {shown}{more}"


def value_problems(table: pa.Table, row_offset: int = 0) -> list[LogProblem]:
    """The value checks every reader needs (the one implementation; :func:`find_problems` and the readers use
    it): required values not null, ``reward`` finite, token ids non-negative."""
    out: list[LogProblem] = []
    for name in REQUIRED_COLUMNS:
        nulls = table.column(name).null_count
        if nulls:
            idx = np.flatnonzero(table.column(name).is_null().to_numpy(zero_copy_only=False)) + row_offset
            out.append(LogProblem(name, _rows(idx), f"{nulls} missing value(s)", "fill in every required value"))
    reward = table.column("reward").to_numpy(zero_copy_only=False).astype(np.float64)
    bad = np.flatnonzero(~np.isfinite(reward))
    if len(bad):
        out.append(LogProblem("reward", _rows(bad + row_offset),
                           f"{len(bad)} reward(s) are NaN or infinite (first: {reward[bad[0]]})",
                           "score every completion with a finite reward (0.0 for a failed parse)"))
    ids = pc.list_flatten(table.column("completion_ids"))
    if len(ids) and pc.min(ids).as_py() is not None and pc.min(ids).as_py() < 0:
        parents = pc.list_parent_indices(table.column("completion_ids")).to_numpy(zero_copy_only=False)
        neg = np.unique(parents[ids.to_numpy(zero_copy_only=False) < 0]) + row_offset
        out.append(LogProblem("completion_ids", _rows(neg), f"negative token id {pc.min(ids).as_py()}",
                           "remove padding/ignore markers such as -100 from completion_ids"))
    return out


def find_problems(table: pa.Table, row_offset: int = 0) -> list[LogProblem]:
    """Check a conformed table's values and groups; return every problem found (empty when valid).

    Checks: required values not null; ``reward`` finite; token ids non-negative; ``(run_id, step, group,
    sample)`` unique and ``sample`` exactly 0..G-1 per group; ``prompt_id`` constant per group;
    ``finish_reason`` in {stop, length}; ``logps`` as long as ``completion_ids``. Legal but unusual data
    (groups of size 1, empty completions, all-equal rewards) is reported with severity ``note``.

    Args:
        table: a table that went through :func:`conform`.
        row_offset: added to reported row numbers (when the table is one part of a larger log).
    """
    out = value_problems(table, row_offset)
    if "finish_reason" in table.column_names:
        fr = table.column("finish_reason")
        wrong = pc.and_(pc.invert(pc.is_in(fr, pa.array(FINISH_REASONS))), pc.is_valid(fr))
        widx = np.flatnonzero(wrong.to_numpy(zero_copy_only=False))
        if len(widx):
            out.append(LogProblem("finish_reason", _rows(widx + row_offset),
                               f"value {fr[int(widx[0])].as_py()!r} is not one of {FINISH_REASONS}",
                               "write 'stop' or 'length'"))
    if "logps" in table.column_names:
        lp = table.column("logps")
        n_lp = pc.list_value_length(lp).to_numpy(zero_copy_only=False)
        n_ids = pc.list_value_length(table.column("completion_ids")).to_numpy(zero_copy_only=False)
        present = lp.is_valid().to_numpy(zero_copy_only=False)
        widx = np.flatnonzero(present & (n_lp != n_ids))
        if len(widx):
            out.append(LogProblem("logps", _rows(widx + row_offset),
                               f"{len(widx)} row(s) have len(logps) != len(completion_ids)",
                               "log one log-prob per completion token"))
    out.extend(_group_problems(table, row_offset))
    return out


def _group_keys(table: pa.Table):
    import pandas as pd

    keys = pd.DataFrame({
        "run_id": table.column("run_id").to_numpy(zero_copy_only=False),
        "step": table.column("step").to_numpy(zero_copy_only=False),
        "group": table.column("group").to_numpy(zero_copy_only=False),
    })
    return keys


def _key(index_value) -> tuple:
    """A group key as plain Python values (no numpy reprs in messages)."""
    return tuple(x.item() if hasattr(x, "item") else x for x in index_value)


def _group_problems(table: pa.Table, row_offset: int) -> list[LogProblem]:

    out: list[LogProblem] = []
    if table.num_rows == 0:
        return out
    df = _group_keys(table)
    df["sample"] = table.column("sample").to_numpy(zero_copy_only=False)
    df["prompt_id"] = table.column("prompt_id").to_numpy(zero_copy_only=False)
    df["reward"] = table.column("reward").to_numpy(zero_copy_only=False)
    df["empty"] = pc.list_value_length(table.column("completion_ids")).to_numpy(zero_copy_only=False) == 0
    dup = df.duplicated(["run_id", "step", "group", "sample"], keep="first").to_numpy()
    if dup.any():
        r = np.flatnonzero(dup)
        k = df.iloc[int(r[0])]
        out.append(LogProblem("sample", _rows(r + row_offset),
                           f"{int(dup.sum())} duplicate (run_id, step, group, sample) key(s), first "
                           f"{_key((k['run_id'], k['step'], k['group'], k['sample']))}",
                           "give each completion of a group its own sample index 0..G-1"))
    g = df.groupby(list(GROUP_KEYS), sort=False, dropna=False)
    agg = g.agg(n=("sample", "size"), smin=("sample", "min"), smax=("sample", "max"),
                nuniq=("sample", "nunique"), prompts=("prompt_id", "nunique"),
                rmin=("reward", "min"), rmax=("reward", "max"), n_empty=("empty", "sum"))
    # Duplicated indices are reported above; here: gaps or indices that do not start at 0.
    gaps = agg[(agg.nuniq == agg.n) & ((agg.smin != 0) | (agg.smax != agg.n - 1))]
    if len(gaps):
        key = gaps.index[0]
        out.append(LogProblem("sample", f"{len(gaps)} group(s), first (run_id, step, group) = {_key(key)}",
                           f"sample indices run {int(gaps.iloc[0].smin)}..{int(gaps.iloc[0].smax)} for "
                           f"{int(gaps.iloc[0].n)} row(s); expected exactly 0..G-1",
                           "number the completions of each group 0..G-1 with no gaps"))
    multi = agg[agg.prompts > 1]
    if len(multi):
        out.append(LogProblem("prompt_id", f"{len(multi)} group(s), first {_key(multi.index[0])}",
                           "more than one prompt_id in a group", "use one prompt_id per group"))
    singles = agg[agg.n == 1]
    if len(singles):
        out.append(LogProblem("sample", f"{len(singles)} group(s), first {_key(singles.index[0])}",
                           "group of size 1: its advantages are undefined and it has no overlap",
                           "sample G >= 2 completions per prompt to train with GRPO", severity="note"))
    flat = agg[(agg.n > 1) & (agg.rmin == agg.rmax)]
    if len(flat):
        out.append(LogProblem("reward", f"{len(flat)} of {len(agg)} group(s)",
                           "all rewards of the group are equal, so every advantage is 0",
                           "nothing to fix: these groups carry no policy gradient", severity="note"))
    n_empty = int(agg["n_empty"].sum())
    if n_empty:
        out.append(LogProblem("completion_ids", f"{n_empty} row(s)", "empty completion(s)",
                           "nothing to fix: they contribute no tokens", severity="note"))
    sizes = agg.n.unique()
    if len(sizes) > 1:
        out.append(LogProblem("sample", f"{len(agg)} group(s)",
                           f"group sizes differ: {sorted(int(s) for s in sizes)[:8]}",
                           "nothing to fix: statistics are computed per group", severity="note"))
    return out


def type_name(t: pa.DataType) -> str:
    """A short, numpy-style name of an Arrow type: ``list<int32>``, ``float64``, ``string``."""
    if _is_list(t):
        return f"list<{type_name(t.value_type)}>"
    return {"double": "float64", "float": "float32", "halffloat": "float16"}.get(str(t), str(t))


def schema_markdown() -> str:
    """Return the schema as a Markdown table (the README's table is generated from this)."""
    lines = ["| column | arrow type | required | meaning |", "|---|---|---|---|"]
    for f in ROLLOUT_SCHEMA:
        lines.append(f"| `{f.name}` | {type_name(f.type)} | {f.metadata[b'required'].decode()} | "
                     f"{f.metadata[b'doc'].decode()} |")
    lines.append("| `reward_<name>` | float64 | no | reward components (format, correctness, ...) |")
    return "\n".join(lines)
