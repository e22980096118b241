"""Moving refs to and from a git remote: ``modver push`` and ``modver pull``'s git half.

A remote is a name from ``.git/config`` (``remote.<name>.url``; default ``origin``) or a location
given as is: a local path, ``file://``, ``ssh://``/``user@host:path``, ``https://``. dulwich's
clients speak every one of them; this module is the only place that calls them, and it maps what
they raise to :class:`~modver.errors.RemoteError` (what failed, where, what to do).

- :func:`fetch_refs` copies the objects of the remote's refs under a prefix (``refs/modver/``)
  into the local object database and returns those refs; no local ref is changed.
- :func:`push_refs` asks the remote for its refs, lets the caller decide the updates from them
  (it may refuse by raising), sends the objects they need and updates the refs by
  compare-and-swap: each ref moves only if it still points where the caller saw it, all of them
  or none (``atomic``) on a server. A ref another push moved meanwhile comes back in
  :attr:`PushResult.rejected`. A remote on this file system is written the way modver writes its
  own repository (:func:`_push_local`), so a push killed half way is repaired by the next one.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from dulwich.client import HTTPProxyUnauthorized, HTTPUnauthorized, LocalGitClient, get_transport_and_path
from dulwich.errors import GitProtocolError, NotGitRepository
from dulwich.file import FileLocked
from dulwich.object_store import MissingObjectFinder
from dulwich.protocol import ZERO_SHA
from dulwich.repo import Repo

from modver import errors
from modver._git.faults import StoreFaults
from modver._git.lock import ModverLock
from modver._git.objects import encode_name, oid
from modver._git.raw import decode_name

if TYPE_CHECKING:
    from dulwich.client import GitClient

    from modver._git import GitRepo

__all__ = ["PushResult", "Remote", "fetch_refs", "push_refs", "remote_refs", "resolve_remote"]

DEFAULT_REMOTE = "origin"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*\Z")
_FAULTS = (GitProtocolError, NotGitRepository, HTTPUnauthorized, HTTPProxyUnauthorized, OSError, ValueError)


@dataclass(frozen=True)
class Remote:
    """A git remote: ``name`` as the user gave it (or ``origin``) and the location it stands for."""

    name: str
    url: str

    @property
    def key(self) -> str:
        """A ref-name-safe name for what modver remembers of this remote (its tracking refs)."""
        if _NAME.match(self.name) and self.name != self.url:
            return self.name
        from modver._encoding import digest_value

        return "url-" + digest_value(self.url).split(":")[1][:16]


@dataclass(frozen=True)
class PushResult:
    """What a push changed: refs updated (name -> new sha) and refs the remote refused."""

    updated: dict[str, str]
    rejected: dict[str, str]  # ref -> the remote's reason


def resolve_remote(repo: GitRepo, name: str | None) -> Remote:
    """The remote ``name`` names: a configured remote, else a location as is (default ``origin``)."""
    chosen = name or DEFAULT_REMOTE
    config = repo._disk().get_config()
    try:
        url = config.get((b"remote", encode_name(chosen)), b"url")
    except KeyError:
        url = None
    if url:
        return Remote(chosen, decode_name(url))
    if name is None or not _looks_like_location(chosen):
        configured = sorted(
            decode_name(section[1]) for section in config.sections() if len(section) == 2 and section[0] == b"remote"
        )
        listing = ", ".join(configured) if configured else "none"
        raise errors.RemoteError(
            f"no git remote {chosen!r} (configured remotes: {listing})",
            where=str(repo.common_dir / "config"),
            hint="add one with `git remote add origin URL`, or give a URL or path: `modver push URL`",
        )
    return Remote(chosen, chosen)


def _looks_like_location(text: str) -> bool:
    return "://" in text or ":" in text or os.sep in text or text.startswith(".") or os.path.exists(text)


def _client(repo: GitRepo, remote: Remote) -> tuple[GitClient, str]:
    # as git does: GIT_SSH_COMMAND, then GIT_SSH, then core.sshCommand, then ssh
    ssh = os.environ.get("GIT_SSH_COMMAND") or os.environ.get("GIT_SSH") or None
    try:
        return get_transport_and_path(remote.url, config=repo._disk().get_config_stack(), ssh_command=ssh)
    except _FAULTS as exc:
        raise _remote_error(remote, "cannot understand the remote's location", exc) from exc


def _remote_error(remote: Remote, what: str, exc: BaseException) -> errors.RemoteError:
    detail = (getattr(exc, "strerror", None) or str(exc) or type(exc).__name__).strip()
    if isinstance(exc, NotGitRepository):
        detail = "no git repository there"
    if isinstance(exc, (HTTPUnauthorized, HTTPProxyUnauthorized)):
        hint = "the remote asks for credentials: set them up for git (a credential helper, or the URL's user)"
    else:
        hint = "check the remote's URL (`git remote -v`), the network and your access to it"
    return errors.RemoteError(f"{what} {remote.name} ({remote.url}): {detail}", where=remote.url, hint=hint)


def _text_refs(refs: dict[Any, Any], prefix: str) -> dict[str, str]:
    out = {}
    for name, sha in refs.items():
        text = decode_name(name)
        if text.startswith(prefix) and sha is not None and sha != ZERO_SHA:
            out[text] = sha.decode("ascii")
    return out


def remote_refs(repo: GitRepo, remote: Remote, prefix: str) -> dict[str, str]:
    """The remote's refs under ``prefix`` (nothing is fetched)."""
    client, path = _client(repo, remote)
    try:
        result = client.get_refs(encode_name(path))
    except _FAULTS as exc:
        raise _remote_error(remote, "cannot read the refs of", exc) from exc
    return _text_refs(result.refs, prefix)


