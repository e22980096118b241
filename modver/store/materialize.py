"""Make a registered version's code importable under a name private to that version.

A version stores the files of its closure (``{project-relative path: bytes}``). To run it
without the working tree, and next to other versions of the same helpers in one process,
:func:`materialize` writes them once to ``<store>/versions/_modver_<hex16>/`` (``<store>`` is the
project's ``.modver`` folder; ``hex16`` the fingerprint's first 16 hex digits). That folder is the
package ``_modver_<hex16>``: the file ``pipeline/features.py`` becomes module
``_modver_<hex16>.pipeline.features``. Two versions of one helper are two different modules, so
two stages of one run never share it.

Project-local imports are rewritten (by :mod:`modver.store._rewrite`, with libcst, imported lazily)
to point into the private package; nothing else changes, and no line moves, so tracebacks,
``inspect.getsource`` and debuggers point at the right line of the materialized file:

- ``from pipeline.features import f``  → ``from _modver_X.pipeline.features import f``
- ``import pipeline.features as feats`` → ``import _modver_X.pipeline.features as feats``
- ``import helpers``                   → ``from _modver_X.scripts import helpers``
- ``import pipeline.features``         → ``import _modver_X.pipeline.features; from _modver_X import pipeline``
- ``importlib.import_module("pipeline.x")`` (a literal name) → ``"_modver_X.pipeline.x"``
- relative imports (``from . import x``, ``from .m import y``) are left as they are: the
  package mirrors the project's folders, so they resolve inside it.
- a read of ``__file__`` → ``...project_file(__file__)`` (on the same line), the project file's
  path: code that finds its data next to itself finds the project's files.
- the literal path of a file the code runs (``exec(open("configurator.py").read())``,
  ``exec(compile(open(P).read(), ...))``, ``runpy.run_path(P)``) → ``...version_file(__file__,
  "configurator.py")``, the version's own copy, when the version stores it (the fingerprint
  counted it): a pinned version runs the configurator it was registered with.

A top-level name is project-local when a module or package of that name is among the
version's files, searched where the fingerprint resolves imports: the entry file's folder
(scripts import their siblings), the project root, ``src/``, then the importing file's own
folder. Any other import (stdlib, third-party) is left alone. A name that is project-local
but missing from the closure fails to import inside the private package instead of silently
importing the working tree's copy.

Versions are immutable: written under a temporary name, every file and folder fsynced, then
published with one rename (another process may win the race; its identical copy is used), so
not even a crash of the machine publishes a torn file. Bytecode is compiled before publishing, so
the folder is never written again.

:func:`make_importable` puts the store's ``versions/`` folder on ``sys.path`` (once per store),
where each version is the folder ``_modver_<hex16>``: the standard import system finds the
packages, in this process and in its worker processes (``multiprocessing`` with spawn or
forkserver, joblib/loky, DataLoader workers) which start with the parent's ``sys.path`` and
import a stage's functions by module name. Objects pickled from a version's classes load in any
later process that has the store, without the code in the working tree.

Entries: :func:`load_entry` returns the stage's callable. For ``file.py:Class.method`` it
returns a function that instantiates ``Class()`` without arguments and calls the method with the
stage's keyword arguments (static and class methods are returned as they are); its signature
is the method's without ``self``, so the runner can check params against it. For a whole
module (``file.py``) it returns a function that runs the module as ``__main__`` with its keyword
arguments as ``--name=value`` (see :func:`params_to_argv`) and returns None.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import inspect
import json
import posixpath
import py_compile
import runpy
import sys
import threading
from collections.abc import Callable, Mapping
from pathlib import Path, PurePosixPath
from typing import Any

from modver import _fs
from modver._encoding import digest_hex
from modver.errors import EntryNotFoundError, MaterializeError, SourceError, StageFailedError, format_syntax_error
from modver.store.layout import VERSIONS_DIR, Store

PACKAGE_PREFIX = "_modver_"
INFO_FILE = ".modver-version.json"


def fingerprint_hex(fingerprint: str) -> str:
    """The hex digits of ``"mv1:<hex>"`` (a bare hex string is accepted)."""
    found = digest_hex(fingerprint)
    if found is None:
        raise MaterializeError(f"invalid fingerprint {fingerprint!r}: expected 'mv1:<hex>'")
    return found


def package_name(fingerprint: str) -> str:
    """The private package of a version: ``_modver_<hex[:16]>``."""
    return PACKAGE_PREFIX + fingerprint_hex(fingerprint)[:16]


def version_dir(store: Store, fingerprint: str) -> Path:
    """Where a version is (or would be) materialized: ``.modver/versions/_modver_<hex16>``."""
    return store.versions / package_name(fingerprint)


def module_name(fingerprint: str, path: str) -> str:
    """The module name of a project file inside a version's package.

    ``"pipeline/model.py"`` → ``"_modver_<hex16>.pipeline.model"``; ``pkg/__init__.py`` → ``...pkg``.
    """
    parts = list(PurePosixPath(path).with_suffix("").parts)
    if parts and parts[-1] == "__init__":
        parts.pop()
    return ".".join([package_name(fingerprint), *parts])


# -- writing a version ------------------------------------------------------------------------


def materialize(
    files: Mapping[str, bytes] | Callable[[], Mapping[str, bytes]],
    fingerprint: str,
    store: Store,
    *,
    entry: str | None = None,
) -> Path:
    """Write a version's files as its private package once; return its folder.

    ``files`` may be a function returning them: it is called only when the version is not
    materialized yet (reading a version's files from git is then skipped on every later run).
    It goes under the project ``store``'s ``versions/``. ``entry`` (``"scripts/train.py:main"`` or
    just the path) tells which folder sibling imports resolve in; without it, each file's own folder
    is searched after the root and ``src/``. An existing materialization is reused as it is.
    """
    final = version_dir(store, fingerprint)
    if (final / INFO_FILE).is_file():
        _check_same_version(final, fingerprint)
        make_importable(store)
        return final
    package = package_name(fingerprint)
    if callable(files):
        files = files()
    paths = {_check_path(path): bytes(data) for path, data in files.items()}
    entry_path = entry.split(":", 1)[0] if entry else None
    entry_dir = str(PurePosixPath(entry_path).parent) if entry_path else None
    locator = _Locator(paths, package, entry_dir)
    parent = final.parent
    with _fs.write_faults(f"cannot write version {fingerprint} to {parent}", str(parent)):
        tmp = _fs.make_temp_dir(parent, final.name[:16])
    try:
        for path, data in sorted(paths.items()):
            target = tmp / path
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(rewrite_imports(data, path, locator) if path.endswith(".py") else data)
        if "__init__.py" not in paths:
            (tmp / "__init__.py").write_text(f'"""modver version {fingerprint} (materialized, do not edit)."""\n')
        for path in sorted([*paths, "__init__.py"]):
            if path.endswith(".py"):
                _compile(tmp / path, final / path, path)
        info = {"fingerprint": fingerprint, "package": package, "entry": entry, "files": sorted(paths)}
        (tmp / INFO_FILE).write_text(_fs.dumps_json(info), encoding="utf-8")
        _fs.sync_tree(tmp)  # on disk before the rename publishes it: never a torn file in a version
    except OSError as exc:
        _fs.remove_tree(tmp)
        raise _fs.write_failure(
            f"cannot write version {fingerprint} to {parent}", exc, str(parent)
        ) or MaterializeError(
            f"cannot write version {fingerprint} to {parent}: {exc.strerror or exc}",
            where=str(parent),
            hint="check free disk space and permissions of the .modver folder",
        ) from exc
    except BaseException:
        _fs.remove_tree(tmp)
        raise
    _fs.publish_dir(tmp, final)
    _check_same_version(final, fingerprint)
    make_importable(store)
    return final


def _check_same_version(folder: Path, fingerprint: str) -> None:
    """Two fingerprints sharing their first 64 bits (never seen; checked all the same)."""
    try:
        stored = json.loads((folder / INFO_FILE).read_text(encoding="utf-8")).get("fingerprint")
    except (OSError, ValueError) as exc:
        raise MaterializeError(
            f"materialized version {folder} is unreadable: {exc}",
            where=str(folder),
            hint="delete that folder: it is rebuilt from the version's history on the next run",
        ) from exc
    if fingerprint_hex(str(stored)) != fingerprint_hex(fingerprint):
        raise MaterializeError(
            f"versions {stored} and {fingerprint} share the package name {folder.name}",
            where=str(folder),
            hint="report this: it is a 64-bit prefix collision",
        )


def _check_path(path: str) -> str:
    pure = PurePosixPath(path)
    if pure.is_absolute() or ".." in pure.parts or not pure.parts or "\\" in path or path == INFO_FILE:
        raise MaterializeError(f"invalid file path {path!r} in a version: paths must be project-relative")
    return pure.as_posix()


def _compile(source: Path, final: Path, path: str) -> None:
    """Write the bytecode next to the source, naming the file's final location in it."""
    cfile = importlib.util.cache_from_source(str(source))
    try:
        py_compile.compile(str(source), cfile=cfile, dfile=str(final), doraise=True)
    except py_compile.PyCompileError as exc:
        error = exc.exc_value
        if isinstance(error, SyntaxError):
            line = error.lineno or 0
            raise SourceError(
                format_syntax_error(path, line, error.offset or 0, error.text or "", error.msg or "invalid syntax"),
                where=f"{path}:{line}",
                hint=f"this version's code does not compile on Python {sys.version.split()[0]}",
            ) from exc
        raise SourceError(f"{path}: cannot compile: {exc.msg}", where=path) from exc


