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
from modver.sourcetree import DictTree

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
