"""Fixtures of the fuzz suite: one real project built per session, copied per module.

``MODVER_FUZZ_REPORT=FILE`` writes what the suite tried, by kind, as JSON when it ends;
``MODVER_FUZZ_EXAMPLES=N`` tries N examples per test instead of the profile's (40 in CI):

    MODVER_FUZZ_REPORT=fuzz.json CI=1 python -m pytest tests/fuzz -q
    MODVER_FUZZ_REPORT=fuzz.json MODVER_FUZZ_EXAMPLES=1000 python -m pytest tests/fuzz -q
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fuzz._harness import COMMANDS, COUNTS, SLOWEST, Sandbox, git
from tests.helpers import PIPELINE, RUN_PIPELINE, GitProject


def _build(root: Path) -> Sandbox:
    """Three commits, every version indexed, a tag, and runs: succeeded, cached, failed, with
    numbers, lists and mappings as params."""
    from modver.cli import app
    from tests.fuzz._harness import _runner

    def mv(*args: str, code: int = 0) -> str:
        old = Path.cwd()
        os.chdir(root)
        try:
            result = _runner.invoke(app, list(args))
        finally:
            os.chdir(old)
        assert result.exit_code == code, result.output
        return result.stdout

    p = GitProject(root)
    for path, text in {**PIPELINE, **RUN_PIPELINE}.items():
        p.write(path, text)
    p.write(".gitignore", ".modver/\n")
    p.commit("a pipeline of three stages")
    p.write("pipe/util.py", p.read("pipe/util.py").replace("FACTOR = 3", "FACTOR = 4"))
    p.commit("bigger factor")
    p.write("pipe/train.py", p.read("pipe/train.py").replace("sum(data) / len(data)", "max(data)"))
    p.commit("max instead of mean")
    mv("index")
    mv("tag", "prep@v1", "first")
    mv("run")
    mv("run")  # every stage cached
    mv("run", "--set", "prep.scale=3")
    mv("run", "--set", "other.x=[1, 2.5]")
    for mapping in ("{a: 1}", "{b: [2]}"):  # other(x) cannot multiply a mapping: failed runs
        mv("run", "--set", f"other.x={mapping}", code=1)
    good = p.read("pipe/train.py")
    p.write("pipe/train.py", "def train(data):\n    raise ValueError('bad data')\n")
    mv("run", code=1)
    p.write("pipe/train.py", good)
    runs = [r["run"] for r in json.loads(mv("runs", "--json"))]
    fingerprints = {
        s: [v["fingerprint"] for v in json.loads(mv("log", s, "--json"))] for s in ("prep", "other", "train")
    }
    assert git(root, "status", "--porcelain").strip() == ""
    return Sandbox(root, runs, fingerprints)


@pytest.fixture(scope="session")
def _template(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    base = tmp_path_factory.mktemp("fuzz-template")
    with pytest.MonkeyPatch.context() as env:  # what tests/conftest.py's clean_env sets per test
        for key in list(os.environ):
            if key.startswith("GIT_") or key in {"MODVER_DEBUG", "FORCE_COLOR"}:
                env.delenv(key)
        env.setenv("HOME", str(base / "home"))
        env.setenv("GIT_CONFIG_NOSYSTEM", "1")
        for who in ("AUTHOR", "COMMITTER"):
            env.setenv(f"GIT_{who}_NAME", "Test Author")
            env.setenv(f"GIT_{who}_EMAIL", "author@example.com")
        env.setenv("NO_COLOR", "1")
        (base / "proj").mkdir()
        template = _build(base / "proj")
    yield template
    _write_report()


@pytest.fixture(scope="module")
def sandbox(_template: Sandbox, tmp_path_factory: pytest.TempPathFactory) -> Sandbox:
    """This module's own copy of the project. Its examples share it: commands may write only
    in .modver/ and refs/modver/ (which the checks allow), and the one file a test writes for a
    command (fuzz.yaml, pin.yaml) is removed after it."""
    return _template.copy(tmp_path_factory.mktemp("fuzz"))


def _write_report() -> None:
    path = os.environ.get("MODVER_FUZZ_REPORT")
    if not path:
        return
    report = {
        "inputs": dict(sorted(COUNTS.items())),
        "commands": dict(sorted(COMMANDS.items())),
        "slowest_seconds": {k: round(v, 3) for k, v in sorted(SLOWEST.items())},
        "profile": "ci" if os.environ.get("CI") else os.environ.get("HYPOTHESIS_PROFILE", "dev"),
    }
    Path(path).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
