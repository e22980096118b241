"""Semantic diffs: what changed in meaning between two versions of a stage, or two manifests.

Two closures are compared definition by definition. A definition whose normalized digest is the
same on both sides but whose text differs changed in formatting only; a different digest is a
change in meaning, shown as a unified diff of the exact source.
"""

from __future__ import annotations

import ast
import difflib
import io
import tokenize
from collections.abc import Callable
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


Texts = Callable[[Definition], str]


def _match(
    closure_a: Closure | None, closure_b: Closure | None, text_a: Texts, text_b: Texts
) -> list[tuple[Definition | None, Definition | None]]:
    """Pair the definitions of two closures: a name unique on both sides pairs by name (so a
    definition moved to another file pairs up); the rest — module-level statements, names bound
    twice — pair by position within their file, aligned on their digests (a statement inserted
    before the training loop does not pair the loop with something else)."""
    defs_a = closure_a.definitions if closure_a else ()
    defs_b = closure_b.definitions if closure_b else ()
    counts: dict[tuple[str, str], list[int]] = {}
    for side, defs in enumerate((defs_a, defs_b)):
        for d in defs:
            counts.setdefault((d.kind, d.name), [0, 0])[side] += 1

    def named(d: Definition) -> bool:
        return d.kind != "statement" and max(counts[(d.kind, d.name)]) == 1

    by_name = {(d.kind, d.name): d for d in defs_b if named(d)}
    pairs: list[tuple[Definition | None, Definition | None]] = []
    used: set[int] = set()
    rest_a: dict[str, list[Definition]] = {}
    rest_b: dict[str, list[Definition]] = {}
    for d in defs_a:
        if named(d):
            other = by_name.get((d.kind, d.name))
            pairs.append((d, other))
            if other is not None:
                used.add(id(other))
        else:
            rest_a.setdefault(d.path, []).append(d)
            pairs.append((d, None))  # its partner is filled in below
    for d in defs_b:
        if not named(d):
            rest_b.setdefault(d.path, []).append(d)
    partner: dict[int, Definition] = {}
    for path in rest_a.keys() & rest_b.keys():
        for da, db in _align(rest_a[path], rest_b[path], text_a, text_b):
            partner[id(da)] = db
            used.add(id(db))
    pairs = [(da, partner.get(id(da), db)) for da, db in pairs]
    pairs.extend((None, d) for d in defs_b if id(d) not in used)
    return pairs


def _align(
    a: list[Definition], b: list[Definition], text_a: Texts, text_b: Texts
) -> list[tuple[Definition, Definition]]:
    """Pairs of two files' unnamed definitions, in file order: equal digests first (difflib's
    alignment); a changed stretch of as many definitions on both sides pairs in order (edited in
    place); in any other, each definition pairs with the most similar one of the same kind and
    name that follows the last pair (at least half its lines alike)."""
    a, b = sorted(a, key=_line), sorted(b, key=_line)
    tokens_a = [(d.kind, d.name, d.digest) for d in a]
    tokens_b = [(d.kind, d.name, d.digest) for d in b]
    out: list[tuple[Definition, Definition]] = []
    for op, a0, a1, b0, b1 in difflib.SequenceMatcher(None, tokens_a, tokens_b, autojunk=False).get_opcodes():
        if op == "equal":
            out.extend(zip(a[a0:a1], b[b0:b1]))
            continue
        if a1 - a0 == b1 - b0 and all((x.kind, x.name) == (y.kind, y.name) for x, y in zip(a[a0:a1], b[b0:b1])):
            out.extend(zip(a[a0:a1], b[b0:b1]))  # edited in place
            continue
        j = b0
        for da in a[a0:a1]:
            lines = text_a(da).splitlines()
            best, best_k = _ALIKE, None
            for k in range(j, b1):
                if (b[k].kind, b[k].name) == (da.kind, da.name):
                    ratio = difflib.SequenceMatcher(None, lines, text_b(b[k]).splitlines(), autojunk=False).ratio()
                    if ratio >= best:
                        best, best_k = ratio, k
                        if ratio == 1.0:
                            break
            if best_k is not None:
                out.append((da, b[best_k]))
                j = best_k + 1
    return out


_ALIKE = 0.5


def _line(d: Definition) -> int:
    return d.line


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


def _unified(
    a: str, b: str, label_a: str, label_b: str, start_a: int = 1, start_b: int = 1, *, meaning_only: bool = False
) -> str:
    """A unified diff whose hunk headers count the files' lines (the texts start at ``start_*``).

    With ``meaning_only``, a hunk whose lines differ only in comments, blank lines, quote style
    or line wrapping is left out (unless every hunk is: then all are shown)."""
    lines_a, lines_b = a.splitlines(keepends=True), b.splitlines(keepends=True)
    groups = list(difflib.SequenceMatcher(None, lines_a, lines_b, autojunk=False).get_grouped_opcodes(3))
    if meaning_only:
        code_a, code_b = _code_lines(a), _code_lines(b)
        kept = [g for g in groups if not _cosmetic(g, code_a, code_b)]
        groups = kept or groups
    if not groups:
        return ""
    out = [f"--- {label_a}\n", f"+++ {label_b}\n"]
    for group in groups:
        first, last = group[0], group[-1]
        range_a = _range(first[1], last[2], start_a)
        range_b = _range(first[3], last[4], start_b)
        out.append(f"@@ -{range_a} +{range_b} @@\n")
        for op, a0, a1, b0, b1 in group:
            if op == "equal":
                out.extend(" " + line for line in lines_a[a0:a1])
                continue
            out.extend("-" + line for line in lines_a[a0:a1])
            out.extend("+" + line for line in lines_b[b0:b1])
    return "".join(line if line.endswith("\n") else line + "\n" for line in out)


