"""The package's layers and their import directions, checked on every import statement (also inside functions)."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "prm_probe"
LAYERS = ("core", "training", "views", "integrations", "experiments", "commands")
#: which of the package's layers each layer may import (the top-level ``errors`` and ``__init__`` are shared).
ALLOWED_LAYERS = {
    "core": {"core"},
    "training": {"core", "training"},
    "views": {"core", "views"},
    "integrations": {"core", "training", "integrations"},
    "experiments": {"core", "training", "views", "integrations", "experiments"},
    "commands": {"core", "training", "views", "integrations", "experiments", "commands"},
}
#: third-party imports allowed in core; the standard library is always allowed.
CORE_THIRD_PARTY = {"numpy", "pyarrow", "pandas"}


def module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
    return ".".join(parts)


def imports(path: Path) -> list[tuple[int, str]]:
    """Every module an ``import`` / ``from ... import`` names, relative imports resolved: (line, dotted name)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    here = module_name(path).split(".")
    package = here if path.name == "__init__.py" else here[:-1]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package[: len(package) - node.level + 1] + ([base] if base else []))
            found.append((node.lineno, base))
            if base.startswith("prm_probe"):  # `from prm_probe.x import y` may name the submodule y
                found += [(node.lineno, f"{base}.{alias.name}") for alias in node.names
                          if (PACKAGE.parent / f"{base}.{alias.name}".replace(".", "/")).exists()
                          or (PACKAGE.parent / (f"{base}.{alias.name}".replace(".", "/") + ".py")).exists()]
    return found


def layer_of(dotted: str) -> str | None:
    parts = dotted.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == "prm_probe" and parts[1] in LAYERS else None


def violations() -> list[str]:
    problems = []
    stdlib = sys.stdlib_module_names
    for path in sorted(PACKAGE.rglob("*.py")):
        name = module_name(path)
        layer = layer_of(name)
        for line, target in imports(path):
            where = f"{path.relative_to(PACKAGE.parent)}:{line} imports {target}"
            top = target.split(".")[0]
            target_layer = layer_of(target)
            if target in ("prm_probe.cli",) and name != "prm_probe.__main__":
                problems.append(f"{where}: only __main__ imports the command line")
            if target_layer == "commands" and layer != "commands" and name != "prm_probe.cli":
                problems.append(f"{where}: only the command line imports its verbs")
            if top == "argparse" and name != "prm_probe.cli" and layer != "commands":
                problems.append(f"{where}: argparse belongs in prm_probe.cli and prm_probe.commands")
            if top == "transformers" and not (name.startswith("prm_probe.training.models")
                                              or name.startswith("prm_probe.integrations.trl")):
                problems.append(f"{where}: transformers only under training.models and integrations.trl")
            if top in ("matplotlib", "seaborn") and name != "prm_probe.views.plots":
                problems.append(f"{where}: plotting libraries only in views.plots")
            if layer is None:
                continue
            if target_layer is not None and target_layer not in ALLOWED_LAYERS[layer]:
                problems.append(f"{where}: {layer} may not import {target_layer}")
            if layer == "core" and top != "prm_probe" and top not in stdlib and top not in CORE_THIRD_PARTY:
                problems.append(f"{where}: core imports only the standard library, numpy, pyarrow and pandas")
    return problems


def test_layers_exist():
    for layer in LAYERS:
        assert (PACKAGE / layer / "__init__.py").is_file(), layer
    top = sorted(p.name for p in PACKAGE.glob("*.py"))
    assert top == ["__init__.py", "__main__.py", "cli.py", "errors.py"], top


def test_import_directions():
    problems = violations()
    assert not problems, "\n".join(problems)


def test_the_checker_sees_violations(tmp_path, monkeypatch):
    """The walker resolves relative imports and finds imports inside functions (so the test above can fail)."""
    fake = tmp_path / "prm_probe"
    (fake / "core").mkdir(parents=True)
    (fake / "training").mkdir()
    for p in (fake / "__init__.py", fake / "core" / "__init__.py", fake / "training" / "__init__.py",
              fake / "training" / "trainer.py"):
        p.write_text("")
    (fake / "core" / "bad.py").write_text(
        "def f():\n    from ..training import trainer\n    import torch\n    import matplotlib.pyplot\n")
    monkeypatch.setattr(sys.modules[__name__], "PACKAGE", fake)
    found = violations()
    assert any("core may not import training" in p for p in found), found
    assert any("imports torch" in p for p in found), found
    assert any("plotting libraries" in p for p in found), found
