"""Test helpers: real git projects in temporary folders, and the CLI driven as a user would.

- :class:`GitProject`: a real git repository, driven with the git binary (tests only);
- :data:`PIPELINE`, :data:`RUN_PIPELINE`: the files of the fixture pipelines;
- :func:`cli`: the real ``modver`` in a subprocess; :func:`mv` / :func:`mv_json`: the CLI in this
  process (typer's CliRunner), with ``--project`` instead of changing the working directory.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from typer.testing import CliRunner, Result

from modver.cli import app

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


def cli(root: Path, *args: str, code: int | None = 0, env: dict[str, str] | None = None,
        timeout: float = 120) -> subprocess.CompletedProcess[str]:  # fmt: skip
    """Run ``modver ARGS`` in a subprocess in ``root``; assert the exit code (None: any)."""
    import os

    done = subprocess.run(
        [sys.executable, "-m", "modver", *args], cwd=root, capture_output=True, text=True, timeout=timeout,
        env=None if env is None else {**os.environ, **env},
    )  # fmt: skip
    if code is not None:
        assert done.returncode == code, f"exit {done.returncode}\nstdout:\n{done.stdout}\nstderr:\n{done.stderr}"
    assert "internal error" not in done.stderr, done.stderr
    return done


_NO_PROJECT = {"init", "demo"}  # commands without --project


def mv(root: Path, *args: str, code: int = 0) -> Result:
    """Invoke the CLI in this process on the project at ``root``; assert the exit code."""
    argv = list(args)
    command = next((i for i, a in enumerate(argv) if not a.startswith("-")), None)
    if command is not None and argv[command] == "init" and len(argv) == command + 1:
        argv.append(str(root))
    elif command is not None and argv[command] not in _NO_PROJECT and "--help" not in argv:
        argv += ["--project", str(root)]
    result = _runner.invoke(app, argv)
    assert result.exit_code == code, f"exit {result.exit_code}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    return result


def mv_json(root: Path, *args: str) -> Any:
    """:func:`mv` with ``--json``, its output parsed."""
    return json.loads(mv(root, *args, "--json").stdout)
