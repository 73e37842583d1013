"""The analysis notebooks execute top to bottom (nbclient), with their default parameters."""

from __future__ import annotations

import pytest

from tests.conftest import ROOT

NOTEBOOKS = sorted((ROOT / "analysis").glob("*.ipynb"))


def test_there_are_three_notebooks_with_cleared_outputs():
    import nbformat

    assert len(NOTEBOOKS) == 4
    for path in NOTEBOOKS:
        nb = nbformat.read(path, as_version=4)
        assert nb.cells[1].source.startswith("# Parameters"), path.name
        assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code"), f"{path.name} has outputs"
        imports = [line for c in nb.cells if c.cell_type == "code" for line in c.source.splitlines()
                   if line.startswith(("import ", "from "))]
        assert all("prm_probe" in line or line.startswith(("from pathlib", "from tokenizers")) for line in imports)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_executes(path, tmp_path):
    nbclient = pytest.importorskip("nbclient")
    import nbformat

    nb = nbformat.read(path, as_version=4)
    nb.cells[1].source = nb.cells[1].source.replace("../data/runs/notebook-compare", str(tmp_path / "runs"))
    client = nbclient.NotebookClient(nb, timeout=300, kernel_name="python3",
                                     resources={"metadata": {"path": str(path.parent)}})
    client.execute()


def test_the_explorer_notebook_displays_the_page_and_a_trie(tmp_path):
    """The explorer and a GroupTrie display themselves as HTML in Jupyter (what a user sees, not only no error)."""
    nbclient = pytest.importorskip("nbclient")
    import nbformat

    path = ROOT / "analysis" / "04_explore.ipynb"
    nb = nbformat.read(path, as_version=4)
    nbclient.NotebookClient(nb, timeout=300, kernel_name="python3",
                            resources={"metadata": {"path": str(path.parent)}}).execute()
    html = [o["data"]["text/html"] for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
            if "text/html" in o.get("data", {})]
    assert any(h.startswith("<iframe srcdoc=") for h in html)
    assert any("GroupTrie: G = 8, 14 nodes" in h for h in html)
