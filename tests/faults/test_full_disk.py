"""A real full disk (issue 15, item 6): a project on a small tmpfs, written until the kernel says
ENOSPC, then ``modver index``, ``snapshot`` and ``run`` through the CLI, and a stage whose output is
bigger than the space left. Each is one clear error with exit 1 and no traceback; ``git fsck
--full`` passes, no ref names a missing object, nothing recorded before is lost; once space is
freed the same commands succeed. Needs root (``mount -t tmpfs``): skipped, with the reason,
where mounting is not permitted.
"""

from __future__ import annotations

import errno
import functools
import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.faults.harness import _IDENTITY, MESSAGES, Project, failed_cleanly, git_whole, ok, record

pytestmark = pytest.mark.slow

SIZE = "4m"  # the tmpfs: room for the project, its history and store, not for the big output
BIG = 6_000_000  # bytes of the output that does not fit

FILES = {
    ".gitignore": ".modver/\n",
    "manifest.yaml": (
        "stages:\n"
        "  load:\n    entry: pipe/load.py:load\n    params: {n: 4}\n"
        "  blob:\n    entry: pipe/blob.py:blob\n    inputs: {values: load}\n    params: {size: 10}\n"
    ),
    "pipe/__init__.py": "",
    "pipe/load.py": "def load(n):\n    return list(range(n))\n",
    "pipe/blob.py": (
        "import os\n\nimport modver\n\n\ndef blob(values, size):\n"
        "    modver.log_metrics(total=sum(values))\n    return os.urandom(size)  # incompressible\n"
    ),
}


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[Path]:
    """A tmpfs of :data:`SIZE` mounted at a fresh folder, unmounted afterwards."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root: the real full-disk test did not run")
    mount = tmp_path / "small"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={SIZE}", "tmpfs", str(mount)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({done.stderr.decode().strip()}): the real full-disk test did not run")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(folder: Path) -> Path:
    """Write a file in ``folder`` until the file system is full; the file (delete it to free space)."""
    filler = folder / "filler"
    chunk = b"\0" * 65536
    with open(filler, "wb") as handle:
        try:
            while True:
                handle.write(chunk)
                handle.flush()
        except OSError as exc:
            assert exc.errno == errno.ENOSPC, exc
    assert os.statvfs(folder).f_bavail == 0
    return filler


def build(root: Path) -> Project:
    root.mkdir()
    for path, text in FILES.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text(text)
    env = {**os.environ, "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1", **_IDENTITY}
    git = functools.partial(subprocess.run, cwd=root, env=env, check=True, capture_output=True)
    git(["git", "init", "-q", "-b", "main"])
    git(["git", "add", "-A"])
    git(["git", "commit", "-q", "-m", "a pipeline"])
    return Project(root)


def commit(project: Project, path: str, text: str) -> None:
    (project.root / path).write_text(text)
    env = {**os.environ, "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1", **_IDENTITY}
    for args in (["add", "-A"], ["commit", "-q", "-m", f"change {path}"]):
        subprocess.run(["git", *args], cwd=project.root, env=env, check=True, capture_output=True)


def runs(project: Project) -> dict[str, dict]:
    done = project.modver("runs", "--json")
    assert done.returncode == 0 and not done.stderr, done.stderr
    return {r["run"]: r for r in json.loads(done.stdout)}


def whole(project: Project, what: str, before: dict[str, dict], versions: object) -> None:
    """fsck, refs, versions, records and cache as they were: nothing recorded is lost."""
    from modver.store.cache import OutputCache

    git_whole(project, what)
    assert project.versions() == versions, what
    now = runs(project)
    assert {k: now[k] for k in before} == before, f"{what}: an earlier record changed"
    assert all(r["status"] not in ("running", "corrupt") for r in now.values()), (what, now)
    cache = OutputCache(project.root / ".modver" / "cache" / "outputs")
    assert {e.key: cache.problems(e.key) for e in cache.entries() if cache.problems(e.key)} == {}, what
    keys = {s["cache_key"] for r in before.values() for s in r["stages"].values()}
    assert all(cache.verify(k) for k in keys), f"{what}: an earlier run's cached output is lost"


def test_a_full_disk_is_one_clear_error_and_loses_nothing(tmpfs: Path) -> None:
    project = build(tmpfs / "project")
    ok(project.modver("index"), "index")
    ok(project.modver("run"), "the first run")
    commit(project, "pipe/load.py", "def load(n):\n    return list(range(n, 0, -1))\n")  # for index
    (project.root / "pipe" / "blob.py").write_text(FILES["pipe/blob.py"].replace("sum(values)", "max(values)"))
    before, versions = runs(project), project.versions()
    seen: dict[str, str] = {}

    def on_a_full_disk(*args: str) -> None:
        what = f"modver {' '.join(args)} on a full disk"
        done = project.modver(*args)
        assert done.returncode == 1, f"{what}: {done.returncode} {done.stdout} {done.stderr}"
        assert failed_cleanly(done, "ENOSPC", what)
        seen[" ".join(args)] = next(line for line in done.stderr.splitlines() if line.startswith("Error:"))
        whole(project, what, before, versions)

    filler = fill(tmpfs)
    on_a_full_disk("index")  # a pack of the new commit's versions
    on_a_full_disk("snapshot")  # loose objects of the working tree's
    on_a_full_disk("run")  # it snapshots the working tree first
    filler.unlink()
    ok(project.modver("snapshot"), "snapshot with space again")
    versions = project.versions()
    filler = fill(tmpfs)
    on_a_full_disk("run", "--set", "load.n=5")  # every version registered: the store's writes fail
    filler.unlink()

    # space again, but not for a stage's 6 MB output: the run fails alone, its record says why
    done = project.modver("run", "--set", f"blob.size={BIG}")
    assert failed_cleanly(done, "ENOSPC", "a run whose output does not fit") and done.returncode == 1
    seen["run (big output)"] = next(line for line in done.stderr.splitlines() if line.startswith("Error:"))
    assert "blob" in seen["run (big output)"], done.stderr
    (failed,) = [r for k, r in runs(project).items() if k not in before]
    assert failed["status"] == "failed" and MESSAGES["ENOSPC"] in failed["error"]["message"], failed
    assert failed["stages"]["load"]["status"] == "succeeded"  # what it did before is recorded
    whole(project, "the run whose output did not fit", before, versions)

    for args in (["index"], ["snapshot"], ["run"]):
        ok(project.modver(*args), f"modver {' '.join(args)} with space again")
    ok(project.modver("verify"), "verify")
    git_whole(project, "after the full disk")
    assert len(project.versions()["load"]) == 2
    record("full disk (tmpfs)", "ENOSPC from the kernel", survived=len(seen), tried=len(seen), errors=seen)
