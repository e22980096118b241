"""The modver lock of a repository, its owner record, and the repair of a dead holder's leftovers.

- Every pack write and every compare-and-swap of a ref happens under the repository's modver
  lock, ``<git common dir>/modver/lock`` (``filelock``, flock-based: the kernel releases it when
  its holder dies). Its holder first writes ``modver/owner`` (one JSON line: ``pid``, ``host``,
  ``command``, ``action``, ``ref``, ``time``) and removes it when done. A process that takes the
  lock and finds an owner record knows that its writer died holding the lock: it removes the
  ``<ref>.lock`` the record names and modver's pack temporaries, at once. Opening a repository
  does the same when a record is left and the lock is free.
- Only a ``<ref>.lock`` the dead holder can have made is removed: the holder wrote its record,
  then (at once) dulwich created the ``<ref>.lock``; so a lock made before the record, or more
  than :data:`_MADE_WITHIN` seconds after it, was made by someone else — git taking the ref
  since — and stays (it is then waited for, as below). Both times are the files' own mtimes, on
  the same file system.
- A ``<ref>.lock`` that no owner record names belongs to git itself (or an older modver): it is
  waited for ``MODVER_REF_LOCK_TIMEOUT`` seconds (default 2), then
  :class:`~modver.errors.ConcurrencyError` names it. A live modver holder is waited for
  ``MODVER_LOCK_TIMEOUT`` seconds (default 30); after about a second, the wait is announced once
  through ``logging.getLogger("modver")`` (the CLI prints it on stderr).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dulwich.file import FileLocked, adjust_shared_perm
from dulwich.refs import DiskRefsContainer

from modver import _fs, errors
from modver._git.faults import write_failure
from modver._git.objects import clean_pack_dir, make_dir

if TYPE_CHECKING:
    from dulwich.file import SharedPerm
    from dulwich.repo import Repo

LOCK_TIMEOUT_ENV = "MODVER_LOCK_TIMEOUT"  # seconds to wait for a live modver process's lock
REF_LOCK_TIMEOUT_ENV = "MODVER_REF_LOCK_TIMEOUT"  # seconds to wait for a <ref>.lock no modver owns
_LOCK_TIMEOUT = 30.0
_REF_LOCK_TIMEOUT = 2.0
_NOTICE_AFTER = 1.0  # seconds of waiting before saying whom we wait for
# A dead holder made its <ref>.lock within this many seconds after writing its owner record (it
# makes it right after), and not before it, with this much slack for coarse file-system clocks.
_MADE_WITHIN = 5.0
_CLOCK_SLACK = 2.0
# what an owner record may name (refs/modver-remotes/: what a remote had, issue 10)
_MODVER_REF = re.compile(r"refs/modver(-remotes)?/[A-Za-z0-9_./-]+\Z")


class ModverLock:
    """The modver lock of one repository on disk: ``<git common dir>/modver/{lock,owner}``."""

    def __init__(self, repo: Repo):
        self._repo = repo
        folder = os.path.join(repo.commondir(), "modver")
        self.path = os.path.join(folder, "lock")
        self.owner = os.path.join(folder, "owner")

    @contextlib.contextmanager
    def hold(self, action: str, ref: str | None = None) -> Iterator[None]:
        """Hold the lock while doing ``action`` (to ``ref``), with an owner record; a dead
        holder's leftovers are repaired first."""
        lock, owner = self.path, self.owner
        with contextlib.ExitStack() as held:
            try:
                _make_lock_file(lock, self._repo.object_store.shared_perm)
                _acquire(held, lock, owner)
                self._recover()
                _write_owner(owner, action, ref)
            except OSError as exc:
                failed = write_failure("cannot take modver's lock", exc, lock)
                if failed is not None:
                    raise failed from exc
                raise errors.StoreError(
                    f"cannot use modver's lock {lock}: {exc.strerror or exc}",
                    where=lock,
                    hint=f"modver needs to write in {os.path.dirname(lock)}: check its permissions",
                ) from exc
            try:
                yield
            finally:
                _remove_owner(owner)

    def update_ref(self, name: str, swap: Callable[[], bool]) -> bool:
        """``swap()`` (a compare-and-swap of ref ``name``) with the lock held; its result.

        A ``<ref>.lock`` that no modver process holds (``swap`` raises dulwich's ``FileLocked``)
        is waited for, the lock released in between, then :class:`~modver.errors.ConcurrencyError`
        names it.
        """
        deadline = notice = None
        while True:
            with self.hold(f"updating {name}", name):
                try:
                    return swap()
                except FileLocked as exc:
                    lock = os.fsdecode(exc.lockfilename)
            # no modver process holds this <ref>.lock: git itself (whose ref locks last
            # milliseconds) or a modver from before the modver lock
            now = time.monotonic()
            if deadline is None:
                timeout = _seconds(REF_LOCK_TIMEOUT_ENV, _REF_LOCK_TIMEOUT)
                deadline, notice = now + timeout, now + min(_NOTICE_AFTER, timeout / 2)
            if notice is not None and now >= notice:
                _logger().info("waiting for %s, which no modver process holds (a git command?)", lock)
                notice = None
            if now >= deadline:
                raise errors.ConcurrencyError(
                    f"cannot update {name}: {lock} exists, and no running modver process holds it",
                    where=lock,
                    hint="a git command may be updating that ref: try again; if no git or modver process "
                    f"is running in this repository, one that crashed left it: delete {lock}",
                )
            time.sleep(0.01)

    def _recover(self) -> None:
        """With the lock held: undo what a modver process that died holding it left behind."""
        record = _read_owner(self.owner)
        if record is None:
            return
        repo = self._repo
        ref = record.get("ref")
        removed = []
        if (
            isinstance(ref, str)
            and _MODVER_REF.match(ref)
            and ".." not in ref
            and isinstance(repo.refs, DiskRefsContainer)
        ):
            stale = os.fsdecode(repo.refs.refpath(ref.encode("ascii"))) + ".lock"
            if _made_by_holder(stale, self.owner):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(stale)
                    removed.append(stale)
        clean_pack_dir(os.path.join(repo.object_store.path, "pack"))
        os.unlink(self.owner)
        _logger().info(
            "%s died while %s; repaired what it left%s",
            _who(record),
            record.get("action", "holding modver's lock"),
            f" (removed {removed[0]})" if removed else "",
        )

    def recover_if_left(self) -> None:
        """Recover now if a dead modver process left an owner record and the lock is free."""
        if not os.path.exists(self.owner):
            return
        try:
            with _fs.file_lock(Path(self.path), timeout=0):
                self._recover()
        except (errors.ConcurrencyError, OSError):
            pass  # a live process holds the lock (it recovers itself), or this user may not write


