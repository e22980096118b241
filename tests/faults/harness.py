"""Fault injection harness: kill real ``modver`` processes and check that nothing is harmed.

SQLite proves its crash safety by stopping a process at every write it makes; this does the same
to the ``modver`` CLI, using the kill switch of :mod:`modver._faults`:

1. ``write_points(base, args, dest)`` runs ``modver ARGS`` once on a copy of ``base`` (at
   ``dest``) with ``MODVER_FAULT_TRACE`` and returns its write points: every file-system change
   under the project, one line each (``<n> <event> <path>...``);
2. ``choose(points)`` picks the points to kill at: all of them, or ``MODVER_FAULT_MAX_POINTS``
   (default 60) of them: every kind of write (:func:`kind`: the event and the path with its
   varying names masked) at its first and last occurrence, the rest spread evenly;
3. ``kill_at(project, args, n)`` runs ``modver ARGS`` with ``MODVER_FAULT_KILL_AT=n`` (the process
   SIGKILLs itself just before its nth write); ``kill_after(project, args, delay)`` sends SIGKILL
   after ``delay`` seconds instead (a moment between two writes, or inside one);
4. ``check_survived(project, next_args, expected)`` asserts what must hold after every kill.

A scenario (see ``test_git_faults.py``)::

    base = build_history_project(tmp_path / "base")   # any Project; built once, copied per kill
    expected = undisturbed(base, tmp_path / "clean", ["index"])
    points = write_points(base, ["index"], tmp_path / "traced")
    for n in choose(points):
        project = base.copy(tmp_path / f"kill-{n}")
        kill_at(project, ["index"], n)
        check_survived(project, ["index"], expected)
    record("modver index", "write points", survived=..., tried=...)

``check_survived`` asserts, in this order: right after the kill, ``git fsck --full`` and
``git log --all`` pass (exit 0, no ``error``/``fatal``/``Traceback``); the store reads
(``modver log --json``: like any modver command, it first repairs what a dead modver process
left, e.g. a ``<ref>.lock``, which git's own ``pack-refs`` would complain about as it does after
a killed git); ``git gc`` passes; the next command succeeds; ``git fsck --full`` and
``git log --all`` pass again; nothing modver writes for a moment is left in ``.git`` (no
``*.lock``, no ``tmp*modver*`` file, no owner record; git's own ``tmp_obj_*`` prefix, which git
ignores and ``git prune`` removes, may remain); and the versions (stage -> [(number,
fingerprint)], from ``modver log --json``) equal ``expected``, what an undisturbed run gives
(None: not compared). It returns what it saw, e.g. which leftovers the kill left.

Failed writes (``MODVER_FAULT_FAIL_AT=N``, see ``test_store_write_failures.py``): ``fail_at(project,
args, n, errno)`` makes the nth write point fail with ``errno`` (``ERRNOS`` rotate over the points:
ENOSPC, EIO, EROFS); ``failed_cleanly(done, errno, what)`` asserts one ``Error:`` line naming the
failure and no traceback (exit 1), or exit 0 where the write was one the command can do without;
``git_whole(project)`` asserts ``git fsck --full`` and that no ref names a missing object;
``each_point(chosen, check)`` runs the check of every chosen point, two at a time (each on its
own copy). ``fail_limit(default)``: the points per command, ``MODVER_FAULT_MAX_POINTS`` when set.

``record(command, what, survived, tried, **details)`` adds counts to the JSON file named by
``MODVER_FAULT_REPORT`` (when set), for docs/reliability.md::

    MODVER_FAULT_REPORT=/tmp/faults.json python -m pytest tests/faults -q

Subprocesses run this checkout's ``modver`` (``PYTHONPATH``), in the environment that
tests/conftest.py sets up (``HOME`` and ``GIT_*`` scrubbed); ``build_history_project`` sets its own
git identity, since module-scoped fixtures run before that scrubbing.
"""

from __future__ import annotations

import functools
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

