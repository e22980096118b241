"""Pins and run records of renumbered versions: the second half of a ``modver pull`` that renumbers.

The rule is :mod:`modver.share.versions`' (a number the remote has is never changed; a version made
here whose number the remote uses for other code is written again after the remote's). Crash
safety: the renumbering is written to ``<git common dir>/modver/renumber.json``
(:attr:`modver.store.layout.Store.renumber_journal`) before any ref moves, and the pins it lists
are edited one by one, each marked done in it; a pull or push that finds the file finishes its
work first (:func:`finish_renumbering`). A pin is edited only while it still reads as the journal
found it and once its version has the new number (its fingerprint says which version it is), so
finishing twice, or after a kill before the refs moved, changes nothing it should not. Run records
are renumbered from their fingerprints, which is the same however often it runs.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from modver import _fs, errors
from modver._git import GitRepo
from modver._git.faults import write_failure
from modver.models import StageVersion
from modver.record import RunRecord
from modver.store.history import History
from modver.store.layout import Store
from modver.store.runstore import RunStore

__all__ = ["PinWriter", "finish_renumbering", "pins_to_update", "renumber_pins_and_records", "write_journal"]

PinWriter = Callable[[Path, str, str], None]  # (manifest, stage, version): the façade's locked set_pin
_SKIP_DIRS = {".git", ".modver", "node_modules", "__pycache__"}


def _journal_path(repo: GitRepo) -> Path:
    """The renumbering record: in the git directory every worktree shares (refs are shared too)."""
    return Store.of(repo).renumber_journal


def write_journal(repo: GitRepo, data: dict[str, Any] | None) -> None:
    """Write the renumbering record (None: remove it, the renumbering is done)."""
    path = _journal_path(repo)
    try:
        if data is None:
            path.unlink()
        else:
            _fs.write_json_atomic(path, data)
    except OSError as exc:
        raise write_failure("cannot record the renumbering", exc, str(path)) or errors.StoreError(
            f"cannot record the renumbering: {exc.strerror or exc}",
            where=str(path),
            hint=f"modver needs to write in {path.parent}: check its permissions",
        ) from exc


def _manifests(root: Path) -> Iterator[Path]:
    """Every YAML file of the project that may be a manifest (hidden folders skipped)."""
    for folder, dirs, names in os.walk(root):
        dirs[:] = sorted(d for d in dirs if d not in _SKIP_DIRS and not d.startswith("."))
        for name in sorted(names):
            if name.endswith((".yaml", ".yml")):
                yield Path(folder) / name


def pins_to_update(root: Path, renumbered: list[tuple[StageVersion, StageVersion]]) -> list[dict[str, str]]:
    """For every manifest pin naming a renumbered version: {manifest, stage, old, new}."""
    from modver.manifest import load_manifest

    if not renumbered:
        return []
    by_label = {(old.stage, old.version): new for old, new in renumbered}
    out = []
    for path in _manifests(root):
        try:
            text = path.read_text(encoding="utf-8")
            if "stages" not in text or "version" not in text:
                continue
            manifest = load_manifest(path, root)
        except (OSError, UnicodeDecodeError, errors.ModverError):
            continue  # not a manifest, or a broken one: nothing of ours to update in it
        for stage, spec in manifest.stages.items():
            new = by_label.get((stage, spec.version or ""))
            if new is not None:
                rel = path.relative_to(root).as_posix()
                pin = {"manifest": rel, "stage": stage, "old": spec.version or "", "new": new.version}
                out.append({**pin, "fingerprint": new.fingerprint, "done": ""})
    return out


def finish_renumbering(
    history: History, root: Path, runs: RunStore, write_pin: PinWriter
) -> dict[tuple[str, str], int]:
    """Finish a pull's renumbering (after a crash, too): edit the pins it listed and has not
    edited yet, then renumber the run records of its stages; (stage, fingerprint) -> records updated."""
    if not _journal_path(history.repo).exists():
        return {}
    with history.numbering(shared=False):
        return renumber_pins_and_records(history, root, runs, write_pin)


def renumber_pins_and_records(
    history: History, root: Path, runs: RunStore, write_pin: PinWriter
) -> dict[tuple[str, str], int]:
    """:func:`finish_renumbering` (a pull calls it as it moves its refs), the numbering lock held."""
    from modver.manifest import load_manifest

    journal = _journal_path(history.repo)
    try:
        data = _fs.read_json(journal)
        pins, stages = data["pins"], set(data["stages"])
    except FileNotFoundError:
        return {}
    except (errors.StoreError, KeyError, TypeError) as exc:
        raise errors.StoreError(
            f"the record of an unfinished renumbering is damaged: {exc}",
            where=str(journal),
            hint="check the pins of your manifests against `modver log`, then delete the file",
        ) from exc
    for pin in pins:
        if pin.get("done"):
            continue
        path = root / pin["manifest"]
        try:
            current = load_manifest(path, root).stages[pin["stage"]].version
        except (OSError, KeyError, errors.ModverError):
            current = None  # gone or changed since: nothing to edit
        now = history.find(pin["stage"], pin["fingerprint"])
        # edited only while it is as the journal found it, once the version has its new number
        if current == pin["old"] and now is not None and now.version == pin["new"]:
            write_pin(path, pin["stage"], pin["new"])
        pin["done"] = "yes"
        write_journal(history.repo, {"pins": pins, "stages": sorted(stages)})
    counts = _repair_records(history, runs, stages)
    write_journal(history.repo, None)
    return counts


def _repair_records(history: History, runs: RunStore, stages: set[str]) -> dict[tuple[str, str], int]:
    """Give every run record the version numbers its fingerprints have now; (stage, fingerprint)
    -> records updated."""
    counts: dict[tuple[str, str], int] = {}
    if not stages:
        return counts
    for run_id in runs.ids():
        try:
            record = runs.load(run_id)
        except errors.StoreError:
            continue  # a damaged record is listed as such by `modver runs`; nothing to renumber
        fixed = _renumbered_record(history, record, stages)
        if fixed is None:
            continue
        runs.update(fixed)
        for stage in stages:
            old, new = record.stages.get(stage), fixed.stages.get(stage)
            if old is not None and new is not None and old.version != new.version and new.fingerprint:
                counts[(stage, new.fingerprint)] = counts.get((stage, new.fingerprint), 0) + 1
    return counts


def _renumbered_record(history: History, record: RunRecord, stages: set[str]) -> RunRecord | None:
    """``record`` with each of ``stages``' versions as its fingerprint is numbered now, or None if unchanged."""
    fixed = record.with_version_labels(lambda stage, fp: history.label(stage, fp) if stage in stages else None)
    return None if fixed is record else fixed
