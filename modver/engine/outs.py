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
            items = []
            for folder, dirs, files in os.walk(path):
                dirs.sort()
                for name in sorted(files):
                    st = os.lstat(os.path.join(folder, name))
                    rel = os.path.relpath(os.path.join(folder, name), path)
                    items.append([rel, st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino])
            return _encoding.digest_value(["dir", items])
        st = os.lstat(path)
    except FileNotFoundError:
        return None
    return _encoding.digest_value(["file", [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino]])


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
    check_outs(store, [(name, out, digest) for name, out, digest, _ in wanted], force=force)
    state = _load(store)
    written = []
    for _name, out, digest, source in wanted:
        target = store.root / out
        now, stamp = _current(store.root, out, state)
        if now != digest:
            _copy_over(source, target)
            written.append(out)
            stamp = _stamp(target)
        if state.get(out) != {"hash": digest, "stamp": stamp}:
            state[out] = {"hash": digest, "stamp": stamp}
            _fs.write_json_atomic(placed_path(store), state, durable=False)
    return written


def _copy_over(source: Path, target: Path) -> None:
    """Replace ``target`` with a copy of ``source`` (a file or folder), through a temp beside it."""
    with _fs.write_faults(f"cannot place {target}", str(target)):
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.parent / f".{target.name}.modver-tmp-{uuid.uuid4().hex[:8]}"
        try:
            if source.is_dir():
                shutil.copytree(source, tmp)
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
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True) if tmp.is_dir() else tmp.unlink()
