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
