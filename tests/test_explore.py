"""``prm-probe explore``: the page's data against the library, its choices, bad input, and the page itself in a real
headless Chromium (Debian's, driven by Playwright; skipped where either is missing)."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pandas as pd
import pytest

import prm_probe
from prm_probe.cli import main
from prm_probe.core.group_trie import GroupTrie
from prm_probe.core.stats import overlap_stats
from prm_probe.views.explore import Explorer, explore
from tests.conftest import SAMPLE_LOG

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def page_data(text: str) -> dict:
    """The JSON document a page embeds."""
    raw = re.search(r'<script id="explorer-data" type="application/json">(.*?)</script>', text, re.S).group(1)
    return json.loads(raw.replace("<\\/", "</"))


def test_the_page_is_self_contained_and_its_numbers_are_the_librarys():
    page = explore(SAMPLE_LOG).html()
    assert not re.search(r'<(script|link|img)[^>]+(src|href)=', page)  # nothing is fetched at view time
    assert "/*DATA*/" not in page and "/*JS*/" not in page and "/*CSS*/" not in page
    data = page_data(page)
    stats = overlap_stats(SAMPLE_LOG)
    assert len(data["groups"]) == len(stats.groups) == data["meta"]["groups_total"] == len(data["tries"])
    assert [s["path_depth_mean"] for s in data["steps"]] == pytest.approx(stats.steps["path_depth_mean"].tolist())
    for key, trie in data["tries"].items():
        run_id, step, group = key.split("|")
        lib = GroupTrie.from_log(SAMPLE_LOG, int(step), int(group), run_id)
        table = lib.node_table()
        assert [n["size"] for n in trie["nodes"]] == table["size"].tolist()
        assert [n["r"] for n in trie["nodes"]] == pytest.approx(table["step_reward"].tolist(), abs=1e-6)
        assert [n["a"] for n in trie["nodes"]] == pytest.approx(table["prm_advantage"].tolist(), abs=1e-6)
        assert [c["reward"] for c in trie["completions"]] == pytest.approx(lib.rewards.tolist())
        for node in trie["nodes"]:  # Theorem 1's identity, recomputed from the members' outcome advantages
            assert node["sum_a"] == pytest.approx(node["size_a"], abs=1e-5)
            assert node["ids"] == lib.tokens(node["id"])
        for c in trie["completions"]:  # a completion's path is the nodes it belongs to, root first
            assert c["path"] == [n["id"] for n in trie["nodes"] if c["sample"] in n["members"]]


def test_the_most_informative_groups_are_embedded_and_the_choice_is_stated():
    data = explore(SAMPLE_LOG, max_groups=3).data()
    g = overlap_stats(SAMPLE_LOG).groups
    ranked = g.sort_values(["informative_branching", "reward_std", "node_count", "step", "group"],
                           ascending=[False, False, False, True, True], kind="stable")
    want = [f"{r.run_id}|{r.step}|{r.group}" for r in ranked.head(3).itertuples()]
    assert list(data["tries"]) == want
    assert data["meta"]["groups_shown"] == 3 and "most informative" in data["meta"]["selection"]
    assert f"{len(g) - 3} more groups are in the table without a trie" in data["meta"]["selection"]


@pytest.fixture(scope="module")
def measured(tmp_path_factory):
    """A toy-tree log of the untrained tabular policy and its prm-quality node table (exact values)."""
    from prm_probe.training.collect import sample_log
    from prm_probe.training.prm_quality import measure_prm_quality

    folder = tmp_path_factory.mktemp("explore")
    log = sample_log("tabular", "toy-tree", folder / "log.parquet", groups=4, group_size=16, split="train", seed=1,
                     max_new_tokens=4, task_options={"n": 1, "r_neg": -1.0})
    nodes = measure_prm_quality("tabular", log, rollouts=2, seed=0, max_nodes=1000)
    nodes.to_csv(folder / "nodes.csv", index=False)
    return log, folder / "nodes.csv", nodes


def test_prm_quality_values_sit_on_their_own_nodes(measured):
    """prm-quality numbers nodes as the engine does; the page maps them onto its own node ids, and each lands on
    the node with the same |λ|, R̂ and token span."""
    log, table, nodes = measured
    data = explore(log, prm_quality=table).data()
    rows = data["prm_quality"]
    assert len(rows) == len(nodes) and all(r["exact"] for r in rows)
    for row, (_, src) in zip(rows, nodes.iterrows(), strict=True):
        trie = data["tries"][row["key"]]
        node = trie["nodes"][row["node"]]
        assert node["size"] == src["size"] and node["r"] == pytest.approx(src["step_reward"])
        assert row["v"] == pytest.approx(src["exact_value"])
        assert len(node["ids"]) == src["end"] - src["start"]
    other = nodes.copy()
    other["step_reward"] = 1.0 - other["step_reward"]  # not this log's nodes
    other.to_csv(table.with_name("other.csv"), index=False)
    with pytest.raises(prm_probe.ConfigError, match="does not match the log's trie"):
        explore(log, prm_quality=table.with_name("other.csv"))


def test_runs_are_shown_as_compare_computes_them(tmp_path):
    from prm_probe.views.compare import compare_runs
    from tests.test_compare import _write_run

    runs = [_write_run(tmp_path / f"{w}{s}", weighting=w, seed=s) for w in ("uniform", "process_set") for s in (0, 1)]
    data = explore(SAMPLE_LOG, runs=runs).data()["runs"]
    assert data["algorithms"] == ["GRPO", "λ-GRPO"]
    want = compare_runs([str(r) for r in runs], metric="reward_mean").curves("reward_mean")
    got = pd.DataFrame(data["curves"]["reward_mean"])
    assert got["mean"].tolist() == pytest.approx(want["mean"].tolist())


@pytest.mark.parametrize("case", ["empty", "csv", "not_a_log", "bad_quality", "not_a_run", "max_groups"])
def test_bad_input_is_one_line_and_leaves_no_file(case, tmp_path, capsys):
    out = tmp_path / "page.html"
    args = ["explore", str(SAMPLE_LOG), "-o", str(out)]
    if case == "empty":
        (tmp_path / "e.parquet").write_bytes(b"")
        args[1] = str(tmp_path / "e.parquet")
    elif case == "csv":
        (tmp_path / "x.csv").write_text("a,b\n1,2\n")
        args[1] = str(tmp_path / "x.csv")
    elif case == "not_a_log":
        pd.DataFrame({"a": [1]}).to_parquet(tmp_path / "t.parquet")
        args[1] = str(tmp_path / "t.parquet")
    elif case == "bad_quality":
        pd.DataFrame({"node": [1]}).to_csv(tmp_path / "q.csv", index=False)
        args += ["--prm-quality", str(tmp_path / "q.csv")]
    elif case == "not_a_run":
        (tmp_path / "nothing").mkdir()
        args += ["--runs", str(tmp_path / "nothing"), str(tmp_path / "nothing")]
    else:
        args += ["--max-groups", "0"]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("prm-probe: error: ") and len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert not out.exists()


def test_jupyter_views():
    trie = GroupTrie.from_log(SAMPLE_LOG, 0, 1)
    html = trie._repr_html_()
    table = trie.node_table()
    for row in table.itertuples():
        assert f"|λ|={row.size}  R̂={row.step_reward:.3f}  A={row.prm_advantage:+.3f}" in html
    explorer = prm_probe.explore(SAMPLE_LOG, max_groups=2)
    assert isinstance(explorer, Explorer)
    frame = explorer._repr_html_()
    assert frame.startswith("<iframe srcdoc=") and "allow-scripts" in frame


def test_cli_writes_the_page(tmp_path, capsys):
    out = tmp_path / "log.html"
    assert main(["explore", str(SAMPLE_LOG), "-o", str(out)]) == 0
    assert out.is_file() and "wrote " in capsys.readouterr().out
    data = page_data(out.read_text(encoding="utf-8"))
    assert "token ids" in data["meta"]["tokenizer"]  # the synthetic log's tokenizer is not a real one


# ---------------------------------------------------------------------------------------------- in a browser


@pytest.fixture(scope="module")
def browser():
    if CHROMIUM is None:
        pytest.skip("no Chromium (apt-get install chromium)")
    sync = pytest.importorskip("playwright.sync_api")
    with sync.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--no-first-run"])
        yield b
        b.close()


def _open(browser, path: Path):
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("request", lambda r: errors.append(f"network request: {r.url}") if not r.url.startswith(
        ("file:", "data:", "about:")) else None)
    page.goto(path.resolve().as_uri())
    page.wait_for_selector("body[data-ready='1']")
    return page, errors


def test_the_page_in_chromium(browser, tmp_path):
    out = tmp_path / "page.html"
    assert main(["explore", str(SAMPLE_LOG), "-o", str(out), "-q"]) == 0
    data = page_data(out.read_text(encoding="utf-8"))
    page, errors = _open(browser, out)
    # overview: one chart per statistic over the log's 4 steps, with a hover read-out
    assert page.locator("#overview-charts .card").count() == 7
    chart = page.locator("#overview-charts svg").first
    box = chart.bounding_box()
    page.mouse.move(box["x"] + box["width"] * 0.95, box["y"] + box["height"] / 2)
    assert page.locator("#tooltip").is_visible() and "step 3" in page.locator("#tooltip").inner_text()
    # groups: sorting by mean reward (descending on the first click)
    page.click("#tabs button[data-view='groups']")
    page.click("#groups-table th[data-key='reward_mean']")
    cells = page.locator("#groups-table tbody tr td:nth-child(5)").all_inner_texts()
    values = [float(c) for c in cells]
    assert values == sorted(values, reverse=True) and len(values) == len(data["groups"])
    # open a group from its row; its nodes show the library's |λ|, R̂ and A
    row = page.locator("#groups-table tbody tr").first
    key = row.get_attribute("data-key")
    row.click()
    assert page.locator("#group").is_visible()
    run_id, step, group = key.split("|")
    table = GroupTrie.from_log(SAMPLE_LOG, int(step), int(group), run_id).node_table()
    for r in table.itertuples():
        node = page.locator(f"#node-{r.node}")
        assert int(node.get_attribute("data-size")) == r.size
        assert float(node.get_attribute("data-r")) == pytest.approx(r.step_reward, abs=1e-6)
        assert float(node.get_attribute("data-a")) == pytest.approx(r.prm_advantage, abs=1e-6)
        sign = "+" if r.prm_advantage >= 0 else "−"
        shown = node.locator(".stat").first.text_content()
        assert shown == f"|λ|={r.size}  R̂={r.step_reward:.3f}  A={sign}{abs(r.prm_advantage):.3f}"
    # collapse and expand a node with children
    parent = int(table[table["node"].isin(table["parent"])]["node"].iloc[0])
    child = int(table[table["parent"] == parent]["node"].iloc[0])
    toggle = page.locator(f"li[data-node='{parent}'] > .toggle")
    toggle.click()
    assert not page.locator(f"#node-{child}").is_visible()
    toggle.click()
    assert page.locator(f"#node-{child}").is_visible()
    # a completion's path is highlighted
    trie = data["tries"][key]
    page.click(".completion[data-sample='0']")
    highlighted = sorted(int(x) for x in page.locator(".node.hl").evaluate_all("ns => ns.map(n => n.dataset.node)"))
    assert highlighted == sorted(trie["completions"][0]["path"])
    page.screenshot(path=str(tmp_path / "explorer.png"))
    assert (tmp_path / "explorer.png").stat().st_size > 10_000
    assert errors == []


def test_a_one_step_log_shows_a_table_not_empty_axes(browser, tmp_path):
    out = tmp_path / "one.html"
    explore("sample", max_groups=5).save(out)
    page, errors = _open(browser, out)
    assert page.locator("#overview-table").is_visible() and page.locator("#overview-charts").count() == 0
    assert page.locator("#overview-table tbody tr").count() == 7
    assert errors == []


def test_prm_quality_in_chromium(browser, measured, tmp_path):
    """The measured nodes carry V beside R̂ in the trie, and the PRM-quality view draws one point per node."""
    log, table, nodes = measured
    out = tmp_path / "q.html"
    assert main(["explore", str(log), "-o", str(out), "--prm-quality", str(table), "-q"]) == 0
    data = page_data(out.read_text(encoding="utf-8"))
    page, errors = _open(browser, out)
    page.click("#tabs button[data-view='quality']")
    assert page.locator("#quality-scatter circle").count() == len(nodes)
    row = data["prm_quality"][0]
    page.click("#tabs button[data-view='group']")
    page.select_option("#group-select", row["key"])
    stats = page.locator(f"#node-{row['node']} .stat").all_text_contents()
    assert f"V={row['v']:.3f}" in stats
    assert errors == []