def _made_by_holder(lock: str, owner: str) -> bool:
    """Whether ``lock`` (a ``<ref>.lock``) can be the one the dead holder whose record is
    ``owner`` made: made after its record was written, and at once (see the module docstring)."""
    try:
        made, recorded = os.stat(lock).st_mtime, os.stat(owner).st_mtime
    except FileNotFoundError:
        return False
    return recorded - _CLOCK_SLACK <= made <= recorded + _MADE_WITHIN


def _remove_owner(owner: str) -> None:
    """Remove the owner record when the lock is released; a failure to is one clear error."""
    try:
        os.unlink(owner)
    except FileNotFoundError:
        pass
    except OSError as exc:
        raise write_failure("cannot release modver's lock", exc, owner) or errors.StoreError(
            f"cannot remove {owner}: {exc.strerror or exc}",
            where=owner,
            hint=f"modver needs to write in {os.path.dirname(owner)}: check its permissions",
        ) from exc


def _seconds(variable: str, default: float) -> float:
    """A timeout from the environment variable ``variable`` (seconds), or ``default``."""
    text = os.environ.get(variable, "").strip()
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value >= 0:  # also refuses nan
        raise errors.UsageError(
            f"{variable}={text!r} is not a number of seconds",
            hint=f"set {variable} to a number such as 30, or unset it",
        )
    return value


