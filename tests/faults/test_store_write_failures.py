"""Make one write of ``pin``, ``run``, ``sweep``, ``gc``, ``push`` and ``pull`` fail anywhere it
writes — the git repository, ``.modver/`` (cache, runs, sweeps, materialized versions, indexes,
tmp), the manifest, and for push and pull the remote and the storage folder — with ENOSPC, EIO
or EROFS in turn (issue 15, item 6).

After each: exit 1 with one ``Error:`` line naming the failure and no traceback (or exit 0 where
the write was one the command can do without, counted apart), ``git fsck --full`` passes, no ref
names a missing object, ``modver verify`` passes, every record reads (none "running", none
corrupt) and every cache entry is whole, nothing recorded before is lost, and the next command
succeeds with the undisturbed result. Counts go to ``$MODVER_FAULT_REPORT`` (see harness.py).
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest

from tests.faults.harness import (
    _IDENTITY,
    ERRNOS,
    Project,
    build_history_project,
    choose,
    each_point,
    fail_at,
    fail_limit,
    failed_cleanly,
    git_whole,
    kind,
    ok,
    record,
    write_points,
)
from tests.faults.test_pin_run_faults import PIPELINE, untracked_or_changed
from tests.faults.test_share_faults import assert_everything_arrived, build_team, clone, trace

pytestmark = pytest.mark.slow

# Points per command (MODVER_FAULT_MAX_POINTS overrides them all): every kind of write at its first
# and last occurrence where they fit, the rest spread evenly. Each point costs about five commands;
# these keep the whole file near three minutes on two cores.
PIN_POINTS = fail_limit(10)
RUN_POINTS = fail_limit(16)
SWEEP_POINTS = fail_limit(6)  # a sweep starts a local Dask cluster: seconds each
GC_POINTS = fail_limit(10)
SHARE_POINTS = fail_limit(10)  # each point clones and pulls to check what arrived


def build_pipeline(root: Path) -> Project:
    """The three-stage pipeline of test_pin_run_faults.py, committed, never run."""
    root.mkdir(parents=True)
    for path, text in {**PIPELINE, ".gitignore": ".modver/\n"}.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text(text)
    env = {**os.environ, "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1", **_IDENTITY}
    git = functools.partial(subprocess.run, cwd=root, env=env, check=True, capture_output=True)
    git(["git", "init", "-q", "-b", "main"])
    git(["git", "add", "-A"])
    git(["git", "commit", "-q", "-m", "a pipeline"])
    return Project(root)


def as_json(done: subprocess.CompletedProcess[str], what: str) -> Any:
    """A ``--json`` command's output: it exited 0 and said nothing of errors on stderr."""
    ok(subprocess.CompletedProcess(done.args, done.returncode, "", done.stderr), what)
    return json.loads(done.stdout)


def runs_read(project: Project, what: str) -> dict[str, dict[str, Any]]:
    """run id -> record of ``modver runs --json``; none reads "running" or "corrupt"."""
    runs = {r["run"]: r for r in as_json(project.modver("runs", "--json"), f"modver runs after {what}")}
    assert all(r["status"] not in ("running", "corrupt") for r in runs.values()), (what, runs)
    return runs


def cache_whole(project: Project, what: str, keys: Iterable[str] = ()) -> None:
    """Every cache entry is whole (a failed write left none torn), ``keys`` among them."""
    from modver.store.cache import OutputCache

    cache = OutputCache(project.root / ".modver" / "cache" / "outputs")
    damaged = {e.key: cache.problems(e.key) for e in cache.entries() if cache.problems(e.key)}
    assert damaged == {}, (what, damaged)
    lost = {key for key in keys if cache.problems(key)}
    assert not lost, f"{what}: cached outputs of an earlier run lost: {lost}"


def recorded_keys(run: dict[str, Any]) -> set[str]:
    return {s["cache_key"] for s in run["stages"].values() if s["cache_key"]}