class _Locator:
    """Decides whether an absolute import is project-local and what it becomes."""

    def __init__(self, files: Mapping[str, bytes], package: str, entry_dir: str | None):
        self.files = files
        self.package = package
        self.entry_dir = None if entry_dir in (None, ".") else entry_dir
        self.folders = {str(parent) for path in files for parent in PurePosixPath(path).parents if str(parent) != "."}

    def bases(self, importer: str) -> list[str]:
        """The folders searched for top-level names imported by ``importer``, in order."""
        own = str(PurePosixPath(importer).parent)
        ordered = [self.entry_dir or "", "", "src", "" if own == "." else own]
        return list(dict.fromkeys(ordered))

    def run_file(self, literal: str) -> str | None:
        """The version's file that ``open(literal)`` names, resolved as the fingerprint does
        (the project root, then the entry's folder), or None when the version has none."""
        if PurePosixPath(literal).is_absolute():
            return None
        for base in dict.fromkeys(["", self.entry_dir or ""]):
            path = posixpath.normpath(posixpath.join(base, literal))
            if path in self.files and not path.startswith("../"):
                return path
        return None

    def target(self, dotted: str, importer: str) -> str | None:
        """``dotted``'s name inside the package, or None when it is not project-local."""
        top = dotted.split(".", 1)[0]
        for base in self.bases(importer):
            stem = f"{base}/{top}" if base else top
            if f"{stem}.py" in self.files or stem in self.folders:
                prefix = ".".join([self.package, *PurePosixPath(base).parts]) if base else self.package
                bad = [part for part in PurePosixPath(base).parts if not part.isidentifier()]
                if bad:
                    raise MaterializeError(
                        f"{importer}: cannot import {dotted!r} from folder {base!r} in a materialized version: "
                        f"{bad[0]!r} is not a valid Python name",
                        where=importer,
                        hint="rename the folder to a valid identifier (letters, digits, underscores)",
                    )
                return f"{prefix}.{dotted}"
        return None


