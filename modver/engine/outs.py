"""Script stages' outs in the working tree: placed after ``modver run``, restored, checked out.

After a run (not a sweep, not ``--jobs``) each script stage's outs are copied from its cache
entry to their project paths, as ``dvc repro`` leaves them; ``modver checkout RUN`` does the same
for any run. modver remembers what it placed in ``.modver/placed.json`` (each out's content hash,
and the stat stamp of its files so an unchanged out is not read again). An out whose bytes
differ from what modver placed — edited by hand, or written by something else — is never
overwritten silently: :class:`~modver.errors.RunError` names it, and ``force`` replaces it.

A copy is written beside its target (``.<name>.modver-tmp-*``) and renamed over it, so a
killed placement leaves either the old out or the new one (and at most a temp to remove).
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from modver import _encoding, _fs, errors
from modver.engine.workspace import OUTS_DIR, tree_hash
from modver.record import RunRecord
from modver.store.layout import Store

__all__ = ["check_outs", "place_outs", "placed_path"]

_STATE = "placed.json"


def placed_path(store: Store) -> Path:
    """The file that remembers what modver placed (out -> hash and stamp)."""
    return store.path / _STATE


def _load(store: Store) -> dict[str, Any]:
    try:
        data = _fs.read_json(placed_path(store))
    except (OSError, errors.ModverError):
        return {}
    return data if isinstance(data, dict) else {}


def _stamp(path: Path) -> str | None:
    """A digest of the stat stamps of ``path``'s files (size, mtime, ctime, inode), or None."""
    try:
        if path.is_dir():
            items: list[list[Any]] = []
            _stamp_items(str(path), "", items)
            return _stamp_digest(items)
        st = os.lstat(path)
    except FileNotFoundError:
        return None
    return _encoding.digest_value(["file", [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino]])


def _stamp_items(folder: str, rel: str, items: list[list[Any]]) -> None:
    """``[relative path, size, mtime, ctime, inode]`` of each file under ``folder``: a folder's
    files by name, then its sub-folders by name (a link to a folder is not followed)."""
    with os.scandir(folder) as found:
        entries = sorted(found, key=lambda e: e.name)
    subdirs = []
    for entry in entries:
        if entry.is_dir():  # as os.walk: a link to a folder is listed, not entered
            if not entry.is_symlink():
                subdirs.append(entry)
            continue
        st = entry.stat(follow_symlinks=False)
        items.append([rel + entry.name, st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino])
    for entry in subdirs:
        _stamp_items(entry.path, f"{rel}{entry.name}/", items)


def _stamp_digest(items: list[list[Any]]) -> str:
    """The stamp of a folder from its files' stamp items (one hash over their text)."""
    import hashlib

    digest = hashlib.blake2b(digest_size=20)
    for item in items:
        digest.update(("\0".join(map(str, item)) + "\n").encode("utf-8", "surrogateescape"))
    return "s2:" + digest.hexdigest()


def _current(root: Path, out: str, state: Mapping[str, Any]) -> tuple[str | None, str | None]:
    """The content hash of ``out`` in the working tree (None: not there), read only when its
    stamp is not the one modver recorded when it placed it; and its stamp."""
    path = root / out
    if not os.path.lexists(path):
        return None, None
    known = state.get(out)
    stamp = _stamp(path)
    if isinstance(known, dict) and known.get("stamp") is not None and known.get("stamp") == stamp:
        return str(known.get("hash")), stamp
    return tree_hash(path), stamp


def _edited(out: str, stage: str) -> errors.RunError:
    return errors.RunError(
        f"out {out} of stage {stage} in the working tree is not what modver placed there (edited by hand?)",
        where=out,
        hint="move your copy away, or replace it with --force-outs (modver checkout RUN --force)",
    )


def check_outs(store: Store, outs: Iterable[tuple[str, str, str | None]], *, force: bool) -> None:
    """Before a run: every ``(stage, out, target hash or None)`` whose working-tree copy exists is
    either what modver placed there or already the target's bytes, unless ``force``."""
    if force:
        return
    state = _load(store)
    for stage, out, target in outs:
        now, _stamped = _current(store.root, out, state)
        if now is None:
            continue
        known = state.get(out)
        if (isinstance(known, dict) and known.get("hash") == now) or now == target:
            continue
        raise _edited(out, stage)


