"""Semantic diffs: what changed in meaning between two versions of a stage, or two manifests.

Two closures are compared definition by definition. A definition whose normalized digest is the
same on both sides but whose text differs changed in formatting only; a different digest is a
change in meaning, shown as a unified diff of the exact source.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field
from typing import Any

from modver.models import Closure, Definition, SourceTree

UNCHANGED = "unchanged"
FORMATTING = "formatting only"
CHANGED = "changed"
ADDED = "added"
REMOVED = "removed"


@dataclass(frozen=True)
class DefinitionChange:
    """One definition of a closure that differs between the two sides."""

    name: str
    kind: str
    status: str  # ADDED | REMOVED | CHANGED | FORMATTING
    path_a: str | None
    path_b: str | None
    diff: str  # unified diff of the exact source ('' when nothing to show)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "status": self.status,
            "path_a": self.path_a,
            "path_b": self.path_b,
            "diff": self.diff,
        }


@dataclass(frozen=True)
class StageDiff:
    """Two sides of one stage: overall status and the definitions that differ."""

    stage: str
    a: str  # label, e.g. "preprocess@v3"
    b: str  # label, e.g. "working tree"
    fingerprint_a: str | None
    fingerprint_b: str | None
    status: str  # UNCHANGED | FORMATTING | CHANGED
    changes: tuple[DefinitionChange, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "stage": self.stage,
            "a": self.a,
            "b": self.b,
            "fingerprint_a": self.fingerprint_a,
            "fingerprint_b": self.fingerprint_b,
            "status": self.status,
            "changes": [c.to_json() for c in self.changes],
        }


@dataclass(frozen=True)
class ManifestDiff:
    """Two manifests side by side: per stage entry/version/params/inputs, and data files."""

    a: str
    b: str
    rows: tuple[tuple[str, str, Any, Any], ...] = field(default=())  # (section, key, value_a, value_b)

    def to_json(self) -> dict[str, Any]:
        return {
            "a": self.a,
            "b": self.b,
            "differences": [{"section": s, "key": k, "a": va, "b": vb} for s, k, va, vb in self.rows],
        }


def _key(d: Definition, counts: dict[tuple[str, str], int]) -> tuple[str, str]:
    # Match by name when a name is unique on a side, so a definition moved to another file pairs up.
    return (d.kind, d.name) if counts[(d.kind, d.name)] == 1 else (d.kind, f"{d.path}:{d.name}")


def _index(closure: Closure | None) -> dict[tuple[str, str], Definition]:
    if closure is None:
        return {}
    counts: dict[tuple[str, str], int] = {}
    for d in closure.definitions:
        counts[(d.kind, d.name)] = counts.get((d.kind, d.name), 0) + 1
    return {_key(d, counts): d for d in closure.definitions}


def definition_text(tree: SourceTree, d: Definition, cache: dict[tuple[int, str], str]) -> str:
    """The exact source of a definition in ``tree``: for functions, classes and assignments the
    libcst node with its decorators and the comments above it; otherwise its lines."""
    return definition_span(tree, d, cache)[0]


def definition_span(tree: SourceTree, d: Definition, cache: dict[tuple[int, str], str]) -> tuple[str, int]:
    """:func:`definition_text` and the line of its file where that text starts."""
    k = (id(tree), d.path)
    if k not in cache:
        data = tree.read(d.path)
        cache[k] = "" if data is None else data.decode("utf-8", "replace")
    text = cache[k]
    if d.kind in ("function", "class", "assignment"):
        from modver.errors import EntryNotFoundError, SourceError
        from modver.fingerprint import definition_source

        try:
            source = definition_source(text, d.name)
        except (EntryNotFoundError, SourceError):
            return _lines(text, d), d.line  # defined inside a top-level if/try block: show its lines
        # the node's text sits in the file ending at its last line: find where it starts
        lines = text.splitlines(keepends=True)
        before = "".join(lines[: d.end_line])
        at = before.rfind(source.rstrip("\n"))
        return source, (before.count("\n", 0, at) + 1 if at >= 0 else d.line)
    return _lines(text, d), d.line


def _lines(text: str, d: Definition) -> str:
    return "".join(text.splitlines(keepends=True)[d.line - 1 : d.end_line])


def _source(tree: SourceTree | None, d: Definition | None, cache: dict[tuple[int, str], str]) -> tuple[str, int]:
    return ("", 1) if tree is None or d is None else definition_span(tree, d, cache)


_HUNK = re.compile(r"^@@ -(\d+)(,\d+)? \+(\d+)(,\d+)? @@")


def _unified(a: str, b: str, label_a: str, label_b: str, start_a: int = 1, start_b: int = 1) -> str:
    """A unified diff whose hunk headers count the files' lines (the texts start at ``start_*``)."""
    lines = difflib.unified_diff(
        a.splitlines(keepends=True), b.splitlines(keepends=True), fromfile=label_a, tofile=label_b, n=3
    )

    def shift(match: re.Match[str]) -> str:
        old, new = int(match.group(1)), int(match.group(3))
        # an empty side (0) stays 0; difflib counts from 1 within each text
        old = old + start_a - 1 if old else old
        new = new + start_b - 1 if new else new
        return f"@@ -{old}{match.group(2) or ''} +{new}{match.group(4) or ''} @@"

    return "".join(
        _HUNK.sub(shift, line) if line.startswith("@@") else line
        for line in (line if line.endswith("\n") else line + "\n" for line in lines)
    )