def _range(start: int, stop: int, offset: int) -> str:
    """difflib's ``start,length`` of a hunk, counted in the file's lines (an empty side says 0)."""
    length = stop - start
    if not length:
        return f"{start + offset - 1 if start else 0},0"
    first = start + offset
    return str(first) if length == 1 else f"{first},{length}"


def _cosmetic(group: list[tuple[str, int, int, int, int]], code_a: list[str], code_b: list[str]) -> bool:
    """True when the changed lines of a hunk are the same code once comments, blank lines,
    spacing, quotes and line wrapping are set aside (indentation of a statement still counts)."""
    side_a = [code_a[i] for op, a0, a1, _, _ in group if op != "equal" for i in range(a0, a1)]
    side_b = [code_b[j] for op, _, _, b0, b1 in group if op != "equal" for j in range(b0, b1)]
    return " ".join(x for x in side_a if x) == " ".join(x for x in side_b if x)


def _code_lines(text: str) -> list[str]:
    """Per line of ``text``, its tokens without comments (strings as the values they spell, a
    statement's first line prefixed by its indentation); a line inside a multi-line string or
    text that does not tokenize stays as written."""
    raw = text.splitlines()
    out = [""] * len(raw)
    plain = {tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT, tokenize.ENDMARKER}
    try:
        starts_statement = True
        for tok in tokenize.generate_tokens(io.StringIO(text).readline):
            if tok.type in plain:
                starts_statement = starts_statement or tok.type in (tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT)
                continue
            row, col = tok.start
            if tok.end[0] != row:  # a multi-line token: its lines are compared as written
                for r in range(row, tok.end[0] + 1):
                    out[r - 1] = raw[r - 1]
                starts_statement = False
                continue
            value = _token_value(tok)
            prefix = f"\t{col}:" if starts_statement else ""
            out[row - 1] = f"{out[row - 1]} {prefix}{value}" if out[row - 1] else prefix + value
            starts_statement = False
    except (tokenize.TokenError, SyntaxError, IndexError):
        return raw
    return out


def _token_value(tok: tokenize.TokenInfo) -> str:
    if tok.type != tokenize.STRING:
        return tok.string
    try:
        return repr(ast.literal_eval(tok.string))  # 'a' and "a" are one value; f-strings stay as written
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return tok.string


def statement_label(d: Definition, source: str) -> str:
    """A statement's name in a diff: its first line of code, without comment or a block's colon
    (``while True``)."""
    if d.kind != "statement":
        return d.name
    comments: dict[int, int] = {}
    try:
        for tok in tokenize.generate_tokens(io.StringIO(source).readline):
            if tok.type == tokenize.COMMENT:
                comments[tok.start[0]] = tok.start[1]
    except (tokenize.TokenError, SyntaxError, IndentationError):
        pass  # a label only: the lines as written will do
    for row, line in enumerate(source.splitlines(), 1):
        code = line[: comments.get(row, len(line))].strip().removesuffix(":").rstrip()
        if code:
            return code if len(code) <= _LABEL_MAX else code[: _LABEL_MAX - 3] + "..."
    return d.name


_LABEL_MAX = 60


def diff_closures(
    stage: str,
    label_a: str,
    closure_a: Closure | None,
    tree_a: SourceTree | None,
    label_b: str,
    closure_b: Closure | None,
    tree_b: SourceTree | None,
) -> StageDiff:
    """Compare two closures of one stage definition by definition (module-level statements too,
    each against its counterpart in the same file: a changed line in a loop shows as that line)."""
    cache: dict[tuple[int, str], str] = {}
    changes: list[DefinitionChange] = []

    def text_a(d: Definition) -> str:
        return _source(tree_a, d, cache)[0]

    def text_b(d: Definition) -> str:
        return _source(tree_b, d, cache)[0]

    for da, db in _match(closure_a, closure_b, text_a, text_b):
        (src_a, start_a), (src_b, start_b) = _source(tree_a, da, cache), _source(tree_b, db, cache)
        if da is not None and db is not None and da.digest == db.digest:
            if src_a == src_b:
                continue
            status = FORMATTING
        else:
            status = ADDED if da is None else REMOVED if db is None else CHANGED
        path_a, path_b = (da.path if da else None), (db.path if db else None)
        diff = _unified(
            src_a,
            src_b,
            f"{label_a}:{path_a or '/dev/null'}",
            f"{label_b}:{path_b or '/dev/null'}",
            start_a,
            start_b,
            meaning_only=status == CHANGED,
        )
        shown = db if db is not None else da
        assert shown is not None  # a pair always has one side
        name = statement_label(shown, src_b if db is not None else src_a)
        changes.append(DefinitionChange(name, shown.kind, status, path_a, path_b, diff))
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
