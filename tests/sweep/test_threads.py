"""Stages run at once in the threads of one worker process (issue 15, item 18): a running Dask
scheduler with one `dask worker ADDRESS --nthreads 2`, driven through the real CLI. Each stage's
output lands in its own run's log, a script stage sees its own command line, and the worker's
streams are put back afterwards."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from modver.store.runstore import RunStore
from tests.helpers import cli

REPO = Path(__file__).resolve().parents[2]

THREADS_PIPELINE = {
    "manifest.yaml": """\
stages:
  talk:
    entry: pipe/talk.py:talk
    params: {name: a, lines: 30}
  script:
    entry: pipe/script.py
    params: {name: a}
""",
    "pipe/__init__.py": "",
    "pipe/talk.py": """\
import os
import time

HERE = os.path.dirname(os.path.dirname(__file__))


def talk(name, lines):
    # both points' stages wait for each other, so they print at the same time in one process
    os.makedirs(os.path.join(HERE, "barrier"), exist_ok=True)
    open(os.path.join(HERE, "barrier", name), "w").close()
    deadline = time.time() + 60
    while len(os.listdir(os.path.join(HERE, "barrier"))) < 2 and time.time() < deadline:
        time.sleep(0.01)
    for i in range(lines):
        print(f"{name} says {i}")
        time.sleep(0.005)
    return name
""",
    "pipe/script.py": """\
import sys
import time

print("argv", sys.argv[1:])
time.sleep(0.3)
print("argv", sys.argv[1:])
""",
}


@pytest.fixture
def two_threads(tmp_path):
    """A Dask scheduler on loopback and one worker process of two threads: the scheduler's address."""
    info = tmp_path / "scheduler.json"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    started = [subprocess.Popen(
        [sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1", "--port", "0",
         "--no-dashboard", "--scheduler-file", str(info)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )]  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while not info.exists() or not info.read_text():
            assert time.monotonic() < deadline, "the Dask scheduler did not start"
            time.sleep(0.1)
        address = json.loads(info.read_text())["address"]
        started.append(subprocess.Popen(
            [sys.executable, "-m", "distributed.cli.dask_worker", address, "--nthreads", "2", "--no-dashboard"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
        ))  # fmt: skip
        yield address
    finally:
        for process in reversed(started):
            process.terminate()
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@pytest.fixture
def threads_project(git_project):
    for path, text in THREADS_PIPELINE.items():
        git_project.write(path, text)
    git_project.write(".gitignore", ".modver/\nbarrier/\n")
    git_project.commit("stages that print")
    return git_project


def _stream_types(address: str) -> list[str]:
    from distributed import Client

    def types() -> str:
        return f"{type(sys.stdout).__name__} {type(sys.stderr).__name__}"

    with Client(address, timeout="30s") as client:
        client.wait_for_workers(1, timeout=60)
        return sorted(client.run(types).values())


def test_stages_in_threads_of_one_worker_keep_their_output_and_argv_apart(threads_project, two_threads):
    root = threads_project.root
    before = _stream_types(two_threads)
    for attempt in range(2):  # the second sweep runs in the same worker, after the first's captures
        if (root / "barrier").exists():
            for name in os.listdir(root / "barrier"):
                os.unlink(root / "barrier" / name)
        record = json.loads(cli(root, "sweep", "--set", f"talk.name=a{attempt},b{attempt}",
                                "--set", f"script.name=a{attempt},b{attempt}", "--zip", "--scheduler", two_threads,
                                "--json", timeout=300).stdout)  # fmt: skip
        assert record["status"] == "succeeded", record
        runs = RunStore(root / ".modver" / "runs")
        for point in record["points"]:
            name = point["params"]["talk.name"]
            talk = runs.log_path(point["run"], "talk", "stdout").read_text().splitlines()
            assert talk == [f"{name} says {i}" for i in range(30)], (attempt, name, talk)
            script = runs.log_path(point["run"], "script", "stdout").read_text().splitlines()
            assert script == [f"argv ['--name={name}']"] * 2, (attempt, name, script)
    assert _stream_types(two_threads) == before  # sys.stdout and sys.stderr are the worker's own again
