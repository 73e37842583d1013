"""The ``prm-probe`` command line on the bundled sample log, its help, and its import cost."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pytest

from prm_probe.cli import main
from prm_probe.core.rollouts import write_rollouts
from prm_probe.core.schema import METADATA_KEYS, ROLLOUT_SCHEMA
from prm_probe.core.stats import GROUP_COLUMNS

ROOT = Path(__file__).resolve().parent.parent
HEAVY = ("torch", "transformers", "matplotlib", "seaborn", "scipy")
EXPECTED_GROUP_COLUMNS = ["run_id", "step", "group", "group_size", "nontrivial", "proper_branching", "node_count",
                          "path_depth_mean", "path_depth_median", "intermediate_proportion_mean",
                          "intermediate_proportion_median", "gradient_mass_ratio"]


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return env


# ------------------------------------------------------------------------------------------------ stats


def test_stats_prints_the_summary(sample_log, capsys):
    assert main(["stats", str(sample_log)]) == 0
    captured = capsys.readouterr()
    out = captured.out
    assert f"log: {sample_log}" in out
    assert "4 step(s), 16 group(s), 128 completions" in out
    for words in ("non-trivial groups", "proper branching", "path depth: mean", "intermediate proportion: mean",
                  "gradient-mass ratio", "per step"):
        assert words in out, words
    assert "sample-grpo" in out  # the per-step table
    assert captured.err == ""


def _number(out: str, pattern: str) -> float:
    found = re.search(pattern, out, flags=re.MULTILINE)
    assert found, f"{pattern!r} not in:\n{out}"
    return float(found.group(1))


def test_stats_summary_values_are_the_hand_computed_ones(tmp_path, capsys):
    """Two groups of G = 4, counted by hand. Group 0, completions 123 / 124 / 156 / 789: |λ| = 3 2 1 / 3 2 1 /
    3 1 1 / 1 1 1, path depths 3 3 2 1, shared-token shares 2/3 2/3 1/3 0. Group 1 shares nothing: |λ| = 1 on its
    8 tokens, depth 1 and share 0 on each completion."""
    log = pa.table({
        "run_id": ["r"] * 8, "step": [0] * 8, "group": [0] * 4 + [1] * 4, "sample": [0, 1, 2, 3] * 2,
        "prompt_id": ["a"] * 4 + ["b"] * 4,
        "completion_ids": [[1, 2, 3], [1, 2, 4], [1, 5, 6], [7, 8, 9], [1, 2], [3, 4], [5, 6], [7, 8]],
        "reward": [1.0, 0.0, 1.0, 0.0] * 2,
    })
    path = write_rollouts(log, tmp_path / "log.parquet")
    assert main(["stats", str(path), "-q"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"\b1 step\(s\), 2 group\(s\), 8 completions, 20 tokens", out), out
    assert _number(out, r"non-trivial groups[^\n]*?([\d.]+)%") == 50.0  # group 0 only
    assert _number(out, r"proper branching[^\n]*?([\d.]+)%") == 50.0  # 1 < |λ| < 4 in group 0 only
    assert _number(out, r"path depth: mean ([\d.]+)") == pytest.approx(13 / 8, abs=5e-4)
    assert _number(out, r"path depth: mean [\d.]+, median ([\d.]+)") == 1.0
    assert _number(out, r"intermediate proportion: mean ([\d.]+)") == pytest.approx((5 / 3) / 8, abs=5e-4)
    assert _number(out, r"intermediate proportion: mean [\d.]+, median ([\d.]+)") == 0.0
    # Σ 1/|λ| over Σ 1: (2·(1/3 + 1/2 + 1) + 1/3 + 1 + 1 + 3 + 8) / 20 = 17 / 20
    assert _number(out, r"gradient-mass ratio[^\n]*?: ([\d.]+)\s*$") == pytest.approx(17 / 20, abs=5e-4)


def test_stats_quiet_prints_only_the_summary(sample_log, capsys):
    assert main(["stats", str(sample_log), "-q"]) == 0
    out = capsys.readouterr().out
    assert "128 completions" in out and "per step" not in out


def test_stats_by_group_writes_the_group_frame(sample_log, tmp_path, capsys):
    out = tmp_path / "x.parquet"
    assert main(["stats", str(sample_log), "--by", "group", "-o", str(out)]) == 0
    frame = pd.read_parquet(out)
    assert list(frame.columns[: len(EXPECTED_GROUP_COLUMNS)]) == EXPECTED_GROUP_COLUMNS
    assert list(GROUP_COLUMNS) == EXPECTED_GROUP_COLUMNS
    assert len(frame) == 16
    assert (frame["group_size"] == 8).all()
    assert sorted(set(frame["step"])) == [0, 1, 2, 3]
    assert "wrote 16 rows (per group)" in capsys.readouterr().out


def test_stats_by_completion_and_by_step(sample_log, tmp_path, capsys):
    comp = tmp_path / "c.csv"
    assert main(["stats", str(sample_log), "--by", "completion", "-o", str(comp)]) == 0
    out = capsys.readouterr().out
    assert "per completion" in out
    frame = pd.read_csv(comp)
    assert len(frame) == 128
    assert {"run_id", "step", "group", "sample", "length", "path_depth", "intermediate_proportion"} <= set(frame)
    assert frame["length"].sum() == 2621

    step = tmp_path / "s.parquet"
    assert main(["stats", str(sample_log), "--by", "step", "-o", str(step)]) == 0
    assert "per step" in capsys.readouterr().out
    frame = pd.read_parquet(step)
    assert frame["step"].tolist() == [0, 1, 2, 3]
    assert frame["groups"].tolist() == [4, 4, 4, 4]
    assert frame["completions"].sum() == 128


def test_stats_rejects_unknown_by(sample_log, capsys):
    with pytest.raises(SystemExit) as info:
        main(["stats", str(sample_log), "--by", "token"])
    assert info.value.code == 2
    assert "invalid choice" in capsys.readouterr().err


# ----------------------------------------------------------------------------------- schema and validate


def test_schema_prints_every_column(capsys):
    assert main(["schema"]) == 0
    out = capsys.readouterr().out
    for f in ROLLOUT_SCHEMA:
        assert f"`{f.name}`" in out, f.name
    assert "reward_<name>" in out
    for key in METADATA_KEYS:
        assert key in out, key


def test_the_packaged_log_has_a_short_name_in_every_log_verb(tmp_path, monkeypatch, capsys):
    """`sample` names the packaged log from any folder (here one without a data/ folder) in each verb taking a LOG;
    a file called `sample` in the working folder wins."""
    monkeypatch.chdir(tmp_path)
    assert main(["stats", "sample", "-q"]) == 0
    assert "1 step(s), 64 group(s), 512 completions" in capsys.readouterr().out
    assert main(["validate", "sample"]) == 0
    assert "ok: 512 rows, 64 groups, 1 step;" in capsys.readouterr().out  # singular: "1 step"
    assert main(["prm", "sample", "--step", "0", "--group", "5"]) == 0
    assert "group 5: G=8" in capsys.readouterr().out
    (tmp_path / "sample").write_bytes(b"")
    assert main(["stats", "sample"]) == 2
    assert "file 'sample' is empty" in capsys.readouterr().err


def test_a_bad_output_suffix_is_refused_before_any_work(sample_log, tmp_path, capsys):
    assert main(["stats", str(sample_log), "-o", str(tmp_path / "x.txt")]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""  # nothing computed or printed first
    assert captured.err.startswith("prm-probe: error: output ") and "expected .csv or .parquet" in captured.err
    assert main(["prm", str(sample_log), "--step", "0", "--group", "0", "-o", str(tmp_path / "x.json")]) == 2
    assert capsys.readouterr().out == ""


def test_a_missing_optional_package_names_its_extra(monkeypatch, capsys):
    """A verb whose extra is not installed says which one, in one line (simulated: the handler's import fails)."""
    import prm_probe.commands.logs as logs

    def needs_matplotlib(args):
        raise ModuleNotFoundError("No module named 'matplotlib'", name="matplotlib")

    monkeypatch.setattr(logs, "cmd_schema", needs_matplotlib)
    assert main(["schema"]) == 2
    err = capsys.readouterr().err
    assert err.strip().splitlines() == ["prm-probe: error: this command needs matplotlib, which is not installed; "
                                        "expected the 'plots' extra; pip install 'prm-probe[plots]' (or "
                                        "'prm-probe[all]')"]

    def needs_something_else(args):
        raise ModuleNotFoundError("No module named 'nope'", name="nope")

    monkeypatch.setattr(logs, "cmd_schema", needs_something_else)
    with pytest.raises(ModuleNotFoundError):  # not an optional package: a bug, with its traceback
        main(["schema"])


def test_a_verb_whose_extra_is_missing_is_refused_before_any_work(tmp_path, monkeypatch, capsys):
    """Simulated core install (find_spec says torch is absent): the demo is refused in one line, no folder left."""
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "torch" else real(name, *a))
    out = tmp_path / "demo"
    assert main(["demo", "--quick", "--out", str(out)]) == 2
    assert capsys.readouterr().err.splitlines() == [
        "prm-probe: error: this command needs the 'train' extra, which is not installed; "
        "pip install 'prm-probe[train]' (or 'prm-probe[all]')"]
    assert not out.exists()
    assert main(["stats", "sample", "-q"]) == 0  # the core verbs need no extra


