"""Module summaries: source → top-level units, their digests, bindings and free references.

A summary depends on a file's content only (never on its path), so it is cached by content id.
It is made of plain tuples, lists, dicts and strings so that ``marshal`` can store it.

``summary["units"]`` holds one tuple per top-level unit, with the fields named by the ``U_*``
indices below. A unit is a top-level statement, or one alias of an import statement (``import a,
b`` gives two units), or a "virtual" import unit for an import nested in a top-level ``if``/
``try`` block (so a conditional project import still resolves to its definition).
"""

from __future__ import annotations

import ast
import io
import itertools
import sys
import threading
import tokenize
from collections.abc import Callable
from typing import Any, TypeVar

from modver._encoding import digest, encode, encode_node
from modver.errors import SourceError, format_syntax_error

# unit tuple fields
U_KIND, U_NAMES, U_LINE, U_END, U_DIGEST, U_REFS, U_FLAGS, U_MAIN, U_SPEC, U_ATTACH = range(10)

_T = TypeVar("_T")
_DEEP_LOCK = threading.Lock()
_DYNAMIC_CALLS = frozenset({"eval", "exec", "globals"})
_OPEN_CALLS = frozenset({"open", "Path", "PurePath", "PosixPath"})  # open(P), io.open(P), Path(P)
_READ_METHODS = frozenset({"read", "read_text", "read_bytes"})
_CALL_TEXT_MAX = 80
_GETATTR_CALLS = frozenset({"getattr", "hasattr", "setattr", "delattr"})
_DEF_TYPES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)


def run_deep(fn: Callable[..., _T], *args: Any) -> _T:
    """Call ``fn``; on RecursionError, call it again in a thread with a large stack and limit.

    Deeply nested but valid Python (a 10,000-term ``a + b + ...``) must fingerprint, not crash.
    """
    try:
        return fn(*args)
    except RecursionError:
        return _run_with_deep_stack(fn, *args)


def _run_with_deep_stack(fn: Callable[..., _T], *args: Any) -> _T:
    """``fn(*args)`` in a thread with a 512 MiB stack and a high recursion limit."""
    result: list[Any] = []
    error: list[BaseException] = []

    def target() -> None:
        try:
            result.append(fn(*args))
        except BaseException as exc:  # noqa: BLE001 - re-raised in the calling thread below
            error.append(exc)

    with _DEEP_LOCK:
        old_limit = sys.getrecursionlimit()
        old_stack = threading.stack_size()
        try:
            threading.stack_size(512 * 1024 * 1024)
            sys.setrecursionlimit(max(old_limit, 200_000))
            worker = threading.Thread(target=target, name="modver-deep-walk")
            worker.start()
            worker.join()
        finally:
            sys.setrecursionlimit(old_limit)
            threading.stack_size(old_stack)
    if error:
        raise error[0]
    return result[0]


def decode_source(data: bytes, path: str) -> str:
    """Bytes → text, honouring a PEP 263 coding cookie and a UTF-8 BOM."""
    if b"\0" in data:
        line = data[: data.index(b"\0")].count(b"\n") + 1
        raise SourceError(
            f"{path}:{line}: source contains a null byte",
            where=path,
            hint="is this a binary file? a stage's entry must be a Python source file",
        )
    try:
        encoding, _ = tokenize.detect_encoding(io.BytesIO(data).readline)
        return data.decode(encoding)
    except (SyntaxError, UnicodeDecodeError, LookupError) as exc:
        raise SourceError(
            f"{path}: cannot decode the source: {exc}",
            where=path,
            hint="save the file as UTF-8 or declare its encoding (# -*- coding: ... -*-)",
        ) from exc


def parse_source(text: str, path: str) -> ast.Module:
    """Parse with the stdlib ``ast``; errors become SourceError with path:line:col and a caret."""
    if "\0" in text:
        line = text[: text.index("\0")].count("\n") + 1
        raise SourceError(f"{path}:{line}: source contains a null byte", where=path)
    try:
        return run_deep(ast.parse, text, path)
    except SyntaxError as exc:
        line = exc.lineno or 1
        source_line = exc.text
        if source_line is None:
            lines = text.splitlines()
            source_line = lines[line - 1] if 0 < line <= len(lines) else ""
        message = format_syntax_error(path, line, exc.offset or 1, source_line, exc.msg)
        raise SourceError(message, where=f"{path}:{line}", hint="fix the syntax error") from exc
    except (ValueError, MemoryError, RecursionError) as exc:
        raise SourceError(f"{path}: cannot parse the source: {exc}", where=path) from exc


