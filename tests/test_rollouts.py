"""The rollout-log format: files, folders, globs and JSONL read alike; streaming by step; atomic writes."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from prm_probe.core._testing import synthetic_rollouts
from prm_probe.core.rollouts import iter_steps, pack_groups, read_metadata, read_rollouts, resolve_log, write_rollouts
from prm_probe.core.schema import SCHEMA_VERSION
from prm_probe.core.stats import GROUP_COLUMNS, overlap_stats
from prm_probe.errors import PrmProbeError, SchemaError

# ----------------------------------------------------------------------------------------------- helpers


@pytest.fixture(scope="module")
def table() -> pa.Table:
    """3 steps x 4 groups x G=8, 32 tokens each: 96 rows, with shared prefixes growing over steps."""
    return synthetic_rollouts(steps=3, groups=4, group_size=8, length=32, seed=3)


@pytest.fixture(scope="module")
def reference(table, tmp_path_factory) -> pd.DataFrame:
    """Per-group statistics of ``table`` written as one Parquet file."""
    path = write_rollouts(table, tmp_path_factory.mktemp("ref") / "log.parquet")
    return overlap_stats(path).groups


def _write_jsonl(table: pa.Table, path: Path, metadata: dict | None = None, meta_name: str | None = None) -> Path:
    with path.open("w", encoding="utf-8") as fh:
        for row in table.to_pylist():
            fh.write(json.dumps(row) + "\n")
    if metadata is not None:
        (path.parent / (meta_name or f"{path.name}.meta.json")).write_text(json.dumps(metadata), encoding="utf-8")
    return path


def _step_of(table: pa.Table, step: int) -> pa.Table:
    return table.filter(pc.equal(table.column("step"), step))


def _assert_same_groups(got: pd.DataFrame, expected: pd.DataFrame, exact: bool = True) -> None:
    pd.testing.assert_frame_equal(got.reset_index(drop=True), expected.reset_index(drop=True),
                                  check_exact=exact, rtol=1e-12, atol=1e-12)


def _keys(t: pa.Table) -> list[tuple[str, int]]:
    return sorted({(r, int(s)) for r, s in zip(t.column("run_id").to_pylist(), t.column("step").to_pylist(),
                                                strict=True)})


# -------------------------------------------------------------------------------- one log, many layouts


def test_single_parquet_file_reads_back(table, reference, tmp_path):
    path = write_rollouts(table, tmp_path / "log.parquet")
    assert resolve_log(path).files == (path,)
    assert read_rollouts(path).num_rows == table.num_rows
    assert list(reference.columns[: len(GROUP_COLUMNS)]) == list(GROUP_COLUMNS)
    assert len(reference) == 12


def test_folder_of_parts_gives_same_stats(table, reference, tmp_path):
    folder = tmp_path / "parts"
    for step in range(3):
        write_rollouts(_step_of(table, step), folder / f"part-{step:05d}.parquet")
    (folder / "README.txt").write_text("not a log")  # other files are ignored
    assert len(resolve_log(folder).files) == 3
    _assert_same_groups(overlap_stats(folder).groups, reference)


def test_nested_folder_of_parts_gives_same_stats(table, reference, tmp_path):
    folder = tmp_path / "run"
    for step in range(3):
        write_rollouts(_step_of(table, step), folder / f"step={step:03d}" / "part-0.parquet")
    assert len(resolve_log(folder).files) == 3
    _assert_same_groups(overlap_stats(folder).groups, reference)


def test_glob_gives_same_stats(table, reference, tmp_path):
    for step in range(3):
        write_rollouts(_step_of(table, step), tmp_path / f"log-{step}.parquet")
    (tmp_path / "other.parquet").write_bytes(b"")  # not matched by the pattern
    pattern = str(tmp_path / "log-*.parquet")
    assert len(resolve_log(pattern).files) == 3
    _assert_same_groups(overlap_stats(pattern).groups, reference)


def test_list_of_files_gives_same_stats(table, reference, tmp_path):
    paths = [write_rollouts(_step_of(table, s), tmp_path / f"p{s}.parquet") for s in range(3)]
    _assert_same_groups(overlap_stats(resolve_log(paths)).groups, reference)


@pytest.mark.parametrize("meta_name", [None, "log.meta.json"])
def test_jsonl_gives_same_stats_and_metadata(table, reference, tmp_path, meta_name):
    meta = {"prm_probe.schema_version": str(SCHEMA_VERSION), "tokenizer": "tiny", "eos_token_id": 2,
            "config": {"group_size": 8}}
    path = _write_jsonl(table, tmp_path / "log.jsonl", meta, meta_name)
    _assert_same_groups(overlap_stats(path).groups, reference)
    got = read_metadata(path)
    assert got["tokenizer"] == "tiny"
    assert got["prm_probe.schema_version"] == str(SCHEMA_VERSION)
    assert got["eos_token_id"] == "2"  # metadata values are strings, non-strings as JSON
    assert json.loads(got["config"]) == {"group_size": 8}
    # values survive the JSON trip with the schema's types
    back = read_rollouts(path)
    assert back.column("completion_ids").type == pa.list_(pa.int32())
    assert back.column("completion_ids").to_pylist() == table.column("completion_ids").to_pylist()
    assert back.column("reward").to_pylist() == table.column("reward").to_pylist()


def test_jsonl_without_metadata_file_reads(table, tmp_path):
    path = _write_jsonl(table, tmp_path / "log.jsonl")
    assert read_metadata(path) == {}
    assert read_rollouts(path).num_rows == table.num_rows


def test_jsonl_and_parquet_copies_give_identical_step_and_completion_frames(table, tmp_path):
    a = overlap_stats(write_rollouts(table, tmp_path / "log.parquet"))
    b = overlap_stats(_write_jsonl(table, tmp_path / "log.jsonl"))
    for by in ("step", "group", "completion"):
        pd.testing.assert_frame_equal(a.frame(by), b.frame(by), check_exact=True)
    pd.testing.assert_frame_equal(a.histogram, b.histogram, check_exact=True)


# ------------------------------------------------------------------------------------------ round trip


def test_write_read_round_trip_keeps_values_and_metadata(table, tmp_path):
    extra = table.append_column("reward_format", pa.array(np.linspace(0, 1, table.num_rows)))
    path = write_rollouts(extra, tmp_path / "sub" / "log.parquet",
                          metadata={"tokenizer": "tiny", "eos_token_id": "2", "config": {"lr": 1e-6}})
    back = read_rollouts(path)
    assert back.column_names == extra.column_names
    for name in extra.column_names:
        assert back.column(name).to_pylist() == extra.column(name).to_pylist(), name
    assert back.schema.field("step").type == pa.int32()
    assert back.schema.field("sample").type == pa.int16()
    meta = read_metadata(path)
    assert meta["prm_probe.schema_version"] == str(SCHEMA_VERSION)
    assert meta["prm_probe.version"]
    assert meta["tokenizer"] == "tiny"
    assert meta["eos_token_id"] == "2"
    assert json.loads(meta["config"]) == {"lr": 1e-6}
    assert sorted(p.name for p in path.parent.iterdir()) == ["log.parquet"]


def test_write_casts_loose_types(tmp_path):
    loose = pa.table({
        "run_id": ["r"] * 3, "step": pa.array([0, 0, 0], pa.int64()), "group": [0, 0, 0], "sample": [0, 1, 2],
        "prompt_id": ["p"] * 3, "completion_ids": pa.array([[1, 2], [1, 3], []], pa.list_(pa.int64())),
        "reward": pa.array([1, 0, 1], pa.int64()),
    })
    back = read_rollouts(write_rollouts(loose, tmp_path / "log.parquet"))
    assert back.schema.field("completion_ids").type == pa.list_(pa.int32())
    assert back.schema.field("reward").type == pa.float64()
    assert back.column("reward").to_pylist() == [1.0, 0.0, 1.0]


def test_extra_columns_pass_through(table, tmp_path):
    extra = table.append_column("reward_correct", pa.array(np.arange(table.num_rows, dtype=np.float64)))
    extra = extra.append_column("note", pa.array([f"n{i}" for i in range(table.num_rows)]))
    path = write_rollouts(extra, tmp_path / "log.parquet")
    back = read_rollouts(path)
    assert back.column("reward_correct").to_pylist() == list(map(float, range(table.num_rows)))
    assert back.column("note").to_pylist()[:2] == ["n0", "n1"]
    only = read_rollouts(path, columns=["reward_correct"])
    assert "reward_correct" in only.column_names and "note" not in only.column_names
    steps = list(iter_steps(path))
    assert all("reward_correct" in t.column_names for t in steps)
    assert overlap_stats(path).groups.shape[0] == 12


def test_newer_schema_version_is_refused(table, tmp_path):
    path = write_rollouts(table, tmp_path / "log.parquet",
                          metadata={"prm_probe.schema_version": str(SCHEMA_VERSION + 1)})
    assert read_metadata(path)["prm_probe.schema_version"] == str(SCHEMA_VERSION + 1)
    for call in (read_rollouts, lambda p: list(iter_steps(p)), overlap_stats):
        with pytest.raises(SchemaError, match="schema version"):
            call(path)


def test_newer_schema_version_in_jsonl_metadata_is_refused(table, tmp_path):
    path = _write_jsonl(table, tmp_path / "log.jsonl", {"prm_probe.schema_version": "99"})
    with pytest.raises(SchemaError, match="99"):
        read_rollouts(path)


def test_current_schema_version_is_accepted(table, tmp_path):
    path = write_rollouts(table, tmp_path / "log.parquet", metadata={"prm_probe.schema_version": str(SCHEMA_VERSION)})
    assert read_rollouts(path).num_rows == table.num_rows


# ----------------------------------------------------------------------------------------- iter_steps


def test_iter_steps_yields_one_table_per_run_and_step(tmp_path):
    two = pa.concat_tables([synthetic_rollouts(steps=3, groups=2, group_size=4, length=8, run_id="a", seed=1),
                            synthetic_rollouts(steps=2, groups=2, group_size=4, length=8, run_id="b", seed=2)])
    path = write_rollouts(two, tmp_path / "log.parquet")
    keys = []
    for t in iter_steps(path):
        k = _keys(t)
        assert len(k) == 1, k
        keys.append(k[0])
        assert t.num_rows == 8
    assert keys == [("a", 0), ("a", 1), ("a", 2), ("b", 0), ("b", 1)]


def test_iter_steps_across_small_row_groups_matches_whole_read(table, tmp_path):
    path = write_rollouts(table, tmp_path / "log.parquet", row_group_size=5)  # a step is 32 rows
    assert pq.ParquetFile(path).num_row_groups > 3 * 2
    whole = read_rollouts(path)
    streamed = list(iter_steps(path))
    assert len(streamed) == 3
    for step, t in enumerate(streamed):
        assert _keys(t) == [("synthetic", step)]
        assert t.equals(_step_of(whole, step))
    stats_small = overlap_stats(path).groups
    stats_one = overlap_stats(write_rollouts(table, tmp_path / "one.parquet")).groups
    _assert_same_groups(stats_small, stats_one)


def test_iter_steps_row_group_boundary_on_step_boundary(table, tmp_path):
    path = write_rollouts(table, tmp_path / "log.parquet", row_group_size=32)  # exactly one step each
    assert [t.num_rows for t in iter_steps(path)] == [32, 32, 32]


def test_iter_steps_reads_columns_on_request(table, tmp_path):
    extra = table.append_column("reward_x", pa.array(np.zeros(table.num_rows)))
    path = write_rollouts(extra, tmp_path / "log.parquet", row_group_size=7)
    for t in iter_steps(path, columns=["reward"]):
        assert "reward_x" not in t.column_names
        assert {"completion_ids", "sample", "run_id"} <= set(t.column_names)


def test_non_contiguous_steps_fall_back_and_give_same_stats(table, reference, tmp_path, caplog):
    s0, s1, s2 = (_step_of(table, s) for s in range(3))
    mixed = pa.concat_tables([s0.slice(0, 13), s1, s0.slice(13), s2])  # rows of step 0 after step 1
    path = write_rollouts(mixed, tmp_path / "log.parquet", row_group_size=10)
    with caplog.at_level(logging.WARNING, logger="prm_probe.core.rollouts"):
        steps = list(iter_steps(path))
    assert any("not consecutive" in r.getMessage() for r in caplog.records)
    assert [_keys(t) for t in steps] == [[("synthetic", s)] for s in range(3)]
    assert [t.num_rows for t in steps] == [32, 32, 32]
    _assert_same_groups(overlap_stats(path).groups, reference)


def test_non_contiguous_steps_across_files_fall_back(table, reference, tmp_path):
    s0, s1, s2 = (_step_of(table, s) for s in range(3))
    write_rollouts(pa.concat_tables([s0.slice(0, 16), s1]), tmp_path / "parts" / "a.parquet")
    write_rollouts(pa.concat_tables([s0.slice(16), s2]), tmp_path / "parts" / "b.parquet")
    _assert_same_groups(overlap_stats(tmp_path / "parts").groups, reference)


def test_steps_out_of_order_give_same_stats_up_to_row_order(table, reference, tmp_path):
    reordered = pa.concat_tables([_step_of(table, 2), _step_of(table, 0), _step_of(table, 1)])
    got = overlap_stats(write_rollouts(reordered, tmp_path / "log.parquet")).groups
    got = got.sort_values(["run_id", "step", "group"], kind="stable")
    _assert_same_groups(got, reference)


def test_rows_shuffled_within_step_give_identical_stats(table, reference, tmp_path, rng):
    parts = []
    for s in range(3):
        st = _step_of(table, s)
        parts.append(st.take(pa.array(rng.permutation(st.num_rows))))
    path = write_rollouts(pa.concat_tables(parts), tmp_path / "log.parquet", row_group_size=9)
    _assert_same_groups(overlap_stats(path).groups, reference)


def test_stats_do_not_change_when_samples_are_permuted_within_groups(table, tmp_path, rng):
    base = overlap_stats(write_rollouts(table, tmp_path / "a.parquet"))
    # For each group draw a permutation p and give row sample p[j] the new index j.
    sample = table.column("sample").to_numpy().astype(np.int64)
    gid = (table.column("step").to_numpy().astype(np.int64) * 1000 + table.column("group").to_numpy())
    new_sample = sample.copy()
    perms = {}
    for g in np.unique(gid):
        rows = np.flatnonzero(gid == g)
        p = rng.permutation(len(rows))
        perms[g] = p
        new_sample[rows[p]] = np.arange(len(rows))  # old sample p[j] becomes j (rows are in sample order)
    permuted = table.set_column(table.schema.get_field_index("sample"), "sample", pa.array(new_sample, pa.int16()))
    got = overlap_stats(write_rollouts(permuted, tmp_path / "b.parquet"))
    _assert_same_groups(got.groups, base.groups, exact=False)
    pd.testing.assert_frame_equal(got.steps, base.steps, check_exact=False, rtol=1e-12)
    pd.testing.assert_frame_equal(got.histogram, base.histogram, check_exact=True)
    # Completion rows follow their completion: new (group, j) equals old (group, p[j]).
    c_new = got.completions.set_index(["step", "group", "sample"]).sort_index()
    c_old = base.completions.set_index(["step", "group", "sample"]).sort_index()
    for (step, grp, j), row in c_new.iterrows():
        p = perms[step * 1000 + grp]
        old = c_old.loc[(step, grp, int(p[j]))]
        pd.testing.assert_series_equal(row, old, check_names=False)
    assert base.groups["nontrivial"].any()  # the check above is not vacuous


# ------------------------------------------------------------------------------------------- pack_groups


def test_pack_groups_orders_by_run_step_group_sample(table, rng):
    shuffled = table.take(pa.array(rng.permutation(table.num_rows)))
    grouped = pack_groups(shuffled)
    t = grouped.table
    key = np.stack([t.column("step").to_numpy(), t.column("group").to_numpy(), t.column("sample").to_numpy()], 1)
    assert np.all(np.diff(key[:, 0] * 10**6 + key[:, 1] * 10**3 + key[:, 2]) > 0)
    g = grouped.groups
    assert list(g.columns) == ["run_id", "step", "group", "group_size", "prompt_id"]
    assert list(zip(g["step"], g["group"], strict=True)) == [(s, k) for s in range(3) for k in range(4)]
    assert (g["group_size"] == 8).all()
    assert list(g["prompt_id"]) == [f"p{s}-{k}" for s in range(3) for k in range(4)]
    packed = grouped.packed
    assert packed.n_groups == 12 and packed.n_completions == 96
    np.testing.assert_array_equal(packed.group_offsets, np.arange(0, 97, 8))
    ids = t.column("completion_ids").to_pylist()
    for c in (0, 1, 37, 95):
        assert packed.tokens[packed.offsets[c]:packed.offsets[c + 1]].tolist() == ids[c]
    np.testing.assert_array_equal(grouped.reward, t.column("reward").to_numpy())
    np.testing.assert_array_equal(grouped.sample, np.tile(np.arange(8), 12))
    np.testing.assert_array_equal(packed.completion_sample, grouped.sample)
    # packing the sorted table gives the very same arrays
    again = pack_groups(table)
    np.testing.assert_array_equal(again.packed.tokens, packed.tokens)
    np.testing.assert_array_equal(again.packed.offsets, packed.offsets)


def test_pack_groups_keeps_runs_contiguous(rng):
    two = pa.concat_tables([synthetic_rollouts(steps=2, groups=2, group_size=3, length=4, run_id="b", seed=1),
                            synthetic_rollouts(steps=2, groups=2, group_size=3, length=4, run_id="a", seed=2)])
    grouped = pack_groups(two.take(pa.array(rng.permutation(two.num_rows))))
    runs = grouped.groups["run_id"].tolist()
    assert sorted(set(runs)) == ["a", "b"]
    assert runs == sorted(runs, key=runs.index)  # each run's groups are consecutive
    for run in ("a", "b"):
        sub = grouped.groups[grouped.groups["run_id"] == run]
        assert list(zip(sub["step"], sub["group"], strict=True)) == [(0, 0), (0, 1), (1, 0), (1, 1)]


def test_pack_groups_handles_sliced_tables(table):
    part = table.slice(8, 16)  # non-zero list offsets
    grouped = pack_groups(part)
    assert grouped.packed.n_completions == 16
    assert grouped.packed.tokens[: grouped.packed.offsets[1]].tolist() == part.column("completion_ids")[0].as_py()


def test_pack_groups_empty_table(table):
    grouped = pack_groups(table.slice(0, 0))
    assert grouped.packed.n_groups == 0 and len(grouped.groups) == 0


# --------------------------------------------------------------------------------------- unequal groups


def test_groups_of_unequal_size_across_steps(tmp_path):
    a = synthetic_rollouts(steps=1, groups=2, group_size=4, length=10, seed=1)
    b = synthetic_rollouts(steps=1, groups=3, group_size=6, length=10, seed=2)
    b = b.set_column(1, "step", pa.array(np.ones(b.num_rows, dtype=np.int32)))
    path = write_rollouts(pa.concat_tables([a, b]), tmp_path / "log.parquet", row_group_size=5)
    result = overlap_stats(path)
    assert result.groups["group_size"].tolist() == [4, 4, 6, 6, 6]
    assert result.steps["completions"].tolist() == [8, 18]
    assert result.steps["groups"].tolist() == [2, 3]
    hist = result.histogram
    assert hist[hist.step == 0]["process_set_size"].max() == 4
    assert hist[hist.step == 1]["process_set_size"].max() == 6
    assert hist.groupby("step")["tokens"].sum().tolist() == [80, 180]


def test_groups_of_unequal_size_within_a_step(tmp_path):
    t = pa.table({
        "run_id": ["r"] * 5, "step": [0] * 5, "group": [0, 0, 0, 1, 1], "sample": [0, 1, 2, 0, 1],
        "prompt_id": ["p0", "p0", "p0", "p1", "p1"], "completion_ids": [[1, 2], [1, 3], [4], [5, 6], [5, 6]],
        "reward": [1.0, 0.0, 1.0, 0.0, 1.0],
    })
    result = overlap_stats(write_rollouts(t, tmp_path / "log.parquet"))
    g = result.groups
    assert g["group_size"].tolist() == [3, 2]
    assert g["nontrivial"].tolist() == [True, True]
    assert g["proper_branching"].tolist() == [True, False]


# ------------------------------------------------------------------------------------------ atomic write


def _failing_write(monkeypatch):
    real = pq.write_table

    def boom(table, where, *args, **kwargs):
        real(table.slice(0, 1), where, *args, **kwargs)  # something is on disk when it fails
        with open(where, "ab") as fh:
            fh.write(b"garbage")
        raise OSError("disk full (simulated)")

    monkeypatch.setattr(pq, "write_table", boom)


def test_write_rollouts_is_atomic_for_a_new_file(table, tmp_path, monkeypatch):
    _failing_write(monkeypatch)
    with pytest.raises(OSError, match="simulated"):
        write_rollouts(table, tmp_path / "log.parquet")
    assert list(tmp_path.iterdir()) == []


def test_write_rollouts_is_atomic_over_an_existing_file(table, tmp_path, monkeypatch):
    path = write_rollouts(table, tmp_path / "log.parquet")
    before = path.read_bytes()
    _failing_write(monkeypatch)
    with pytest.raises(OSError, match="simulated"):
        write_rollouts(table.slice(0, 8), path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["log.parquet"]
    assert read_rollouts(path).num_rows == table.num_rows


def test_write_rollouts_refuses_bad_table_without_leaving_files(table, tmp_path):
    with pytest.raises(PrmProbeError):
        write_rollouts(table.drop_columns(["reward"]), tmp_path / "log.parquet")
    assert list(tmp_path.iterdir()) == []
