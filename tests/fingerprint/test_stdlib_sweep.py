"""Every file of the stdlib fingerprints, or fails with SourceError exactly when it is invalid.

Slow (a minute): opt in with MODVER_STDLIB_SWEEP=1.
"""

from __future__ import annotations

import ast
import os
import sysconfig
import warnings
from pathlib import Path

import pytest

from modver.errors import SourceError
from modver.fingerprint import SummaryCache, fingerprint_stage
from modver.sourcetree import DictTree, WorkingTree

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(os.environ.get("MODVER_STDLIB_SWEEP") != "1", reason="set MODVER_STDLIB_SWEEP=1"),
]


def test_every_stdlib_file():
    root = Path(sysconfig.get_paths()["stdlib"])
    cache = SummaryCache()
    failures = []
    count = 0
    warnings.simplefilter("ignore")
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root).as_posix()
        if rel.startswith("site-packages/"):
            continue
        data = path.read_bytes()
        count += 1
        try:
            ast.parse(data)
            valid = True
        except (SyntaxError, ValueError):
            valid = False
        try:
            fingerprint_stage(DictTree({rel: data}), rel, cache=cache)
            if not valid:
                failures.append((rel, "fingerprinted an invalid file"))
        except SourceError as exc:
            if valid:
                failures.append((rel, str(exc)))
    assert count > 1000
    assert failures == []


def test_stdlib_files_that_run_files_fingerprint_as_stages_of_the_whole_stdlib():
    """Files that call exec() or runpy.run_path(), as stages of the stdlib as one project:
    imports and the paths of files they run resolve across real code without an error."""
    root = Path(sysconfig.get_paths()["stdlib"])
    tree, cache = WorkingTree(root), SummaryCache()
    warnings.simplefilter("ignore")
    checked = reported = 0
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root).as_posix()
        data = path.read_bytes()
        if rel.startswith("site-packages/") or (b"exec(" not in data and b"run_path(" not in data):
            continue
        try:
            ast.parse(data)
        except (SyntaxError, ValueError):
            continue
        closure = fingerprint_stage(tree, rel, cache=cache)
        checked += 1
        reported += sum(" runs " in u.reason for u in closure.unresolved)
    assert checked > 50 and reported > 20
