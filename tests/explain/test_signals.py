"""SIGTERM (a batch system's stop) ends a blame cleanly: one line, exit 143, every process the
command started gone, its configurations recorded interrupted; blaming again finishes it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from tests.explain._project import calls, make_project, reset_calls
from tests.helpers import mv, mv_json
from tests.sweep._cluster import in_session

SLOW_MODEL = """\
import time
from pathlib import Path

from pipe.calls import note
from pipe.util import shift


def model(data, C):
    note("model")
    for folder in Path(__file__).resolve().parents:
        if (folder / "SLOW").exists():
            time.sleep(120)
    return shift(sum(data)) * C
"""


def _wait_for(ready, what: str, timeout: float = 120) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not ready():
        assert time.monotonic() < deadline, f"waited {timeout} s for {what}"
        time.sleep(0.05)


def test_sigterm_stops_a_blame_and_every_process_it_started(tmp_path):
    g = make_project(tmp_path)
    g.write("pipe/model.py", SLOW_MODEL)
    g.commit("a model that can be slow")
    a = mv_json(g.root, "run")
    g.write("pipe/util.py", "OFFSET = 10\n\n\ndef shift(x):\n    return x + OFFSET\n")
    g.write("manifest.yaml", g.read("manifest.yaml").replace("params: {C: 1}", "params: {C: 2}"))
    g.commit("offset 10, C 2")
    b = mv_json(g.root, "run")
    (g.root / "SLOW").write_text("")
    reset_calls(g)
    driver = subprocess.Popen(
        [sys.executable, "-m", "modver", "blame", "score", a["run"], b["run"], "--jobs", "1"], cwd=g.root,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
    )  # fmt: skip
    try:
        _wait_for(lambda: "model" in calls(g), "a model stage to start")
        os.kill(driver.pid, signal.SIGTERM)
        _, err = driver.communicate(timeout=120)
    finally:
        if driver.poll() is None:
            os.killpg(driver.pid, signal.SIGKILL)
    _wait_for(lambda: in_session(driver.pid) == [], "the session to empty", timeout=30)
    assert driver.returncode == 143, err
    lines = err.splitlines()
    assert lines[-2:] == ["Error: interrupted: the blame stopped", "run it again: what finished comes from the cache"]
    assert all(line.startswith("- ") for line in lines[:-2]), err  # progress lines, no traceback
    statuses = [r["status"] for r in mv_json(g.root, "runs") if r.get("blame")]
    assert statuses and set(statuses) <= {"interrupted", "failed"}
    (g.root / "SLOW").unlink()
    result = mv_json(g.root, "blame", "score", a["run"], b["run"], "--jobs", "1")
    assert [f["share"] for f in result["factors"]] == [15.0, 15.0]
    mv(g.root, "runs")
