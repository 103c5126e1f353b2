"""The test files stand alone: what several of them share lives in helpers.py (and fixtures
in conftest.py), so that no test module imports another — importing one would run its
module-level code and fixtures a second time under another name, and tie the files together."""

from __future__ import annotations

import ast
from pathlib import Path

HERE = Path(__file__).resolve().parent


def imported_modules(source: str) -> set[str]:
    """The absolute module names a file imports, at any depth (functions included)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_modules(names: set[str]) -> list[str]:
    """Those of `names` that are test modules (`test_x`, `tests.test_x`, `tests`)."""
    return sorted(
        name for name in names if name.split(".")[-1].startswith("test_") or name == "tests"
    )


test_modules.__test__ = False  # a helper, not a test


def test_the_checker_sees_every_form_of_import():
    source = """
import test_cli
from test_tui_app import long_run
import tests.test_runs as r
def later():
    from tests import test_fork
from helpers import SIZE
import nnlib.runs
"""
    assert test_modules(imported_modules(source)) == [
        "test_cli",
        "test_tui_app",
        "tests",
        "tests.test_runs",
    ]


def test_no_test_file_imports_another():
    offenders = {
        path.name: found
        for path in sorted(HERE.glob("*.py"))
        if (found := test_modules(imported_modules(path.read_text(encoding="utf-8"))))
    }
    assert offenders == {}, f"move what these share into tests/helpers.py: {offenders}"
