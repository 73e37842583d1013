"""Tasks and rewards: determinism, disjoint splits, gold/wrong scoring, safety, toy-tree rule, registry."""

from __future__ import annotations

import importlib.machinery
import importlib.util
import itertools
import json
import sys
import textwrap
import types
from typing import Any

import pytest

from prm_probe.errors import ConfigError, UnknownNameError
from prm_probe.training.tasks import (
    TASKS,
    Problem,
    Score,
    Task,
    extract_answer,
    get_task,
    last_boxed,
    list_tasks,
)

HAS_MATH_VERIFY = importlib.util.find_spec("math_verify") is not None
HAS_REASONING_GYM = importlib.util.find_spec("reasoning_gym") is not None


class EchoTask(Task):
    """A user task loaded by module path: the answer is the prompt."""

    name = "echo"
    defaults = {"word": "hi"}  # noqa: RUF012

    def _make(self, split: str) -> list[Problem]:
        k = self.train_size if split == "train" else self.val_size
        return [Problem(f"echo-{split}-{i}", f"{self.options['word']} {split} {i}", str(i)) for i in range(k)]

    def score(self, problem: Problem, completion: str, completion_ids: list[int]) -> Score:
        ok = float(completion.strip() == problem.answer)
        return Score(ok, {"correct": ok})


class FakeTokenizer:
    """The subset of the HF tokenizer API tasks use, with a chat template."""

    bos_token_id = 1
    eos_token_id = 2
    chat_template = "{{ messages }}"

    def encode(self, text: str, add_special_tokens: bool = False) -> list[int]:
        return [ord(c) for c in text]

    def apply_chat_template(self, messages: list[dict], add_generation_prompt: bool = True,
                            tokenize: bool = True) -> Any:
        return {"input_ids": [7, *self.encode(messages[0]["content"]), 8]}


@pytest.fixture(scope="module")
def char_tok():
    pytest.importorskip("transformers")
    from prm_probe.training.models import char_tokenizer

    return char_tokenizer()


def boxed(answer: str) -> str:
    return f"Let me work it out. The answer is \\boxed{{{answer}}}"


# ---------------------------------------------------------------- helpers


def test_last_boxed_and_extract_answer() -> None:
    assert last_boxed(r"\boxed{\frac{1}{2}}") == r"\frac{1}{2}"
    assert last_boxed(r"\boxed{1} then \boxed{2}") == "2"
    assert last_boxed(r"\boxed{3} then \boxed{unclosed") == "3"
    assert last_boxed(r"\boxed {4}") == "4"
    for garbage in ["", "}{", r"\boxed", r"\boxed{", "{{{{", None]:
        assert last_boxed(garbage) is None  # type: ignore[arg-type]
    assert extract_answer("12, 13 and -14.") == "-14"
    assert extract_answer(r"-14 \boxed{ 5 }") == "5"


# ---------------------------------------------------------------- registry


def test_registry_names() -> None:
    assert list_tasks() == ["arithmetic", "countdown", "toy-tree"]
    assert set(TASKS) == set(list_tasks())


def test_unknown_task_suggests_close_match() -> None:
    with pytest.raises(UnknownNameError, match=r"did you mean 'arithmetic'.*") as err:
        get_task("arithmatic")
    assert "countdown" in str(err.value) and "\n" not in str(err.value)


def test_unknown_option_refused_with_close_match() -> None:
    with pytest.raises(ConfigError, match="did you mean 'depth'"):
        get_task("toy-tree", options={"dept": 3})


@pytest.mark.parametrize("name, options", [
    ("toy-tree", {"depth": 0}), ("toy-tree", {"n": 5}), ("toy-tree", {"actions": ["L", "L"]}),
    ("toy-tree", {"r_neg": float("nan")}), ("arithmetic", {"operations": [3, 2]}),
    ("arithmetic", {"operators": "/"}), ("countdown", {"count": [1, 2]}), ("countdown", {"max_target": 0}),
])
def test_bad_options_raise_config_error(name: str, options: dict) -> None:
    with pytest.raises(ConfigError) as err:
        get_task(name, options=options)
    assert "\n" not in str(err.value)


