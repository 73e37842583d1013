"""The explorer's speed and size targets, measured on the path users call (`prm-probe explore`'s library call):

* (a) the page for the bundled real log, its spans decoded with its SmolLM2 tokenizer: its size (goal < 1 MB);
* (b) a 10,000-group log (100 steps of 100 groups of G = 8, 96 tokens each, `_testing.synthetic_rollouts`): the
  page written, statistics, group selection and 200 tries included (goal < 10 s);
* (c) that page opened from disk in headless Chromium (Debian's, driven by Playwright) until its script has drawn
  every view (goal < 2 s), and the time to open the most informative group's trie.

    .venv/bin/python benchmarks/bench_explore.py            # about a minute
    .venv/bin/python benchmarks/bench_explore.py --quick    # 1,000 groups: a smoke run
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from _common import code_version, cpu_model


def best_of(fn, reps: int) -> tuple[float, float]:
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times), statistics.median(times)


def main() -> None:
    import os

    from prm_probe import explore  # the path users call: the log's own tokenizer where it loads
    from prm_probe.core._testing import synthetic_rollouts
    from prm_probe.core.rollouts import write_rollouts

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args()
    steps = 10 if args.quick else 100
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        bundled = explore("sample").save(tmp / "sample.html")
        rows.append(("(a) bundled log page size", f"{bundled.stat().st_size / 1e6:.2f} MB", "< 1 MB",
                     bundled.stat().st_size < 1e6))
        log = tmp / "big.parquet"
        write_rollouts(synthetic_rollouts(steps=steps, groups=100, group_size=8, length=96, seed=0), log)
        groups = steps * 100
        page = tmp / "big.html"
        best, median = best_of(lambda: explore(log).save(page), args.reps)
        rows.append((f"(b) page of a {groups:,}-group log written", f"{best:.2f} s (median {median:.2f})",
                     "< 10 s", best < 10))
        rows.append(("    its size", f"{page.stat().st_size / 1e6:.2f} MB", "", None))
        chromium = shutil.which("chromium") or shutil.which("chromium-browser")
        if chromium is None:
            rows.append(("(c) interactive in Chromium", "not measured: no Chromium", "< 2 s", None))
        else:
            from playwright.sync_api import sync_playwright

            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=chromium, args=[
                    "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                    "--disable-sync", "--no-first-run"])
                loads, opens = [], []
                for _ in range(args.reps):
                    tab = browser.new_page()
                    t0 = time.perf_counter()
                    tab.goto(page.resolve().as_uri())
                    tab.wait_for_selector("body[data-ready='1']")
                    loads.append(time.perf_counter() - t0)
                    tab.click("#tabs button[data-view='groups']")
                    t0 = time.perf_counter()
                    tab.click("#groups-table tbody tr")
                    tab.wait_for_selector("#group.view.active #tree .node")
                    opens.append(time.perf_counter() - t0)
                    tab.close()
                browser.close()
            rows.append(("(c) that page interactive in headless Chromium", f"{min(loads):.2f} s (median "
                         f"{statistics.median(loads):.2f})", "< 2 s", min(loads) < 2))
            rows.append(("    open the top group's trie", f"{min(opens) * 1000:.0f} ms", "", None))
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    print(f"prm-probe explore: {cpu_model()}, {os.cpu_count()} cores, {now}; {code_version()}; best of {args.reps}")
    width = max(len(r[0]) for r in rows)
    print(f"{'measure':<{width}}  {'value':>26}  {'goal':>7}  met")
    for name, value, goal, met in rows:
        print(f"{name:<{width}}  {value:>26}  {goal:>7}  {'' if met is None else ('yes' if met else 'NO')}")


if __name__ == "__main__":
    main()
