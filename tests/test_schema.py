"""The schema's documentation: the README table is generated from the code and must match it."""

from __future__ import annotations

import re

from prm_probe.core.schema import REQUIRED_COLUMNS, ROLLOUT_SCHEMA, schema_markdown
from tests.conftest import ROOT


def test_readme_schema_table_matches_code():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    block = re.search(r"<!-- schema-table.*?-->\n(.*?)<!-- /schema-table -->", text, re.S)
    assert block is not None, "README lost its schema-table markers"
    assert block.group(1).strip() == schema_markdown().strip()


def test_every_field_is_documented():
    for field in ROLLOUT_SCHEMA:
        assert field.metadata[b"doc"], field.name
    assert REQUIRED_COLUMNS == ("run_id", "step", "group", "sample", "prompt_id", "completion_ids", "reward")