REPO_ROOT = Path(__file__).resolve().parents[2]
MAX_POINTS = int(os.environ.get("MODVER_FAULT_MAX_POINTS", "60"))
ERRNOS = ("ENOSPC", "EIO", "EROFS")  # rotated over the chosen points (EDQUOT: tests/faults/test_write_failures.py)
MESSAGES = {
    "ENOSPC": "no space left on device",
    "EIO": "I/O error",
    "EROFS": "read-only file system",
    "EDQUOT": "disk quota exceeded",
}
REPORT = "MODVER_FAULT_REPORT"
TIMEOUT = 120  # seconds any one command may take
_IDENTITY = {
    "GIT_AUTHOR_NAME": "Fault Suite",
    "GIT_AUTHOR_EMAIL": "faults@example.com",
    "GIT_COMMITTER_NAME": "Fault Suite",
    "GIT_COMMITTER_EMAIL": "faults@example.com",
}
_VARIES = re.compile(r"[0-9]")  # a path component with a digit: an object id, a temp name, s0...
_COMPLAINT = re.compile(r"\b(error|fatal|traceback)\b", re.IGNORECASE)

Versions = dict[str, list[tuple[int, str]]]


def _env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODVER_FAULT_")}
    env["PYTHONPATH"] = str(REPO_ROOT)
    env.update(extra or {})
    return env


