"""Importing what a real TRL GRPOTrainer writes: runs TRL 1.16 on a tiny model (CPU, offline) and imports its files.

Each run records, from inside its reward functions, what TRL handed them (the sampled completion ids, the texts,
the rewards they returned), and, by wrapping ``GRPOTrainer._generate``, the prompt ids TRL fed to the model; the
imported log is checked against those, not against documented field names.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

pytest.importorskip("trl")
torch = pytest.importorskip("torch")

from prm_probe import record_completion_ids  # noqa: E402
from prm_probe.cli import main  # noqa: E402
from prm_probe.core.validate import validate_log  # noqa: E402
from prm_probe.errors import SchemaError  # noqa: E402
from prm_probe.integrations.importers import import_log, import_to_parquet  # noqa: E402

G = 4
WEIGHTS = [2.0, 0.5]
CHAT_TEMPLATE = ("{% for m in messages %}<bos>{{ m['role'] }}\n{{ m['content'] }}<eos>\n{% endfor %}"
                 "{% if add_generation_prompt %}<bos>assistant\n{% if terse %}Be terse.\n{% endif %}{% endif %}")
PROMPTS = ["What is 1 + 1?", "What is 2 + 3?", "Add 4 and 4.", "Is 5 + 1 six?"]


@pytest.fixture(scope="module")
def model_folder(tmp_path_factory) -> Path:
    from prm_probe.training.models import char_tokenizer, tiny_model

    tok = char_tokenizer()
    tok.chat_template = CHAT_TEMPLATE
    folder = tmp_path_factory.mktemp("tiny-chat")
    tiny_model("tiny", len(tok), seed=0).save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


def _tokenizer(folder):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(folder)


def run_trl(folder: Path, out: Path, *, chat: bool, steps: int = 3, logging_steps: int = 1, num_iterations: int = 1,
            recorder: bool = False, prompts: tuple[str, ...] = PROMPTS, eval_steps: int | None = None,
            save_steps: int | None = None, none_rewards: bool = True, weights: tuple[float, ...] = tuple(WEIGHTS),
            chat_template_kwargs: dict | None = None) -> dict:
    """Train TRL's GRPOTrainer and return what its reward functions and generate saw, per generation batch."""
    from datasets import Dataset
    from trl import GRPOConfig, GRPOTrainer

    seen: dict[str, list] = {"ids": [], "texts": [], "first": [], "last": [], "prompt_ids": [], "training": []}

    def first_token(completions, completion_ids, **_):
        seen["ids"].append([[int(t) for t in c] for c in completion_ids])
        seen["texts"].append([c if isinstance(c, str) else c[0]["content"] for c in completions])
        values = [float(c[0] % 3) for c in completion_ids]
        seen["first"].append(values)
        return values

    def text_length(completions, log_extra, **_):
        texts = [c if isinstance(c, str) else c[0]["content"] for c in completions]
        log_extra("n_chars", [len(t) for t in texts])  # a numeric log_extra column: not a reward
        values = [None if i % 4 == 3 and none_rewards else float(len(t) % 3) for i, t in enumerate(texts)]  # some None
        seen["last"].append(values)
        return values

    funcs, weights = [first_token, text_length], list(weights)
    if recorder:
        funcs.append(record_completion_ids)
        weights.append(1.0)
    prompts = [[{"role": "user", "content": p}] for p in prompts] if chat else list(prompts)
    evaluation = ({} if eval_steps is None else  # evaluate (and checkpoint, with trainer_state.json) every N steps
                  {"eval_strategy": "steps", "eval_steps": eval_steps, "per_device_eval_batch_size": 8,
                   "save_strategy": "steps", "save_steps": eval_steps})
    if save_steps:  # checkpoints: training_args.bin and trainer_state.json beside the completions folder
        evaluation |= {"save_strategy": "steps", "save_steps": save_steps}
    if chat_template_kwargs:
        evaluation["chat_template_kwargs"] = chat_template_kwargs
    args = GRPOConfig(output_dir=str(out), use_cpu=True, bf16=False, num_generations=G, per_device_train_batch_size=8,
                      generation_batch_size=8, max_completion_length=8, max_steps=steps, logging_steps=logging_steps,
                      num_iterations=num_iterations, report_to="none", disable_tqdm=True, learning_rate=1e-3, seed=0,
                      log_completions=True, reward_weights=weights, shuffle_dataset=False,
                      **({"save_strategy": "no"} | evaluation))
    eval_prompts = [f"Eval {p}" for p in prompts] if eval_steps else None
    trainer = GRPOTrainer(model=str(folder), reward_funcs=funcs, args=args, processing_class=_tokenizer(folder),
                          train_dataset=Dataset.from_dict({"prompt": prompts}),
                          eval_dataset=Dataset.from_dict({"prompt": eval_prompts}) if eval_prompts else None)
    generate = trainer._generate

    def spy(prompts_):
        seen["training"].append(trainer.model.training)
        result = generate(prompts_)
        seen["prompt_ids"].append([[int(t) for t in p] for p in result[0]])
        return result

    trainer._generate = spy
    trainer.train()
    return seen


