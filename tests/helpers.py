"""Test helpers: real git projects in temporary folders, and the CLI driven as a user would.

- :class:`GitProject`: a real git repository, driven with the git binary (tests only);
  :func:`build_project` makes one from a mapping of files (the ``make_project`` fixture);
- :data:`PIPELINE`, :data:`RUN_PIPELINE`: the files of the fixture pipelines;
- :func:`run_cli`: the one way tests run ``modver``. In this process (typer's CliRunner, with
  ``--project`` instead of changing the working directory) by default — fast, and safe because
  the CLI keeps no state between calls; in a real subprocess (``process=True``) when the test
  needs one: an environment variable, a signal, a kill, a terminal, a timeout, a real exit code.
  :func:`mv` / :func:`mv_json` (in process) and :func:`cli` (subprocess) are its short names.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

_runner = CliRunner()


class GitProject:
    """A real git repository in a temporary folder, driven with the git binary (tests only)."""

    def __init__(self, root: Path):
        self.root = root
        self.git("init", "-q", "-b", "main")

    def git(self, *args: str) -> str:
        done = subprocess.run(["git", *args], cwd=self.root, capture_output=True, text=True, check=True)
        return done.stdout.strip()

    def write(self, path: str, text: str) -> Path:
        target = self.root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
        return target

    def read(self, path: str) -> str:
        return (self.root / path).read_text(encoding="utf-8")

    def commit(self, message: str, *paths: str) -> str:
        self.git("add", *(paths or ("-A",)))
        self.git("commit", "-q", "--allow-empty", "-m", message)
        return self.git("rev-parse", "HEAD")

    def state(self) -> dict[str, object]:
        """Everything modver must never change: HEAD, branches, index bytes, tracked files."""
        index = self.root / ".git" / "index"
        return {
            "head": self.git("rev-parse", "--verify", "-q", "HEAD") if self.has_commits() else None,
            "symbolic": self.git("symbolic-ref", "-q", "HEAD"),
            "branches": self.git("for-each-ref", "refs/heads", "refs/tags"),
            "index": index.read_bytes() if index.exists() else None,
            "status": self.git("status", "--porcelain", "--untracked-files=no"),
        }

    def has_commits(self) -> bool:
        return (
            subprocess.run(
                ["git", "rev-parse", "-q", "--verify", "HEAD"], cwd=self.root, capture_output=True
            ).returncode
            == 0
        )


PIPELINE = {
    "manifest.yaml": """\
# demo manifest
data:
  raw: data/raw.txt
stages:
  prep:
    entry: pipe/prep.py:prep   # the first stage
    inputs: {raw: data.raw}
    params: {scale: 2}
  train:
    entry: pipe/train.py:train
    inputs: {data: prep}
""",
    "data/raw.txt": "1 2 3\n",
    "pipe/__init__.py": "",
    "pipe/util.py": """\
FACTOR = 3


def helper(x):
    return x * FACTOR


def unused():
    return 'never reached'
""",
    "pipe/prep.py": """\
from pipe.util import helper


def prep(raw, scale=1):
    '''Prepare the data.'''
    return [helper(v) * scale for v in raw]
""",
    "pipe/train.py": """\
def train(data):
    return sum(data) / len(data)
""",
}


RUN_PIPELINE = {
    "manifest.yaml": """\
data:
  raw: data/raw.txt
stages:
  prep:
    entry: pipe/prep.py:prep
    inputs: {raw: data.raw}
    params: {scale: 2}
  other:
    entry: pipe/other.py:other
    params: {x: 1}
  train:
    entry: pipe/train.py:train
    inputs: {data: prep}
""",
    "pipe/other.py": """\
from pipe.util import helper


def other(x):
    print("other says hello")
    return helper(x)
""",
    "pipe/prep.py": """\
from pipe.util import helper


def prep(raw, scale=1):
    with open(raw) as f:
        values = [int(v) for v in f.read().split()]
    return [helper(v) * scale for v in values]