def _in_version(path: str) -> tuple[Path, tuple[str, ...]] | None:
    """(the version's folder, the parts of ``path`` inside it) for a materialized file, else None."""
    parts = Path(path).parts
    for i in range(len(parts) - 2, 1, -1):
        if parts[i].startswith(PACKAGE_PREFIX) and parts[i - 1] == VERSIONS_DIR:
            return Path(*parts[: i + 1]), parts[i + 1 :]
    return None


def version_relative_path(path: str) -> str | None:
    """The project path (``pipe/train.py``) of a file of a materialized version, else None."""
    found = _in_version(path)
    return None if found is None else "/".join(found[1])


def project_file(path: str) -> str:
    """The project path of a materialized file (``<root>/.modver/versions/_modver_X/a/b.py`` ->
    ``<root>/a/b.py``); other paths unchanged. Materialized code reads ``__file__`` through this,
    so ``Path(__file__).parent / "config.yaml"`` finds the project's file, not a missing copy."""
    found = _in_version(path)
    if found is None:
        return path
    folder, inside = found
    return str(Store.around(folder).root.joinpath(*inside))


def version_file(path: str, rel: str) -> str:
    """The version's own copy of project file ``rel``, for code whose ``__file__`` is ``path``
    (a materialized file); ``rel`` unchanged outside a materialized version."""
    found = _in_version(path)
    return rel if found is None else str(found[0].joinpath(*PurePosixPath(rel).parts))