def fetch_refs(repo: GitRepo, remote: Remote, prefix: str) -> dict[str, str]:
    """Copy into ``repo`` the objects of the remote's refs under ``prefix``; those refs (no local
    ref changes)."""
    client, path = _client(repo, remote)
    if isinstance(client, LocalGitClient):
        with closing(_open_exactly(remote, path, "cannot fetch from")) as source:
            with StoreFaults("cannot read the remote's refs", path):
                refs = _text_refs(source.get_refs(), prefix)
            _copy_objects(source, repo, repo.list_refs(prefix).values(), refs.values())
        return refs
    local = repo._disk()
    wanted_prefix = encode_name(prefix)

    def determine_wants(refs: dict[Any, Any], depth: int | None = None) -> list[Any]:
        return [
            sha
            for name, sha in refs.items()
            if name.startswith(wanted_prefix) and sha != ZERO_SHA and sha not in local.object_store
        ]

    try:
        result = client.fetch(path, local, determine_wants=cast("Any", determine_wants))
    except FileLocked as exc:
        lock = os.fsdecode(exc.lockfilename)
        raise errors.StoreError(
            f"cannot write the fetched objects: {lock} is locked",
            where=lock,
            hint="a fetch killed half way leaves it: if no other modver or git process runs here, delete it",
        ) from exc
    except _FAULTS as exc:
        raise _remote_error(remote, "cannot fetch from", exc) from exc
    local.object_store._update_pack_cache()
    return _text_refs(result.refs, prefix)


def _open_exactly(remote: Remote, path: str, what: str) -> Repo:
    """The repository at ``path`` itself: a mistyped path must not find an enclosing repository."""
    try:
        return Repo(path)
    except _FAULTS as exc:
        raise _remote_error(remote, what, exc) from exc


def _copy_objects(source: Repo, target: GitRepo, have: Iterable[str], want: Iterable[str]) -> None:
    """Copy the objects reachable from ``want`` and not from ``have`` into ``target``, the way
    modver writes its own objects: one pack, under the target's modver lock, whose next holder
    removes what a writer killed half way left (:mod:`modver._git.objects`)."""
    store = source.object_store
    with StoreFaults("cannot read the objects to copy", source.path):
        haves = [oid(sha) for sha in have if oid(sha) in store]
        wants = [oid(sha) for sha in want if oid(sha) in store and not target.has_object(sha)]
        if not wants:
            return
        objects = [store[sha] for sha, _hint in MissingObjectFinder(store, haves=haves, wants=wants)]
    with target.buffered_objects():
        for obj in objects:
            target._add(obj)


def push_refs(
    repo: GitRepo, remote: Remote, prefix: str, decide: Callable[[dict[str, str]], dict[str, str]]
) -> PushResult:
    """Update refs under ``prefix`` on the remote: ``decide(remote_refs)`` returns ref -> new sha
    (it may raise to refuse); objects are sent, then every ref moves by compare-and-swap from the
    value ``decide`` saw."""
    client, path = _client(repo, remote)
    if isinstance(client, LocalGitClient):
        return _push_local(repo, remote, path, prefix, decide)
    local = repo._disk()
    chosen: dict[str, str] = {}

    def update_refs(refs: dict[Any, Any]) -> dict[Any, Any]:
        chosen.update(decide(_text_refs(refs, prefix)))
        new = dict(refs)
        for name, sha in chosen.items():
            new[encode_name(name)] = sha.encode("ascii")
        return new

    def generate_pack_data(have: Any, want: Any, ofs_delta: bool = True, progress: Any = None) -> Any:
        return local.generate_pack_data(have, want, progress=progress, ofs_delta=ofs_delta)

    try:
        result = client.send_pack(encode_name(path), update_refs, cast("Any", generate_pack_data), atomic=True)
    except errors.ModverError:
        raise
    except _FAULTS as exc:
        raise _remote_error(remote, "cannot push to", exc) from exc
    status = result.ref_status or {}
    rejected = {decode_name(name): str(why) for name, why in status.items() if why is not None}
    return PushResult({name: sha for name, sha in chosen.items() if name not in rejected}, rejected)


def _push_local(
    repo: GitRepo, remote: Remote, path: str, prefix: str, decide: Callable[[dict[str, str]], dict[str, str]]
) -> PushResult:
    """A push to a repository on this file system, done as modver writes its own repository: the
    objects as one pack, each ref by compare-and-swap under the remote's modver lock, whose next
    holder repairs what a push killed half way left (a ``<ref>.lock``, pack temporaries)."""
    from modver._git import GitRepo

    opened = _open_exactly(remote, path, "cannot push to")
    ModverLock(opened).recover_if_left()
    with GitRepo(opened, Path(opened.path).resolve()) as target:
        theirs = target.list_refs(prefix)
        updates = decide(theirs)
        if not updates:
            return PushResult({}, {})
        _copy_objects(repo._disk(), target, theirs.values(), updates.values())
        updated, rejected = {}, {}
        for name, sha in sorted(updates.items()):
            if target.set_ref_if_equals(name, theirs.get(name), sha):
                updated[name] = sha
            else:
                rejected[name] = "moved by another push"
        return PushResult(updated, rejected)