""",
    "pipe/train.py": """\
import modver
from pipe.model import Model


def train(data):
    model = Model(sum(data) / len(data))
    modver.log_metrics(mean=model.mean)
    for step in range(3):
        modver.log_metrics(step=step, loss=1.0 / (step + 1))
    return model
""",
    "pipe/model.py": """\
class Model:
    def __init__(self, mean):
        self.mean = mean

    def predict(self, x):
        return x * self.mean
""",
}


@dataclass(frozen=True)
class Ran:
    """What one ``modver`` command did: its exit code and what it printed (either way it ran)."""

    args: tuple[str, ...]
    code: int
    stdout: str
    stderr: str

    @property
    def returncode(self) -> int:  # as subprocess.CompletedProcess
        return self.code

    @property
    def exit_code(self) -> int:  # as typer's Result
        return self.code

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


_NO_PROJECT = {"init", "demo"}  # commands without --project


def run_cli(root: Path, *args: str, code: int | None = 0, process: bool = False,
            env: Mapping[str, str] | None = None, timeout: float = 120) -> Ran:  # fmt: skip
    """Run ``modver ARGS`` on the project at ``root``; assert the exit code (None: any) and that
    nothing was an internal error.

    In this process by default; in a subprocess started in ``root`` with ``process=True`` (or
    when ``env`` is given: variables are read at start-up), killed after ``timeout`` seconds.
    """
    if process or env is not None:
        done = subprocess.run(
            [sys.executable, "-m", "modver", *args], cwd=root, capture_output=True, text=True, timeout=timeout,
            env=None if env is None else {**os.environ, **env},
        )  # fmt: skip
        ran = Ran(tuple(args), done.returncode, done.stdout, done.stderr)
    else:
        from modver.cli import app

        result = _runner.invoke(app, _with_project(root, list(args)))
        ran = Ran(tuple(args), result.exit_code, result.stdout, result.stderr)
    if code is not None:
        assert ran.code == code, (
            f"modver {' '.join(args)}: exit {ran.code}\nstdout:\n{ran.stdout}\nstderr:\n{ran.stderr}"
        )
    assert "internal error" not in ran.stderr, ran.stderr
    return ran


def _with_project(root: Path, argv: list[str]) -> list[str]:
    """``argv`` naming the project at ``root`` (``--project``, or init's path) as a subprocess's cwd would."""
    command = next((i for i, a in enumerate(argv) if not a.startswith("-")), None)
    if command is not None and argv[command] == "init" and len(argv) == command + 1:
        return [*argv, str(root)]
    if command is not None and argv[command] not in _NO_PROJECT and "--help" not in argv:
        return [*argv, "--project", str(root)]
    return argv


def cli(root: Path, *args: str, code: int | None = 0, env: dict[str, str] | None = None,
        timeout: float = 120) -> Ran:  # fmt: skip
    """``modver ARGS`` in a subprocess in ``root`` (:func:`run_cli` with ``process=True``)."""
    return run_cli(root, *args, code=code, process=True, env=env, timeout=timeout)


def mv(root: Path, *args: str, code: int = 0) -> Ran:
    """``modver ARGS`` in this process on the project at ``root`` (:func:`run_cli`)."""
    return run_cli(root, *args, code=code)


def mv_json(root: Path, *args: str) -> Any:
    """:func:`mv` with ``--json``, its output parsed."""
    return json.loads(mv(root, *args, "--json").stdout)


def build_project(root: Path, files: Mapping[str, str], *, message: str = "a project") -> GitProject:
    """A git repository at ``root`` holding ``files`` (path: text), committed once; ``.modver/``
    is ignored unless ``files`` has a .gitignore of its own."""
    root.mkdir(parents=True, exist_ok=True)
    project = GitProject(root)
    for path, text in {".gitignore": ".modver/\n", **files}.items():
        project.write(path, text)
    project.commit(message)
    return project