@pytest.fixture(scope="module")
def runs(model_folder, tmp_path_factory) -> dict[str, tuple[Path, dict]]:
    """Four TRL runs: string prompts with the id recorder; chat prompts with num_iterations = 2; string prompts
    logged every 2nd step; and a chat run with the recorder."""
    root = tmp_path_factory.mktemp("trl-runs")
    plans = {"string": dict(chat=False, recorder=True), "chat_mu2": dict(chat=True, steps=4, num_iterations=2),
             "every2": dict(chat=False, steps=4, logging_steps=2), "chat": dict(chat=True, recorder=True),
             "same_prompt": dict(chat=False, steps=2, prompts=(PROMPTS[0],) * len(PROMPTS)),
             "eval2": dict(chat=False, steps=4, eval_steps=2),
             "terse": dict(chat=True, steps=2, save_steps=2, chat_template_kwargs={"terse": True}),
             "halved": dict(chat=False, steps=2, save_steps=2, none_rewards=False, weights=(1.0, 0.25)),
             "mu2_every2": dict(chat=False, steps=4, num_iterations=2, logging_steps=2, save_steps=4)}
    return {name: (root / name / "completions", run_trl(model_folder, root / name, **kw)) for name, kw in plans.items()}


def _expected_reward(seen, batch: int) -> np.ndarray:
    first = np.array(seen["first"][batch])
    last = np.array([np.nan if v is None else v for v in seen["last"][batch]])
    return np.nansum(np.stack([WEIGHTS[0] * first, WEIGHTS[1] * last]), axis=0)


def _import(source, folder, **kw):
    return import_log("trl", source, tokenizer=_tokenizer(folder), group_size=G, reward_columns=["first_token",
                      "text_length"], reward_weights=WEIGHTS, **kw)


def _meta(table) -> dict[str, str]:
    return {k.decode(): v.decode() for k, v in (table.schema.metadata or {}).items()}


def test_string_prompts_rows_groups_steps_rewards_and_sampled_ids(runs, model_folder):
    source, seen = runs["string"]
    table = _import(source, model_folder)
    df = table.to_pandas()
    assert sorted(df["step"].unique()) == [1, 2, 3] and len(df) == 3 * 8
    for batch, (_, part) in enumerate(df.groupby("step")):
        part = part.sort_values(["group", "sample"])
        assert part["group"].tolist() == [0] * G + [1] * G
        np.testing.assert_allclose(part["reward"].to_numpy(), _expected_reward(seen, batch), rtol=1e-6)
        assert [list(x) for x in part["completion_ids"]] == seen["ids"][batch]  # the recorder's ids, not re-encoded
        assert part["completion"].tolist() == seen["texts"][batch]
    meta = _meta(table)
    assert meta["prm_probe.token_source"] == "sampled"
    assert meta["prm_probe.step_origin"] == "1" and meta["prm_probe.step_sample"] == "false"
    # The random model samples <pad>/<eos> ids, which TRL's text (skip_special_tokens) drops: re-encoding the text
    # would have changed the ids of some completions, and the log says how many.
    retok = [_tokenizer(model_folder).encode(t, add_special_tokens=False) for t in df["completion"]]
    differ = sum(list(a) != b for a, b in zip(df["completion_ids"], retok, strict=True))
    assert differ > 0 and meta["prm_probe.retokenization_ids_differ"] == f"{differ} of {len(df)}"


def test_chat_prompts_read_as_assistant_content_with_the_template_reapplied(runs, model_folder, tmp_path):
    source, seen = runs["chat"]
    table = _import(source, model_folder)
    df = table.to_pandas()
    assert pq.read_schema(next(source.glob("*.parquet"))).field("prompt").type != "string"  # TRL wrote messages
    for batch, (_, part) in enumerate(df.groupby("step")):
        part = part.sort_values(["group", "sample"])
        assert part["completion"].tolist() == seen["texts"][batch]
        assert [list(p) for p in part["prompt_ids"]] == seen["prompt_ids"][batch]  # what TRL fed the model
        assert part["prompt"].iloc[0].endswith("<bos>assistant\n")
    out = import_to_parquet("trl", source, tmp_path / "chat.parquet", tokenizer=_tokenizer(model_folder),
                            group_size=G, reward_columns=["first_token", "text_length"], reward_weights=WEIGHTS)
    assert validate_log(out).ok
    assert main(["stats", str(out), "-q"]) == 0


