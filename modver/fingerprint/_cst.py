"""Exact source text of definitions, through libcst (imported lazily: only `show`/`diff` pay)."""

from __future__ import annotations

import functools
from typing import Any

from modver.errors import EntryNotFoundError, SourceError, format_syntax_error


def definition_source(source: str, name: str) -> str:
    """The exact text of top-level definition ``name`` (``"func"``, ``"Class"``, ``"Class.method"``
    or an assigned name), with its decorators and the comments just above it.

    Raises SourceError when ``source`` does not parse and EntryNotFoundError when ``name`` is not
    defined at the top level.
    """
    import libcst as cst  # lazy: `modver status` and `--version` must not import libcst

    try:
        module = _parse(source)
    except cst.ParserSyntaxError as exc:
        lines = source.splitlines()
        line = exc.raw_line
        text = lines[line - 1] if 0 < line <= len(lines) else ""
        raise SourceError(
            format_syntax_error("<source>", line, exc.raw_column + 1, text, exc.message),
            where=f"<source>:{line}",
        ) from exc
    except RecursionError as exc:
        raise SourceError("source too deeply nested to show", where="<source>") from exc
    head, _, rest = name.partition(".")
    node = _find(module.body, head, cst)
    if node is not None and rest:
        body = getattr(getattr(node, "body", None), "body", ())
        node = _find(body, rest, cst) if isinstance(node, cst.ClassDef) else None
    if node is None:
        raise EntryNotFoundError(f"no top-level definition {name!r} in this source")
    text = module.code_for_node(node)
    lines = text.splitlines(keepends=True)
    while lines and not lines[0].strip():
        lines.pop(0)
    return "".join(lines).rstrip() + "\n"


@functools.lru_cache(maxsize=64)
def _parse(source: str) -> Any:
    """One libcst parse per distinct source: show/diff ask for many definitions of one file."""
    import libcst as cst

    return cst.parse_module(source)


def _find(body: Any, name: str, cst: Any) -> Any:
    assigned = None
    for stmt in body:
        if isinstance(stmt, (cst.FunctionDef, cst.ClassDef)) and stmt.name.value == name:
            return stmt
        if assigned is None and isinstance(stmt, cst.SimpleStatementLine):
            for small in stmt.body:
                targets = []
                if isinstance(small, cst.Assign):
                    targets = [t.target for t in small.targets]
                elif isinstance(small, (cst.AnnAssign, cst.AugAssign)):
                    targets = [small.target]
                if any(isinstance(t, cst.Name) and t.value == name for t in targets):
                    assigned = stmt
    return assigned