def version_import(
    target: str, name: str, globals: Any = None, locals: Any = None, fromlist: Any = (), level: int = 0
) -> Any:
    """``__import__(name, globals, locals, fromlist, level)`` in a materialized version, whose
    module ``name`` is ``target`` in the version's package: what ``__import__`` gives, from the
    version -- the module itself when ``fromlist`` names something, else the top package of
    ``name`` (``__import__("a.b")`` is ``a``)."""
    module = __import__(target, globals, locals, fromlist, level)
    if fromlist:
        return module
    return sys.modules[target[: len(target) - len(name)] + name.split(".", 1)[0]]


def rewrite_imports(source: bytes, path: str, locator: _Locator) -> bytes:
    """The module's bytes with project-local imports pointing into the private package, and
    ``__file__`` read as the project file's path (:func:`project_file`); see :mod:`modver.store._rewrite`."""
    if b"import" not in source and b"__file__" not in source and b"exec" not in source and b"run_path" not in source:
        return source
    from modver.store._rewrite import rewrite_source  # libcst: loaded only when a file needs it

    return rewrite_source(source, path, locator)


# -- importing a version ----------------------------------------------------------------------


_importable_lock = threading.Lock()


def make_importable(store: Store) -> Path:
    """Put the store's ``versions/`` folder on ``sys.path`` (idempotent); return it.

    It goes last, so it shadows nothing: only ``_modver_<hex16>`` packages live there.
    """
    folder = store.versions.resolve()
    entry = str(folder)
    with _importable_lock:
        if entry not in sys.path:
            folder.mkdir(parents=True, exist_ok=True)
            sys.path.append(entry)
    importlib.invalidate_caches()  # versions published since the last import become visible
    return folder


def import_version_module(store: Store, fingerprint: str, path: str) -> Any:
    """Import the module of project file ``path`` from a materialized version."""
    make_importable(store)
    if not (version_dir(store, fingerprint) / INFO_FILE).is_file():
        raise EntryNotFoundError(
            f"version {fingerprint} is not materialized in {store.versions}",
            where=path,
            hint="call materialize() with the version's files first",
        )
    name = module_name(fingerprint, path)
    if not (version_dir(store, fingerprint) / path).is_file():
        raise EntryNotFoundError(f"{path} is not part of version {fingerprint}", where=path)
    return importlib.import_module(name)


