"""Sharing, the façade's part: ``project.sharing`` — ``push`` and ``pull``: stage versions, tags and
notes with the git remote (:mod:`modver.share.versions`), then run records and cached outputs with
the storage that ``modver.toml`` names (:mod:`modver.share.transfer`)."""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from modver.api.workspace import Workspace

if TYPE_CHECKING:  # pragma: no cover
    from modver.share.versions import PullResult, PushResult
    from modver.store.storage import Storage

__all__ = ["Sharing"]


class Sharing:
    """A project's sharing with its team (see the module docstring)."""

    def __init__(self, workspace: Workspace):
        self._ws = workspace

    def push(self, remote: str | None = None, *, dry_run: bool = False) -> PushResult:
        """Send new stage versions, tags and notes to the git remote (default ``origin``), then
        finished run records and cached outputs to the storage that ``modver.toml`` names.
        Refuses ("pull first") when the remote has versions this clone lacks."""
        from modver.share.transfer import push_items
        from modver.share.versions import push

        ws = self._ws
        result = push(ws.history, ws.root, ws.runs_store, remote, ws.write_pin, dry_run=dry_run)
        storage = self._storage()
        return result if storage is None else replace(result, storage=push_items(storage, ws.store, dry_run=dry_run))

    def pull(self, remote: str | None = None, *, outputs: bool = False, dry_run: bool = False) -> PullResult:
        """Take the remote's stage versions, tags and notes (versions made here that clash are
        renumbered after the remote's, their pins and records updated), then the run records this
        clone lacks from the storage; with ``outputs``, every cached output too."""
        from modver.share.transfer import pull_items
        from modver.share.versions import pull

        ws = self._ws
        result = pull(ws.history, ws.root, ws.runs_store, remote, ws.write_pin, dry_run=dry_run)
        storage = self._storage()
        if storage is None:
            return result
        return replace(result, storage=pull_items(storage, ws.store, outputs=outputs, dry_run=dry_run))

    def _storage(self) -> Storage | None:
        """The storage ``modver.toml`` names, or None."""
        from modver.store.storage import Storage, load_config

        config = load_config(self._ws.store)
        return None if config is None else Storage(config)
