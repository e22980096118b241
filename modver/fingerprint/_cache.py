"""SummaryCache: module summaries by content id, and whole-stage results by what they read."""

from __future__ import annotations

import marshal
from collections.abc import Callable
from hashlib import blake2b
from pathlib import Path
from typing import Any

from modver import _fs
from modver.models import Closure, SourceTree

_MAGIC = b"mvsum2\n\0"  # bump with the summary layout or the scheme (2: "runs" flags)
_CHECK = 32


class SummaryCache:
    """Per-content-id cache of parsed module summaries, plus a memo of whole-stage results.

    Summaries live in an in-process dict (bounded) and, when ``directory`` is given, in one file
    per summary under it (``<dir>/<id[:2]>/<id>.<d|n>``), written atomically (temporary file +
    rename) and checksummed: a missing, truncated or corrupt file is ignored and recomputed.

    Stage results are memoised in-process: a result is reused when every file it read has the
    same content id and every path it probed and found missing is still missing.
    """

    def __init__(self, directory: Path | str | None = None, *, max_entries: int = 16384) -> None:
        self.directory = Path(directory) if directory is not None else None
        self.max_entries = max_entries
        self._summaries: dict[tuple[str, bool], dict[str, Any]] = {}
        self._stages: dict[tuple, list[tuple[tuple[tuple[str, str | None], ...], Closure]]] = {}
        self.parsed = 0  # summaries computed (not found in any cache): for tests and benchmarks
        # Write new summaries to ``directory``. A history walk turns this off: it parses
        # thousands of old file versions once, and one file each costs more than it saves.
        self.persist = True

    def __repr__(self) -> str:
        return f"SummaryCache({str(self.directory) if self.directory else None!r})"

    # -- summaries -----------------------------------------------------------------------------
    def summary(self, content_id: str, docstrings: bool, compute: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        """The summary for ``content_id``; ``compute()`` it when no cache has it."""
        key = (content_id, docstrings)
        found = self._summaries.get(key)
        if found is not None:
            return found
        found = self._load(content_id, docstrings)
        if found is None:
            found = compute()
            self.parsed += 1
            self._store(content_id, docstrings, found)
        if len(self._summaries) >= self.max_entries:
            for old in list(self._summaries)[: self.max_entries // 4]:
                del self._summaries[old]
        self._summaries[key] = found
        return found

    def _path(self, content_id: str, docstrings: bool) -> Path | None:
        if self.directory is None or len(content_id) < 3 or not content_id.isalnum():
            return None
        return self.directory / content_id[:2] / f"{content_id}.{'d' if docstrings else 'n'}"

    def _load(self, content_id: str, docstrings: bool) -> dict[str, Any] | None:
        path = self._path(content_id, docstrings)
        if path is None:
            return None
        try:
            data = path.read_bytes()
        except OSError:
            return None
        head = len(_MAGIC)
        payload = data[head + _CHECK :]
        if data[:head] != _MAGIC or data[head : head + _CHECK] != blake2b(payload).digest()[:_CHECK]:
            return None
        try:
            record = marshal.loads(payload)
        except (EOFError, ValueError, TypeError):
            return None
        if (
            not isinstance(record, tuple)
            or len(record) != 3
            or record[0] != content_id
            or record[1] != docstrings
            or not isinstance(record[2], dict)
            or "units" not in record[2]
        ):
            return None
        return record[2]

    def _store(self, content_id: str, docstrings: bool, summary: dict[str, Any]) -> None:
        path = self._path(content_id, docstrings) if self.persist else None
        if path is None:
            return
        payload = marshal.dumps((content_id, docstrings, summary))
        data = _MAGIC + blake2b(payload).digest()[:_CHECK] + payload
        try:
            _fs.write_bytes_atomic(path, data, durable=False)
        except OSError:
            return  # the disk cache is an optimisation: a read-only store only costs time

    # -- whole stages --------------------------------------------------------------------------
    def lookup_stage(self, key: tuple, tree: SourceTree) -> Closure | None:
        """A memoised result for ``key`` whose recorded probes all still hold in ``tree``."""
        candidates = self._stages.get(key)
        if not candidates:
            return None
        for position, (probes, closure) in enumerate(candidates):
            if all(tree.content_id(path) == blob for path, blob in probes):
                if position:
                    candidates.insert(0, candidates.pop(position))
                return closure
        return None

    def store_stage(self, key: tuple, probes: tuple[tuple[str, str | None], ...], closure: Closure) -> None:
        """Remember ``closure`` for ``key`` given the probes (path, content id or None) it made."""
        candidates = self._stages.setdefault(key, [])
        candidates.insert(0, (probes, closure))
        del candidates[32:]
        if len(self._stages) > self.max_entries:
            del self._stages[next(iter(self._stages))]