class _Scope:
    __slots__ = ("bound", "children", "globals", "imports", "kind", "loads")

    def __init__(self, kind: str) -> None:
        self.kind = kind  # "module" | "function" | "class"
        self.bound: set[str] = set()
        self.globals: set[str] = set()
        self.loads: list[tuple[int, tuple[str, ...], str, Any]] = []
        self.children: list[_Scope] = []
        self.imports: dict[str, tuple] = {}


class _Scanner:
    """Free global references (attribute chains kept) of one top-level statement."""

    def __init__(self) -> None:
        self.counter = itertools.count()
        self.flags: list[tuple] = []
        self.nested_imports: list[tuple[ast.stmt, tuple, str]] = []  # module-scope imports in blocks
        self.stars: list[tuple] = []
        self.dispatch: dict[type, Callable[[Any, _Scope], None]] = {
            ast.FunctionDef: self.visit_function,
            ast.AsyncFunctionDef: self.visit_function,
            ast.Lambda: self.visit_lambda,
            ast.ClassDef: self.visit_class,
            ast.ListComp: self.visit_comp,
            ast.SetComp: self.visit_comp,
            ast.GeneratorExp: self.visit_comp,
            ast.DictComp: self.visit_comp,
            ast.Global: self.visit_global,
            ast.Nonlocal: self.visit_nonlocal,
            ast.Import: self.visit_import,
            ast.ImportFrom: self.visit_import_from,
            ast.ExceptHandler: self.visit_handler,
            ast.Call: self.visit_call,
            ast.MatchAs: self.visit_match_name,
            ast.MatchStar: self.visit_match_name,
            ast.MatchMapping: self.visit_match_mapping,
        }

    # -- traversal ---------------------------------------------------------------------------
    def visit(self, node: Any, scope: _Scope) -> None:
        cls = type(node)
        if cls is ast.Name:
            if type(node.ctx) is ast.Load or node.id in scope.globals:
                scope.loads.append((next(self.counter), (node.id,), "value", None))
            else:
                scope.bound.add(node.id)
            return
        if cls is ast.Attribute:
            if type(node.ctx) is ast.Load:
                chain = self.chain(node)
                if chain is not None:
                    scope.loads.append((next(self.counter), chain, "value", None))
                    return
            self.visit(node.value, scope)
            return
        if cls is ast.Constant:
            return
        handler = self.dispatch.get(cls)
        if handler is not None:
            handler(node, scope)
            return
        visit = self.visit
        for name in cls._fields:
            value = getattr(node, name, None)
            if type(value) is list:
                for item in value:
                    if isinstance(item, ast.AST):
                        visit(item, scope)
            elif isinstance(value, ast.AST):
                visit(value, scope)

    @staticmethod
    def chain(node: Any) -> tuple[str, ...] | None:
        names = []
        while type(node) is ast.Attribute:
            names.append(node.attr)
            node = node.value
        if type(node) is not ast.Name:
            return None
        names.append(node.id)
        names.reverse()
        return tuple(names)

    def visit_all(self, nodes: list, scope: _Scope) -> None:
        for node in nodes:
            if node is not None:
                self.visit(node, scope)

    def visit_arguments(self, args: ast.arguments, outer: _Scope, inner: _Scope) -> None:
        self.visit_all(args.defaults, outer)
        self.visit_all(args.kw_defaults, outer)
        for arg in (*args.posonlyargs, *args.args, args.vararg, *args.kwonlyargs, args.kwarg):
            if arg is not None:
                inner.bound.add(arg.arg)
                if arg.annotation is not None:
                    self.visit(arg.annotation, outer)

    def visit_function(self, node: Any, scope: _Scope) -> None:
        self.visit_all(node.decorator_list, scope)
        inner = _Scope("function")
        self.visit_arguments(node.args, scope, inner)
        if node.returns is not None:
            self.visit(node.returns, scope)
        scope.bound.add(node.name)
        self.visit_all(node.body, inner)
        scope.children.append(inner)

    def visit_lambda(self, node: ast.Lambda, scope: _Scope) -> None:
        inner = _Scope("function")
        self.visit_arguments(node.args, scope, inner)
        self.visit(node.body, inner)
        scope.children.append(inner)

    def visit_class(self, node: ast.ClassDef, scope: _Scope) -> None:
        self.visit_all(node.decorator_list, scope)
        self.visit_all(node.bases, scope)
        for keyword in node.keywords:
            self.visit(keyword.value, scope)
        scope.bound.add(node.name)
        inner = _Scope("class")
        self.visit_all(node.body, inner)
        scope.children.append(inner)

    def visit_comp(self, node: Any, scope: _Scope) -> None:
        generators = node.generators
        self.visit(generators[0].iter, scope)
        inner = _Scope("function")
        for position, generator in enumerate(generators):
            if position:
                self.visit(generator.iter, inner)
            self.visit(generator.target, inner)
            self.visit_all(generator.ifs, inner)
        if type(node) is ast.DictComp:
            self.visit(node.key, inner)
            self.visit(node.value, inner)
        else:
            self.visit(node.elt, inner)
        scope.children.append(inner)

    def visit_global(self, node: ast.Global, scope: _Scope) -> None:
        scope.globals.update(node.names)

    def visit_nonlocal(self, node: ast.Nonlocal, scope: _Scope) -> None:
        scope.bound.update(node.names)

    def visit_import(self, node: ast.Import, scope: _Scope) -> None:
        for alias in node.names:
            local = alias.asname or alias.name.partition(".")[0]
            spec = ("import", alias.name, alias.asname)
            self.bind_import(node, scope, local, spec)

    def visit_import_from(self, node: ast.ImportFrom, scope: _Scope) -> None:
        for alias in node.names:
            spec = ("from", node.level or 0, node.module or "", alias.name)
            if alias.name == "*":
                self.stars.append(spec)
                continue
            self.bind_import(node, scope, alias.asname or alias.name, spec)

    def bind_import(self, node: ast.stmt, scope: _Scope, local: str, spec: tuple) -> None:
        scope.bound.add(local)
        if scope.kind == "module":
            self.nested_imports.append((node, spec, local))
        else:
            scope.imports[local] = spec

    def visit_handler(self, node: ast.ExceptHandler, scope: _Scope) -> None:
        if node.type is not None:
            self.visit(node.type, scope)
        if node.name:
            scope.bound.add(node.name)
        self.visit_all(node.body, scope)

    def visit_match_name(self, node: Any, scope: _Scope) -> None:
        if node.name:
            scope.bound.add(node.name)
        pattern = getattr(node, "pattern", None)
        if pattern is not None:
            self.visit(pattern, scope)

    def visit_match_mapping(self, node: ast.MatchMapping, scope: _Scope) -> None:
        self.visit_all(node.keys, scope)
        self.visit_all(node.patterns, scope)
        if node.rest:
            scope.bound.add(node.rest)

    def visit_call(self, node: ast.Call, scope: _Scope) -> None:
        func = node.func
        args = node.args
        name = func.id if type(func) is ast.Name else func.attr if type(func) is ast.Attribute else None
        if name is not None:
            if name in _GETATTR_CALLS and type(func) is ast.Name and args:
                chain = self.chain(args[0])
                if chain is not None:
                    scope.loads.append((next(self.counter), chain, "getattr", None))
                    self.visit(func, scope)
                    self.visit_all(args[1:], scope)
                    for keyword in node.keywords:
                        self.visit(keyword.value, scope)
                    return
            elif name in _DYNAMIC_CALLS and type(func) is ast.Name:
                self.flags.append(("dynamic", node.lineno, name + "()"))
            elif name == "import_module" or (name == "__import__" and type(func) is ast.Name):
                literal = None
                if args and type(args[0]) is ast.Constant and type(args[0].value) is str:
                    literal = args[0].value
                self.flags.append(("import_module", node.lineno, literal))
            if (name == "exec" and type(func) is ast.Name and args) or name == "run_path":
                self.flag_file_run(node, name)
        self.visit(func, scope)
        self.visit_all(args, scope)
        for keyword in node.keywords:
            self.visit(keyword.value, scope)

    def flag_file_run(self, node: ast.Call, name: str) -> None:
        """Flag ``("runs", line, (path, call))`` for a call that runs a file's code: ``exec`` of
        ``open(P).read()``, ``Path(P).read_text()`` or ``compile(<either>, ...)``, or
        ``runpy.run_path(P)``. ``path`` is P when it is a string literal, None when the file is
        named at run time (also ``exec(f.read())`` of any ``f``); ``call`` is the call's text."""
        if name == "exec":
            source = node.args[0]
            if type(source) is ast.Call and _callee(source) == "compile" and source.args:
                source = source.args[0]
            if type(source) is not ast.Call or type(source.func) is not ast.Attribute:
                return
            if source.func.attr not in _READ_METHODS:
                return  # exec() of a string: the dynamic flag covers it
            opened = source.func.value
            target = None
            if type(opened) is ast.Call and _callee(opened) in _OPEN_CALLS and opened.args:
                target = opened.args[0]
        else:
            target = node.args[0] if node.args else next((k.value for k in node.keywords if k.arg == "path_name"), None)
        path = target.value if type(target) is ast.Constant and type(target.value) is str else None
        call = ast.unparse(node)
        if len(call) > _CALL_TEXT_MAX:
            call = call[: _CALL_TEXT_MAX - 3] + "..."
        self.flags.append(("runs", node.lineno, (path, call)))


