"""Rewriting the imports of a materialized version's modules, with libcst (see :mod:`modver.store.materialize`).

:func:`rewrite_source` points a module's project-local imports (``import``, ``from ... import``,
``importlib.import_module("...")`` of a literal name) into the version's private package, reads
``__file__`` as the project file's path, makes ``__import__("...")`` of a literal project module
take it from the version (:func:`modver.materialize.version_import`), and points the literal path of a file the code runs
(``exec(open(P).read())``, ``runpy.run_path(P)``) at the version's own copy, without moving any
line. A :class:`Locator` says which names are project-local. :mod:`modver.store.materialize` imports
this module only when a file needs it, so libcst loads only then.
"""

from __future__ import annotations

from typing import Any, Protocol

import libcst as cst
from libcst.helpers import get_full_name_for_node

from modver.errors import MaterializeError, SourceError, format_syntax_error
from modver.fingerprint._summary import _OPEN_CALLS, _READ_METHODS, run_deep

_IMPORT_MODULE_CALLS = frozenset({"importlib.import_module", "import_module"})
_PROJECT_FILE_CALL = '__import__("modver.materialize").materialize.project_file(__file__)'
_VERSION_IMPORT = '__import__("modver.materialize").materialize.version_import'


class Locator(Protocol):
    """What the rewrite asks about the version's files (``modver.store.materialize``'s locator)."""

    def target(self, dotted: str, importer: str) -> str | None:
        """``dotted``'s name inside the package, or None when it is not project-local."""

    def run_file(self, literal: str) -> str | None:
        """The version's file that ``open(literal)`` names, or None."""


def rewrite_source(source: bytes, path: str, locator: Locator) -> bytes:
    """The module ``source`` (project file ``path``) with its imports rewritten; a syntax error
    raises :class:`~modver.errors.SourceError` with the line and a caret."""
    try:
        module = run_deep(cst.parse_module, source)  # deeply nested code must not crash libcst
    except cst.ParserSyntaxError as exc:
        lines = source.decode("utf-8", "replace").splitlines()
        text = lines[exc.raw_line - 1] if 0 < exc.raw_line <= len(lines) else ""
        raise SourceError(
            format_syntax_error(path, exc.raw_line, exc.raw_column + 1, text, exc.message),
            where=f"{path}:{exc.raw_line}:{exc.raw_column + 1}",
        ) from exc
    return run_deep(lambda: module.visit(ImportTransformer(locator, path)).bytes)


def _callee(call: cst.Call) -> str | None:
    """The called name of a libcst Call: ``f`` for ``f(...)`` and ``m.f(...)``."""
    func = call.func
    return func.value if isinstance(func, cst.Name) else func.attr.value if isinstance(func, cst.Attribute) else None


def _dotted(node: Any) -> str:
    name = get_full_name_for_node(node)
    if name is None:  # pragma: no cover - import targets are always names/attributes
        raise MaterializeError("unsupported import target")
    return name