def tally(command: str, points: list[str], traced: Path, chosen: list[int], failed: list[bool], **details: Any) -> None:
    """Record the counts (each chosen point passed its checks, or an assertion stopped the test),
    with the kinds of write that the command could do without (it exited 0); ``traced``: the
    folder the points were traced in."""
    optional = sorted({kind(points[n - 1].replace(f"{traced}/", "")) for n, f in zip(chosen, failed) if not f})
    record(
        command, "failed writes (whole project)", survived=len(chosen), tried=len(chosen), points=len(points),
        exited_1=sum(failed), exited_0=len(chosen) - sum(failed), optional=optional, **details,
    )  # fmt: skip
    assert any(failed), f"{command}: no failed write was an error"


# -- pin ---------------------------------------------------------------------------------------


def test_pin_fails_cleanly_at_each_write(tmp_path: Path) -> None:
    base = build_history_project(tmp_path / "history", commits=6)
    ok(base.modver("index"), "modver index")
    args = ["pin", "s0@v2"]
    before = (base.root / "manifest.yaml").read_text()
    clean = base.copy(tmp_path / "clean")
    ok(clean.modver(*args), "modver pin")
    after, expected = (clean.root / "manifest.yaml").read_text(), clean.versions()
    points = write_points(base, args, tmp_path / "traced")
    chosen = choose(points, PIN_POINTS)

    def check(i: int, n: int) -> bool:
        name, project = ERRNOS[i % len(ERRNOS)], base.copy(tmp_path / f"fail-{n}")
        what = f"modver pin with write {n} failing ({name}): {points[n - 1]}"
        failed = failed_cleanly(fail_at(project, args, n, name), name, what)
        assert (project.root / "manifest.yaml").read_text() in (before, after), what
        assert untracked_or_changed(project) in ([], [" M manifest.yaml"]), what  # no temporary file
        git_whole(project, what)
        ok(project.modver("verify"), f"verify after {what}")
        ok(project.modver(*args), f"the pin after {what}")
        assert (project.root / "manifest.yaml").read_text() == after, what
        assert project.versions() == expected, what
        shutil.rmtree(project.root)
        return failed

    tally("modver pin", points, tmp_path / "traced", chosen, each_point(chosen, check))


# -- run ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ran(tmp_path_factory: pytest.TempPathFactory) -> Project:
    """The pipeline run once (a record and outputs that must survive), then its last stage edited
    in the working tree: the next run snapshots it, materializes it and runs it."""
    project = build_pipeline(tmp_path_factory.mktemp("faults") / "pipeline")
    ok(project.modver("run"), "modver run")
    score = project.root / "pipe" / "score.py"
    score.write_text(score.read_text().replace("total = sum(values)", "total = sum(values) + 1"))
    return project


def test_run_fails_cleanly_at_each_write(ran: Project, tmp_path: Path) -> None:
    args = ["run"]
    [first] = runs_read(ran, "the first run").values()
    clean = ran.copy(tmp_path / "clean")
    metrics = as_json(clean.modver(*args, "--json"), "modver run")["metrics"]
    points = write_points(ran, args, tmp_path / "traced")
    chosen = choose(points, RUN_POINTS)

    def check(i: int, n: int) -> bool:
        name, project = ERRNOS[i % len(ERRNOS)], ran.copy(tmp_path / f"fail-{n}")
        what = f"modver run with write {n} failing ({name}): {points[n - 1]}"
        failed = failed_cleanly(fail_at(project, args, n, name), name, what)
        runs = runs_read(project, what)
        assert runs[first["run"]] == first, f"{what}: the earlier run's record changed"
        cache_whole(project, what, recorded_keys(first))
        git_whole(project, what)
        ok(project.modver("verify"), f"verify after {what}")
        again = as_json(project.modver(*args, "--json"), f"the run after {what}")
        assert again["status"] == "succeeded" and again["metrics"] == metrics, what
        cache_whole(project, f"the run after {what}")
        assert untracked_or_changed(project) == [" M pipe/score.py"], what
        shutil.rmtree(project.root)
        return failed

    tally("modver run", points, tmp_path / "traced", chosen, each_point(chosen, check))