def _callee(call: ast.Call) -> str | None:
    """The called name: ``f`` for ``f(...)`` and ``m.f(...)``."""
    func = call.func
    return func.id if type(func) is ast.Name else func.attr if type(func) is ast.Attribute else None


def _free(scope: _Scope) -> list[tuple[int, tuple[str, ...], str, Any]]:
    """The loads of ``scope`` and its children that are not bound inside ``scope``."""
    items = list(scope.loads)
    for child in scope.children:
        items.extend(_free(child))
    if scope.kind != "function":
        return items
    bound, imports, globals_ = scope.bound, scope.imports, scope.globals
    kept = []
    for item in items:
        if item[3] is not None:
            kept.append(item)
            continue
        name = item[1][0]
        if name in globals_:
            kept.append(item)
        elif name in imports:
            kept.append((item[0], item[1], item[2], imports[name]))
        elif name not in bound:
            kept.append(item)
    return kept


def _refs(scanner: _Scanner, top: _Scope) -> tuple:
    seen = set()
    refs = []
    for _, chain, ctx, spec in sorted(_free(top), key=_order):
        key = (chain, ctx, spec)
        if key not in seen:
            seen.add(key)
            refs.append(key)
    return tuple(refs)


def _order(item: tuple) -> int:
    return item[0]