def test_repeated_generation_batches_are_kept_once(runs, model_folder, caplog):
    source, seen = runs["chat_mu2"]
    assert len(list(source.glob("*.parquet"))) == 4 and len(seen["ids"]) == 2  # 4 files, 2 generation batches
    table = _import(source, model_folder)
    df = table.to_pandas()
    assert len(df) == 2 * 8 and sorted(df["step"].unique()) == [1, 3]
    assert json.loads(_meta(table)["prm_probe.trl_repeated_batches"]) == [2, 4]
    assert "repeat the previous file" in caplog.text
    for batch, (_, part) in enumerate(df.groupby("step")):
        np.testing.assert_allclose(part.sort_values(["group", "sample"])["reward"], _expected_reward(seen, batch),
                                   rtol=1e-6)


def test_unweighted_or_log_extra_rewards_are_refused_naming_the_options(runs, model_folder):
    source, _ = runs["string"]
    tok = _tokenizer(model_folder)
    with pytest.raises(SchemaError, match="--reward-columns") as err:  # default: every numeric column, weight 1
        import_log("trl", source, tokenizer=tok, group_size=G)
    assert "does not reproduce the advantage" in str(err.value) and "n_chars" in str(err.value)
    with pytest.raises(SchemaError, match="--reward-weights"):  # the right columns, unweighted
        import_log("trl", source, tokenizer=tok, group_size=G, reward_columns=["first_token", "text_length"])
    with pytest.raises(SchemaError, match="one weight per column"):
        import_log("trl", source, tokenizer=tok, group_size=G, reward_columns=["first_token"], reward_weights=WEIGHTS)
    with pytest.raises(SchemaError, match="not in"):
        import_log("trl", source, tokenizer=tok, group_size=G, reward_columns=["first_token", "nope"])


def test_a_reward_function_returning_none_is_summed_as_trl_does(runs, model_folder, tmp_path):
    source, seen = runs["string"]
    assert any(v is None for v in seen["last"][0])
    table = _import(source, model_folder)  # no failure: the None rows sum the other component
    assert int(_meta(table)["prm_probe.trl_partial_rewards"]) == sum(v is None for b in seen["last"] for v in b)
    # Every function None for a row (TRL's "unscorable"): refused, since no reward exists for it.
    folder = tmp_path / "unscorable"
    shutil.copytree(source, folder)
    first = sorted(folder.glob("*.parquet"))[0]
    frame = pd.read_parquet(first)
    frame.loc[0, ["first_token", "text_length"]] = np.nan
    frame.to_parquet(first)
    with pytest.raises(SchemaError, match="no reward from any"):
        _import(folder, model_folder)


def test_evaluation_completions_are_never_imported_as_training_steps(runs, model_folder, tmp_path, caplog):
    """eval_steps = 2: TRL's evaluation writes completions_00002/00004 over the training batches of those steps.
    The truth comes from inside TRL: which generate calls ran in training mode, and what they sampled."""
    source, seen = runs["eval2"]
    train_texts = [t for t, training in zip(seen["texts"], seen["training"], strict=True) if training]
    eval_texts = [t for t, training in zip(seen["texts"], seen["training"], strict=True) if not training]
    assert len(train_texts) == 4 and eval_texts  # the run did evaluate
    on_disk = {int(pd.read_parquet(f)["step"].iloc[0]): pd.read_parquet(f)["completion"].tolist()
               for f in source.glob("*.parquet")}
    assert on_disk[2] in eval_texts and on_disk[2] != train_texts[1]  # the premise: step 2's file is evaluation
    with caplog.at_level("WARNING"):
        table = _import(source, model_folder)
    df = table.to_pandas()
    assert sorted(df["step"].unique()) == [1, 3]  # steps 2 and 4 lost their training batches to evaluation
    for step, part in df.groupby("step"):
        assert part.sort_values(["group", "sample"])["completion"].tolist() == train_texts[step - 1]
    meta = _meta(table)
    assert json.loads(meta["prm_probe.trl_eval_steps_dropped"]) == [2, 4]
    assert "trainer_state.json" in meta["prm_probe.trl_eval_check"] and "evaluation steps" in caplog.text
    # without the run folder's state, the log cannot be checked: said in the metadata, or declared by the user
    bare = tmp_path / "completions"
    shutil.copytree(source, bare)
    unchecked = _meta(_import(bare, model_folder))
    assert unchecked["prm_probe.trl_eval_check"].startswith("not checked")
    declared = _import(bare, model_folder, fields={"eval_steps": "2"}).to_pandas()
    assert sorted(declared["step"].unique()) == [1, 3]


