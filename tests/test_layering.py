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


def _names_in_code(path) -> set[str]:
    """String constants (docstrings aside) and attribute names of a module: where a kind or a policy
    would be dispatched on by name."""
    tree = ast.parse(path.read_text())
    docs = {id(node.body[0].value) for node in ast.walk(tree)
            if isinstance(node, (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and node.body
            and isinstance(node.body[0], ast.Expr) and isinstance(node.body[0].value, ast.Constant)}
    return ({n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)
             and id(n) not in docs} | {n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute)})


def test_kinds_and_policies_are_named_in_their_registries_only():
    """Issue 15's measure of the registries: at most two non-test modules name two or more layer kinds
    (IR or config names), at most two name two or more exit policies; a back end that dispatches on
    names (if kind == "dense" ... elif kind == "conv2d") shows up here."""
    from stage_ir import kinds, policies

    kind_names, policy_names = set(kinds.KINDS) | set(kinds.SPECS), set(policies.POLICIES)
    by_kind, by_policy = {}, {}
    for package in ("codesign", "hw_models", "sim", "stage_ir"):
        for path in sorted((ROOT / package).rglob("*.py")):
            names = _names_in_code(path)
            rel = path.relative_to(ROOT).as_posix()
            if len(names & kind_names) >= 2:
                by_kind[rel] = sorted(names & kind_names)
            if len(names & policy_names) >= 2:
                by_policy[rel] = sorted(names & policy_names)
    assert len(by_kind) <= 2, by_kind
    assert len(by_policy) <= 2, by_policy


def test_no_module_over_500_lines():
    """Small modules with names that say what they do (issue 15: codesign/, hw_models/, sim/)."""
    long = {p.relative_to(ROOT).as_posix(): n for package in ("codesign", "hw_models", "sim", "stage_ir")
            for p in sorted((ROOT / package).rglob("*.py")) if (n := len(p.read_text().splitlines())) > 500}
    assert not long, long
