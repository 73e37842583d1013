"""The README's screenshot of the explorer (figures/explorer.png): the page of the bundled log, its group 20 (two of
eight completions correct) with the path of sample 4, a correct one, highlighted. Needs Debian's Chromium
(`apt-get install chromium`) and Playwright for Python (the dev extra); about 5 s.

    python analysis/experiments/explorer_screenshot.py
"""

import shutil
import tempfile
from pathlib import Path

from playwright.sync_api import sync_playwright

import prm_probe

ROOT = Path(__file__).resolve().parents[2]

with tempfile.TemporaryDirectory() as tmp:
    page_path = prm_probe.explore("sample").save(Path(tmp) / "sample.html")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=shutil.which("chromium"), args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--no-first-run"])
        page = browser.new_page(viewport={"width": 1200, "height": 760}, device_scale_factor=1)
        page.goto(page_path.resolve().as_uri())
        page.wait_for_selector("body[data-ready='1']")
        page.click("#tabs button[data-view='group']")
        page.select_option("#group-select", "sample_rollouts|0|20")
        page.click(".completion[data-sample='4']")
        page.screenshot(path=str(ROOT / "figures" / "explorer.png"))
        browser.close()
print("wrote", ROOT / "figures" / "explorer.png")