def _is_main_block(node: ast.stmt) -> bool:
    if type(node) is not ast.If or type(node.test) is not ast.Compare:
        return False
    test = node.test
    if len(test.ops) != 1 or type(test.ops[0]) is not ast.Eq:
        return False
    name, const = test.left, test.comparators[0]
    if type(name) is ast.Constant:
        name, const = const, name
    return (
        type(name) is ast.Name and type(const) is ast.Constant and name.id == "__name__" and const.value == "__main__"
    )


def _target_names(target: Any, out: list[str]) -> bool:
    """Collect names bound by an assignment target; False if it also stores into attributes."""
    cls = type(target)
    if cls is ast.Name:
        out.append(target.id)
        return True
    if cls is ast.Starred:
        return _target_names(target.value, out)
    if cls in (ast.Tuple, ast.List):
        return all([_target_names(item, out) for item in target.elts])
    return False


def _base_name(target: Any) -> str | None:
    while type(target) in (ast.Attribute, ast.Subscript, ast.Starred):
        target = target.value
    return target.id if type(target) is ast.Name else None


def _first_line(node: Any) -> int:
    decorators = getattr(node, "decorator_list", None)
    if decorators:
        return min(node.lineno, *(d.lineno for d in decorators))
    return node.lineno


def summarize(module: ast.Module, docstrings: bool) -> dict[str, Any]:
    """The summary of a parsed module (see the module docstring)."""
    return run_deep(_summarize, module, docstrings)