@dataclass
class Project:
    """A git project in a folder, driven through the real ``modver`` CLI and the git binary."""

    root: Path

    def modver(self, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        """Run ``modver ARGS`` here; the completed process (not checked)."""
        return subprocess.run(
            [sys.executable, "-m", "modver", *args],
            cwd=self.root,
            env=_env(env),
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
            check=False,
        )

    def popen(self, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
        """Start ``modver ARGS`` here without waiting."""
        return subprocess.Popen(
            [sys.executable, "-m", "modver", *args],
            cwd=self.root,
            env=_env(env),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def git(self, *args: str) -> subprocess.CompletedProcess[str]:
        """Run ``git ARGS`` here; the completed process (not checked)."""
        return subprocess.run(
            ["git", *args], cwd=self.root, capture_output=True, text=True, timeout=TIMEOUT, check=False
        )

    def copy(self, dest: Path) -> Project:
        """A copy of the whole project (its ``.git`` and ``.modver`` included) at ``dest``."""
        shutil.copytree(self.root, dest, symlinks=True)
        return Project(dest)

    def versions(self) -> Versions:
        """stage -> [(number, fingerprint)], oldest first, from ``modver log --json``."""
        done = self.modver("log", "--json")
        assert done.returncode == 0, f"the store does not read: {done.stderr}"
        found: Versions = {}
        for v in json.loads(done.stdout):
            found.setdefault(v["stage"], []).append((v["number"], v["fingerprint"]))
        return {stage: sorted(vs) for stage, vs in sorted(found.items())}


def build_history_project(root: Path, commits: int = 30, stages: int = 3) -> Project:
    """A git project whose manifest declares ``stages`` stages (``s0``..), with ``commits`` commits.

    Each commit changes one stage's code (in turn), so ``modver index`` registers about
    ``commits`` versions and writes a pack of a few hundred objects. ``.modver/`` is ignored.
    """
    root.mkdir(parents=True)
    # module-scoped fixtures build projects before tests/conftest.py scrubs the environment
    env = {**os.environ, "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1", **_IDENTITY}
    git = functools.partial(subprocess.run, cwd=root, env=env, check=True, capture_output=True)
    git(["git", "init", "-q", "-b", "main"])
    (root / ".gitignore").write_text(".modver/\n")
    (root / "manifest.yaml").write_text(
        "stages:\n" + "".join(f"  s{i}:\n    entry: pipe/s{i}.py:run\n" for i in range(stages))
    )
    (root / "pipe").mkdir()
    (root / "pipe" / "__init__.py").write_text("")
    for c in range(commits):
        for i in range(stages) if c == 0 else [c % stages]:
            (root / "pipe" / f"s{i}.py").write_text(stage_source(i, c))
        git(["git", "add", "-A"])
        git(["git", "commit", "-q", "-m", f"commit {c}"])
    return Project(root)


def stage_source(stage: int, revision: int) -> str:
    """The code of stage ``s<stage>`` at ``revision`` (each revision is a new version)."""
    return (
        f"def helper(x):\n    return x + {revision}\n\n\n"
        f"def run(data):\n    return [helper(v) * {stage + 1} for v in data]\n"
    )


def ok(done: subprocess.CompletedProcess[str], what: str) -> None:
    """Assert that a command succeeded and printed no error."""
    output = done.stdout + done.stderr
    assert done.returncode == 0, f"{what} failed ({done.returncode}): {output}"
    assert not _COMPLAINT.search(output), f"{what}: {output}"


def undisturbed(base: Project, dest: Path, *commands: list[str]) -> Versions:
    """The versions that running ``commands`` one after the other on a copy of ``base`` gives."""
    clean = base.copy(dest)
    for args in commands:
        ok(clean.modver(*args), f"modver {' '.join(args)}")
    versions = clean.versions()
    shutil.rmtree(dest)
    return versions


def write_points(base: Project, args: list[str], dest: Path, root: str | None = None) -> list[str]:
    """The write points of ``modver ARGS`` on a copy of ``base`` (each ``<n> <event> <path>...``),
    those under the folder ``root`` of the project only when it is given (e.g. ``.git``)."""
    traced = base.copy(dest)
    trace = dest.parent / f"{dest.name}.trace"
    where = traced.root / root if root else traced.root
    done = traced.modver(*args, env={"MODVER_FAULT_TRACE": str(trace), "MODVER_FAULT_ROOT": str(where)})
    ok(done, f"traced modver {' '.join(args)}")
    points = trace.read_text().splitlines()
    shutil.rmtree(dest)
    return points


def kind(point: str) -> str:
    """What a write point does, without its number and the names that vary (hex, random, stage)."""
    event, *paths = point.split()[1:]
    return " ".join([event, *("/".join("#" if _VARIES.search(c) else c for c in p.split("/")) for p in paths)])


def _spread(items: list[int], k: int) -> list[int]:
    """``k`` of the sorted ``items``, evenly spaced, the first and last kept."""
    if k >= len(items):
        return list(items)
    if k <= 1:
        return items[:k]
    return sorted({items[round(i * (len(items) - 1) / (k - 1))] for i in range(k)})


def choose(points: list[str], limit: int = MAX_POINTS) -> list[int]:
    """The write points (1-based) to kill at: all of them, or ``limit`` of them.

    When there are more than ``limit``, every kind of write (see :func:`kind`) is killed at its
    first and its last occurrence (the first and last point included), and the rest of the
    ``limit`` is spread evenly over the other points.
    """
    count = len(points)
    if count <= limit:
        return list(range(1, count + 1))
    seen: dict[str, list[int]] = {}
    for n, point in enumerate(points, 1):
        seen.setdefault(kind(point), []).append(n)
    chosen = {1, count} | {ns[0] for ns in seen.values()} | {ns[-1] for ns in seen.values()}
    if len(chosen) >= limit:
        return _spread(sorted(chosen), limit)
    rest = sorted(set(range(1, count + 1)) - chosen)
    return sorted(chosen | set(_spread(rest, limit - len(chosen))))


def kill_at(project: Project, args: list[str], n: int) -> int:
    """Run ``modver ARGS`` killing it just before its nth write point; its exit code (-9 if killed)."""
    done = project.modver(*args, env={"MODVER_FAULT_KILL_AT": str(n), "MODVER_FAULT_ROOT": str(project.root)})
    if done.returncode != -signal.SIGKILL:
        ok(done, f"modver {' '.join(args)} (to be killed at write point {n})")  # it finished first
    return done.returncode


def kill_after(project: Project, args: list[str], delay: float) -> int:
    """Start ``modver ARGS`` and SIGKILL it after ``delay`` seconds; its exit code (-9 if killed)."""
    proc = project.popen(*args)
    try:
        proc.wait(timeout=delay)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGKILL)
    out, err = proc.communicate(timeout=TIMEOUT)
    if proc.returncode != -signal.SIGKILL:
        ok(subprocess.CompletedProcess(args, proc.returncode, out, err), f"modver {' '.join(args)}")
    return proc.returncode


def fail_at(
    project: Project, args: list[str], n: int, errno_name: str, root: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``modver ARGS`` with its nth write point (counted under ``root``, default the project)
    failing with ``errno_name``; the completed process."""
    where = root if root is not None else project.root
    env = {"MODVER_FAULT_FAIL_AT": str(n), "MODVER_FAULT_ERRNO": errno_name, "MODVER_FAULT_ROOT": str(where)}
    return project.modver(*args, env=env)


def fail_limit(default: int) -> int:
    """How many write points of a command to fail: ``MODVER_FAULT_MAX_POINTS`` when it is set,
    else ``default`` (each costs a few commands; the suite's time is the sum)."""
    return int(os.environ.get("MODVER_FAULT_MAX_POINTS", default))


def failed_cleanly(done: subprocess.CompletedProcess[str], errno_name: str, what: str) -> bool:
    """Assert how a command whose write failed with ``errno_name`` ended: exit 1 with one ``Error:``
    line that names the failure, or exit 0 (a write it could do without); never a traceback or an
    "internal error". Whether it failed (exit 1)."""
    assert "Traceback" not in done.stderr and "internal error" not in done.stderr, f"{what}: {done.stderr}"
    if done.returncode == 0:
        return False
    assert done.returncode == 1, f"{what}: exit {done.returncode}: {done.stderr}"
    errors_printed = [line for line in done.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors_printed) == 1, f"{what}: one clear error expected: {done.stderr}"
    assert MESSAGES[errno_name] in errors_printed[0], f"{what}: {done.stderr}"
    return True


def git_whole(project: Project, what: str, git_dir: Path | None = None) -> None:
    """``git fsck --full`` passes and no ref names a missing object (in ``git_dir``, default the project)."""
    cwd = git_dir if git_dir is not None else project.root
    run = functools.partial(subprocess.run, cwd=cwd, capture_output=True, text=True, timeout=TIMEOUT, check=False)
    fsck = run(["git", "fsck", "--full"])
    assert fsck.returncode == 0 and not re.search(r"error|invalid|missing|broken|fatal", fsck.stderr), (
        f"{what}: git fsck: {fsck.stderr}"
    )
    refs = run(["git", "for-each-ref", "--format=%(objectname)"]).stdout
    missing = run(["git", "cat-file", "--batch-check"], input=refs).stdout
    assert " missing" not in missing, f"{what}: a ref names a missing object: {missing}"


def each_point(chosen: Sequence[int], check: Callable[[int, int], T], workers: int = 2) -> list[T]:
    """``check(i, n)`` for every chosen point ``n`` (``i``: its place, to rotate the errors),
    ``workers`` at a time: each works on a copy of its own, so they run side by side."""
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(check, range(len(chosen)), chosen))


def timed(project: Project, args: list[str]) -> float:
    """Wall time of one successful ``modver ARGS``."""
    start = time.perf_counter()
    ok(project.modver(*args), f"modver {' '.join(args)}")
    return time.perf_counter() - start


def leftovers(project: Project) -> dict[str, list[str]]:
    """Files in ``.git`` that a killed process may leave: locks, temporaries, an owner record."""
    git_dir = project.root / ".git"
    found: dict[str, list[str]] = {"locks": [], "modver temporaries": [], "git temporaries": []}
    for path in git_dir.rglob("*"):
        rel = path.relative_to(git_dir).as_posix()
        if path.name.endswith(".lock"):
            found["locks"].append(rel)
        elif (path.name.startswith("tmp") and "modver" in path.name) or rel == "modver/owner":
            found["modver temporaries"].append(rel)
        elif path.name.startswith("tmp_obj_"):
            found["git temporaries"].append(rel)
    return found


def check_survived(project: Project, next_args: list[str], expected: Versions | None) -> dict[str, Any]:
    """Everything that must hold after a kill (see the module docstring); what was seen."""
    seen: dict[str, Any] = {"left by the kill": leftovers(project)}
    ok(project.git("fsck", "--full"), "git fsck --full after the kill")
    ok(project.git("log", "--all", "--oneline"), "git log --all after the kill")
    project.versions()  # the store reads
    ok(project.git("gc", "-q"), "git gc after the kill")
    ok(project.modver(*next_args), f"the next modver {' '.join(next_args)}")
    ok(project.git("fsck", "--full"), "git fsck --full after the next command")
    ok(project.git("log", "--all", "--oneline"), "git log --all after the next command")
    left = leftovers(project)
    assert not left["locks"] and not left["modver temporaries"], left
    if expected is not None:
        assert project.versions() == expected
    return seen


def record(command: str, what: str, survived: int, tried: int, **details: Any) -> None:
    """Add counts to the JSON report at ``$MODVER_FAULT_REPORT`` (no-op when it is not set)."""
    path = os.environ.get(REPORT)
    if not path:
        return
    report = json.loads(Path(path).read_text()) if Path(path).exists() else {}
    report.setdefault(command, {})[what] = {"survived": survived, "tried": tried, **details}
    Path(path).write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")