class ImportTransformer(cst.CSTTransformer):
    """Rewrites the project-local imports of one module, and its reads of ``__file__``."""

    def __init__(self, locator: Locator, path: str):
        super().__init__()
        self.locator = locator
        self.path = path
        self.bound: set[int] = set()  # ids of `__file__` names that are not a read of it
        self.quotes: list[str] = []  # quotes of the f-strings around the current node

    # `__file__` is read as the project file's path (see project_file); these spots name
    # something else or bind it, and stay as written
    def visit_Attribute(self, node: cst.Attribute) -> None:
        self.bound.add(id(node.attr))

    def visit_Arg(self, node: cst.Arg) -> None:
        if node.keyword is not None:
            self.bound.add(id(node.keyword))

    def _bind_name(self, node: Any) -> None:
        self.bound.add(id(node.name))

    visit_Param = visit_NameItem = visit_ImportAlias = _bind_name  # parameters, global x, imports

    def _bind(self, target: cst.BaseExpression) -> None:
        if isinstance(target, cst.Name):
            self.bound.add(id(target))
        elif isinstance(target, (cst.Tuple, cst.List)):
            for element in target.elements:
                self._bind(element.value)
        elif isinstance(target, cst.StarredElement):
            self._bind(target.value)

    def _bind_target(self, node: Any) -> None:
        self._bind(node.target)

    # assignments, loops, comprehensions and `del` bind their targets
    visit_AssignTarget = visit_AnnAssign = visit_AugAssign = _bind_target
    visit_For = visit_CompFor = visit_Del = _bind_target

    def visit_AsName(self, node: cst.AsName) -> None:
        self._bind(node.name)

    # inside an f-string the call's string literal must use the other quote
    def visit_FormattedString(self, node: cst.FormattedString) -> None:
        self.quotes.append(node.start.lstrip("rfbuRFBU"))

    def leave_FormattedString(self, original: cst.FormattedString, updated: cst.FormattedString) -> Any:
        self.quotes.pop()
        return updated

    def leave_Name(self, original: cst.Name, updated: cst.Name) -> Any:
        if updated.value != "__file__" or id(original) in self.bound:
            return updated
        used = "".join(self.quotes)
        quote = '"' if '"' not in used else "'" if "'" not in used else None
        if quote is None:  # nested f-strings using both quotes: leave it as written
            return updated
        return cst.parse_expression(_PROJECT_FILE_CALL.replace('"', quote))

    def leave_ImportFrom(self, original: cst.ImportFrom, updated: cst.ImportFrom) -> cst.ImportFrom:
        if updated.relative or updated.module is None:
            return updated
        target = self.locator.target(_dotted(updated.module), self.path)
        if target is None:
            return updated
        return updated.with_changes(module=cst.parse_expression(target))

    def leave_Import(self, original: cst.Import, updated: cst.Import) -> Any:
        pieces: list[str] = []
        kept: list[cst.ImportAlias] = []
        changed = False
        for alias in updated.names:
            dotted = _dotted(alias.name)
            target = self.locator.target(dotted, self.path)
            if target is None:
                kept.append(alias)
                continue
            changed = True
            if alias.asname is not None:
                asname = _dotted(alias.asname.name)
                pieces.append(f"import {target} as {asname}")
            else:  # `import a.b` binds `a`: load the submodule, then bind the package's `a`
                top = dotted.split(".", 1)[0]
                holder = target[: len(target) - len(dotted) - 1]
                if "." in dotted:
                    pieces.append(f"import {target}")
                pieces.append(f"from {holder} import {top}")
        if not changed:
            return updated
        statements: list[cst.BaseSmallStatement] = []
        if kept:
            kept[-1] = kept[-1].with_changes(comma=cst.MaybeSentinel.DEFAULT)
            statements.append(updated.with_changes(names=kept, semicolon=cst.MaybeSentinel.DEFAULT))
        for piece in pieces:
            line = cst.parse_statement(piece + "\n")
            assert isinstance(line, cst.SimpleStatementLine)  # an import is a simple statement
            statements.append(line.body[0])
        # keep the line count: a backslash-continued import keeps its continuations
        breaks = cst.Module(body=[]).code_for_node(original).count("\n")
        if breaks:
            first = statements[0]
            gap = cst.SimpleWhitespace(" " + "\\\n" * breaks + "    ")
            if isinstance(first, cst.Import):
                statements[0] = first.with_changes(whitespace_after_import=gap)
            elif isinstance(first, cst.ImportFrom):
                statements[0] = first.with_changes(whitespace_after_from=gap)
        statements[-1] = statements[-1].with_changes(semicolon=updated.semicolon)
        return cst.FlattenSentinel(statements)

    def _run_literal(self, call: cst.Call) -> cst.SimpleString | None:
        """The literal path of a file ``call`` runs (the patterns the fingerprint follows)."""
        name = _callee(call)
        if name == "run_path" and call.args:
            first = call.args[0]
            path = first.value if first.keyword is None or first.keyword.value == "path_name" else None
        elif name == "exec" and isinstance(call.func, cst.Name) and call.args:
            source = call.args[0].value
            if isinstance(source, cst.Call) and _callee(source) == "compile" and source.args:
                source = source.args[0].value
            if not (isinstance(source, cst.Call) and isinstance(source.func, cst.Attribute)):
                return None
            if source.func.attr.value not in _READ_METHODS:
                return None
            opened = source.func.value
            if not (isinstance(opened, cst.Call) and _callee(opened) in _OPEN_CALLS and opened.args):
                return None
            path = opened.args[0].value
        else:
            return None
        return path if isinstance(path, cst.SimpleString) else None

    def leave_Call(self, original: cst.Call, updated: cst.Call) -> cst.BaseExpression:
        literal = self._run_literal(updated)
        if literal is not None and not self.quotes:
            value = literal.evaluated_value
            stored = self.locator.run_file(value) if isinstance(value, str) else None
            if stored is not None:
                copy = cst.parse_expression(
                    f'__import__("modver.materialize").materialize.version_file(__file__, {stored!r})'
                )
                return updated.deep_replace(literal, copy)
        if isinstance(updated.func, cst.Name) and updated.func.value == "__import__":
            return self._dunder_import(updated)
        if get_full_name_for_node(updated.func) not in _IMPORT_MODULE_CALLS or not updated.args:
            return updated
        first = updated.args[0]
        if first.keyword is not None or not isinstance(first.value, cst.SimpleString):
            return updated
        name = first.value.evaluated_value
        if not isinstance(name, str) or name.startswith(".") or not name:
            return updated
        target = self.locator.target(name, self.path)
        if target is None:
            return updated
        quote = first.value.quote
        new_arg = first.with_changes(value=cst.SimpleString(f"{first.value.prefix}{quote}{target}{quote}"))
        return updated.with_changes(args=[new_arg, *updated.args[1:]])

    def _dunder_import(self, call: cst.Call) -> cst.BaseExpression:
        """``__import__("a.b", ...)`` of a project module (absolute: no ``level`` but 0) ->
        ``version_import("<package>.a.b", "a.b", ...)``, on the same line: it returns what
        ``__import__`` returns (the top package ``a`` without a ``fromlist``), from the version."""
        args = call.args
        if not args or args[0].keyword is not None or not isinstance(args[0].value, cst.SimpleString):
            return call
        name = args[0].value.evaluated_value
        if not isinstance(name, str) or not name or name.startswith("."):
            return call
        level = next((a for a in args if a.keyword is not None and a.keyword.value == "level"), None)
        if level is None and len(args) >= 5 and args[4].keyword is None:
            level = args[4]
        if level is not None and not (isinstance(level.value, cst.Integer) and level.value.evaluated_value == 0):
            return call  # relative to the importer's package: left as written
        if any(a.star for a in args):
            return call
        target = self.locator.target(name, self.path)
        if target is None:
            return call
        used = "".join(self.quotes)  # inside an f-string, the other quote
        quote = '"' if '"' not in used else "'" if "'" not in used else None
        if quote is None:
            return call
        helper = cst.parse_expression(_VERSION_IMPORT.replace('"', quote))
        first = args[0]
        new_args = [
            cst.Arg(cst.SimpleString(f"{quote}{target}{quote}")),
            first.with_changes(value=cst.SimpleString(f"{quote}{name}{quote}")),
            *args[1:],
        ]
        return call.with_changes(func=helper, args=new_args)