def _summarize(module: ast.Module, docstrings: bool) -> dict[str, Any]:
    body = module.body
    # names bound by definitions and plain assignments: attribute stores on them attach to them
    defined: set[str] = set()
    for stmt in body:
        if isinstance(stmt, _DEF_TYPES):
            defined.add(stmt.name)
        elif isinstance(stmt, ast.Assign):
            for target in stmt.targets:
                bound: list[str] = []
                _target_names(target, bound)
                defined.update(bound)
        elif isinstance(stmt, (ast.AnnAssign, ast.AugAssign)) and type(stmt.target) is ast.Name:
            defined.add(stmt.target.id)

    units: list[tuple] = []
    bindings: dict[str, list[int]] = {}
    import_time: list[int] = []
    stars: list[tuple] = []
    callables: list[str] = []
    methods: dict[str, list[str]] = {}

    def add(kind, names, node, unit_digest, refs=(), flags=(), main=False, spec=None, attach=()):
        index = len(units)
        end = getattr(node, "end_lineno", None) or node.lineno
        units.append(
            (kind, tuple(names), _first_line(node), end, unit_digest, refs, tuple(flags), main, spec, tuple(attach))
        )
        for name in (*names, *attach):
            bindings.setdefault(name, []).append(index)
        return index

    for stmt in body:
        if (
            not docstrings
            and type(stmt) is ast.Expr
            and type(stmt.value) is ast.Constant
            and type(stmt.value.value) is str
        ):
            continue
        if isinstance(stmt, ast.Import) or (isinstance(stmt, ast.ImportFrom) and stmt.names[0].name != "*"):
            for alias in stmt.names:
                spec: tuple[Any, ...]
                literal: tuple[Any, ...]
                if isinstance(stmt, ast.Import):
                    local = alias.asname or alias.name.partition(".")[0]
                    spec = literal = ("import", alias.name, alias.asname)
                else:
                    local = alias.asname or alias.name
                    spec = ("from", stmt.level or 0, stmt.module or "", alias.name)
                    literal = (*spec, alias.asname)
                index = add("import", (local,), stmt, digest(encode(literal)), spec=spec)
                if isinstance(stmt, ast.ImportFrom) and stmt.module == "__future__" and not stmt.level:
                    import_time.append(index)  # changes how the whole module compiles
            continue
        scanner = _Scanner()
        top = _Scope("module")
        scanner.visit(stmt, top)
        unit_digest = digest(encode_node(stmt, docstrings=docstrings))
        refs = _refs(scanner, top)
        flags = scanner.flags
        if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef)):
            add("function", (stmt.name,), stmt, unit_digest, refs, flags)
            callables.append(stmt.name)
        elif isinstance(stmt, ast.ClassDef):
            add("class", (stmt.name,), stmt, unit_digest, refs, flags)
            callables.append(stmt.name)
            methods[stmt.name] = [
                item.name for item in stmt.body if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef))
            ]
        elif isinstance(stmt, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
            targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]
            names: list[str] = []
            attach: list[str] = []
            plain = True
            for target in targets:
                if not _target_names(target, names):
                    plain = False
                    base = _base_name(target)
                    if base is not None and base in defined:
                        attach.append(base)
            if plain or attach:
                if isinstance(stmt, ast.AugAssign):
                    attach.extend(names)
                    names = []
                add("assignment", dict.fromkeys(names), stmt, unit_digest, refs, flags, attach=dict.fromkeys(attach))
            else:
                import_time.append(add("statement", (), stmt, unit_digest, refs, flags))
        elif isinstance(stmt, ast.ImportFrom):  # star import
            spec = ("from", stmt.level or 0, stmt.module or "", "*")
            index = add("import", (), stmt, unit_digest, spec=spec)
            import_time.append(index)
            stars.append((spec, index))
        elif _is_main_block(stmt):
            import_time.append(add("statement", (), stmt, unit_digest, refs, flags, main=True))
        else:
            # a top-level block or expression: runs on import, and may bind names
            names = sorted(top.bound)
            index = add("statement", (), stmt, unit_digest, refs, flags, attach=names)
            import_time.append(index)
            for node, spec, local in scanner.nested_imports:
                add("import", (local,), node, digest(encode(spec)), spec=spec)
            for spec in scanner.stars:
                stars.append((spec, index))

    return {
        "units": units,
        "bindings": {name: tuple(indices) for name, indices in bindings.items()},
        "import_time": tuple(import_time),
        "stars": tuple(stars),
        "callables": tuple(callables),
        "methods": {name: tuple(found) for name, found in methods.items()},
    }
