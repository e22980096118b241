"""Semantic diffs of two closures: formatting only, changed, added, removed; hunks in file lines."""

from __future__ import annotations

from modver.engine.diff import ADDED, CHANGED, FORMATTING, REMOVED, UNCHANGED, diff_closures
from modver.fingerprint import fingerprint_stage
from modver.sourcetree import DictTree


def pair(a: dict[str, str], b: dict[str, str], entry: str = "m.py:f"):
    ta, tb = DictTree(a), DictTree(b)
    return diff_closures("s", "A", fingerprint_stage(ta, entry), ta, "B", fingerprint_stage(tb, entry), tb)


F = "def g(x):\n    return x * 2\n\n\ndef f(x):\n    return g(x) + 1\n"


def test_unchanged_and_formatting_only():
    assert pair({"m.py": F}, {"m.py": F}).status == UNCHANGED
    d = pair({"m.py": F}, {"m.py": F.replace("return g(x) + 1", "return (g(x)+1)  # one more")})
    assert d.status == FORMATTING and [(c.name, c.status) for c in d.changes] == [("f", FORMATTING)]


def test_changed_added_removed():
    d = pair({"m.py": F}, {"m.py": F.replace("x * 2", "x * 3")})
    assert d.status == CHANGED and [(c.name, c.status) for c in d.changes] == [("g", CHANGED)]
    assert "-    return x * 2" in d.changes[0].diff and "+    return x * 3" in d.changes[0].diff
    added = pair({"m.py": "def f(x):\n    return x\n"}, {"m.py": F})
    assert {(c.name, c.status) for c in added.changes} == {("g", ADDED), ("f", CHANGED)}
    removed = pair({"m.py": F}, {"m.py": "def f(x):\n    return x\n"})
    assert {(c.name, c.status) for c in removed.changes} == {("g", REMOVED), ("f", CHANGED)}


def test_hunks_count_the_files_lines():
    before = "import os\n" * 40 + "\n\n" + F
    d = pair({"m.py": before}, {"m.py": before.replace("x * 2", "x * 3")})
    hunk = next(line for line in d.changes[0].diff.splitlines() if line.startswith("@@"))
    assert hunk == "@@ -43,2 +43,2 @@"  # g is at line 43 of the file, not line 1