def place_outs(store: Store, record: RunRecord, *, force: bool = False) -> list[str]:
    """Put the run's outs at their paths (see the module docstring); the outs written. Every out
    is checked before any is written, so a refusal changes nothing."""
    cache = store.output_cache()
    wanted = [(name, out, digest, cache.path(stage.cache_key) / OUTS_DIR / out)
              for name, stage in record.stages.items() for out, digest in stage.outs.items()]  # fmt: skip
    for name, out, _digest, source in wanted:
        if not source.exists():
            raise errors.RunError(
                f"out {out} of stage {name} (run {record.run}) is not in the cache",
                where=out,
                hint=f"run again to compute it: `modver reproduce {record.run}`",
            )
    state = _load(store)
    current = {out: _current(store.root, out, state) for _name, out, _digest, _source in wanted}
    for name, out, digest, _source in wanted:  # as check_outs, on the stamps read once
        now, known = current[out][0], state.get(out)
        if (
            not force
            and now is not None
            and now != digest
            and not (isinstance(known, dict) and known.get("hash") == now)
        ):
            raise _edited(out, name)
    written = []
    for _name, out, digest, source in wanted:
        now, stamp = current[out]
        if now != digest:
            stamp = _copy_over(source, store.root / out)
            written.append(out)
        if state.get(out) != {"hash": digest, "stamp": stamp}:
            state[out] = {"hash": digest, "stamp": stamp}
            _fs.write_json_atomic(placed_path(store), state, durable=False)
    return written


def _copy_over(source: Path, target: Path) -> str | None:
    """Replace ``target`` with a copy of ``source`` (a file or folder), through a temp beside it;
    the copy's stamp (as :func:`_stamp` gives it)."""
    with _fs.write_faults(f"cannot place {target}", str(target)):
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.parent / f".{target.name}.modver-tmp-{uuid.uuid4().hex[:8]}"
        items = None
        try:
            if source.is_dir():
                items = _copy_tree(source, tmp)
            else:
                shutil.copy2(source, tmp)
            if target.is_dir() and not target.is_symlink():
                old = target.parent / f".{target.name}.modver-old-{uuid.uuid4().hex[:8]}"
                os.rename(target, old)
                os.rename(tmp, target)
                shutil.rmtree(old, ignore_errors=True)
            else:
                os.replace(tmp, target)
        finally:
            if os.path.lexists(tmp):
                shutil.rmtree(tmp, ignore_errors=True) if tmp.is_dir() else tmp.unlink()
    # a folder's files keep their stat stamps through the rename of the folder; a file's
    # ctime changes with its own rename, so it is read again
    return _stamp_digest(items) if items is not None else _stamp(target)


_COPY_THREADS = max(4, 2 * (os.cpu_count() or 1))


def _copy_tree(source: Path, dest: Path) -> list[list[Any]] | None:
    """Copy folder ``source`` to the new folder ``dest``: the files in parallel, each in the
    kernel (``copy_file_range``); the copies' stamp items in :func:`_stamp`'s order. A folder
    holding anything but plain files and folders is copied by :func:`shutil.copytree` (None)."""
    from concurrent.futures import ThreadPoolExecutor

    folders: list[tuple[str, str]] = []
    files: list[tuple[str, str, str]] = []  # (source, copy, relative path), in os.walk's order

    def walk(src: str, rel: str) -> bool:
        entries = sorted(os.scandir(src), key=lambda e: e.name)
        subdirs = []
        for entry in entries:
            if entry.is_symlink() or not (entry.is_file() or entry.is_dir()):
                return False
            if entry.is_dir():
                subdirs.append(entry)
            else:
                files.append((entry.path, os.path.join(dest, rel, entry.name), rel + entry.name))
        for entry in subdirs:
            folders.append((entry.path, os.path.join(dest, rel, entry.name)))
            if not walk(entry.path, f"{rel}{entry.name}/"):
                return False
        return True

    if not walk(str(source), ""):
        shutil.copytree(source, dest)
        return None
    os.mkdir(dest)
    for _src, folder in folders:
        os.mkdir(folder)
    if len(files) < 8:
        stamps = [_copy_file(src, dst) for src, dst, _rel in files]
    else:
        with ThreadPoolExecutor(_COPY_THREADS) as pool:
            stamps = list(pool.map(lambda job: _copy_file(job[0], job[1]), files))
    return [[rel, *stamp] for (_src, _dst, rel), stamp in zip(files, stamps, strict=True)]


def _copy_file(src: str, dst: str) -> list[int]:
    """Copy one file (a new file, the source's permissions less the umask, as ``cp`` does); its
    stamp: size, mtime, ctime, inode."""
    with open(src, "rb") as reader:
        mode = os.fstat(reader.fileno()).st_mode & 0o777
        fd = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
        with open(fd, "wb") as writer:
            try:
                while os.copy_file_range(reader.fileno(), fd, 1 << 30):
                    pass
            except OSError:  # not in the kernel here (another file system, an old kernel)
                reader.seek(0)
                writer.seek(0)
                writer.truncate()
                shutil.copyfileobj(reader, writer, 1 << 20)
                writer.flush()
            st = os.fstat(fd)
    return [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino]