def test_sample_flags_come_from_the_settings_model(capsys):
    """Every sampling setting `sample` takes from a run is a flag with the config's own help and type."""
    from prm_probe.commands.training import SAMPLE_SETTINGS
    from prm_probe.training.config import setting_specs

    with pytest.raises(SystemExit):
        main(["sample", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for section, names in SAMPLE_SETTINGS:
        for spec in setting_specs(section, names):
            assert spec.flag in text, spec.flag
            if spec.key != "seed":
                assert " ".join(spec.help.split()) in text, spec.help
    assert "(default: the run's, else 64)" in text  # max_new_tokens: the config's 64, not a second default


def test_trl_train_flags_describe_run_settings_as_the_config_does(capsys, monkeypatch):
    """trl-train's run settings (under TRL's names) carry the settings model's help; TRL-only ones their own, once."""
    from prm_probe.integrations.trl.run import OPTIONS
    from prm_probe.training.config import setting_specs

    monkeypatch.setenv("COLUMNS", "1000")  # no wrapping (argparse breaks lines after hyphens)
    with pytest.raises(SystemExit):
        main(["trl-train", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for name, option in OPTIONS.items():
        if option.setting is None:
            continue
        section, _, field_name = option.setting.rpartition(".")
        help_text = " ".join(setting_specs(section or "run", (field_name,))[0].help.split())
        assert f"--{name.replace('_', '-')} {name.upper()} {help_text}" in text, name
    assert text.count("(default: TRL's)") == 1 and "(default TRL's)" not in text


def test_validate_sample_log(sample_log, capsys):
    assert main(["validate", str(sample_log)]) == 0
    captured = capsys.readouterr()
    assert re.search(r"ok: 128 rows, 16 groups, 4 steps", captured.out)
    assert captured.err == ""


# ------------------------------------------------------------------------------------------------- prm


def test_prm_prints_tree_and_identity(sample_log, capsys):
    assert main(["prm", str(sample_log), "--step", "3", "--group", "0"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0].startswith("run sample-grpo, step 3, group 0: G=8,")
    tree = [ln for ln in lines if "|λ|=" in ln]
    assert tree and all("R̂=" in ln and "A=" in ln for ln in tree)
    assert any(ln.startswith("  ") for ln in tree)  # the sample at step 3 branches
    m = re.search(r"Theorem 1 identity .*: holds on (\d+)/(\d+) nodes", out)
    assert m and m.group(1) == m.group(2) and int(m.group(2)) == len(tree)


def test_prm_writes_per_token_table(sample_log, tmp_path, capsys):
    out = tmp_path / "prm.parquet"
    assert main(["prm", str(sample_log), "--step", "3", "--group", "0", "-o", str(out)]) == 0
    frame = pd.read_parquet(out)
    assert {"sample", "t", "token", "node", "process_set_size", "step_reward", "prm_advantage", "reward",
            "outcome_advantage"} <= set(frame.columns)
    import pyarrow.compute as pc

    from prm_probe.core.rollouts import read_rollouts

    t = read_rollouts(sample_log)
    sub = t.filter(pc.and_(pc.equal(t["step"], 3), pc.equal(t["group"], 0)))
    n_tokens = sum(len(x) for x in sub.column("completion_ids").to_pylist())
    assert len(frame) == n_tokens
    assert sorted(set(frame["sample"])) == list(range(8))
    assert frame["process_set_size"].between(1, 8).all()
    assert f"wrote {n_tokens} token rows" in capsys.readouterr().out


def test_prm_csv_output(sample_log, tmp_path, capsys):
    out = tmp_path / "prm.csv"
    assert main(["prm", str(sample_log), "--step", "0", "--group", "1", "-o", str(out)]) == 0
    assert len(pd.read_csv(out)) > 0


@pytest.mark.parametrize("where", [["--step", "3", "--group", "99"], ["--step", "42", "--group", "0"],
                                   ["--step", "3", "--group", "0", "--run-id", "nope"]])
def test_prm_missing_group_exits_2_with_one_line(sample_log, where, capsys):
    assert main(["prm", str(sample_log), *where]) == 2
    captured = capsys.readouterr()
    lines = [ln for ln in captured.err.splitlines() if ln.strip()]
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("prm-probe: error: no rows with step")
    assert "expected" in lines[0] and "Traceback" not in captured.err


def test_prm_needs_run_id_when_several_runs(sample_log, tmp_path, capsys):
    from prm_probe.core.rollouts import read_rollouts

    t = read_rollouts(sample_log)
    other = t.set_column(0, "run_id", pa.array(["other"] * t.num_rows))
    path = write_rollouts(pa.concat_tables([t, other]), tmp_path / "two.parquet")
    assert main(["prm", str(path), "--step", "1", "--group", "2"]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "--run-id" in err
    assert main(["prm", str(path), "--step", "1", "--group", "2", "--run-id", "other"]) == 0
    assert capsys.readouterr().out.startswith("run other, step 1, group 2")


def test_prm_with_a_tiny_tokenizer(tmp_path, capsys):
    tokenizers = pytest.importorskip("tokenizers")
    words = ["[UNK]", "the", "cat", "sat", "on", "mat", "dog"]
    tok = tokenizers.Tokenizer(tokenizers.models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="[UNK]"))
    tok.pre_tokenizer = tokenizers.pre_tokenizers.Whitespace()
    tok_path = tmp_path / "tokenizer.json"
    tok.save(str(tok_path))
    log = pa.table({
        "run_id": ["r"] * 3, "step": [0] * 3, "group": [0] * 3, "sample": [0, 1, 2], "prompt_id": ["p"] * 3,
        "completion_ids": [[1, 2, 3, 4, 5], [1, 2, 3, 4, 1], [1, 6]], "reward": [1.0, 0.0, 1.0],
    })
    path = write_rollouts(log, tmp_path / "log.parquet")
    assert main(["prm", str(path), "--step", "0", "--group", "0", "--tokenizer", str(tok_path)]) == 0
    out = capsys.readouterr().out
    assert "'the'" in out  # shared first token, decoded
    assert "'cat sat on'" in out  # shared by samples 0 and 1
    assert "'mat'" in out and "'dog'" in out
    assert "[1 2" not in out  # ids are not shown when a tokenizer is given
    # a folder holding tokenizer.json works too
    assert main(["prm", str(path), "--step", "0", "--group", "0", "--tokenizer", str(tmp_path)]) == 0
    assert "'cat sat on'" in capsys.readouterr().out


def test_prm_with_missing_tokenizer_exits_2(sample_log, tmp_path, capsys):
    missing = tmp_path / "nope.json"
    assert main(["prm", str(sample_log), "--step", "0", "--group", "0", "--tokenizer", str(missing)]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "nope.json" in lines[0] and "expected" in lines[0]


# ------------------------------------------------------------------------------------------------ help


@pytest.mark.parametrize("argv", [["--help"], ["stats", "--help"], ["prm", "--help"], ["validate", "--help"],
                                  ["schema", "--help"]])
def test_help(argv, capsys):
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: prm-probe")
    if argv == ["--help"]:
        assert "quick start" in out and "stats" in out and "validate" in out


def test_no_verb_prints_help(capsys):
    assert main([]) == 0
    assert "usage: prm-probe" in capsys.readouterr().out


def test_version(capsys):
    from prm_probe import __version__

    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    assert __version__ in capsys.readouterr().out


def test_python_dash_m_help():
    proc = subprocess.run([sys.executable, "-m", "prm_probe", "--help"], capture_output=True, text=True,
                          cwd=ROOT, env=_env(), timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("usage: prm-probe")


def test_python_dash_m_bad_input_exit_status(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "prm_probe", "stats", str(tmp_path / "nope.parquet")],
                          capture_output=True, text=True, cwd=ROOT, env=_env(), timeout=60)
    assert proc.returncode == 2
    assert len(proc.stderr.strip().splitlines()) == 1 and "nope.parquet" in proc.stderr


def test_console_script_help():
    exe = shutil.which("prm-probe") or shutil.which("prm-probe", path=str(Path(sys.executable).parent))
    if exe is None:
        pytest.skip("the prm-probe console script is not installed")
    proc = subprocess.run([exe, "--help"], capture_output=True, text=True, env=_env(), timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("usage: prm-probe")


# ----------------------------------------------------------------------------------------- import cost


def test_import_cost(sample_log):
    code = (
        "import sys\n"
        "import prm_probe, prm_probe.cli, prm_probe.core.stats, prm_probe.core.rollouts, prm_probe.core.trie\n"
        "import prm_probe.core.prm\n"
        "import prm_probe.core.validate, prm_probe.core.group_trie\n"
        f"heavy = {HEAVY!r}\n"
        "def loaded():\n"
        "    return sorted(m for m in sys.modules if m.split('.')[0] in heavy)\n"
        "print('after import:', loaded())\n"
        f"rc = prm_probe.cli.main(['stats', {str(sample_log)!r}, '-q'])\n"
        "print('rc:', rc)\n"
        "print('after stats:', loaded())\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, env=_env(),
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "after import: []" in proc.stdout, proc.stdout
    assert "rc: 0" in proc.stdout
    assert "after stats: []" in proc.stdout, proc.stdout
