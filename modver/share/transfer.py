"""Moving run records and cached outputs between this clone and the team's storage: the storage
half of ``modver push`` and ``modver pull`` (the storage itself: :mod:`modver.store.storage`).

What moves when: ``push`` sends every finished run record and intact cached output that the
storage lacks -- judged by the storage's own indexes, never by whether the git refs had anything
new, so a push whose storage part failed is finished by the next one; an item the storage
refuses while it answers fails alone (:attr:`~modver.store.storage.Transfer.failed`); ``pull``
brings the records the clone lacks; outputs come on demand (the cache's fallback,
:func:`modver.store.storage.fetch_output`) or all at once with ``pull --outputs``.
"""

from __future__ import annotations

from pathlib import Path

from modver import errors
from modver.record import RunStatus
from modver.store.cache import ENTRY_FILE
from modver.store.layout import Store
from modver.store.storage import OUTPUTS, RUNS, Storage, Transfer, pull_item, valid_name

__all__ = ["pull_items", "push_items"]


def _finished_runs(store: Store, skip: set[str]) -> dict[str, Path]:
    """Finished runs here that are not in ``skip`` (a running one travels once it ends): id -> folder."""
    runs = store.run_store()
    out = {}
    for run_id in runs.ids():
        if run_id in skip:
            continue  # the storage has it: not even read
        try:
            record = runs.load(run_id)
        except errors.StoreError:
            continue  # a damaged record stays here
        if record.status is not RunStatus.RUNNING:
            out[run_id] = runs.path(run_id)
    return out


def push_items(storage: Storage, store: Store, *, dry_run: bool = False) -> Transfer:
    """Send every finished run record and intact cached output that the storage lacks.

    What is missing is decided by the storage's own indexes, never by what git says was pushed:
    a push whose refs went out but whose storage part failed is finished by the next one. An item
    that cannot be sent while the storage answers (a file in its way, an unreadable local file) is
    named in :attr:`Transfer.failed` and the others are sent; a storage that stops answering ends
    the push with its error."""
    result = Transfer(storage.config.url, dry_run=dry_run)
    for run_id, folder in _finished_runs(store, storage.items(RUNS)).items():
        if dry_run:
            result.runs.append(run_id)
            result.bytes += sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
        elif _send(storage, RUNS, run_id, folder, {}, None, result):
            result.runs.append(run_id)
    cache = store.output_cache()
    have = storage.items(OUTPUTS)
    names = sorted(p.name for p in cache.root.iterdir() if p.name not in have) if cache.root.is_dir() else []
    for name in names:
        entry = cache.get(name) if valid_name(OUTPUTS, name) else None
        if entry is None:
            continue  # a temporary, or an entry that does not read: nothing to share
        if dry_run:
            result.outputs.append(name)
            result.bytes += entry.size
            continue
        expected = {rel: str(info.get("checksum", "")) for rel, info in entry.files.items()}
        only = [*entry.files, ENTRY_FILE]  # not the clone's own stamps, nor a stray file
        if _send(storage, OUTPUTS, name, entry.path, expected, only, result):
            result.outputs.append(name)
    return result


def _send(
    storage: Storage, kind: str, name: str, folder: Path, expected: dict[str, str], only: list[str] | None,
    result: Transfer,
) -> bool:  # fmt: skip
    """Put one item; whether it went. A damaged local entry is named in ``result.damaged``, an
    item the storage refused in ``result.failed`` -- unless the storage itself no longer answers
    (its listing fails too): then that error ends the push."""
    try:
        result.bytes += storage.put(kind, name, folder, expected, only)
    except errors.CacheError:
        result.damaged.append(f"{kind}/{name}")  # damaged here: never sent
        return False
    except (errors.StorageError, OSError) as exc:
        storage.items(kind)  # raises when the storage is unreachable: nothing more can go
        why = exc.message if isinstance(exc, errors.StorageError) else f"{exc.strerror or exc}"
        result.failed.append(f"{kind}/{name}: {why}")
        return False
    return True


def pull_items(storage: Storage, store: Store, *, outputs: bool = False, dry_run: bool = False) -> Transfer:
    """Bring the run records this clone lacks (and, with ``outputs``, every cached output)."""
    result = Transfer(storage.config.url, dry_run=dry_run)
    runs_root = store.runs
    have = set(store.run_store().ids())
    for run_id in sorted(storage.items(RUNS) - have):
        pull_item(storage, RUNS, run_id, runs_root, result, result.runs, dry_run)
    if outputs:
        cache_root = store.outputs
        local = {p.name for p in cache_root.iterdir()} if cache_root.is_dir() else set()
        for name in sorted(storage.items(OUTPUTS) - local):
            pull_item(storage, OUTPUTS, name, cache_root, result, result.outputs, dry_run)
    return result
