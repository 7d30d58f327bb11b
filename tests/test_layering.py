"""The data path reads in one direction: stage_ir <- hw_models, sim <- codesign (docs/architecture.md).

Checked on the source (every import statement, function-local ones included), so that a lazy import
reaching back is caught as surely as a top-level one.
"""
from __future__ import annotations

import ast
import sys

import pytest

from tests.conftest import ROOT


def _imports(package: str) -> dict[str, set[str]]:
    """Top-level names each module of `package` imports (relative imports resolve to the package)."""
    out = {}
    for path in sorted((ROOT / package).rglob("*.py")):
        names = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom):
                names.add(package if node.level else node.module.split(".")[0])
        out[path.relative_to(ROOT).as_posix()] = names
    return out


@pytest.mark.parametrize("package", ["hw_models", "sim"])
def test_models_and_simulation_import_nothing_from_codesign(package):
    reaching_back = {f: n & {"codesign"} for f, n in _imports(package).items() if "codesign" in n}
    assert not reaching_back, reaching_back


def test_the_stage_ir_needs_numpy_and_pydantic_only():
    allowed = set(sys.stdlib_module_names) | {"numpy", "pydantic", "stage_ir", "__future__"}
    extra = {f: n - allowed for f, n in _imports("stage_ir").items() if n - allowed}
    assert not extra, extra


# codesign's sub-packages in flow order (docs/architecture.md "Layout"): a module imports from its own
# package and from earlier layers only; the two back ends (one layer) import nothing from each other
CODESIGN_LAYERS = [{"store"}, {"design"}, {"frontend"}, {"hls", "rtl"}, {"commands"}, {"sweeps"}, {"cli"}]


def _codesign_imports() -> dict[str, set[str]]:
    """The codesign sub-packages (or top-level modules) each codesign module imports."""
    out = {}
    for path in sorted((ROOT / "codesign").rglob("*.py")):
        rel = path.relative_to(ROOT / "codesign")
        if rel.parts[0] == "templates" or rel.name == "__init__.py" and len(rel.parts) == 1:
            continue
        names = set()
        for node in ast.walk(ast.parse(path.read_text())):
            mods = ([a.name for a in node.names] if isinstance(node, ast.Import) else
                    [node.module] if isinstance(node, ast.ImportFrom) and node.module and not node.level else [])
            for mod in mods:
                parts = mod.split(".")
                if parts[0] == "codesign" and len(parts) > 1:
                    names.add(parts[1])
                elif parts[0] == "codesign" and isinstance(node, ast.ImportFrom):
                    names |= {a.name for a in node.names}
        out[rel.as_posix()] = names
    return out


def test_codesign_reads_in_flow_order():
    layer_of = {pkg: i for i, layer in enumerate(CODESIGN_LAYERS) for pkg in layer}
    imports = _codesign_imports()
    homes = {rel.split("/")[0].removesuffix(".py") for rel in imports}
    assert homes == set(layer_of), f"a codesign package or module outside CODESIGN_LAYERS: {homes ^ set(layer_of)}"
    backward = {}
    for rel, names in imports.items():
        home = rel.split("/")[0].removesuffix(".py")
        bad = {n for n in names - {home} if n not in layer_of or layer_of[n] >= layer_of[home]}
        if bad:
            backward[rel] = bad
    assert not backward, backward


def test_every_codesign_package_says_what_it_owns():
    for init in sorted((ROOT / "codesign").glob("*/__init__.py")):
        if init.parent.name == "templates":
            continue
        doc = ast.get_docstring(ast.parse(init.read_text()))
        assert doc and len(doc.split(".")[0]) > 20, f"{init}: a docstring saying what the package owns"
