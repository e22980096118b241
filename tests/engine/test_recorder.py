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

from modver.engine.recorder import Recorder, mark_dead, python_info
from modver.record import ErrorInfo, RunRecord, RunStatus, StageRecord, StageStatus
from modver.store.runstore import RunStore, new_run_id, now_iso


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


def test_each_write_numbers_versions_as_they_are_and_waits_for_a_renumbering(tmp_path: Path, runs: RunStore):
    """Issue 15, item 2: a record's version numbers are derived from its fingerprints when it is
    written, under the numbering lock a pull holds while it renumbers and repairs records."""
    import threading

    from modver._git import GitRepo
    from modver.store.history import History
    from tests.store.test_history import SRC, DictTree, closure, fp, git

    (tmp_path / "p").mkdir()
    git(tmp_path / "p", "init", "-q", "-b", "main")
    history = History(GitRepo.discover(tmp_path / "p"))
    ref = "refs/modver/stages/model"
    for n in (1, 3):  # the remote's model v1, v2
        v, _ = history.register("model", closure(n), DictTree(dict(SRC)), origin=None)
    theirs = v.commit
    assert history.repo.set_ref_if_equals(ref, theirs, history.versions("model")[0].commit)
    ours, _ = history.register("model", closure(2), DictTree(dict(SRC)), origin=None)  # here: v2, fp(2), this run's
    run_id = new_run_id()
    stages = {"model": StageRecord(StageStatus.PENDING, "k", fingerprint=fp(2), version="v2")}
    record = RunRecord(run_id, RunStatus.RUNNING, now_iso(), stages=stages, manifest_content={
        "stages": {"model": {"entry": "pipeline/pre.py:preprocess", "version": "v2"}}
    })  # fmt: skip
    recorder = Recorder.start(runs, record, started=time.perf_counter(), history=history)
    write = threading.Thread(target=recorder.stage, args=("model",), kwargs={"status": StageStatus.SUCCEEDED})
    with history.numbering(shared=False):  # a pull renumbers: its refs move, then it repairs the records
        write.start()
        write.join(0.3)
        assert write.is_alive()  # the run's write waits for the pull to finish
        (renumbered,) = history.restack("model", theirs, [ours])  # as pull does: ours after theirs, as v3
        assert history.repo.set_ref_if_equals(ref, ours.commit, renumbered.commit)
        assert runs.load(run_id).stages["model"].status is StageStatus.PENDING  # nothing written meanwhile
    write.join(30)
    written = runs.load(run_id)
    assert written.stages["model"].status is StageStatus.SUCCEEDED
    assert written.versions == {"model": "v3"} and written.fingerprints == {"model": fp(2)}
    assert written.manifest_content["stages"]["model"]["version"] == "v3"
    assert recorder.finish(RunStatus.SUCCEEDED, planned=0.0).versions == {"model": "v3"}
