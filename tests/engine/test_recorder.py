"""The recorder: a run's record from start to end, whatever the end; a dead run reads as died."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest

from modver.record import ErrorInfo, RunRecord, RunStatus, StageRecord, StageStatus
from modver.recorder import Recorder, mark_dead, python_info
from modver.runstore import RunStore, new_run_id, now_iso


@pytest.fixture
def runs(tmp_path: Path) -> RunStore:
    return RunStore(tmp_path / "runs")


def first(run_id: str) -> RunRecord:
    stages = {n: StageRecord(StageStatus.PENDING, f"mv1:{n}") for n in ("a", "b", "c")}
    return RunRecord(run_id, RunStatus.RUNNING, now_iso(), host=socket.gethostname(), pid=os.getpid(), stages=stages)


def test_a_run_that_succeeds(runs: RunStore):
    run_id = new_run_id()
    recorder = Recorder.start(runs, first(run_id), started=time.perf_counter(), logs={"a": ("imported\n", "")})
    assert runs.load(run_id).status is RunStatus.RUNNING and runs.read_log(run_id, "a", "stdout") == "imported\n"
    recorder.stage("a", status=StageStatus.RUNNING)
    assert runs.load(run_id).stages["a"].status is StageStatus.RUNNING  # written as it starts
    event = {"name": "loss", "value": 0.5, "step": 1, "stage": "a"}
    recorder.stage("a", status=StageStatus.SUCCEEDED, duration=0.2, timings={"call": 0.2}, events=(event,))
    recorder.stage("b", status=StageStatus.CACHED, events=({"name": "loss", "value": 0.25, "step": 2, "stage": "b"},))
    recorder.stage("c", status=StageStatus.SUCCEEDED, timings={"call": 0.1})
    done = recorder.finish(RunStatus.SUCCEEDED, planned=0.05)
    assert runs.load(run_id) == done
    assert done.status is RunStatus.SUCCEEDED and done.finished is not None and done.duration is not None
    assert done.metrics == {"loss": 0.25} and [p["value"] for p in done.metric_series["loss"]] == [0.5, 0.25]
    assert done.timings is not None and done.timings["plan"] == 0.05 and done.timings["stages"] == pytest.approx(0.3)
    assert done.cached == {"a": False, "b": True, "c": False}


@pytest.mark.parametrize(("end", "running_becomes", "pending_becomes"), [
    (RunStatus.INTERRUPTED, StageStatus.INTERRUPTED, StageStatus.SKIPPED),
    (RunStatus.FAILED, StageStatus.INTERRUPTED, StageStatus.SKIPPED),
])  # fmt: skip
def test_a_run_that_ends_early(runs: RunStore, end, running_becomes, pending_becomes):
    run_id = new_run_id()
    recorder = Recorder.start(runs, first(run_id), started=time.perf_counter())
    recorder.stage("a", status=StageStatus.SUCCEEDED)
    recorder.stage("b", status=StageStatus.RUNNING)
    done = recorder.finish(end, planned=0.0, error=ErrorInfo("KeyboardInterrupt", "interrupted"))
    assert [s.status for s in done.stages.values()] == [StageStatus.SUCCEEDED, running_becomes, pending_becomes]
    assert runs.load(run_id).error == ErrorInfo("KeyboardInterrupt", "interrupted")


def test_a_running_record_whose_process_is_gone_reads_as_died(runs: RunStore):
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    record = replace(first(new_run_id()), pid=int(gone.stdout))
    assert mark_dead(record).status is RunStatus.DIED
    assert mark_dead(replace(record, pid=os.getpid())).status is RunStatus.RUNNING  # alive
    assert mark_dead(replace(record, host="elsewhere")).status is RunStatus.RUNNING  # not this host's to judge
    assert mark_dead(replace(record, status=RunStatus.SUCCEEDED)).status is RunStatus.SUCCEEDED


def test_python_info_names_the_installed_packages():
    python, packages = python_info()
    assert python.count(".") == 2 and "dulwich" in packages and "pytest" in packages
