"""Fingerprints of stages: source → normalized syntax → closure → canonical encoding → digest.

``fingerprint_source`` fingerprints one module's text (imports are external); ``fingerprint_stage``
follows project-local imports over a :class:`~modver.models.SourceTree`. Both parse with the
stdlib ``ast``; libcst is only imported by :func:`definition_source`, lazily. The scheme ("mv1")
is described in docs/fingerprint.md.
"""

from __future__ import annotations

import posixpath
from typing import Sequence

from modver._encoding import SCHEME
from modver.fingerprint._cache import SummaryCache
from modver.fingerprint._closure import ClosureBuilder
from modver.fingerprint._summary import run_deep
from modver.fingerprint._cst import definition_source
from modver.models import Closure, SourceTree

__all__ = ["SCHEME", "SummaryCache", "definition_source", "fingerprint_source", "fingerprint_stage", "import_files"]

_SOURCE_PATH = "<source>"
_DEFAULT_CACHE = SummaryCache()


def fingerprint_source(source: str, entry: str | None = None, *, docstrings: bool = False) -> str:
    """The fingerprint of one module's source: the closure of ``entry`` inside it, or the whole
    module when ``entry`` is None. ``entry`` is ``"func"``, ``"Class"`` or ``"Class.method"``;
    every import is treated as external (encoded as written).

    Raises SourceError on a syntax error and EntryNotFoundError for an unknown entry.
    """
    builder = ClosureBuilder(
        _NoFiles(), _DEFAULT_CACHE, docstrings, _SOURCE_PATH, local=False, text=source
    )
    return builder.fingerprint(entry, ())


def fingerprint_stage(
    tree: SourceTree,
    entry: str,
    deps: Sequence[str] = (),
    *,
    docstrings: bool = False,
    cache: SummaryCache | None = None,
) -> Closure:
    """The closure and fingerprint of the stage ``entry`` (``"path/file.py:func"``,
    ``"file.py:Class"``, ``"file.py:Class.method"`` or ``"file.py"``) over ``tree``.

    Project-local imports are followed transitively; ``deps`` are files included whole. With a
    ``cache``, a stage whose files (and missing import candidates) are unchanged is not parsed
    again. Raises EntryNotFoundError and SourceError.
    """
    cache = cache if cache is not None else _DEFAULT_CACHE
    path, _, target = entry.partition(":")
    path = posixpath.normpath(path) if path else path
    target_or_none = target or None
    deps = tuple(deps)
    key = (entry, deps, docstrings)
    found = cache.lookup_stage(key, tree)
    if found is not None:
        return found

    def build() -> tuple[ClosureBuilder, str]:
        builder = ClosureBuilder(tree, cache, docstrings, path)
        return builder, builder.fingerprint(target_or_none, deps)

    # import chains thousands of modules deep must not raise RecursionError either
    builder, fingerprint = run_deep(build)
    closure = Closure(
        fingerprint=fingerprint,
        entry=entry,
        files=builder.files(deps),
        definitions=builder.definitions(),
        unresolved=tuple(builder.unresolved.values()),
        deps=deps,
    )
    cache.store_stage(key, tuple(builder.recorder.probes.items()), closure)
    return closure


def import_files(
    tree: SourceTree, closure: Closure, *, docstrings: bool = False, cache: SummaryCache | None = None
) -> tuple[str, ...]:
    """The project files, beyond ``closure.files``, that importing the closure's modules imports
    too (module-level imports a stage does not use still run when its modules load). They are
    stored with a version so that it can run; they are not part of its fingerprint. Computed only
    when a new version is registered: walking a package's import graph is not free. Give the
    ``docstrings`` the closure was made with: module summaries are cached per setting."""
    path = posixpath.normpath(closure.entry.partition(":")[0])
    builder = ClosureBuilder(tree, cache if cache is not None else _DEFAULT_CACHE, docstrings, path)
    return builder.import_files(closure.files)


class _NoFiles:
    """The empty tree of ``fingerprint_source``."""

    def read(self, path: str) -> bytes | None:
        return None

    def content_id(self, path: str) -> str | None:
        return None

    def is_dir(self, path: str) -> bool:
        return path == ""
