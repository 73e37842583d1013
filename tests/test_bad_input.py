"""Bad input is refused with one clear line; legal but unusual input is accepted and reported.

Each bad log goes through the API (a :class:`PrmProbeError` subclass, or a validation report whose errors
name the column) and through the CLI (exit 2, exactly one stderr line naming the column or file with an
expected/fix hint, never a traceback).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from prm_probe.cli import main
from prm_probe.core._testing import synthetic_rollouts
from prm_probe.core.prm import outcome_advantages
from prm_probe.core.rollouts import read_rollouts, write_rollouts
from prm_probe.core.schema import REQUIRED_COLUMNS
from prm_probe.core.stats import overlap_stats
from prm_probe.core.validate import validate_log
from prm_probe.errors import LogReadError, PrmProbeError, SchemaError

HINT = re.compile(r"expected|fix|upgrade|re-create|check", re.IGNORECASE)


def _base() -> pa.Table:
    """2 steps x 2 groups x G=4, 6 tokens each."""
    return synthetic_rollouts(steps=2, groups=2, group_size=4, length=6, seed=5)


def _replace(t: pa.Table, name: str, values) -> pa.Table:
    return t.set_column(t.schema.get_field_index(name), name, values)


def _pq(table: pa.Table, path: Path) -> Path:
    pq.write_table(table, path)  # plain pyarrow: no conform(), so bad types reach the reader
    return path


# ------------------------------------------------------------------------------------------ bad logs


@dataclass(frozen=True)
class Bad:
    """A bad log: how to make it, what names the problem, and which error the API raises."""

    make: Callable[[Path], Path]
    names: str  # the column or file name the message must contain ("{path}" = the file's name)
    error: type[PrmProbeError] | None  # raised by overlap_stats / read_rollouts; None: values only


def _missing(col: str) -> Bad:
    return Bad(lambda d: _pq(_base().drop_columns([col]), d / "log.parquet"), col, SchemaError)


def _reward_as_string(d: Path) -> Path:
    t = _base()
    return _pq(_replace(t, "reward", pc.cast(t.column("reward"), pa.string())), d / "log.parquet")


def _step_as_fraction(d: Path) -> Path:
    t = _base()
    return _pq(_replace(t, "step", pc.add(pc.cast(t.column("step"), pa.float64()), 0.5)), d / "log.parquet")


def _ids_as_text(d: Path) -> Path:
    t = _base()
    return _pq(_replace(t, "completion_ids", pa.array(["the cat sat"] * t.num_rows)), d / "log.parquet")


def _duplicate_sample(d: Path) -> Path:
    t = _base()
    s = t.column("sample").to_numpy().copy()
    s[1] = 0  # group (0, 0): samples 0, 0, 2, 3
    return _pq(_replace(t, "sample", pa.array(s, pa.int16())), d / "log.parquet")


def _gap_in_samples(d: Path) -> Path:
    t = _base()
    keep = np.ones(t.num_rows, dtype=bool)
    keep[2] = False  # group (0, 0): samples 0, 1, 3
    return _pq(t.filter(pa.array(keep)), d / "log.parquet")


def _reward_value(value: float) -> Callable[[Path], Path]:
    def make(d: Path) -> Path:
        t = _base()
        r = t.column("reward").to_numpy().copy()
        r[5] = value
        return _pq(_replace(t, "reward", pa.array(r)), d / "log.parquet")

    return make


def _negative_ids(d: Path) -> Path:
    t = _base()
    ids = t.column("completion_ids").to_pylist()
    ids[3][2] = -100
    return _pq(_replace(t, "completion_ids", pa.array(ids, pa.list_(pa.int32()))), d / "log.parquet")


def _empty_file(d: Path) -> Path:
    p = d / "log.parquet"
    p.write_bytes(b"")
    return p


def _truncated(d: Path) -> Path:
    full = write_rollouts(_base(), d / "full.parquet").read_bytes()
    (d / "full.parquet").unlink()
    p = d / "log.parquet"
    p.write_bytes(full[: len(full) // 2])
    return p


def _corrupt(d: Path) -> Path:
    p = d / "log.parquet"
    p.write_bytes(np.random.default_rng(0).bytes(4096))
    return p


def _invalid_jsonl(d: Path) -> Path:
    row = _base().slice(0, 1).to_pylist()[0]
    p = d / "log.jsonl"
    p.write_text(json.dumps(row) + "\n" + '{"run_id": "synthetic", "step": 0,,}\n', encoding="utf-8")
    return p


def _zero_rows(d: Path) -> Path:
    return write_rollouts(_base().slice(0, 0), d / "log.parquet")


def _no_logs_folder(d: Path) -> Path:
    f = d / "logs"
    f.mkdir()
    (f / "notes.txt").write_text("no rollouts here")
    return f


BAD: dict[str, Bad] = {
    **{f"missing_{c}": _missing(c) for c in REQUIRED_COLUMNS},
    "reward_as_string": Bad(_reward_as_string, "reward", SchemaError),
    "step_as_fraction": Bad(_step_as_fraction, "step", SchemaError),
    "completion_ids_as_text": Bad(_ids_as_text, "completion_ids", SchemaError),
    "duplicate_sample": Bad(_duplicate_sample, "sample", None),
    "gap_in_samples": Bad(_gap_in_samples, "sample", None),
    "nan_reward": Bad(_reward_value(float("nan")), "reward", None),
    "infinite_reward": Bad(_reward_value(float("inf")), "reward", None),
    "negative_token_id": Bad(_negative_ids, "completion_ids", None),
    "empty_file": Bad(_empty_file, "{path}", LogReadError),
    "truncated_parquet": Bad(_truncated, "{path}", LogReadError),
    "corrupt_parquet": Bad(_corrupt, "{path}", LogReadError),
    "nonexistent_path": Bad(lambda d: d / "missing.parquet", "{path}", LogReadError),
    "folder_without_logs": Bad(_no_logs_folder, "{path}", LogReadError),
    "invalid_jsonl": Bad(_invalid_jsonl, "{path}", LogReadError),
    "zero_rows": Bad(_zero_rows, "{path}", LogReadError),
}

#: Logs whose file reads and whose types are fine but whose values break the schema.
VALUE_ERRORS = [k for k, b in BAD.items() if b.error is None]
#: Logs that cannot be read or typed at all (every reader refuses them).
LOAD_ERRORS = [k for k, b in BAD.items() if b.error is not None and k != "zero_rows"]


def _name(bad: Bad, path: Path) -> str:
    return path.name if bad.names == "{path}" else f"'{bad.names}'"


def _one_error_line(err: str, must_name: str) -> str:
    assert "Traceback" not in err, err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1, f"expected exactly one stderr line, got {len(lines)}:\n{err}"
    line = lines[0]
    assert must_name in line, f"{must_name!r} not named in: {line}"
    assert HINT.search(line), f"no expected/fix hint in: {line}"
    return line


# --------------------------------------------------------------------------------------------- the API


@pytest.mark.parametrize("case", LOAD_ERRORS)
def test_api_refuses_unreadable_or_mistyped_log(case, tmp_path):
    bad = BAD[case]
    path = bad.make(tmp_path)
    with pytest.raises(bad.error) as info:
        read_rollouts(path)
    msg = str(info.value)
    assert "\n" not in msg
    assert _name(bad, path) in msg
    assert HINT.search(msg)
    with pytest.raises(bad.error):
        overlap_stats(path)


def test_api_refuses_log_with_zero_rows(tmp_path):
    path = _zero_rows(tmp_path)
    assert read_rollouts(path).num_rows == 0  # reading is fine; computing statistics of nothing is not
    with pytest.raises(LogReadError, match="no rows"):
        overlap_stats(path)


@pytest.mark.parametrize("case", list(BAD))
def test_validate_reports_errors_naming_the_column_or_file(case, tmp_path):
    bad = BAD[case]
    path = bad.make(tmp_path)
    report = validate_log(path)  # never raises for bad data
    assert not report.ok
    assert report.errors
    text = "\n".join(str(p) for p in report.errors)
    if bad.names == "{path}":
        assert any(path.name in str(p) for p in report.errors) or case == "zero_rows", text
    else:
        assert any(p.column == bad.names or f"'{bad.names}'" in p.message for p in report.errors), text


@pytest.mark.parametrize("case", VALUE_ERRORS)
def test_stats_refuses_values_that_break_the_schema(case, tmp_path):
    """overlap_stats must not silently compute statistics of a log that validate calls invalid."""
    path = BAD[case].make(tmp_path)
    with pytest.raises(SchemaError) as info:
        overlap_stats(path)
    assert BAD[case].names in str(info.value)


# --------------------------------------------------------------------------------------------- the CLI


@pytest.mark.parametrize("case", list(BAD))
def test_cli_stats_prints_one_line_and_exits_2(case, tmp_path, capsys):
    bad = BAD[case]
    path = bad.make(tmp_path)
    out_file = tmp_path / "out" / "stats.csv"
    before = sorted(p.name for p in tmp_path.rglob("*"))
    rc = main(["stats", str(path), "-o", str(out_file)])
    captured = capsys.readouterr()
    assert rc == 2, captured.out + captured.err
    line = _one_error_line(captured.err, _name(bad, path))
    assert line.startswith("prm-probe: error: ")
    assert not out_file.exists()
    assert sorted(p.name for p in tmp_path.rglob("*")) == before  # no output, no temp file


@pytest.mark.parametrize("case", list(BAD))
def test_cli_validate_prints_one_line_per_problem(case, tmp_path, capsys):
    """Each error is one line, prefixed like every other error of the command line and naming the log; a count
    follows only when there are several."""
    bad = BAD[case]
    path = bad.make(tmp_path)
    rc = main(["validate", str(path)])
    captured = capsys.readouterr()
    assert rc == 2
    assert "Traceback" not in captured.err
    lines = [ln for ln in captured.err.splitlines() if ln.strip()]
    errors = validate_log(path).errors
    if len(errors) > 1:
        assert lines[-1] == f"prm-probe: {len(errors)} errors in '{path}'"
        lines = lines[:-1]
    assert len(lines) == len(errors), captured.err
    for line in lines:
        assert line.startswith("prm-probe: error: ") and line.endswith(f"(in '{path}')")
        assert _name(bad, path) in line, f"{_name(bad, path)!r} not named in: {line}"
        assert HINT.search(line), f"no expected/fix hint in: {line}"
        assert "np.int" not in line and "np.float" not in line, f"numpy repr leaks into: {line}"


def test_cli_prm_refuses_bad_input_with_one_line(tmp_path, capsys):
    path = _ids_as_text(tmp_path)
    assert main(["prm", str(path), "--step", "0", "--group", "0"]) == 2
    _one_error_line(capsys.readouterr().err, "'completion_ids'")


def test_cli_debug_shows_the_traceback(tmp_path):
    path = _ids_as_text(tmp_path)
    with pytest.raises(SchemaError):
        main(["stats", str(path), "--debug"])


def test_cli_refuses_newer_schema_version(tmp_path, capsys):
    path = write_rollouts(_base(), tmp_path / "log.parquet", metadata={"prm_probe.schema_version": "99"})
    assert main(["stats", str(path)]) == 2
    _one_error_line(capsys.readouterr().err, "log.parquet")
    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr().err
    assert "schema version 99" in err and "Traceback" not in err


# ------------------------------------------------------------------------------------------ output files


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_stats_writes_output_file(suffix, tmp_path, sample_log, capsys):
    out = tmp_path / f"out{suffix}"
    assert main(["stats", str(sample_log), "-q", "-o", str(out)]) == 0
    assert out.exists()
    import pandas as pd

    frame = pd.read_csv(out) if suffix == ".csv" else pd.read_parquet(out)
    assert len(frame) == 4 and "path_depth_mean" in frame.columns
    assert sorted(p.name for p in tmp_path.iterdir()) == [out.name]
    assert "wrote 4 rows" in capsys.readouterr().out


def test_stats_refuses_unknown_output_suffix(tmp_path, sample_log, capsys):
    out = tmp_path / "out.txt"
    assert main(["stats", str(sample_log), "-q", "-o", str(out)]) == 2
    line = _one_error_line(capsys.readouterr().err, "out.txt")
    assert ".csv" in line and ".parquet" in line
    assert list(tmp_path.iterdir()) == []


def test_stats_failure_during_write_leaves_no_file(tmp_path, sample_log, monkeypatch, capsys):
    def boom(table, path, *args, **kwargs):
        Path(path).write_bytes(b"partial")
        raise PrmProbeError("simulated failure while writing; expected success; nothing to fix")

    monkeypatch.setattr(pq, "write_table", boom)
    out = tmp_path / "out.parquet"
    assert main(["stats", str(sample_log), "-q", "-o", str(out)]) == 2
    capsys.readouterr()
    assert list(tmp_path.iterdir()) == []


# ----------------------------------------------------------------------------- legal but unusual input


def _tiny(groups: list[list[list[int]]], rewards: list[list[float]], step: int = 0) -> pa.Table:
    rows = {"run_id": [], "step": [], "group": [], "sample": [], "prompt_id": [], "completion_ids": [], "reward": []}
    for g, (comps, rs) in enumerate(zip(groups, rewards, strict=True)):
        for i, (c, r) in enumerate(zip(comps, rs, strict=True)):
            rows["run_id"].append("r")
            rows["step"].append(step)
            rows["group"].append(g)
            rows["sample"].append(i)
            rows["prompt_id"].append(f"p{g}")
            rows["completion_ids"].append(c)
            rows["reward"].append(r)
    return pa.table(rows)


def test_groups_of_size_one_are_accepted_and_reported(tmp_path, capsys):
    t = _tiny([[[1, 2, 3]], [[1, 2], [1, 4], [5]]], [[1.0], [1.0, 0.0, 1.0]])
    path = write_rollouts(t, tmp_path / "log.parquet")
    result = overlap_stats(path)
    assert result.summary()["singleton_groups"] == 1
    single = result.groups[result.groups.group_size == 1].iloc[0]
    assert not single["nontrivial"] and not single["proper_branching"]
    assert np.isnan(outcome_advantages([1.0])).all()
    assert main(["stats", str(path)]) == 0
    captured = capsys.readouterr()
    assert "size 1" in captured.out
    assert "Traceback" not in captured.err and "Warning" not in captured.err
    report = validate_log(path)
    assert report.ok and any("size 1" in p.message for p in report.notes)
    assert main(["validate", str(path)]) == 0
    assert "size 1" in capsys.readouterr().out
    assert main(["prm", str(path), "--step", "0", "--group", "0"]) == 0
    out = capsys.readouterr().out
    assert "undefined" in out and "A=+nan" in out


def test_empty_completions_are_accepted_and_reported(tmp_path, capsys):
    t = _tiny([[[], [1, 2], [1, 3], []]], [[0.0, 1.0, 0.0, 1.0]])
    path = write_rollouts(t, tmp_path / "log.parquet")
    result = overlap_stats(path)
    assert result.summary()["empty_completions"] == 2
    assert result.completions["length"].tolist() == [0, 2, 2, 0]
    assert np.isnan(result.completions["intermediate_proportion"].iloc[0])
    assert main(["stats", str(path)]) == 0
    captured = capsys.readouterr()
    assert "2 empty completion(s)" in captured.out and "Warning" not in captured.err
    report = validate_log(path)
    assert report.ok and any(p.column == "completion_ids" for p in report.notes)
    assert main(["validate", str(path)]) == 0


def test_empty_completions_in_jsonl_are_accepted(tmp_path):
    p = tmp_path / "log.jsonl"
    rows = [{"run_id": "r", "step": 0, "group": 0, "sample": i, "prompt_id": "p", "completion_ids": [],
             "reward": float(i)} for i in range(3)]
    p.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    assert read_rollouts(p).column("completion_ids").type == pa.list_(pa.int32())
    assert overlap_stats(p).summary()["empty_completions"] == 3


def test_unequal_group_sizes_across_steps_are_accepted(tmp_path, capsys):
    t = pa.concat_tables([_tiny([[[1, 2], [1, 3]]], [[1.0, 0.0]], step=0),
                          _tiny([[[1, 2], [1, 3], [4], [4, 5]]], [[1.0, 0.0, 0.0, 1.0]], step=1)])
    path = write_rollouts(t, tmp_path / "log.parquet")
    assert overlap_stats(path).groups["group_size"].tolist() == [2, 4]
    report = validate_log(path)
    assert report.ok
    assert main(["validate", str(path)]) == 0
    assert main(["stats", str(path), "-q"]) == 0
    assert capsys.readouterr().err == ""


def test_all_equal_rewards_pass_validation_with_a_note(tmp_path, capsys):
    t = _tiny([[[1, 2], [1, 3], [4]], [[5], [5], [6]]], [[1.0, 1.0, 1.0], [0.0, 0.0, 0.0]])
    path = write_rollouts(t, tmp_path / "log.parquet")
    report = validate_log(path)
    assert report.ok and any(p.column == "reward" for p in report.notes)
    assert main(["validate", str(path)]) == 0
    captured = capsys.readouterr()
    assert "note: column 'reward'" in captured.out and "equal" in captured.out
    assert captured.err == ""
    result = overlap_stats(path)
    assert result.groups["zero_variance"].all()
    assert main(["stats", str(path), "-q"]) == 0
    assert "Warning" not in capsys.readouterr().err


def test_a_csv_given_as_a_log_points_at_the_generic_importer(tmp_path, capsys):
    path = tmp_path / "rollouts.csv"
    path.write_text("step,prompt,completion,reward\n0,1+1,2,1.0\n")
    for verb in (["stats"], ["validate"], ["prm", "--step", "0", "--group", "0"]):
        assert main([verb[0], str(path), *verb[1:]]) == 2
        (line,) = capsys.readouterr().err.strip().splitlines()
        assert line.startswith(
            f"prm-probe: error: file '{path}' is a CSV table; expected a Parquet or JSONL rollout log; convert it "
            f"with `prm-probe import generic {path} -o LOG.parquet --tokenizer TOK` (map its columns with --field "
            "completion=COLUMN and the like)"), verb


def test_a_foreign_json_log_points_at_the_importers(tmp_path, capsys):
    """Another trainer's JSONL (a verl dump) or one JSON document (a grpo-prm stats.json) given as a log: one line
    naming what is missing and the import command (idea and wording from the importer split's review)."""
    verl = tmp_path / "1.jsonl"
    verl.write_text('{"input": "q", "output": "a", "score": 1.0, "step": 1}\n')
    stats = tmp_path / "stats.json"
    stats.write_text('{"epochs": [\n{"steps": []}\n]}\n')
    for path, says in ((verl, "is a JSON file without the rollout-log column(s)"),
                       (stats, "is a JSON file")):  # read as one row without the columns, or not as rows
        assert main(["stats", str(path)]) == 2
        (line,) = capsys.readouterr().err.strip().splitlines()
        assert says in line and f"`prm-probe import FORMAT {path} -o LOG.parquet`" in line, line
