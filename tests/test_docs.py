"""Every reference in the project's files points into the repository."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
#: Background notes some contributors have beside the checkout; no file of the project may name them.
OUTSIDE = re.compile(r"\b(SCIENCE|DESIGN|PEERS|ENVIRONMENT)\.md\b|shared/docs")
TEXT = {".py", ".md", ".toml", ".ipynb", ".txt", ".sh", ".cfg", ".yaml", ".yml", ".json"}


def _tracked() -> list[Path]:
    try:
        out = subprocess.run(["git", "-C", str(ROOT), "ls-files"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout")
    return [ROOT / line for line in out.splitlines() if Path(line).suffix in TEXT]


def test_no_file_names_a_document_outside_the_repository():
    this = Path(__file__).resolve()
    hits = [f"{p.relative_to(ROOT)}:{n}: {line.strip()[:100]}"
            for p in _tracked() if p.resolve() != this and p.is_file()
            for n, line in enumerate(p.read_text(encoding="utf-8", errors="replace").splitlines(), 1)
            if OUTSIDE.search(line)]
    assert not hits, "\n".join(hits)


def test_science_document_exists_with_the_sections_the_code_cites():
    doc = (ROOT / "docs" / "science.md").read_text(encoding="utf-8")
    headings = set(re.findall(r"^#+\s+(\d+(?:\.\d+)?)[.\s]", doc, flags=re.M))
    cited = set()
    for p in _tracked():
        if p.is_file():
            cited |= set(re.findall(r"docs/science\.md §(\d+(?:\.\d+)?)", p.read_text(encoding="utf-8",
                                                                                       errors="replace")))
    missing = sorted(c for c in cited if c not in headings)
    assert not missing, f"docs/science.md lacks the sections {missing} that the code cites"


@pytest.mark.parametrize("name", ["README.md", "figures/README.md", "data/README.md", "benchmarks/README.md",
                                  "docs/science.md"])
def test_relative_links_resolve(name):
    path = ROOT / name
    text = path.read_text(encoding="utf-8")
    links = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text)
    broken = [link for link in links if "://" not in link and not (path.parent / link).exists()]
    assert not broken, f"{name} links to missing files: {broken}"