# -- sweep -------------------------------------------------------------------------------------


def test_sweep_fails_cleanly_at_each_write(ran: Project, tmp_path: Path) -> None:
    """The driver's writes (records, the sweep's record, locks, the plan's versions and cache
    lookups; the Dask workers' own writes are not counted: they run no fault switch)."""
    args = ["sweep", "--set", "scale.factor=5,6", "--jobs", "1"]
    [first] = runs_read(ran, "the first run").values()
    clean = ran.copy(tmp_path / "clean")
    expected = sorted(p["params"]["scale.factor"] for p in as_json(clean.modver(*args, "--json"), "sweep")["points"])
    totals = {
        r["params"]["scale"]["factor"]: r["metrics"] for r in runs_read(clean, "sweep").values() if r.get("sweep")
    }
    points = write_points(ran, args, tmp_path / "traced")
    chosen = choose(points, SWEEP_POINTS)

    def check(i: int, n: int) -> bool:
        name, project = ERRNOS[i % len(ERRNOS)], ran.copy(tmp_path / f"fail-{n}")
        what = f"modver sweep with write {n} failing ({name}): {points[n - 1]}"
        failed = failed_cleanly(fail_at(project, args, n, name), name, what)
        runs = runs_read(project, what)
        assert runs[first["run"]] == first, f"{what}: the earlier run's record changed"
        as_json(project.modver("sweeps", "--json"), f"modver sweeps after {what}")
        cache_whole(project, what, recorded_keys(first))
        git_whole(project, what)
        ok(project.modver("verify"), f"verify after {what}")
        again = as_json(project.modver(*args, "--json"), f"the sweep after {what}")
        assert again["status"] == "succeeded", what
        assert sorted(p["params"]["scale.factor"] for p in again["points"]) == expected, what
        swept = {r["run"]: r for r in runs_read(project, what).values() if r.get("sweep") == again["sweep"]}
        assert {r["params"]["scale"]["factor"]: r["metrics"] for r in swept.values()} == totals, what
        cache_whole(project, f"the sweep after {what}")
        shutil.rmtree(project.root)
        return failed

    tally(
        "modver sweep --jobs 1", points, tmp_path / "traced", chosen, each_point(chosen, check), workers_counted=False
    )


# -- gc ----------------------------------------------------------------------------------------


def store_listing(project: Project) -> dict[str, list[str]]:
    """What the store holds: run records, cached outputs, materialized versions (no temporaries)."""
    store = project.root / ".modver"
    return {
        part: sorted(p.name for p in (store / part).iterdir() if not p.name.startswith("."))
        for part in ("runs", "cache/outputs", "versions")
    }


def test_gc_fails_cleanly_at_each_write(ran: Project, tmp_path: Path) -> None:
    base = ran.copy(tmp_path / "base")
    for factor in (4, 5):
        ok(base.modver("run", "--set", f"scale.factor={factor}"), "modver run")
    args = ["gc", "--keep-last", "1", "--remove-records"]
    before = runs_read(base, "runs")
    latest = before[max(before)]  # run ids sort by start time
    clean = base.copy(tmp_path / "clean")
    ok(clean.modver(*args), "modver gc")
    expected = store_listing(clean)
    assert expected != store_listing(base)
    points = write_points(base, args, tmp_path / "traced")
    chosen = choose(points, GC_POINTS)

    def check(i: int, n: int) -> bool:
        name, project = ERRNOS[i % len(ERRNOS)], base.copy(tmp_path / f"fail-{n}")
        what = f"modver gc with write {n} failing ({name}): {points[n - 1]}"
        failed = failed_cleanly(fail_at(project, args, n, name), name, what)
        runs = runs_read(project, what)
        assert runs[latest["run"]] == latest, f"{what}: the kept run's record changed"
        cache_whole(project, what, recorded_keys(latest))
        git_whole(project, what)
        ok(project.modver("verify"), f"verify after {what}")
        ok(project.modver(*args), f"the gc after {what}")
        assert store_listing(project) == expected, what
        ok(project.modver("run"), f"a run after {what}")  # served from what gc kept
        shutil.rmtree(project.root)
        return failed

    tally("modver gc --keep-last 1 --remove-records", points, tmp_path / "traced", chosen, each_point(chosen, check))


