"""The shared layer (leadlex/) imports no app: apps plug into it, never the reverse."""

from __future__ import annotations

import ast
from pathlib import Path

import leadlex

APPS = {"contacts", "exports", "imports"}


def _imported_modules(source: str) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(source)):  # function-level imports count as much as top-level ones
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_no_module_of_leadlex_imports_an_app() -> None:
    root = Path(leadlex.__file__).parent
    offenders = {
        f"{path.relative_to(root.parent)}: {name}"
        for path in root.rglob("*.py")
        for name in _imported_modules(path.read_text())
        if name.split(".")[0] in APPS
    }
    assert not offenders, sorted(offenders)
