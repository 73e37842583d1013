"""Importers of foreign rollout logs (TRL, verl, grpo-prm, open-instruct style JSONL, generic)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pandas as pd
import pytest

from prm_probe.cli import main
from prm_probe.core.validate import validate_log
from prm_probe.errors import SchemaError, UnknownNameError
from prm_probe.integrations.importers import IMPORTERS, import_log, import_to_parquet
from prm_probe.training.models import char_tokenizer

FOREIGN = Path(__file__).resolve().parent / "data" / "foreign"
GENERIC_FIELDS = {"step": "iter", "prompt": "question", "completion": "answer", "reward": "score", "group": "qid"}


@pytest.fixture(scope="module")
def tok():
    return char_tokenizer()


class DroppingTokenizer:
    """Wraps char_tokenizer so decode drops every ``char``: text holding it does not round-trip."""

    def __init__(self, inner, char: str = "x"):
        self.inner, self.char = inner, char

    def encode(self, text, add_special_tokens=False):
        return self.inner.encode(text, add_special_tokens=add_special_tokens)

    def decode(self, ids):
        return self.inner.decode(ids).replace(self.char, "")


def _fixtures():
    import importlib.util

    spec = importlib.util.spec_from_file_location("make_foreign_fixtures", FOREIGN / "make_foreign_fixtures.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def chat_tok():
    return _fixtures().tokenizer()


def test_shipped_verl_and_grpo_prm_fixtures_are_what_their_programs_write():
    """The fixtures are written by re-implementing verl's and the authors' dumping code (their files, lines and
    commits are in make_foreign_fixtures.py); the shipped files must equal what that script writes."""
    module = _fixtures()
    tok = module.tokenizer()
    files = module.verl_files(tok)
    assert sorted(p.name for p in (FOREIGN / "verl").glob("*.jsonl")) == sorted(files)
    for name, text in files.items():
        assert (FOREIGN / "verl" / name).read_text(encoding="utf-8") == text
    assert json.loads((FOREIGN / "grpo_prm" / "stats.json").read_text()) == module.grpo_prm_stats(tok)


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


def test_verl_groups_from_prompt_text_although_the_batch_was_reordered(tmp_path, chat_tok, caplog):
    with caplog.at_level(logging.WARNING, logger="prm_probe.integrations.importers"):
        t = import_log("verl", FOREIGN / "verl" / "1.jsonl", tokenizer=chat_tok, run_id="r1")
    assert "merged" not in caplog.text and "merge" not in caplog.text  # nothing merged: no warning
    df = t.to_pandas()
    rows = [json.loads(line) for line in (FOREIGN / "verl" / "1.jsonl").read_text().splitlines()]
    assert [r["input"] for r in rows] != sorted(r["input"] for r in rows)  # balance_batch scattered the groups
    by_prompt = {}
    for r in rows:
        by_prompt.setdefault(r["input"], []).append(r["score"])
    assert sorted(sorted(v) for v in _groups(t).values()) == sorted(sorted(v) for v in by_prompt.values())
    assert set(df["run_id"]) == {"r1"} and set(df["step"]) == {1}
    expected = [chat_tok.encode(c, add_special_tokens=False) for c in df["completion"]]
    assert [list(x) for x in df["completion_ids"]] == expected
    meta = _meta(t)
    assert meta["prm_probe.token_source"] == "retokenized" and meta["prm_probe.step_origin"] == "1"
    assert "verl decodes completions with skip_special_tokens=True" in meta["prm_probe.retokenization_note"]
    _written_ok(("verl", FOREIGN / "verl", {"tokenizer": chat_tok, "group_size": 3}), tmp_path)


def test_verl_repeated_prompt_merges_without_group_size_and_splits_with_it(chat_tok, caplog):
    with caplog.at_level(logging.WARNING, logger="prm_probe.integrations.importers"):
        merged = import_log("verl", FOREIGN / "verl", tokenizer=chat_tok)
    assert "identical prompts in one batch merged" in caplog.text
    assert sorted(len(v) for k, v in _groups(merged).items() if k[0] == 2) == [6]
    assert _meta(merged)["prm_probe.merged_groups"] == "1"
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="prm_probe.integrations.importers"):
        split = import_log("verl", FOREIGN / "verl", tokenizer=chat_tok, group_size=3)
    assert "split into groups of 3 in file order" in caplog.text
    assert sorted(len(v) for k, v in _groups(split).items() if k[0] == 2) == [3, 3]
    assert _meta(split)["prm_probe.split_prompts"] == "1"
    with pytest.raises(SchemaError, match="not a multiple of --group-size 4"):
        import_log("verl", FOREIGN / "verl", tokenizer=chat_tok, group_size=4)


def test_verl_unequal_groups_recorded(tmp_path, tok, caplog):
    rows = [{"input": p, "output": o, "score": r, "step": 0}
            for p, o, r in [("p", "a", 1.0), ("p", "b", 0.0), ("p", "c", 0.0), ("q", "d", 1.0), ("q", "e", 0.0)]]
    (tmp_path / "0.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    with caplog.at_level(logging.WARNING, logger="prm_probe.integrations.importers"):
        t = import_log("verl", tmp_path / "0.jsonl", tokenizer=tok)
    assert "unequal size" in caplog.text and "merged" not in caplog.text
    assert json.loads(_meta(t)["prm_probe.unequal_groups"]) == {"2": 1, "3": 1}
    assert t.num_rows == 5  # never padded


def test_grpo_prm(tmp_path, chat_tok):
    sep = _fixtures().GRPO_PRM_SEP  # "<bos>assistant\n": the trailing newline is part of it
    t = import_log("grpo-prm", FOREIGN / "grpo_prm", tokenizer=chat_tok, fields={"prompt_sep": sep})
    assert _groups(t) == {(0, 0): [1.0, 0.0], (0, 1): [1.0, 1.0], (1, 0): [1.0, 0.0], (1, 1): [1.0, 0.0]}
    df = t.to_pandas()
    assert df["prompt_id"].tolist() == ["0", "0", "1", "1", "2", "2", "0", "0"]
    assert df["epoch"].tolist() == [0, 0, 0, 0, 1, 1, 1, 1]
    assert df["completion"].tolist()[:2] == ["7<eos>", "8<eos>"]  # special tokens kept: the EOS survives
    assert list(df["completion_ids"][0]) == chat_tok.encode("7<eos>", add_special_tokens=False)
    meta = _meta(t)
    assert meta["prm_probe.step_origin"] == "0"
    val = json.loads(meta["grpo_prm.validation"])
    raw = json.loads((FOREIGN / "grpo_prm" / "stats.json").read_text())
    assert val["init_val"] == raw["init_val"] and val["init_val_reward_mean"] == 0.5  # [text, reward] pairs
    assert [e["entries"] for e in val["epochs"]] == [e["validation"] for e in raw["epochs"]]
    assert [e["first_step"] for e in val["epochs"]] == [0, 1]
    assert [e["reward_mean"] for e in val["epochs"]] == [0.5, 1.0]
    _written_ok(("grpo-prm", FOREIGN / "grpo_prm" / "stats.json", {"tokenizer": chat_tok,
                                                                  "fields": {"prompt_sep": sep}}), tmp_path)


def test_grpo_prm_separator_keeps_its_trailing_newline_through_the_cli(tmp_path, capsys):
    folder = tmp_path / "tok"
    _fixtures().tokenizer().save_pretrained(folder)
    out = tmp_path / "authors.parquet"
    assert main(["import", "grpo-prm", str(FOREIGN / "grpo_prm"), "-o", str(out), "--tokenizer", str(folder),
                 "--field", "prompt_sep=<bos>assistant\n", "-q"]) == 0
    df = pd.read_parquet(out)
    assert df["completion"].tolist()[0] == "7<eos>"  # not "\n7<eos>": no spurious shared first token
    assert "first step 0" in capsys.readouterr().out
    # the separator without its newline: every completion would start with it, so the import is refused
    lost = tmp_path / "lost.parquet"
    assert main(["import", "grpo-prm", str(FOREIGN / "grpo_prm"), "-o", str(lost), "--tokenizer", str(folder),
                 "--field", "prompt_sep=<bos>assistant", "-q"]) == 2
    err = capsys.readouterr().err.strip()
    assert "starts with '\\n'" in err and "prompt_sep='<bos>assistant\\n'" in err and len(err.splitlines()) == 1
    assert not lost.exists()


def test_grpo_prm_bad_blocks(tmp_path, chat_tok):
    data = json.loads((FOREIGN / "grpo_prm" / "stats.json").read_text())
    with pytest.raises(SchemaError, match="not a multiple of group_size 3"):
        import_log("grpo-prm", FOREIGN / "grpo_prm", tokenizer=chat_tok, group_size=3)
    data["epochs"][0]["steps"][0]["instances"][1]["idx"] = 99
    (tmp_path / "stats.json").write_text(json.dumps(data))
    with pytest.raises(SchemaError, match="mixes 2 prompts"):
        import_log("grpo-prm", tmp_path, tokenizer=chat_tok)
    del data["epochs"][0]["steps"][0]["instances"][0]["reward"]
    (tmp_path / "stats.json").write_text(json.dumps(data))
    with pytest.raises(SchemaError, match="'reward'"):
        import_log("grpo-prm", tmp_path, tokenizer=chat_tok)


def test_jsonl_ids(tmp_path):
    t = import_log("jsonl-ids", FOREIGN / "open_instruct.jsonl")
    assert _groups(t) == {(1, 0): [1.0, 0.0], (1, 1): [0.0, 0.0], (2, 0): [1.0, 0.0]}
    df = t.to_pandas()
    assert [list(x) for x in df["completion_ids"]][:2] == [[50, 52, 2], [50, 51, 2]]  # ordered by sample_idx
    assert df["finish_reason"].tolist()[2] == "length"
    meta = _meta(t)
    assert meta["prm_probe.token_source"] == "sampled"
    assert "prm_probe.retokenization_text_changed" not in meta
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
    trl = tmp_path / "completions"
    trl.mkdir()
    pd.DataFrame({"step": [1, 1], "prompt": ["a", "a"], "completion": ["x", "y"], "acc": [1.0, 0.0],
                  "advantage": [0.7, -0.7]}).to_parquet(trl / "completions_00001.parquet")
    with pytest.raises(SchemaError, match="use format 'trl'"):
        import_log("verl", trl, tokenizer=tok)
    with pytest.raises(SchemaError, match="apply to format 'trl'"):
        import_log("verl", FOREIGN / "verl", tokenizer=tok, reward_columns=["acc"])


def test_missing_field_named(tmp_path, tok):
    (tmp_path / "1.jsonl").write_text(json.dumps({"input": "p", "output": "a"}) + "\n")
    with pytest.raises(SchemaError, match=r"lacks field.*'score'"):
        import_log("verl", tmp_path / "1.jsonl", tokenizer=tok)
    with pytest.raises(SchemaError, match="'nope'"):
        import_log("generic", FOREIGN / "generic.csv", tokenizer=tok, fields={**GENERIC_FIELDS, "reward": "nope"})


def test_retokenization_text_changes_counted(tmp_path, tok, caplog):
    with caplog.at_level(logging.WARNING, logger="prm_probe.integrations.importers"):
        t = import_log("verl", FOREIGN / "verl", tokenizer=DroppingTokenizer(tok, "8"), group_size=3)
    texts = [json.loads(line)["output"] for f in sorted((FOREIGN / "verl").glob("*.jsonl"))
             for line in f.read_text().splitlines()]
    expected = sum("8" in text for text in texts)
    assert expected == 3 and _meta(t)["prm_probe.retokenization_text_changed"] == "3"
    assert f"changed the text of 3 of {len(texts)}" in caplog.text


def test_cli_import_writes_a_log_that_stats_reads(tmp_path, capsys):
    from prm_probe.cli import main
    from prm_probe.training.models import char_tokenizer

    folder = tmp_path / "tok"
    char_tokenizer().save_pretrained(folder)
    out = tmp_path / "verl.parquet"
    src = Path(__file__).resolve().parent / "data" / "foreign" / "verl"
    assert main(["import", "verl", str(src), "-o", str(out), "--tokenizer", str(folder), "--group-size", "3"]) == 0
    printed = capsys.readouterr().out
    assert "retokenized" in printed and "first step 1" in printed and "split into groups" in printed
    assert main(["stats", str(out), "-q"]) == 0
    assert main(["import", "verl", str(src), "-o", str(tmp_path / "x.parquet")]) == 2  # text needs a tokenizer


def test_batched_retokenisation_equals_the_per_row_calls():
    """The import encodes all texts in one batched call; the ids and round trips must be the per-row ones."""
    from prm_probe.integrations.importers import decode_ids, encode_texts
    from prm_probe.training.models import char_tokenizer

    tok = char_tokenizer()
    assert tok.is_fast
    texts = ["12 + 7 = \\boxed{19}", "", "  leading spaces\nand lines\n\n", "ünïcode ✓ ≥", "x" * 300, "LRRL"]
    ids = encode_texts(tok, texts)
    assert ids == [tok.encode(t, add_special_tokens=False) for t in texts]
    assert decode_ids(tok, ids) == [tok.decode(i) for i in ids]

    class Slow:  # a tokenizer with only per-row calls takes the per-row path
        is_fast = False

        def encode(self, text, add_special_tokens=False):
            return [ord(c) for c in text]

        def decode(self, ids):
            return "".join(map(chr, ids))

    assert encode_texts(Slow(), texts) == [[ord(c) for c in t] for t in texts]
    assert decode_ids(Slow(), encode_texts(Slow(), texts)) == texts


def test_verl_group_size_too_small_is_refused_with_the_likely_n(tmp_path, tok):
    """A verl dump with rollout.n = 4 imported with --group-size 2 splits every prompt in two: refused, naming 4."""
    rows = [{"input": f"prompt {p}", "output": f"answer {p}.{i}", "score": float(i % 2), "step": 1}
            for p in range(6) for i in range(4)]
    (tmp_path / "1.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(SchemaError, match=r"the group size is probably 4, not 2.*pass --group-size 4") as err:
        import_log("verl", tmp_path, tokenizer=tok, group_size=2)
    assert "\n" not in str(err.value)
    assert len(_groups(import_log("verl", tmp_path, tokenizer=tok, group_size=4))) == 6
