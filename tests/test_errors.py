"""Tests for modver.errors: every error class is documented, and product code raises specific ones."""

from __future__ import annotations

import ast
import inspect
import re
from pathlib import Path

import pytest

from modver import errors

ROOT = Path(__file__).resolve().parents[1]
ERRORS_DOC = ROOT / "docs" / "errors.md"
# Still raising the root at the time of writing (the run half, rewritten for issue 8): empty this.
_RUN_HALF: set[str] = set()


def error_classes() -> list[type[errors.ModverError]]:
    return [
        cls
        for _, cls in inspect.getmembers(errors, inspect.isclass)
        if issubclass(cls, errors.ModverError) and cls.__module__ == errors.__name__
    ]


def documented_errors() -> set[str]:
    """The names in the first column of docs/errors.md's error table."""
    names: set[str] = set()
    for line in ERRORS_DOC.read_text(encoding="utf-8").splitlines():
        first = line.split("|")[1] if line.startswith("| `") else ""
        names.update(re.findall(r"`(\w+)`", first))
    return names


def test_every_error_class_has_a_row_in_docs_errors_md():
    documented = documented_errors() | {"ModverError"}  # the root: the prose above the table
    missing = sorted(cls.__name__ for cls in error_classes() if cls.__name__ not in documented)
    assert not missing, f"docs/errors.md has no row for {', '.join(missing)}: add one (error, raised for, example)"


def test_every_documented_error_exists():
    names = {cls.__name__ for cls in error_classes()}
    unknown = sorted(documented_errors() - names)
    assert not unknown, f"docs/errors.md documents {', '.join(unknown)}, which modver.errors does not define"


def test_message_names_the_place_once_and_keeps_the_hint():
    err = errors.UsageError("invalid duration 'x'", where="--older-than", hint="write 30d")
    assert str(err) == "--older-than: invalid duration 'x'"
    assert (err.message, err.where, err.hint) == ("invalid duration 'x'", "--older-than", "write 30d")
    assert str(errors.StoreError("corrupt git ref refs/x", where="refs/x")) == "corrupt git ref refs/x"


def _bare_root_raises(path: Path) -> list[int]:
    """Lines of ``path`` that build the root ModverError itself (not a subclass)."""
    lines = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Call):
            func = node.func
            name = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else None
            if name == "ModverError":
                lines.append(node.lineno)
    return lines


@pytest.mark.parametrize(
    "path",
    [p for p in sorted((ROOT / "modver").rglob("*.py")) if p.name not in _RUN_HALF and p.name != "errors.py"],
    ids=lambda p: str(p.relative_to(ROOT)),
)
def test_product_code_raises_specific_errors(path: Path):
    lines = _bare_root_raises(path)
    assert not lines, (
        f"{path.relative_to(ROOT)}:{lines[0]} raises the root ModverError: raise a subclass from modver.errors "
        "(add one, with a row in docs/errors.md, if none fits)"
    )