def _logger() -> Any:
    import logging

    return logging.getLogger("modver")


def _host() -> str:
    try:
        return os.uname().nodename
    except AttributeError:  # pragma: no cover - Windows
        return os.environ.get("COMPUTERNAME", "?")


def _command() -> str:
    """What this process is, for an owner record: ``modver snapshot``, or the program's name."""
    prog = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else "python"
    if prog in ("modver", "__main__.py"):
        return " ".join(["modver", *[arg for arg in sys.argv[1:] if not arg.startswith("-")][:1]])
    return "python -c" if prog == "-c" else prog


def _read_owner(path: str) -> dict[str, Any] | None:
    """The owner record at ``path``; None when there is none (or it was never written)."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        return None
    if not data.strip():
        return None  # its writer died before writing it: it had not started anything
    try:
        record = json.loads(data)
    except ValueError:
        return {}  # unreadable: still a record left behind
    return record if isinstance(record, dict) else {}


def _write_owner(path: str, action: str, ref: str | None) -> None:
    """Record who holds the modver lock and what it does (one write: all of it or nothing)."""
    record = {
        "pid": os.getpid(),
        "host": _host(),
        "command": _command(),
        "action": action,
        "ref": ref,
        "time": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_CLOEXEC", 0), 0o644)
    try:
        os.write(fd, (json.dumps(record, sort_keys=True) + "\n").encode("utf-8"))
    finally:
        os.close(fd)


def _make_lock_file(lock: str, shared_perm: SharedPerm | None) -> None:
    """Create the modver lock's folder (and, in a shared repository, the lock file) like git."""
    folder = os.path.dirname(lock)
    if not os.path.isdir(folder):
        make_dir(folder, shared_perm)
    if shared_perm is not None and not os.path.exists(lock):  # every member of the group opens it
        with contextlib.suppress(FileExistsError):
            os.close(os.open(lock, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644))
            adjust_shared_perm(lock, shared_perm)


def _acquire(stack: contextlib.ExitStack, lock: str, owner: str) -> None:
    """Take ``lock`` into ``stack``: say after a second whom we wait for; give up after the timeout."""
    timeout = _seconds(LOCK_TIMEOUT_ENV, _LOCK_TIMEOUT)
    first = min(_NOTICE_AFTER, timeout / 2)
    try:
        stack.enter_context(_fs.file_lock(Path(lock), timeout=first))
        return
    except errors.ConcurrencyError:
        _logger().info("waiting for %s", _describe(_read_owner(owner)))
    try:
        stack.enter_context(_fs.file_lock(Path(lock), timeout=timeout - first))
    except errors.ConcurrencyError as exc:
        record = _read_owner(owner) or {}
        pid, host = record.get("pid", "?"), record.get("host", "?")
        raise errors.ConcurrencyError(
            f"gave up after {timeout:g}s waiting for {_describe(record)}: it holds {lock}",
            where=lock,
            hint=f"the lock goes when that process ends: if it hangs, stop it (`kill {pid}` on {host}) "
            f"and the next modver command repairs what it left; delete {lock} only if no modver "
            "process runs on any host using this repository",
        ) from exc


def _who(record: dict[str, Any]) -> str:
    """'modver process 1234 (modver snapshot) on host X' from an owner record."""
    return f"modver process {record.get('pid', '?')} ({record.get('command', '?')}) on host {record.get('host', '?')}"


def _describe(record: dict[str, Any] | None) -> str:
    """'modver process 1234 (modver snapshot) on host X, which is updating refs/...'."""
    if not record:
        return "another modver process"
    return f"{_who(record)}, which is {record.get('action', 'working')}"