def test_chat_template_kwargs_come_from_the_run_or_are_said_missing(runs, model_folder, tmp_path, caplog):
    """chat_template_kwargs = {"terse": true}: TRL fed '…assistant\\nBe terse.\\n'. The run folder's
    training_args.bin carries the kwargs; a bare completions folder is imported with a note, or with the field."""
    source, seen = runs["terse"]
    tok = _tokenizer(model_folder)
    fed = seen["prompt_ids"][0][0]
    assert tok.decode(fed).endswith("assistant\nBe terse.\n")  # the premise, from inside TRL
    table = _import(source, model_folder)
    for batch, (_, part) in enumerate(table.to_pandas().groupby("step")):
        assert [list(p) for p in part.sort_values(["group", "sample"])["prompt_ids"]] == seen["prompt_ids"][batch]
    assert '"terse": true' in _meta(table)["prm_probe.trl_prompt_ids"]
    bare = tmp_path / "completions"
    shutil.copytree(source, bare)
    with caplog.at_level("WARNING"):
        plain = _import(bare, model_folder)
    assert "chat_template_kwargs are not known" in _meta(plain)["prm_probe.trl_prompt_ids"]
    assert "chat_template_kwargs" in caplog.text
    assert list(plain.to_pandas()["prompt_ids"][0]) != fed  # what the note warns of
    given = _import(bare, model_folder, fields={"chat_template_kwargs": '{"terse": true}'}).to_pandas()
    assert list(given.sort_values(["step", "group", "sample"])["prompt_ids"].iloc[0]) == fed
    with pytest.raises(SchemaError, match=r"chat_template_kwargs.*the run.s are"):
        _import(source, model_folder, fields={"chat_template_kwargs": '{"terse": false}'})


def test_the_weights_scale_is_checked_wherever_it_can_be(runs, model_folder, tmp_path, caplog):
    """A run with reward_weights 1,0.25 (no None rewards). Weights 2,0.5 give the same normalised advantages."""
    source, _ = runs["halved"]
    cols = ["first_token", "text_length"]
    tok = _tokenizer(model_folder)
    ok = import_log("trl", source, tokenizer=tok, reward_columns=cols)  # weights and group size from the run
    assert _meta(ok)["prm_probe.trl_weight_check"] == "the run's reward_weights (training_args.bin)"
    with pytest.raises(SchemaError, match=r"--reward-weights 2,0.5 but the run's reward_weights are 1,0.25"):
        import_log("trl", source, tokenizer=tok, reward_columns=cols, reward_weights=[2.0, 0.5], group_size=G)
    with pytest.raises(SchemaError, match=r"--group-size 2 but the run's num_generations is 4"):
        import_log("trl", source, tokenizer=tok, reward_columns=cols, group_size=2)
    # only trainer_state.json beside the log: the logged reward means tell the scale
    state_only = tmp_path / "state_only"
    shutil.copytree(source, state_only / "completions")
    shutil.copy(next(source.parent.glob("checkpoint-*/trainer_state.json")), state_only / "trainer_state.json")
    likely = r"is 0.5 times .* the run.s weights are probably 1,0.25; .* pass --reward-weights 1,0.25"
    with pytest.raises(SchemaError, match=likely):
        import_log("trl", state_only / "completions", tokenizer=tok, reward_columns=cols, reward_weights=[2.0, 0.5],
                   group_size=G)
    right = import_log("trl", state_only / "completions", tokenizer=tok, reward_columns=cols,
                       reward_weights=[1.0, 0.25], group_size=G)
    assert _meta(right)["prm_probe.trl_weight_check"].startswith("the logged reward means")
    # nothing beside the log: imported, and said so
    bare = tmp_path / "bare"
    shutil.copytree(source, bare)
    with caplog.at_level("WARNING"):
        unchecked = import_log("trl", bare, tokenizer=tok, reward_columns=cols, reward_weights=[2.0, 0.5],
                               group_size=G)
    assert _meta(unchecked)["prm_probe.trl_weight_check"].startswith("not checked")
    assert "weights' scale" in caplog.text


