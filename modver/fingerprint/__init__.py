"""Fingerprints of stages: source → normalized syntax → closure → canonical encoding → digest.

``fingerprint_source`` fingerprints one module's text (imports are external); ``fingerprint_stage``
follows project-local imports over a :class:`~modver.models.SourceTree`. Both parse with the
stdlib ``ast``; libcst is only imported by :func:`definition_source`, lazily. The schemes
(``mv1``; ``mv2``, which adds files run by ``exec``; ``mv3``, which encodes importlib imports
as their module) are described in docs/fingerprint.md.

May import: the ground modules of ``modver/`` (models, errors, ``_encoding``, sourcetree...); never
another folder of modver (tests/test_architecture.py).
"""

from __future__ import annotations

import posixpath
from collections.abc import Sequence

from modver._encoding import SCHEME
from modver.errors import StoreError
from modver.fingerprint._cache import SummaryCache
from modver.fingerprint._closure import LATEST_SCHEME, SCHEMES, ClosureBuilder
from modver.fingerprint._cst import definition_source
from modver.fingerprint._summary import run_deep
from modver.models import Closure, SourceTree

__all__ = [
    "LATEST_SCHEME",
    "SCHEME",
    "SCHEMES",
    "SummaryCache",
    "definition_source",
    "fingerprint_source",
    "fingerprint_stage",
    "import_files",
    "scheme_of",
]

_SOURCE_PATH = "<source>"
_DEFAULT_CACHE = SummaryCache()


def fingerprint_source(source: str, entry: str | None = None, *, docstrings: bool = False) -> str:
    """The fingerprint of one module's source: the closure of ``entry`` inside it, or the whole
    module when ``entry`` is None. ``entry`` is ``"func"``, ``"Class"`` or ``"Class.method"``;
    every import is treated as external (encoded as written).

    Raises SourceError on a syntax error and EntryNotFoundError for an unknown entry.
    """
    builder = ClosureBuilder(_NoFiles(), _DEFAULT_CACHE, docstrings, _SOURCE_PATH, local=False, text=source)
    return builder.fingerprint(entry, ())


def fingerprint_stage(
    tree: SourceTree,
    entry: str,
    deps: Sequence[str] = (),
    *,
    docstrings: bool = False,
    cache: SummaryCache | None = None,
    scheme: str = LATEST_SCHEME,
) -> Closure:
    """The closure and fingerprint of the stage ``entry`` (``"path/file.py:func"``,
    ``"file.py:Class"``, ``"file.py:Class.method"`` or ``"file.py"``) over ``tree``.

    Project-local imports are followed transitively; ``deps`` are files included whole. With a
    ``cache``, a stage whose files (and missing import candidates) are unchanged is not parsed
    again. ``scheme`` picks the closure rules: the latest by default; ``"mv1"`` does not follow
    files run by ``exec`` (re-fingerprint a version with ``scheme_of(version.fingerprint)``).
    Raises EntryNotFoundError and SourceError.
    """
    cache = cache if cache is not None else _DEFAULT_CACHE
    path, _, target = entry.partition(":")
    path = posixpath.normpath(path) if path else path
    target_or_none = target or None
    deps = tuple(deps)
    key = (entry, deps, docstrings, scheme)
    found = cache.lookup_stage(key, tree)
    if found is not None:
        return found

    def build() -> tuple[ClosureBuilder, str]:
        builder = ClosureBuilder(tree, cache, docstrings, path, scheme=scheme)
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
    if builder.memoizable:
        cache.store_stage(key, tuple(builder.recorder.probes.items()), closure)
    return closure


def scheme_of(fingerprint: str) -> str:
    """The closure rules a fingerprint was made with: its prefix (``"mv2:..."`` -> ``"mv2"``).

    A digest carries the oldest scheme that gives it, so fingerprinting the same tree again
    with ``scheme=scheme_of(fp)`` reproduces ``fp`` whatever rules came later."""
    prefix = fingerprint.partition(":")[0]
    if prefix not in SCHEMES:
        raise StoreError(
            f"fingerprint {fingerprint[:24]!r} is not of a scheme this modver knows ({', '.join(SCHEMES)})",
            where=fingerprint[:24],
            hint="a newer modver made it: upgrade modver",
        )
    return prefix


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