# -- push and pull through a storage folder ------------------------------------------------------


def test_push_to_a_storage_folder_fails_cleanly_at_each_write(tmp_path: Path) -> None:
    """Every write of the push counts: the clone's, the remote's and the storage folder's."""
    base = build_team(tmp_path / "base")
    points = trace(base, "alice", ["push"], tmp_path / "traced")
    assert any("/shared/" in p for p in points) and any("/remote.git/" in p for p in points)
    chosen = choose(points, SHARE_POINTS)

    def check(i: int, n: int) -> bool:
        name = ERRNOS[i % len(ERRNOS)]
        team = Path(shutil.copytree(base, tmp_path / f"fail-{n}", symlinks=True))
        alice = Project(team / "alice")
        what = f"modver push with write {n} failing ({name}): {points[n - 1]}"
        failed = failed_cleanly(fail_at(alice, ["push"], n, name, root=team), name, what)
        git_whole(alice, what)
        git_whole(alice, what, team / "remote.git")
        ok(alice.modver("verify"), f"verify after {what}")
        ok(alice.modver("push"), f"the push after {what}")
        assert_everything_arrived(team, "bob")
        shutil.rmtree(team)
        return failed

    tally("modver push (remote and storage folder)", points, tmp_path / "traced", chosen, each_point(chosen, check))


def test_pull_from_a_storage_folder_fails_cleanly_at_each_write(tmp_path: Path) -> None:
    """Bob's first ``pull --outputs``: versions from the remote, runs and outputs from the storage."""
    base = build_team(tmp_path / "base")
    ok(Project(base / "alice").modver("push"), "push")
    clone(base, "bob")
    args = ["pull", "--outputs"]
    alice = Project(base / "alice")
    runs = sorted(runs_read(alice, "alice's runs"))
    outputs = {key for r in runs_read(alice, "alice's runs").values() for key in recorded_keys(r)}
    versions = as_json(alice.modver("log", "--json"), "log")
    points = trace(base, "bob", args, tmp_path / "traced")
    chosen = choose(points, SHARE_POINTS)

    def check(i: int, n: int) -> bool:
        name = ERRNOS[i % len(ERRNOS)]
        team = Path(shutil.copytree(base, tmp_path / f"fail-{n}", symlinks=True))
        bob = Project(team / "bob")
        what = f"modver pull --outputs with write {n} failing ({name}): {points[n - 1]}"
        failed = failed_cleanly(fail_at(bob, args, n, name, root=team), name, what)
        runs_read(bob, what)
        cache_whole(bob, what)
        git_whole(bob, what)
        ok(bob.modver("verify"), f"verify after {what}")
        done = as_json(bob.modver(*args, "--json"), f"the pull after {what}")
        assert not done["storage"]["damaged"], what
        assert sorted(runs_read(bob, what)) == runs, what
        assert as_json(bob.modver("log", "--json"), "log") == versions, what
        cache_whole(bob, f"the pull after {what}", outputs)
        shutil.rmtree(team)
        return failed

    tally(
        "modver pull --outputs (remote and storage folder)",
        points,
        tmp_path / "traced",
        chosen,
        each_point(chosen, check),
    )