def test_coverage_counts_generation_batches(runs, model_folder):
    """num_iterations = 2, logging_steps = 2: every file is a new generation batch, so the log is complete."""
    source, seen = runs["mu2_every2"]
    assert len(list(source.glob("*.parquet"))) == 2 and len(seen["ids"]) == 2
    meta = _meta(_import(source, model_folder))
    assert meta["prm_probe.step_sample"] == "false"
    assert meta["prm_probe.step_coverage"].startswith("every generation batch from step 2 to 4 (2 batches")


def test_identical_prompts_without_a_group_size_are_refused_naming_the_group_size(runs, model_folder):
    """Every prompt of the run has the same text: grouped by text, a step's 8 rows merge into one group; TRL's
    advantage then names the group size (4), not the reward columns."""
    source, _ = runs["same_prompt"]
    with pytest.raises(SchemaError, match=r"hold 8 rows \(identical prompts in one step merged\).*pass --group-size 4"):
        import_log("trl", source, tokenizer=_tokenizer(model_folder), reward_columns=["first_token", "text_length"],
                   reward_weights=WEIGHTS)
    assert import_log("trl", source, tokenizer=_tokenizer(model_folder), group_size=G,
                      reward_columns=["first_token", "text_length"], reward_weights=WEIGHTS).num_rows == 16


def test_a_group_size_below_trls_is_refused(runs, model_folder, tmp_path):
    source, _ = runs["string"]
    with pytest.raises(SchemaError, match="group-size 2 may also be wrong"):
        import_log("trl", source, tokenizer=_tokenizer(model_folder), group_size=2,
                   reward_columns=["first_token", "text_length"], reward_weights=WEIGHTS)
    folder = tmp_path / "no-advantage"  # an older TRL without the advantage column: adjacent blocks tell
    folder.mkdir()
    for f in source.glob("*.parquet"):
        pd.read_parquet(f).drop(columns="advantage").to_parquet(folder / f.name)
    with pytest.raises(SchemaError, match="pass --group-size 4"):
        import_log("trl", folder, tokenizer=_tokenizer(model_folder), group_size=2,
                   reward_columns=["first_token", "text_length"], reward_weights=WEIGHTS)


def test_logging_every_kth_step_is_reported_as_a_sample(runs, model_folder, tmp_path, capsys):
    source, seen = runs["every2"]
    table = _import(source, model_folder)
    meta = _meta(table)
    assert sorted(table.to_pandas()["step"].unique()) == [2, 4] and len(seen["ids"]) == 4
    assert meta["prm_probe.step_sample"] == "true" and "every 2nd step" in meta["prm_probe.step_coverage"]
    out = tmp_path / "every2.parquet"
    assert main(["import", "trl", str(source), "-o", str(out), "--tokenizer", str(model_folder), "--group-size",
                 str(G), "--reward-columns", "first_token,text_length", "--reward-weights", "2,0.5"]) == 0
    printed = capsys.readouterr().out
    assert "a sample of the run" in printed and "first step 1" in printed
    assert "re-tokenised from text" in printed and "skip_special_tokens" in printed
    assert main(["stats", str(out), "-q"]) == 0
    assert "a sample of the run" in capsys.readouterr().out


def test_the_recorder_is_a_reward_function_that_rewards_nothing():
    logged = {}
    values = record_completion_ids(prompts=["a"], completions=["b", "c"], completion_ids=[[5, 6], [7]],
                                   log_extra=lambda col, v: logged.setdefault(col, v))
    assert values == [None, None] and logged == {"completion_ids": [[5, 6], [7]]}
    from prm_probe.errors import ConfigError

    with pytest.raises(ConfigError, match="log_extra"):
        record_completion_ids(completions=["b"], completion_ids=[[1]])


def test_tiny_tokenizer_reloads_identically_beside_a_model_config(tmp_path):
    """AutoTokenizer rebuilds a folder's tokenizer from the model type (Qwen2 here): spaces must survive."""
    from transformers import AutoTokenizer

    from prm_probe.training.models import char_tokenizer, tiny_model

    tok = char_tokenizer()
    for name in ("tiny", "tiny-gpt2"):
        folder = tmp_path / name
        tiny_model(name, len(tok), seed=0).save_pretrained(folder)
        tok.save_pretrained(folder)
        loaded = AutoTokenizer.from_pretrained(folder)
        for text in ["What is 12 + 7?", "a\tb\nc  d", "<bos>x=1<eos>", "L R"]:
            assert loaded.encode(text) == tok.encode(text), (name, text)
            assert loaded.decode(loaded.encode(text)) == text
        assert loaded.decode(tok.encode("What is 12 + 7?"), skip_special_tokens=True) == "What is 12 + 7?"
        assert (loaded.pad_token_id, loaded.bos_token_id, loaded.eos_token_id, len(loaded)) == (0, 1, 2, len(tok))
