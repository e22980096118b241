"""A spy on the real os.fsync / os.rename / os.replace: what a command made durable, in order."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


class SyncSpy:
    """What a command fsyncs and renames, in order (spies on the real os functions)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.events: list[tuple[str, str, str]] = []
        real_fsync, real_rename, real_replace = os.fsync, os.rename, os.replace

        def fsync(fd: int) -> None:
            self.events.append(("fsync", os.readlink(f"/proc/self/fd/{fd}"), ""))
            real_fsync(fd)

        def rename(src, dst, *a, **kw) -> None:
            self.events.append(("rename", os.path.abspath(os.fsdecode(src)), os.path.abspath(os.fsdecode(dst))))
            real_rename(src, dst, *a, **kw)

        def replace(src, dst, *a, **kw) -> None:
            self.events.append(("rename", os.path.abspath(os.fsdecode(src)), os.path.abspath(os.fsdecode(dst))))
            real_replace(src, dst, *a, **kw)

        monkeypatch.setattr(os, "fsync", fsync)
        monkeypatch.setattr(os, "rename", rename)
        monkeypatch.setattr(os, "replace", replace)

    def published(self, parent: Path) -> list[tuple[int, Path, Path]]:
        """(event index, temporary folder, final folder) of each folder renamed into ``parent``."""
        parent = parent.resolve()
        return [
            (i, Path(src), Path(dst))
            for i, (kind, src, dst) in enumerate(self.events)
            if kind == "rename" and Path(dst).parent == parent and Path(src).is_relative_to(parent)
        ]

    def synced_before(self, index: int, tmp: Path) -> set[str]:
        """Paths under ``tmp`` (relative; "." for itself) fsynced before event ``index``."""
        return {
            Path(path).relative_to(tmp).as_posix()
            for kind, path, _ in self.events[:index]
            if kind == "fsync" and Path(path).is_relative_to(tmp)
        }
