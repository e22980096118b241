"""The parts of a closure as ``modver show`` lists them: file by file in line order, a run of
plain assignments (a script's config block) or of imports as one part, a module-level statement
under its first line of code, every other definition on its own.
"""

from __future__ import annotations

from modver.engine.diff import definition_span, statement_label
from modver.models import Closure, Definition, SourceTree
from modver.results import GROUPED, ClosurePart


def closure_parts(tree: SourceTree, closure: Closure) -> tuple[ClosurePart, ...]:
    """The closure's definitions by file (the entry's file first) and line, neighbouring plain
    assignments and imports joined into one part each (only blank or comment lines between)."""
    cache: dict[tuple[int, str], str] = {}
    files: dict[str, list[Definition]] = {}
    for d in closure.definitions:
        files.setdefault(d.path, []).append(d)
    parts: list[ClosurePart] = []
    for path, defs in files.items():
        text = _text(tree, path, cache)
        lines = text.splitlines(keepends=True)
        run: list[tuple[Definition, str, int]] = []
        for d in sorted(defs, key=lambda d: (d.line, d.end_line)):
            source, start = definition_span(tree, d, cache)
            if run and (run[-1][0].kind != d.kind or d.kind not in GROUPED or not _adjacent(lines, run[-1][0], start)):
                parts.append(_part(path, run, lines))
                run = []
            run.append((d, source, start))
        if run:
            parts.append(_part(path, run, lines))
    return tuple(parts)


def _text(tree: SourceTree, path: str, cache: dict[tuple[int, str], str]) -> str:
    key = (id(tree), path)
    if key not in cache:
        data = tree.read(path)
        cache[key] = "" if data is None else data.decode("utf-8", "replace")
    return cache[key]


def _adjacent(lines: list[str], before: Definition, start: int) -> bool:
    """True when only blank and comment lines lie between ``before`` and the line ``start``."""
    between = lines[before.end_line : start - 1]
    return all(not line.strip() or line.lstrip().startswith("#") for line in between)


def _part(path: str, run: list[tuple[Definition, str, int]], lines: list[str]) -> ClosurePart:
    first, source, start = run[0]
    if len(run) == 1:
        name = statement_label(first, source)
        return ClosurePart(path, name, first.kind, start, first.end_line, (first.name,), source)
    names = tuple(dict.fromkeys(n for d, _, _ in run for n in [d.name]))
    last = run[-1][0]
    label = f"{names[0]} … {names[-1]} ({len(names)})" if len(names) > 1 else names[0]
    text = "".join(lines[start - 1 : last.end_line])
    return ClosurePart(path, label, GROUPED[first.kind], start, last.end_line, names, text)