def diff_closures(
    stage: str,
    label_a: str,
    closure_a: Closure | None,
    tree_a: SourceTree | None,
    label_b: str,
    closure_b: Closure | None,
    tree_b: SourceTree | None,
) -> StageDiff:
    """Compare two closures of one stage definition by definition."""
    defs_a, defs_b = _index(closure_a), _index(closure_b)
    cache: dict[tuple[int, str], str] = {}
    changes: list[DefinitionChange] = []
    for key in list(defs_a) + [k for k in defs_b if k not in defs_a]:
        da, db = defs_a.get(key), defs_b.get(key)
        (src_a, start_a), (src_b, start_b) = _source(tree_a, da, cache), _source(tree_b, db, cache)
        if da is not None and db is not None and da.digest == db.digest:
            if src_a == src_b:
                continue
            status = FORMATTING
        else:
            status = ADDED if da is None else REMOVED if db is None else CHANGED
        path_a, path_b = (da.path if da else None), (db.path if db else None)
        diff = _unified(
            src_a, src_b, f"{label_a}:{path_a or '/dev/null'}", f"{label_b}:{path_b or '/dev/null'}", start_a, start_b
        )
        changes.append(DefinitionChange(key[1], key[0], status, path_a, path_b, diff))
    fa = closure_a.fingerprint if closure_a else None
    fb = closure_b.fingerprint if closure_b else None
    if fa == fb:
        overall = FORMATTING if changes else UNCHANGED
        if fa is not None:
            # Equal fingerprints: nothing changed in meaning, whatever the per-definition digests say.
            changes = [c for c in changes if c.status == FORMATTING] or changes
    else:
        overall = CHANGED
    return StageDiff(stage, label_a, label_b, fa, fb, overall, tuple(changes))


def diff_manifests(a: Any, b: Any, history: Any) -> ManifestDiff:
    """Two manifests side by side: what differs in data, entries, pins, inputs and params."""
    rows: list[tuple[str, str, Any, Any]] = []
    for name in sorted(set(a.data) | set(b.data)):
        va, vb = a.data.get(name), b.data.get(name)
        if va != vb:
            rows.append(("data", name, va, vb))
    names = list(a.stages) + [n for n in b.stages if n not in a.stages]
    for name in names:
        sa, sb = a.stages.get(name), b.stages.get(name)
        if sa is None or sb is None:
            rows.append(("stage", name, sa.entry if sa else None, sb.entry if sb else None))
            continue
        for attr in ("entry", "version", "inputs", "deps"):
            va, vb = getattr(sa, attr), getattr(sb, attr)
            if va != vb:
                rows.append((name, attr, _jsonable(va), _jsonable(vb)))
        for param in list(sa.params) + [p for p in sb.params if p not in sa.params]:
            va, vb = sa.params.get(param), sb.params.get(param)
            if va != vb:
                rows.append((name, f"params.{param}", va, vb))
    return ManifestDiff(str(a.path), str(b.path), tuple(rows))


def _jsonable(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value
