"""The fuzz harness: a real project, the real CLI in-process, and the checks every example passes.

For every input a fuzz test tries, :meth:`Sandbox.cli` asserts that the command

- exits 0, 1 or 2, and prints no "internal error" and no traceback (on stderr: stdout may
  show the traceback a failed run recorded), and issues no Python warning;
- finishes within :data:`HANG_SECONDS` (a timer interrupts it: a hang is a failure);
- writes nothing outside ``.modver/`` and ``refs/modver/`` (git's object database and lock
  files aside): the bytes of every other file of the project, its refs, HEAD, the index and
  the folders around the project are compared before and after.

Each test counts what it tried by kind (:data:`COUNTS`); ``MODVER_FUZZ_REPORT=FILE`` writes the
counts as JSON when the session ends (see tests/fuzz/conftest.py).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
import warnings
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hypothesis import settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from modver.cli import app

HANG_SECONDS = float(os.environ.get("MODVER_FUZZ_TIMEOUT", "30"))
COUNTS: Counter[str] = Counter()  # inputs tried, by kind
COMMANDS: Counter[str] = Counter()  # CLI invocations, by "kind command exit-code"
SLOWEST: dict[str, float] = defaultdict(float)  # seconds, by kind

_runner = CliRunner()
# what modver may write inside .git: objects, its own refs, its lock (.git/modver/lock), *.lock
_GIT_SCRATCH = ("objects", "refs/modver", "modver")


def argv_text(max_size: int = 30) -> st.SearchStrategy[str]:
    """Text a command line can carry: no NUL; bytes that are not UTF-8 arrive as the lone
    surrogates U+DC80..U+DCFF (Python's surrogateescape)."""
    escaped = st.sampled_from([chr(c) for c in range(0xDC80, 0xDD00)])
    return st.text(st.characters(blacklist_characters="\x00") | escaped, max_size=max_size)


def scaled() -> settings:
    """The loaded hypothesis profile; ``MODVER_FUZZ_EXAMPLES=N`` tries N examples per test
    instead (long runs by hand)."""
    n = os.environ.get("MODVER_FUZZ_EXAMPLES")
    return settings(max_examples=int(n)) if n else settings()


_HIDDEN_WARNINGS = (
    DeprecationWarning,
    PendingDeprecationWarning,
    ImportWarning,
    ResourceWarning,
)  # not shown by default


class Hang(BaseException):
    """Raised by the timer inside a command that runs too long (not an Exception: nothing in
    modver may catch it)."""


@contextlib.contextmanager
def deadline(seconds: float) -> Iterator[None]:
    def expire(signum: int, frame: Any) -> None:
        raise Hang

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def git(root: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, check=True).stdout


def _tree(folder: Path, skip: Any = lambda rel: False) -> dict[str, Any]:
    """Every entry under ``folder``: file bytes, link targets, "dir" for folders."""
    out: dict[str, Any] = {}
    for dirpath, dirnames, filenames in os.walk(folder):
        base = Path(dirpath)
        for name in [*dirnames, *filenames]:
            path = base / name
            rel = path.relative_to(folder).as_posix()
            if skip(rel):
                if name in dirnames:
                    dirnames.remove(name)
                continue
            if path.is_symlink():
                out[rel] = ("link", os.readlink(path))
            elif path.is_dir():
                out[rel] = "dir"
            else:
                out[rel] = path.read_bytes()
    return out


@dataclass
class Sandbox:
    """A real project: a git repository with registered history, tags and runs."""

    root: Path
    runs: list[str] = field(default_factory=list)
    fingerprints: dict[str, list[str]] = field(default_factory=dict)  # stage -> in version order

    def copy(self, into: Path) -> Sandbox:
        """The same project in ``into``/proj."""
        root = Path(into) / "proj"
        shutil.copytree(self.root, root, symlinks=True)
        return Sandbox(root, list(self.runs), dict(self.fingerprints))

    def state(self, inputs: tuple[str, ...] = ()) -> dict[str, Any]:
        """What no command may change: see the module docstring."""

        def skip(rel: str) -> bool:
            if rel == ".modver" or rel in inputs:
                return True
            if rel.startswith(".git/"):
                inner = rel[5:]
                return inner.endswith(".lock") or any(inner == s or inner.startswith(s + "/") for s in _GIT_SCRATCH)
            return False

        refs = [line for line in git(self.root, "for-each-ref", "--format=%(refname) %(objectname)").splitlines()]
        return {
            "files": _tree(self.root, skip),
            "refs": [line for line in refs if not line.startswith("refs/modver/")],
            "around": sorted(p.name for p in self.root.parent.iterdir()),
            "home": _tree(Path(os.environ["HOME"])),
        }

    def cli(self, kind: str, *args: str, inputs: tuple[str, ...] = ()) -> Any:
        """Run ``modver ARGS`` in the project, in-process, and check it (module docstring).

        ``inputs``: project files the test wrote for this command, which it may change (the
        manifest `pin` is given).
        """
        before = self.state(inputs)
        old = Path.cwd()
        os.chdir(self.root)
        start = time.monotonic()
        try:
            with deadline(HANG_SECONDS), warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                result = _runner.invoke(app, list(args))
        except Hang:
            raise AssertionError(f"modver {_shown(args)} ran longer than {HANG_SECONDS:.0f} s") from None
        finally:
            os.chdir(old)
        # a warning would reach the user's terminal as Python's "file:line: XWarning: ..."
        shown = [w for w in caught if not issubclass(w.category, _HIDDEN_WARNINGS)]
        assert not shown, f"modver {_shown(args)} warned: {[str(w.message)[:200] for w in shown]}"
        elapsed = time.monotonic() - start
        SLOWEST[kind] = max(SLOWEST[kind], elapsed)
        COMMANDS[f"{kind} {args[0]} exit {result.exit_code}"] += 1
        output = result.stdout + result.stderr
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            import traceback

            trace = "".join(traceback.format_exception(result.exception))
            raise AssertionError(f"modver {_shown(args)} raised\n{trace}")
        assert result.exit_code in (0, 1, 2), f"modver {_shown(args)} exited {result.exit_code}\n{output}"
        # stdout may show a failed run's recorded traceback (`show RUN`, `--json`); stderr is modver's own
        assert "internal error" not in result.stderr and "Traceback" not in result.stderr, (
            f"modver {_shown(args)}\n{output}"
        )
        after = self.state(inputs)
        for part in before:
            if before[part] != after[part]:
                raise AssertionError(f"modver {_shown(args)} changed {part}: {_difference(before[part], after[part])}")
        return result


def _shown(args: tuple[str, ...]) -> str:
    text = " ".join(repr(a) if not a or " " in a else a for a in args)
    return text if len(text) <= 300 else text[:297] + "..."


def _difference(before: Any, after: Any) -> str:
    if isinstance(before, dict):
        changed = sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))
        return ", ".join(changed[:10])
    return f"{before!r} -> {after!r}"
