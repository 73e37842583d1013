"""The analysis notebooks execute top to bottom (nbclient), with their default parameters."""

from __future__ import annotations

import pytest

from tests.conftest import ROOT

NOTEBOOKS = sorted((ROOT / "analysis").glob("*.ipynb"))


def test_there_are_three_notebooks_with_cleared_outputs():
    import nbformat

    assert len(NOTEBOOKS) == 3
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