def load_entry(store: Store, fingerprint: str, entry: str) -> Callable[..., Any]:
    """The callable of ``entry`` (``file.py:func``, ``file.py:Class``, ``file.py:Class.method``,
    ``file.py``) in a materialized version; see the module docstring for methods and modules."""
    path, _, target = entry.partition(":")
    if not target:

        def run_module(**params: Any) -> None:
            run_module_as_main(store, fingerprint, path, params_to_argv(params))

        run_module.__name__ = run_module.__qualname__ = PurePosixPath(path).stem
        return run_module
    module = import_version_module(store, fingerprint, path)
    owner: Any = module
    value: Any = module
    for part in target.split("."):
        owner = value
        try:
            value = inspect.getattr_static(owner, part)
        except AttributeError:
            where = "module " + path if owner is module else f"class {owner.__qualname__}"
            raise EntryNotFoundError(
                f"{entry}: {part!r} is not defined in {where} (version {fingerprint})",
                where=path,
                hint="check the stage's entry in the manifest",
            ) from None
    if inspect.isclass(owner) and owner is not module:
        if isinstance(value, (staticmethod, classmethod)):
            return getattr(owner, target.rsplit(".", 1)[1])
        if inspect.isfunction(value):
            return _method_caller(owner, value)
        value = getattr(owner, target.rsplit(".", 1)[1])
    else:
        value = getattr(owner, target.rsplit(".", 1)[-1])
    if not callable(value):
        raise EntryNotFoundError(f"{entry} is not callable ({type(value).__name__})", where=path)
    return value


def _method_caller(cls: type, function: Callable[..., Any]) -> Callable[..., Any]:
    """A function that calls ``function`` as a method of a fresh ``cls()``."""
    name = function.__name__

    @functools.wraps(function)
    def call(*args: Any, **kwargs: Any) -> Any:
        return getattr(cls(), name)(*args, **kwargs)

    signature = inspect.signature(function)
    # inspect.signature() honours __signature__, which typeshed does not declare on functions
    call.__signature__ = signature.replace(parameters=list(signature.parameters.values())[1:])  # type: ignore[attr-defined]
    del call.__wrapped__
    return call


def params_to_argv(params: Mapping[str, Any]) -> list[str]:
    """``--name=value`` arguments for a whole-module stage.

    Values are written the way the manifest spells them: strings and numbers as they are,
    ``true``/``false`` for booleans, ``null`` for None, JSON for lists and mappings.
    """
    argv = []
    for name, value in params.items():
        if isinstance(value, bool):
            text = "true" if value else "false"
        elif value is None:
            text = "null"
        elif isinstance(value, (list, tuple, dict)):
            text = json.dumps(value)
        else:
            text = str(value)
        argv.append(f"--{name}={text}")
    return argv


def run_module_as_main(store: Store, fingerprint: str, path: str, argv: list[str]) -> dict[str, Any]:
    """Run a version's module as ``__main__`` with ``sys.argv[1:] = argv``; return its globals.

    ``sys.argv`` is restored afterwards. ``sys.exit(0)`` / ``sys.exit()`` count as success; any
    other exit status raises :class:`~modver.errors.StageFailedError`.
    """
    make_importable(store)
    folder = version_dir(store, fingerprint)
    if not (folder / path).is_file():
        raise EntryNotFoundError(f"{path} is not part of version {fingerprint}", where=path)
    saved = sys.argv[:]
    sys.argv = [str(folder / path), *argv]
    try:
        return runpy.run_module(module_name(fingerprint, path), run_name="__main__", alter_sys=True)
    except SystemExit as exc:
        if exc.code in (None, 0):
            return {}
        raise StageFailedError(
            f"{path} exited with status {exc.code}",
            where=path,
            hint="the script called sys.exit() with an error status; see its output in the run record",
        ) from exc
    finally:
        sys.argv = saved
