"""The schema: its documentation (the README table is generated from the code and must match it) and what
``required`` means when a log is written and checked."""

from __future__ import annotations

import re

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from prm_probe.core.rollouts import write_rollouts
from prm_probe.core.schema import (
    REQUIRED_COLUMNS,
    ROLLOUT_SCHEMA,
    conform,
    find_problems,
    schema_markdown,
    type_name,
)
from prm_probe.core.validate import validate_log
from prm_probe.errors import SchemaError
from tests.conftest import ROOT


def test_readme_schema_table_matches_code():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    block = re.search(r"<!-- schema-table.*?-->\n(.*?)<!-- /schema-table -->", text, re.S)
    assert block is not None, "README lost its schema-table markers"
    assert block.group(1).strip() == schema_markdown().strip()


def _table(columns) -> pa.Table:
    """Two valid completions of one group, with the given columns."""
    full = {"run_id": ["r", "r"], "step": [0, 0], "group": [0, 0], "sample": [0, 1], "prompt_id": ["p", "p"],
            "completion_ids": [[1, 2], [1, 3]], "reward": [1.0, 0.0], "prompt": ["x", "x"],
            "prompt_ids": [[7], [7]], "completion": ["a b", "a c"], "finish_reason": ["stop", "length"],
            "advantage": [0.7, -0.7], "logps": [[-0.1, -0.2], [-0.1, -0.3]]}
    assert set(full) == set(ROLLOUT_SCHEMA.names)
    return pa.table({name: full[name] for name in columns})


def test_every_field_is_documented():
    """Each column's doc, type and required flag reach the `prm-probe schema` table."""
    rows = {line.split(" | ")[0].strip("| `"): line for line in schema_markdown().splitlines()[2:]}
    for field in ROLLOUT_SCHEMA:
        doc = field.metadata[b"doc"].decode()
        assert len(doc) > 5, field.name
        required = "yes" if field.name in REQUIRED_COLUMNS else "no"
        assert rows[field.name] == f"| `{field.name}` | {type_name(field.type)} | {required} | {doc} |"
    assert REQUIRED_COLUMNS == ("run_id", "step", "group", "sample", "prompt_id", "completion_ids", "reward")


def test_required_means_required_and_optional_means_optional(tmp_path):
    """A log of only the required columns is valid; dropping any one of them, or leaving a value of one empty, is
    refused naming the column; every known column is written with its schema type."""
    assert validate_log(write_rollouts(_table(REQUIRED_COLUMNS), tmp_path / "min.parquet")).ok
    full = write_rollouts(_table(ROLLOUT_SCHEMA.names), tmp_path / "full.parquet")
    assert validate_log(full).ok
    written = pq.read_schema(full)
    for field in ROLLOUT_SCHEMA:
        assert written.field(field.name).type == field.type, field.name
    for name in REQUIRED_COLUMNS:
        with pytest.raises(SchemaError, match=f"missing required column.*'{name}'"):
            conform(_table([c for c in REQUIRED_COLUMNS if c != name]))
        table = _table(REQUIRED_COLUMNS)
        i = table.column_names.index(name)
        column = table.column(i).to_pylist()
        table = table.set_column(i, name, pa.array([column[0], None], type=table.column(i).type))
        problems = find_problems(conform(table))
        assert any(p.column == name and "missing value" in p.message for p in problems), (name, problems)
