"""Test-only fault injection: the process kills itself (SIGKILL) just before its Nth write, or
that write fails (a full disk, an I/O error, a read-only file system).

SQLite proves its crash safety by stopping a process at every write it makes; modver's fault
suite (``tests/faults/``) does the same to real ``modver`` processes:

- ``MODVER_FAULT_TRACE=FILE`` appends one line per write point to ``FILE``
  (``<n> <event> <path> [<target path>]``), so a test learns how many write points a command has;
- ``MODVER_FAULT_KILL_AT=N`` sends SIGKILL to the process just before its Nth write point:
  everything before it happened, it and everything after did not;
- ``MODVER_FAULT_FAIL_AT=N`` makes the Nth write point fail instead: it raises
  ``OSError(errno)`` (as the system call would) and the process goes on, so the test sees how the
  command reports a failed write and what it leaves. ``MODVER_FAULT_ERRNO`` names the error:
  ``ENOSPC`` (default), ``EIO``, ``EROFS`` or ``EDQUOT``. Only that one write fails;
- ``MODVER_FAULT_ROOT=DIR`` counts only writes under ``DIR`` (default: every write).

A write point is any file-system change Python can see through an audit hook (PEP 578): opening
a file for writing or creating it (``open``, ``os.open``, ``tempfile``), ``rename``/``replace``,
``remove``/``unlink``, ``mkdir``, ``rmdir``, ``link``, ``symlink``, ``truncate``, ``chmod``,
``utime`` and ``shutil.rmtree`` -- modver's own writes and dulwich's alike. The data written into
an open file is not a point of its own; random-moment kills in the suite cover those.

Nothing happens unless one of the variables is set: the console script checks the environment
once (:func:`install_from_env`) and this module is not even imported otherwise. Only the
``modver`` process itself counts: the Dask workers a sweep starts run no switch (their writes are
the cache entries, which ``modver run`` writes itself and the suite fails there).

The suites that use it: ``tests/faults/test_git_faults.py`` and ``test_pin_run_faults.py`` (kills),
``test_write_failures.py`` (every git write of index and snapshot failing),
``test_store_write_failures.py`` (every write of pin, run, sweep, gc, push and pull, anywhere in
the project, the remote and the storage, failing) and ``test_share_faults.py``.
"""

from __future__ import annotations

import errno
import os
import signal
import sys
from collections.abc import Mapping
from typing import Any

__all__ = ["install_from_env"]

KILL_AT = "MODVER_FAULT_KILL_AT"
FAIL_AT = "MODVER_FAULT_FAIL_AT"
ERRNO = "MODVER_FAULT_ERRNO"
_ERRNOS = ("ENOSPC", "EIO", "EROFS", "EDQUOT")
TRACE = "MODVER_FAULT_TRACE"
ROOT = "MODVER_FAULT_ROOT"

_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND
# event -> positions of the paths it changes in the audit arguments (rename: source and target)
_PATH_EVENTS = {
    "os.rename": (0, 1),
    "os.remove": (0,),
    "os.rmdir": (0,),
    "os.mkdir": (0,),
    "os.link": (1,),
    "os.symlink": (1,),
    "os.truncate": (0,),
    "os.chmod": (0,),
    "os.utime": (0,),
    "shutil.rmtree": (0,),
}


def _write_targets(event: str, args: tuple[Any, ...]) -> list[Any]:
    """The paths a write event changes ([] when the event writes nothing)."""
    if event == "open":
        path, mode, flags = args
        writes = (isinstance(flags, int) and flags & _WRITE_FLAGS) or (
            isinstance(mode, str) and any(c in mode for c in "wax+")
        )
        return [path] if writes else []
    return [args[i] for i in _PATH_EVENTS.get(event, ())]


def install_from_env(environ: Mapping[str, str] = os.environ) -> bool:
    """Install the audit hook when ``MODVER_FAULT_KILL_AT``, ``MODVER_FAULT_FAIL_AT`` or
    ``MODVER_FAULT_TRACE`` is set.

    Returns whether it was installed. An audit hook cannot be removed: this is for processes
    that a test starts and throws away.
    """
    kill_text, fail_text, trace = environ.get(KILL_AT), environ.get(FAIL_AT), environ.get(TRACE)
    if not kill_text and not fail_text and not trace:
        return False
    kill_at = int(kill_text) if kill_text else None
    fail_at = int(fail_text) if fail_text else None
    name = environ.get(ERRNO) or "ENOSPC"
    if name not in _ERRNOS:
        raise ValueError(f"{ERRNO}={name!r}: expected one of {', '.join(_ERRNOS)}")
    number = getattr(errno, name)
    root = os.path.abspath(environ[ROOT]) + os.sep if environ.get(ROOT) else None
    trace_fd = os.open(trace, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644) if trace else None
    count = 0

    def hook(event: str, args: tuple[Any, ...]) -> None:
        nonlocal count
        # an fd was counted when it was opened; a path is absolute from here on
        paths = [os.path.abspath(os.fsdecode(p)) for p in _write_targets(event, args) if not isinstance(p, int)]
        if not paths or (root is not None and not any((p + os.sep).startswith(root) for p in paths)):
            return
        count += 1
        if trace_fd is not None:
            os.write(trace_fd, f"{count} {event} {' '.join(paths)}\n".encode("utf-8", "surrogateescape"))
        if kill_at is not None and count == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)
        if fail_at is not None and count == fail_at:
            raise OSError(number, os.strerror(number), paths[0])

    sys.addaudithook(hook)
    return True