def test_bad_sizes_and_split() -> None:
    with pytest.raises(ConfigError):
        get_task("arithmetic", train_size=0)
    with pytest.raises(ConfigError):
        get_task("arithmetic").problems("test")  # type: ignore[arg-type]


def test_module_path_loading_from_tests_module() -> None:
    task = get_task("tests.test_tasks:EchoTask", seed=3, options={"word": "yo"}, train_size=5, val_size=2)
    assert isinstance(task, EchoTask) and task.seed == 3
    assert [p.prompt for p in task.problems("validation")] == ["yo validation 0", "yo validation 1"]
    assert task.score(task.problems("train")[4], "4", []).reward == 1.0


def test_module_path_loading_from_tmp_module(tmp_path, monkeypatch) -> None:
    (tmp_path / "my_tasks_mod.py").write_text(textwrap.dedent("""
        from prm_probe.training.tasks import Problem, Score, Task

        class Const(Task):
            name = "const"
            def _make(self, split):
                return [Problem(f"c-{split}", "say 1", "1")]
            def score(self, problem, completion, completion_ids):
                return Score(float("1" in completion), {})

        class NotATask:
            pass
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    task = get_task("my_tasks_mod:Const")
    assert task.problems("train")[0].answer == "1"
    with pytest.raises(ConfigError, match="subclass"):
        get_task("my_tasks_mod:NotATask")
    with pytest.raises(UnknownNameError, match="did you mean 'Const'"):
        get_task("my_tasks_mod:Cnst")
    with pytest.raises(UnknownNameError, match="cannot be imported"):
        get_task("no_such_module_xyz:Foo")
    sys.modules.pop("my_tasks_mod", None)


# ---------------------------------------------------------------- generated tasks


@pytest.mark.parametrize("name", ["arithmetic", "countdown"])
def test_determinism_and_disjoint_splits(name: str) -> None:
    a = get_task(name, seed=1, train_size=300, val_size=40)
    b = get_task(name, seed=1, train_size=300, val_size=40)
    c = get_task(name, seed=2, train_size=300, val_size=40)
    for split in ("train", "validation"):
        assert a.problems(split) == b.problems(split)
        assert [p.prompt for p in a.problems(split)] != [p.prompt for p in c.problems(split)]
    train, val = a.problems("train"), a.problems("validation")
    assert len(train) == 300 and len(val) == 40
    assert not {p.prompt for p in train} & {p.prompt for p in val}
    assert len({p.prompt for p in val}) == 40
    assert len({p.id for p in train}) == 300


def test_arithmetic_gold_and_wrong() -> None:
    task = get_task("arithmetic", seed=0, train_size=200, val_size=10)
    for p in task.problems("train"):
        assert p.prompt.startswith("Compute ") and p.prompt.endswith("\\boxed{}.")
        good = task.score(p, boxed(p.answer), [])
        assert good == Score(1.0, {"correct": 1.0, "format": 1.0})
        assert task.score(p, boxed(str(int(p.answer) + 1)), []).reward == 0.0
        assert task.score(p, f"so {p.answer}", []).components == {"correct": 1.0, "format": 0.0}
    assert any(int(p.answer) < 0 for p in task.problems("train"))
    short = get_task("arithmetic", options={"boxed": False, "operations": [1, 1], "operands": [2, 5]},
                     train_size=5, val_size=2)
    assert all("boxed" not in p.prompt for p in short.problems("train"))


@pytest.mark.parametrize("completion", ["", "}{", r"\boxed{", r"\boxed{9" + "9" * 5000 + "}", "9" * 5000,
                                        r"\boxed{1/0}", "\x00\uffff", r"\boxed{\boxed{}}"])
def test_scorers_never_raise_on_garbage(completion: str) -> None:
    for name in ("arithmetic", "countdown", "toy-tree"):
        task = get_task(name, train_size=3, val_size=1)
        score = task.score(task.problems("train")[0], completion, [5, 6, 7])
        assert score.reward == 0.0
        assert all(v == v for v in score.components.values())


def test_countdown_all_solvable_and_wrong() -> None:
    task = get_task("countdown", seed=0, train_size=300, val_size=20)
    for p in task.problems("train") + task.problems("validation"):
        numbers, target = p.meta["numbers"], p.meta["target"]
        assert 3 <= len(numbers) <= 4 and isinstance(target, int) and 0 < target <= 1000
        assert f"make {target}." in p.prompt
        assert task.score(p, boxed(p.answer), []) == Score(1.0, {"correct": 1.0, "format": 1.0})
        assert task.score(p, f"thinking...\n{p.answer}", []).components == {"correct": 1.0, "format": 0.0}
        wrong_target = " + ".join(map(str, numbers))
        if sum(numbers) != target:
            assert task.score(p, boxed(wrong_target), []).reward == 0.0
        assert task.score(p, boxed(f"{p.answer} + 0"), []).reward == 0.0  # an extra number


def test_countdown_rejects_malicious_and_bad_expressions(monkeypatch) -> None:
    task = get_task("countdown", train_size=2, val_size=1)
    p = Problem("x", "", "3 * 9", {"numbers": [3, 9], "target": 27})
    assert task.score(p, boxed("3*9"), []).reward == 1.0
    assert task.score(p, boxed("(9) * (3)"), []).reward == 1.0
    assert task.score(p, boxed("-3 * -9"), []).reward == 1.0  # unary minus is allowed
    called = []
    monkeypatch.setattr("builtins.__import__", lambda *a, **k: called.append(a) or None, raising=True)
    bad = ["__import__('os').system('echo hi')", "9**9**9", "3**3", "3 // 9", "3 * 9 * 1", "3 * 9.0",
           "3 9", "27", "lambda: 27", "[3, 9]", "3 / (9 - 9)", "(" * 400 + "3*9" + ")" * 400, "3 % 9", "3*9 = 27"]
    results = [task.score(p, boxed(b), []).reward for b in bad]
    monkeypatch.undo()
    assert results == [0.0] * len(bad) and not called
    p0 = Problem("z", "", "", {"numbers": [4, 2, 2], "target": 1})
    assert task.score(p0, boxed("4 / (2 + 2)"), []).reward == 1.0
    assert task.score(p0, boxed("4 / (2 - 2)"), []).reward == 0.0


# ---------------------------------------------------------------- toy tree


@pytest.mark.parametrize("n, traps, others", [(1, 7, 8), (2, 3, 12)])
def test_toy_tree_rewards_follow_the_rule(n: int, traps: int, others: int) -> None:
    task = get_task("toy-tree", seed=4, options={"n": n, "r_neg": -1.0})
    t = task.target
    assert len(t) == 4 and set(t) <= {"L", "R"} and task.exact_new_tokens == 4
    rewards = {"".join(p): task.path_reward("".join(p)) for p in itertools.product("LR", repeat=4)}
    assert rewards[t] == 1.0
    for path, r in rewards.items():
        if path != t:
            assert r == (-1.0 if path[:n] == t[:n] else 0.7)
    values = list(rewards.values())
    assert values.count(1.0) == 1 and values.count(-1.0) == traps and values.count(0.7) == others
    assert task.path_reward("LRL") == 0.0 and task.path_reward("LRLX") == 0.0


def test_toy_tree_target_is_seeded_and_problems_single_prompt() -> None:
    targets = {get_task("toy-tree", seed=s).target for s in range(40)}
    assert get_task("toy-tree", seed=7).target == get_task("toy-tree", seed=7).target
    assert len(targets) > 8
    task = get_task("toy-tree", train_size=10, val_size=5)
    train, val = task.problems("train"), task.problems("validation")
    assert len(train) == 10 and len({p.prompt for p in train}) == 1 and len(val) == 1
    assert train[0].answer == task.target


def test_toy_tree_with_char_tokenizer(char_tok) -> None:
    task = get_task("toy-tree", seed=1, options={"n": 2, "r_neg": -0.5})
    ids = task.allowed_token_ids(char_tok)
    assert ids == [char_tok.convert_tokens_to_ids("L"), char_tok.convert_tokens_to_ids("R")]
    p = task.problems("train")[0]
    assert task.prompt_ids(p, char_tok) == [char_tok.bos_token_id]
    to_id = dict(zip("LR", ids))
    for path in map("".join, itertools.product("LR", repeat=4)):
        path_ids = [to_id[c] for c in path]
        score = task.score(p, char_tok.decode(path_ids), path_ids)
        assert score.reward == task.path_reward(path)
        assert score.components == {"target": float(path == task.target)}
    bad = task.score(p, "LLLE", [to_id["L"]] * 3 + [char_tok.eos_token_id])
    assert bad == Score(0.0, {"target": 0.0})
    assert task.score(p, "", []).reward == 0.0
    with pytest.raises(ConfigError, match="exactly one"):
        get_task("toy-tree", options={"actions": ["L", "R"]}).allowed_token_ids(_MultiTokenTok())


class _MultiTokenTok(FakeTokenizer):
    def encode(self, text: str, add_special_tokens: bool = False) -> list[int]:
        return [1, 2]


def test_toy_tree_prompt_falls_back_to_eos() -> None:
    tok = FakeTokenizer()
    tok.bos_token_id = None  # type: ignore[assignment]
    task = get_task("toy-tree")
    assert task.prompt_ids(task.problems("train")[0], tok) == [2]


# ---------------------------------------------------------------- prompt ids


def test_prompt_ids_char_tokenizer_and_chat_template(char_tok) -> None:
    task = get_task("arithmetic", train_size=3, val_size=1)
    p = task.problems("train")[0]
    expected = [char_tok.bos_token_id, *char_tok.encode(p.prompt, add_special_tokens=False)]
    assert task.prompt_ids(p, char_tok) == expected
    assert char_tok.decode(expected[1:]) == p.prompt
    fake = FakeTokenizer()
    assert task.prompt_ids(p, fake) == [7, *fake.encode(p.prompt), 8]
    assert task.prompt_ids(p, fake, chat_template=False) == [1, *fake.encode(p.prompt)]


# ---------------------------------------------------------------- jsonl


def _write_jsonl(path, rows: list[dict]) -> str:
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return str(path)


ROWS = [{"problem": f"What is {i} + {i}?", "answer": str(2 * i), "uid": f"u{i}"} for i in range(10)]
ROWS.append({"problem": "Half of one?", "answer": "\\frac{1}{2}", "uid": "half"})


def test_jsonl_exact_matcher(tmp_path) -> None:
    path = _write_jsonl(tmp_path / "p.jsonl", ROWS)
    task = get_task(f"jsonl:{path}", options={"matcher": "exact", "id_field": "uid"}, train_size=100, val_size=3)
    train, val = task.problems("train"), task.problems("validation")
    assert len(train) == 8 and len(val) == 3 and val[-1].id == "jsonl-validation-half"
    assert "\\boxed{}" in train[0].prompt
    for p in train + val:
        assert task.score(p, boxed(p.answer), []).reward == 1.0
        assert task.score(p, boxed("nope"), []).reward == 0.0
        assert task.score(p, p.answer, []) == Score(0.0, {"correct": 0.0, "format": 0.0})
    assert task.score(val[-1], r"\boxed{ \frac{1}{2} }", []).reward == 1.0
    capped = get_task(f"jsonl:{path}", options={"matcher": "exact"}, train_size=2, val_size=3)
    assert [p.id for p in capped.problems("train")] == ["jsonl-train-1", "jsonl-train-2"]


def test_jsonl_errors(tmp_path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        get_task(f"jsonl:{tmp_path / 'missing.jsonl'}", options={"matcher": "exact"})
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"problem": "a", "answer": "1"}\n{oops\n')
    with pytest.raises(ConfigError, match="line 2"):
        get_task(f"jsonl:{bad}", options={"matcher": "exact"}, val_size=0)
    path = _write_jsonl(tmp_path / "q.jsonl", [{"question": "a", "answer": "1"}])
    with pytest.raises(ConfigError, match="'problem'"):
        get_task(f"jsonl:{path}", options={"matcher": "exact"})
    small = _write_jsonl(tmp_path / "s.jsonl", ROWS[:3])
    with pytest.raises(ConfigError, match="3 rows"):
        get_task(f"jsonl:{small}", options={"matcher": "exact"}, val_size=64)
    with pytest.raises(ConfigError, match="matcher"):
        get_task(f"jsonl:{small}", options={"matcher": "fuzzy"}, val_size=1)
    if not HAS_MATH_VERIFY:
        with pytest.raises(ConfigError, match="prm-probe\\[tasks\\]"):
            get_task(f"jsonl:{small}", val_size=1)


@pytest.mark.skipif(not HAS_MATH_VERIFY, reason="math-verify not installed")
def test_jsonl_math_verify(tmp_path) -> None:
    path = _write_jsonl(tmp_path / "p.jsonl", ROWS)
    task = get_task(f"jsonl:{path}", train_size=100, val_size=3)
    half = task.problems("validation")[-1]
    assert task.score(half, r"so \boxed{\frac{1}{2}}", []).reward == 1.0
    assert task.score(half, r"so \boxed{0.5}", []).reward == 1.0
    assert task.score(half, r"so \boxed{\frac{1}{3}}", []).reward == 0.0
    assert task.score(half, "no box 1/2", []).reward == 0.0
    for p in task.problems("train"):
        assert task.score(p, boxed(p.answer), []).reward == 1.0
        assert task.score(p, boxed(str(int(p.answer) + 1)), []).reward == 0.0


def test_jsonl_math_verify_wiring_with_a_fake_module(tmp_path, monkeypatch) -> None:
    """The math-verify path (wrapping, last box, the unparsable-gold quirk, failures) with a stand-in module."""
    calls: list[tuple[str, Any]] = []
    fake = types.ModuleType("math_verify")
    fake.__spec__ = importlib.machinery.ModuleSpec("math_verify", None)

    def parse(text: str, **kw: Any) -> list:
        calls.append(("parse", text))
        if "boom" in text:
            raise RuntimeError("boom")
        inner = text.removeprefix("\\boxed{").removesuffix("}")
        return [] if inner == "??" else [inner.replace(" ", "")]

    def verify(gold: list, pred: list, **kw: Any) -> bool:
        return bool(pred) and gold[0] == pred[0]

    fake.parse, fake.verify = parse, verify  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "math_verify", fake)
    rows = [{"problem": "a", "answer": "\\frac{1}{2}"}, {"problem": "b", "answer": "??"},
            {"problem": "c", "answer": "boom"}, {"problem": "d", "answer": "$3$"}]
    task = get_task(f"jsonl:{_write_jsonl(tmp_path / 'f.jsonl', rows)}", train_size=10, val_size=0)
    half, unparsable, broken, dollar = task.problems("train")
    assert task.score(half, r"\boxed{1} no: \boxed{\frac{1}{ 2}}", []).reward == 1.0
    assert ("parse", "\\boxed{\\frac{1}{2}}") in calls and ("parse", "\\boxed{\\frac{1}{ 2}}") in calls
    assert task.score(half, r"\boxed{\frac{1}{3}}", []) == Score(0.0, {"correct": 0.0, "format": 1.0,
                                                                           "gold_unparsed": 0.0})
    assert task.score(half, "", []).reward == 0.0
    assert task.score(half, r"\boxed{boom}", []).reward == 0.0  # math-verify raising on a completion
    assert task.score(unparsable, "anything", []) == Score(1.0, {"correct": 1.0, "format": 0.0,
                                                                  "gold_unparsed": 1.0})
    assert task.score(broken, r"\boxed{boom}", []).reward == 0.0  # math-verify raising on the gold: 0, not 1
    task.score(dollar, r"\boxed{3}", [])
    assert ("parse", "$3$") in calls


# ---------------------------------------------------------------- reasoning-gym


def test_reasoning_gym_missing_or_unknown() -> None:
    if HAS_REASONING_GYM:
        with pytest.raises(UnknownNameError):
            get_task("reasoning-gym:gsm_symbolc", train_size=2, val_size=1)
    else:
        with pytest.raises(ConfigError, match="prm-probe\\[tasks\\]"):
            get_task("reasoning-gym:gsm_symbolic")


@pytest.mark.skipif(not HAS_REASONING_GYM, reason="reasoning-gym not installed")
def test_reasoning_gym_gsm_symbolic() -> None:
    task = get_task("reasoning-gym:gsm_symbolic", seed=0, train_size=4, val_size=2)
    train, val = task.problems("train"), task.problems("validation")
    assert len(train) == 4 and len(val) == 2 and "\\boxed{}" in train[0].prompt
    for p in train + val:
        assert task.score(p, boxed(p.answer), []).reward == 1.0
        assert task.score(p, boxed(p.answer + "1"), []).reward == 0.0
        assert task.score(p, "", []).reward == 0.0


def test_reasoning_gym_wiring_with_a_fake_module(monkeypatch) -> None:
    """Splits, prompts, binary thresholding of partial credit and unknown names, with a stand-in module."""

    class FakeDataset:
        def __init__(self, size: int, seed: int) -> None:
            self.rows = [{"question": f"q{seed}-{i}?", "answer": str(i)} for i in range(size)]

        def __getitem__(self, i: int) -> dict:
            return self.rows[i]

        def score_answer(self, answer: str | None, entry: dict) -> float:
            if answer == "crash":
                raise RuntimeError("scorer bug")
            return 1.0 if answer == entry["answer"] else 0.05  # partial credit, as reasoning-gym gives

    def create_dataset(name: str, size: int, seed: int) -> FakeDataset:
        if name != "gsm_symbolic":
            raise ValueError(f"Dataset {name} not registered")
        return FakeDataset(size, seed)

    fake = types.ModuleType("reasoning_gym")
    fake.__spec__ = importlib.machinery.ModuleSpec("reasoning_gym", None)
    fake.create_dataset = create_dataset  # type: ignore[attr-defined]
    fake.factory = types.SimpleNamespace(DATASETS={"gsm_symbolic": None, "countdown": None})  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "reasoning_gym", fake)
    task = get_task("reasoning-gym:gsm_symbolic", seed=5, train_size=3, val_size=2)
    train, val = task.problems("train"), task.problems("validation")
    assert [p.answer for p in train] == ["0", "1", "2"] and [p.answer for p in val] == ["3", "4"]
    assert train[0].prompt.startswith("q5-0?") and "\\boxed{}" in train[0].prompt
    assert task.score(val[1], boxed("4"), []) == Score(1.0, {"correct": 1.0, "format": 1.0})
    assert task.score(val[1], boxed("5"), []).reward == 0.0  # 0.05 partial credit -> 0
    assert task.score(val[1], "4", []).components == {"correct": 0.0, "format": 0.0}
    assert task.score(val[1], boxed("crash"), []).reward == 0.0
    from dataclasses import replace

    with pytest.raises(ConfigError, match="is not one of task"):  # a foreign problem is refused, not a silent 0
        task.score(replace(val[1], id="someone-else:7"), boxed("4"), [])
    with pytest.raises(UnknownNameError, match="did you mean 'gsm_symbolic'"):
        get_task("reasoning-gym:gsm_symbolc")


def test_toy_tree_prefix_reward_is_the_matched_share():
    from prm_probe.training.tasks import get_task

    task = get_task("toy-tree", seed=3, options={"depth": 6, "reward": "prefix"})
    t = task.target
    flip = {"L": "R", "R": "L"}
    assert task.path_reward(t) == 1.0
    for k in range(6):
        path = t[:k] + flip[t[k]] + t[k + 1:]
        assert task.path_reward(path) == k / 6
    with pytest.raises(ConfigError, match="reward"):
        get_task("toy-tree", options={"reward": "dense"})
