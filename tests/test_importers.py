"""Importers of foreign rollout logs (TRL, verl, grpo-prm, open-instruct style JSONL, generic)."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from prm_probe.cli import main
from prm_probe.errors import SchemaError, UnknownNameError
from prm_probe.importers import IMPORTERS, import_log, import_to_parquet
from prm_probe.models import char_tokenizer
from prm_probe.validate import validate_log

FOREIGN = Path(__file__).resolve().parent / "data" / "foreign"
GENERIC_FIELDS = {"step": "iter", "prompt": "question", "completion": "answer", "reward": "score", "group": "qid"}


@pytest.fixture(scope="module")
def tok():
    return char_tokenizer()


class DroppingTokenizer:
    """Wraps char_tokenizer so decode drops every 'x': text with an 'x' does not round-trip."""

    def __init__(self, inner):
        self.inner = inner

    def encode(self, text, add_special_tokens=False):
        return self.inner.encode(text, add_special_tokens=add_special_tokens)

    def decode(self, ids):
        return self.inner.decode(ids).replace("x", "")


def _trl_parquet(folder: Path) -> Path:
    """A copy of the shipped TRL fixture (tests/data/foreign/trl, made by make_trl_fixture.py) under ``folder``."""
    comp = folder / "completions"
    shutil.copytree(FOREIGN / "trl", comp)
    return comp


def test_shipped_trl_fixture_matches_its_hand_written_rows():
    import importlib.util

    spec = importlib.util.spec_from_file_location("make_trl_fixture", FOREIGN / "make_trl_fixture.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    shipped = sorted(p.name for p in (FOREIGN / "trl").glob("*.parquet"))
    assert shipped == sorted(module.ROWS)
    for name, frame in module.frames().items():
        pd.testing.assert_frame_equal(pd.read_parquet(FOREIGN / "trl" / name), frame)


def _meta(table) -> dict[str, str]:
    return {k.decode(): v.decode() for k, v in (table.schema.metadata or {}).items()}


def _written_ok(table_args, tmp_path: Path) -> Path:
    fmt, source, kw = table_args
    out = import_to_parquet(fmt, source, tmp_path / "out.parquet", **kw)
    report = validate_log(out)
    assert report.ok, [str(p) for p in report.errors]
    assert main(["stats", str(out), "-q"]) == 0
    return out


def _groups(table) -> dict[tuple[int, int], list[float]]:
    df = table.to_pandas().sort_values(["step", "group", "sample"])
    return {k: list(g["reward"]) for k, g in df.groupby(["step", "group"])}


def test_registry():
    assert set(IMPORTERS) == {"trl", "verl", "grpo-prm", "jsonl-ids", "generic"}
    with pytest.raises(UnknownNameError, match="did you mean 'verl'"):
        import_log("verll", FOREIGN / "verl")


def test_trl_blocks(tmp_path, tok):
    comp = _trl_parquet(tmp_path)
    t = import_log("trl", comp, tokenizer=tok, group_size=2)
    assert _groups(t) == {(5, 0): [1.5, 0.5], (5, 1): [1.0, 1.5], (10, 0): [0.0, 1.0]}
    df = t.to_pandas()
    assert list(df["reward_acc"]) == [1.0, 0.0, 1.0, 1.0, 0.0, 1.0]
    assert df["advantage"].tolist()[:2] == pytest.approx([0.1, -0.1])
    for text, ids in zip(df["completion"], df["completion_ids"], strict=True):
        assert list(ids) == tok.encode(text, add_special_tokens=False)
    meta = _meta(t)
    assert meta["prm_probe.token_source"] == "retokenized"
    assert meta["prm_probe.retokenization_changed"] == "0"
    out = _written_ok(("trl", str(comp / "completions_*.parquet"), {"tokenizer": tok, "group_size": 2}), tmp_path)
    assert pq.read_metadata(out).metadata[b"prm_probe.token_source"] == b"retokenized"


def test_trl_prompt_fallback_warns(tmp_path, tok, caplog):
    comp = _trl_parquet(tmp_path)
    with caplog.at_level(logging.WARNING, logger="prm_probe.importers"):
        t = import_log("trl", comp, tokenizer=tok)
    assert "no group_size" in caplog.text
    assert _groups(t) == {(5, 0): [1.5, 0.5], (5, 1): [1.0, 1.5], (10, 0): [0.0, 1.0]}


def test_trl_needs_tokenizer_and_whole_groups(tmp_path, tok):
    comp = _trl_parquet(tmp_path)
    with pytest.raises(SchemaError, match="needs --tokenizer"):
        import_log("trl", comp, group_size=2)
    with pytest.raises(SchemaError, match="not a multiple of group_size 3"):
        import_log("trl", comp, tokenizer=tok, group_size=3)
    with pytest.raises(SchemaError, match="mixes 2 prompts"):
        import_log("trl", comp / "completions_00005.parquet", tokenizer=tok, group_size=4)


def test_verl(tmp_path, tok, caplog):
    with caplog.at_level(logging.WARNING, logger="prm_probe.importers"):
        t = import_log("verl", FOREIGN / "verl", tokenizer=tok, run_id="r1")
    assert "identical prompts in one batch merge" in caplog.text
    assert _groups(t) == {(3, 0): [1.0, 0.0, 1.0], (3, 1): [1.0, 0.0, 0.0], (4, 0): [1.0, 0.0, 1.0]}
    df = t.to_pandas()
    assert set(df["run_id"]) == {"r1"}
    assert df.loc[df["step"] == 3, "completion"].tolist() == ["2", "3", "2.", "5", "6", "55"]
    expected = [tok.encode(c, add_special_tokens=False) for c in df["completion"]]
    assert [list(x) for x in df["completion_ids"]] == expected
    assert _meta(t)["prm_probe.token_source"] == "retokenized"
    _written_ok(("verl", FOREIGN / "verl", {"tokenizer": tok}), tmp_path)


def test_verl_unequal_groups_recorded(tmp_path, tok, caplog):
    rows = [{"input": p, "output": o, "score": r, "step": 0}
            for p, o, r in [("p", "a", 1.0), ("p", "b", 0.0), ("p", "c", 0.0), ("q", "d", 1.0), ("q", "e", 0.0)]]
    (tmp_path / "0.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    with caplog.at_level(logging.WARNING, logger="prm_probe.importers"):
        t = import_log("verl", tmp_path / "0.jsonl", tokenizer=tok)
    assert "unequal size" in caplog.text
    assert json.loads(_meta(t)["prm_probe.unequal_groups"]) == {"2": 1, "3": 1}
    assert t.num_rows == 5  # never padded


def test_grpo_prm(tmp_path, tok):
    t = import_log("grpo-prm", FOREIGN / "grpo_prm", tokenizer=tok, fields={"prompt_sep": "A: "})
    assert _groups(t) == {(0, 0): [1.0, 0.0], (0, 1): [1.0, 1.0], (1, 0): [1.0, 0.0]}
    df = t.to_pandas()
    assert df["prompt_id"].tolist() == ["7", "7", "2", "2", "5", "5"]
    assert df["epoch"].tolist() == [0, 0, 0, 0, 1, 1]
    assert df["completion"].tolist()[0] == "7<eos>"
    assert list(df["completion_ids"][0]) == tok.encode("7<eos>", add_special_tokens=False)
    val = json.loads(t.schema.metadata[b"grpo_prm.validation"])
    raw = json.loads((FOREIGN / "grpo_prm" / "stats.json").read_text())
    assert val["init_val"] == raw["init_val"]
    assert [e["entries"] for e in val["epochs"]] == [e["validation"] for e in raw["epochs"]]
    assert [e["first_step"] for e in val["epochs"]] == [0, 1]
    assert [e["reward_mean"] for e in val["epochs"]] == [1.0, None]  # fixture: one entry of reward 1, then none
    _written_ok(("grpo-prm", FOREIGN / "grpo_prm" / "stats.json", {"tokenizer": tok}), tmp_path)


def test_grpo_prm_bad_blocks(tmp_path, tok):
    data = json.loads((FOREIGN / "grpo_prm" / "stats.json").read_text())
    with pytest.raises(SchemaError, match="not a multiple of group_size 3"):
        import_log("grpo-prm", FOREIGN / "grpo_prm", tokenizer=tok, group_size=3)
    data["epochs"][0]["steps"][0]["instances"][1]["idx"] = 99
    (tmp_path / "stats.json").write_text(json.dumps(data))
    with pytest.raises(SchemaError, match="mixes 2 prompts"):
        import_log("grpo-prm", tmp_path, tokenizer=tok)
    del data["epochs"][0]["steps"][0]["instances"][0]["reward"]
    (tmp_path / "stats.json").write_text(json.dumps(data))
    with pytest.raises(SchemaError, match="'reward'"):
        import_log("grpo-prm", tmp_path, tokenizer=tok)


def test_jsonl_ids(tmp_path):
    t = import_log("jsonl-ids", FOREIGN / "open_instruct.jsonl")
    assert _groups(t) == {(1, 0): [1.0, 0.0], (1, 1): [0.0, 0.0], (2, 0): [1.0, 0.0]}
    df = t.to_pandas()
    assert [list(x) for x in df["completion_ids"]][:2] == [[50, 52, 2], [50, 51, 2]]  # ordered by sample_idx
    assert df["finish_reason"].tolist()[2] == "length"
    meta = _meta(t)
    assert meta["prm_probe.token_source"] == "sampled"
    assert "prm_probe.retokenization_changed" not in meta
    _written_ok(("jsonl-ids", FOREIGN / "open_instruct.jsonl", {}), tmp_path)


def test_generic_csv(tmp_path, tok):
    t = import_log("generic", FOREIGN / "generic.csv", tokenizer=tok, fields=GENERIC_FIELDS)
    assert _groups(t) == {(0, 0): [1.0, 0.0], (0, 1): [1.0, 1.0], (1, 0): [1.0, 0.0]}
    assert t.to_pandas()["completion"].tolist()[3] == "7.0"  # CSV text stays text
    _written_ok(("generic", FOREIGN / "generic.csv", {"tokenizer": tok, "fields": GENERIC_FIELDS}), tmp_path)


def test_generic_jsonl_ids_with_group_size(tmp_path):
    rows = [{"s": 0, "ids": [3, 4, i], "r": float(i % 2)} for i in range(4)]
    (tmp_path / "log.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    t = import_log("generic", tmp_path / "log.jsonl", group_size=2,
                   fields={"step": "s", "completion_ids": "ids", "reward": "r"})
    assert _groups(t) == {(0, 0): [0.0, 1.0], (0, 1): [0.0, 1.0]}
    assert _meta(t)["prm_probe.token_source"] == "sampled"


def test_wrong_format_named(tmp_path, tok):
    with pytest.raises(SchemaError, match=r"looks like a verl dump \(fields input/output/score\); use format 'verl'"):
        import_log("jsonl-ids", FOREIGN / "verl")
    with pytest.raises(SchemaError, match="use format 'jsonl-ids'"):
        import_log("verl", FOREIGN / "open_instruct.jsonl", tokenizer=tok)
    with pytest.raises(SchemaError, match="use format 'trl'"):
        import_log("verl", _trl_parquet(tmp_path), tokenizer=tok)


def test_missing_field_named(tmp_path, tok):
    (tmp_path / "1.jsonl").write_text(json.dumps({"input": "p", "output": "a"}) + "\n")
    with pytest.raises(SchemaError, match=r"lacks field.*'score'"):
        import_log("verl", tmp_path / "1.jsonl", tokenizer=tok)
    with pytest.raises(SchemaError, match="'nope'"):
        import_log("generic", FOREIGN / "generic.csv", tokenizer=tok, fields={**GENERIC_FIELDS, "reward": "nope"})


def test_retokenization_changes_counted(tmp_path, tok, caplog):
    comp = _trl_parquet(tmp_path)
    with caplog.at_level(logging.WARNING, logger="prm_probe.importers"):
        t = import_log("trl", comp, tokenizer=DroppingTokenizer(tok), group_size=2)
    assert _meta(t)["prm_probe.retokenization_changed"] == "1"  # only "xy" holds an 'x'
    assert "changed the text of 1 of 6" in caplog.text
    out = import_to_parquet("trl", comp, tmp_path / "x.parquet", tokenizer=DroppingTokenizer(tok), group_size=2)
    assert pq.read_metadata(out).metadata[b"prm_probe.retokenization_changed"] == b"1"


def test_cli_import_writes_a_log_that_stats_reads(tmp_path, capsys):
    from prm_probe.cli import main
    from prm_probe.models import char_tokenizer

    folder = tmp_path / "tok"
    char_tokenizer().save_pretrained(folder)
    out = tmp_path / "verl.parquet"
    src = Path(__file__).resolve().parent / "data" / "foreign" / "verl"
    assert main(["import", "verl", str(src), "-o", str(out), "--tokenizer", str(folder), "-q"]) == 0
    assert "retokenized" in capsys.readouterr().out
    assert main(["stats", str(out), "-q"]) == 0
    assert main(["import", "verl", str(src), "-o", str(tmp_path / "x.parquet")]) == 2  # text needs a tokenizer
