"""The runs index: a cache of the records' summaries, validated against the records, rebuilt
when damaged, shared by concurrent writers, left usable by a killed one."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest

from modver.record import RunRecord, RunStatus
from modver.store.layout import Store
from modver.store.runindex import RunIndex, summarize
from modver.store.runstore import RUN_FILE, RunStore, new_run_id
from tests._records import full_record_json, ids_at, record

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(tmp_path)


@pytest.fixture
def runs(store: Store) -> RunStore:
    return store.run_store()


def rows(index: RunIndex) -> dict[str, str]:
    with sqlite3.connect(index.path) as db:
        return dict(db.execute("SELECT run, summary FROM runs"))


def truth(runs: RunStore) -> list[dict[str, object]]:
    return [summarize(r) if r.status is not RunStatus.CORRUPT else r.to_json() for r in runs.list()]


def seen(index: RunIndex, last: int | None = None) -> list[dict[str, object]]:
    return [summarize(r) if r.status is not RunStatus.CORRUPT else r.to_json() for r in index.summaries(last)]


def test_summaries_are_the_records_without_their_heavy_parts(store: Store, runs: RunStore) -> None:
    full = RunRecord.from_json(full_record_json(new_run_id()))
    runs.create(full)
    [summary] = store.run_index().summaries()
    assert summary.run == full.run and summary.versions == full.versions and summary.params == full.params
    assert summary.metrics == full.metrics and summary.cached == full.cached and summary.host == full.host
    assert summary.manifest_content == {} and summary.metric_series == {} and summary.packages == {}
    assert summarize(summary) == summarize(full)


def test_the_index_follows_new_changed_and_removed_records(store: Store, runs: RunStore) -> None:
    index = store.run_index()
    ids = ids_at(5)
    for run_id in ids:
        runs.create(record(run_id))
    assert seen(index) == truth(runs) and len(rows(index)) == 5
    changed = replace(record(ids[1]), metrics={"accuracy": 0.99})  # same size as before: the inode tells
    runs.update(changed)
    (runs.path(ids[3]) / RUN_FILE).unlink()
    runs.path(ids[3]).rmdir()
    runs.create(record(new := new_run_id()))
    got = index.summaries()
    assert [r.run for r in got] == [*ids[:3], ids[4], new]
    assert got[1].metrics == {"accuracy": 0.99}
    assert seen(index) == truth(runs) and ids[3] not in rows(index)
    assert [r.run for r in index.summaries(last=2)] == [ids[4], new]
    assert index.summaries(last=0) == []


def test_rows_come_from_the_index_while_the_record_is_unchanged(store: Store, runs: RunStore) -> None:
    index = store.run_index()
    [run_id] = ids_at(1)
    runs.create(record(run_id))
    index.summaries()
    with sqlite3.connect(index.path) as db:  # what the cache says is used while the stamp matches...
        marked = json.dumps({**summarize(record(run_id)), "metrics": {"accuracy": 0.5}})
        db.execute("UPDATE runs SET summary = ?", (marked,))
    assert index.summaries()[0].metrics == {"accuracy": 0.5}
    with sqlite3.connect(index.path) as db:  # ...and a stamp that does not match is read again
        db.execute("UPDATE runs SET stamp = 'x'")
    assert index.summaries()[0].metrics == {"accuracy": 0.8}


@pytest.mark.parametrize("damage", ["garbage", "truncated", "empty", "bad row", "other schema"])
def test_a_damaged_index_is_rebuilt_from_the_records(store: Store, runs: RunStore, damage: str) -> None:
    index = store.run_index()
    for run_id in ids_at(30):
        runs.create(record(run_id, metrics={"accuracy": 0.1, "f1": 0.2}))
    index.summaries()
    data = index.path.read_bytes()
    if damage == "garbage":
        index.path.write_bytes(b"not a database at all " * 300)
    elif damage == "truncated":
        index.path.write_bytes(data[: len(data) // 2 + 100])
    elif damage == "empty":
        index.path.write_bytes(b"")
    elif damage == "bad row":
        with sqlite3.connect(index.path) as db:
            db.execute("UPDATE runs SET summary = '{not json' WHERE rowid % 2 = 0")
    else:
        with sqlite3.connect(index.path) as db:
            db.execute("DROP TABLE runs")
            db.execute("CREATE TABLE runs (x)")
    assert seen(index) == truth(runs)
    assert seen(index) == truth(runs)  # and again, from the rebuilt index
    assert len(rows(index)) == 30


def test_a_damaged_record_is_listed_as_corrupt_and_not_cached(store: Store, runs: RunStore) -> None:
    index = store.run_index()
    good, bad = ids_at(2)
    runs.create(record(good))
    runs.create(record(bad))
    (runs.path(bad) / RUN_FILE).write_text("{ torn")
    listed = index.summaries()
    assert [r.status for r in listed] == [RunStatus.SUCCEEDED, RunStatus.CORRUPT]
    assert "not valid JSON" in (listed[1].error.message if listed[1].error else "")
    assert set(rows(index)) == {good}
    runs.update(record(bad))  # repaired: listed again
    assert [r.status for r in index.summaries()] == [RunStatus.SUCCEEDED, RunStatus.SUCCEEDED]


WRITER = """
import sys
from pathlib import Path
from modver.store.layout import Store
from modver.store.runstore import new_run_id
from tests._records import record

store = Store(Path(sys.argv[1]))
runs, index = store.run_store(), store.run_index()
for i in range(int(sys.argv[2])):
    r = record(new_run_id(), metrics={"accuracy": i / 100})
    runs.create(r)
    runs.update(r)
    index.summaries(last=3 if i % 2 else None)
"""


def test_concurrent_writers_leave_an_index_that_agrees_with_the_records(store: Store, runs: RunStore) -> None:
    index = store.run_index()
    runs.root.mkdir(parents=True)
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, str(store.root), "25"], cwd=ROOT) for _ in range(4)]
    assert [p.wait(timeout=300) for p in procs] == [0, 0, 0, 0]
    assert len(runs.ids()) == 100
    assert rows(index).keys() <= set(runs.ids())
    for run_id, summary in rows(index).items():  # every cached row is its record's summary
        assert json.loads(summary) == summarize(runs.load(run_id))
    assert seen(index) == truth(runs)


KILLED = """
import sys
from dataclasses import replace
from pathlib import Path
from modver.store.runstore import RunStore
from modver.store.runindex import RunIndex

runs = RunStore(Path(sys.argv[1]))
index = RunIndex(runs, Path(sys.argv[2]))
print("ready", flush=True)
i = 0
while True:  # every record changes, so every pass rewrites every row
    i += 1
    for run_id in runs.ids():
        runs.update(replace(runs.load(run_id), duration=float(i)), durable=False)
    index.summaries()
"""


def test_an_index_writer_killed_at_any_moment_leaves_a_usable_index(store: Store, runs: RunStore) -> None:
    index = store.run_index()
    for run_id in ids_at(200):
        runs.create(record(run_id))
    for delay in (0.3, 0.7, 1.1):
        proc = subprocess.Popen(
            [sys.executable, "-c", KILLED, str(runs.root), str(index.path)], cwd=ROOT, stdout=subprocess.PIPE
        )
        assert proc.stdout is not None and proc.stdout.readline().strip() == b"ready"
        time.sleep(delay)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)
        proc.stdout.close()
        assert seen(index) == truth(runs)
        with sqlite3.connect(index.path) as db:
            assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)


@pytest.mark.parametrize(
    ("point", "problem"),
    [
        ({"step": 1, "value": 0.5, "stage": "s"}, None),
        ({"step": None, "value": 2, "stage": None}, None),
        ({"value": True}, None),  # a number, as check_shape has always read it
        ({"step": True, "value": 1.0}, "metric_series.loss[1].step should be an integer or null, found true"),
        ({"step": 1, "value": "1"}, "metric_series.loss[1].value should be a number, found a string '1'"),
        ({"step": 1.5, "value": 1}, "metric_series.loss[1].step should be an integer or null, found a number 1.5"),
        ([1, 2], "metric_series.loss[1] should be an object, found a list"),
    ],
)
def test_long_series_are_shape_checked_in_one_pass_with_the_same_answer(point: object, problem: str | None) -> None:
    from modver.record import check_shape

    data = {"run": "r", "status": "succeeded", "metric_series": {"loss": [{"step": 0, "value": 1.0}, point]}}
    assert check_shape(data) == problem


def test_step_series_come_from_the_index_as_from_the_records(store: Store, runs: RunStore) -> None:
    index = store.run_index()
    a, b = ids_at(2)
    series = {"loss": [{"step": s, "value": 1 / (s + 1), "stage": "t"} for s in range(4)],
              "acc": [{"step": None, "value": 0.5, "stage": "t"}]}  # fmt: skip
    runs.create(record(a, metric_series=series))
    runs.create(record(b))
    expected = {a: {"loss": ([0, 1, 2, 3], [1.0, 0.5, 1 / 3, 0.25])}, b: {}}
    assert index.steps([a, b]) == expected  # cold: from the records
    assert index.steps([a, b]) == expected  # warm: from the index
    assert len(rows(index)) == 2


def test_a_final_record_is_indexed_when_written_and_a_progress_update_is_not(store: Store, runs: RunStore) -> None:
    index = store.run_index()
    [run_id] = ids_at(1)
    runs.create(record(run_id, status="running"))
    runs.update(record(run_id, status="running", metrics={"accuracy": 0.1}), durable=False)
    assert not index.path.exists()  # progress: left to the readers
    runs.update(record(run_id, metrics={"accuracy": 0.9}))  # the final record: indexed by its writer
    assert json.loads(rows(index)[run_id]) == summarize(runs.load(run_id))
    with sqlite3.connect(index.path) as db:
        [(stamp,)] = db.execute("SELECT stamp FROM runs")
    st = os.stat(runs.path(run_id) / RUN_FILE)
    # valid as it is: nothing to read again
    assert stamp == f"{st.st_ino}:{st.st_mtime_ns}:{st.st_ctime_ns}:{st.st_size}"


# -- a record rewritten in place with its mtime restored; SQLite's extended error codes -----------


def test_a_record_rewritten_in_place_with_its_mtime_restored_is_not_served_stale(run_project) -> None:
    """`touch -r` puts the mtime back, but a write always moves the ctime: the stamp has it."""
    import modver
    from tests.helpers import mv, mv_json

    root = run_project.root
    [run] = [mv_json(root, "run")]
    assert run["metrics"]["mean"] == 12.0
    assert mv_json(root, "runs", "--where", "mean > 50") == []  # the index now holds the row
    path = root / ".modver" / "runs" / run["run"] / RUN_FILE
    before = path.stat()
    text = path.read_bytes()
    assert text.count(b'"mean": 12.0') == 1
    with open(path, "r+b") as handle:  # in place: same inode, same size
        handle.write(text.replace(b'"mean": 12.0', b'"mean": 99.0'))
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert (path.stat().st_ino, path.stat().st_mtime_ns, path.stat().st_size) == (
        before.st_ino, before.st_mtime_ns, before.st_size,
    )  # fmt: skip
    assert [r["run"] for r in mv_json(root, "runs", "--where", "mean > 50")] == [run["run"]]
    assert "99" in mv(root, "runs").stdout
    assert modver.runs(path=root)["metric.mean"].tolist() == [99.0]


def _real_errors(tmp_path: Path) -> dict[str, sqlite3.DatabaseError]:
    """Errors SQLite itself raised, with their extended result codes."""
    found: dict[str, sqlite3.DatabaseError] = {}
    wal = tmp_path / "wal.sqlite"
    a = sqlite3.connect(wal, isolation_level=None)
    a.execute("PRAGMA journal_mode = WAL")
    a.execute("CREATE TABLE t (x)")
    b = sqlite3.connect(wal, isolation_level=None)
    b.execute("BEGIN")
    b.execute("SELECT * FROM t").fetchall()  # b reads a snapshot...
    a.execute("INSERT INTO t VALUES (1)")  # ...that a moves past
    try:
        b.execute("INSERT INTO t VALUES (2)")
    except sqlite3.DatabaseError as exc:
        found["busy snapshot"] = exc
    for db in (a, b):
        db.close()
    moved = tmp_path / "moved.sqlite"
    c = sqlite3.connect(moved, isolation_level=None)
    c.execute("CREATE TABLE t (x)")
    os.rename(moved, tmp_path / "elsewhere.sqlite")
    try:
        c.execute("INSERT INTO t VALUES (1)")
    except sqlite3.DatabaseError as exc:
        found["db moved"] = exc
    c.close()
    garbage = tmp_path / "garbage.sqlite"
    garbage.write_bytes(b"not a database " * 100)
    try:
        sqlite3.connect(garbage).execute("SELECT * FROM t")
    except sqlite3.DatabaseError as exc:
        found["not a database"] = exc
    return found


def test_a_transient_error_with_an_extended_code_leaves_the_index_and_its_journal(
    store: Store, runs: RunStore, tmp_path: Path
) -> None:
    errors = _real_errors(tmp_path)
    assert errors["busy snapshot"].sqlite_errorname == "SQLITE_BUSY_SNAPSHOT"
    assert errors["db moved"].sqlite_errorname == "SQLITE_READONLY_DBMOVED"
    index = store.run_index()
    for run_id in ids_at(3):
        runs.create(record(run_id))
    index.summaries()
    journal = Path(f"{index.path}-journal")
    for name in ("busy snapshot", "db moved"):
        journal.write_bytes(b"a live writer's journal")
        index._give_up(errors[name])
        assert index.path.is_file() and journal.is_file(), name
    journal.unlink()
    assert len(rows(index)) == 3
    index._give_up(errors["not a database"])  # damage: deleted, to be rebuilt
    assert not index.path.exists()
    assert seen(index) == truth(runs) and len(rows(index)) == 3


def test_a_live_writer_holding_the_index_does_not_lose_it(run_project) -> None:
    """While another process holds the index locked, mid-write, `modver runs` answers from the
    records, and the index and the writer's journal stay."""
    from tests.helpers import cli

    root = run_project.root
    first = json.loads(cli(root, "run", "--json").stdout)
    cli(root, "runs")  # the index exists
    second = json.loads(cli(root, "run", "--json", "--set", "prep.scale=3").stdout)
    path = root / ".modver" / "cache" / "runs-index.sqlite"
    holder = subprocess.Popen(
        [sys.executable, "-c", (
            "import sqlite3, sys\n"
            f"db = sqlite3.connect({str(path)!r}, isolation_level=None)\n"
            "db.execute('BEGIN EXCLUSIVE')\n"
            "db.execute(\"DELETE FROM runs WHERE run = 'nothing'\")\n"
            "db.execute(\"INSERT INTO runs (run, stamp, summary, steps) VALUES ('held', '', '{}', '{}')\")\n"
            "print('held', flush=True)\n"
            "sys.stdin.readline()\n"
            "db.execute('COMMIT')\n"
        )],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout.readline() == "held\n"
        journal = Path(f"{path}-journal")
        assert journal.is_file()
        listed = json.loads(cli(root, "runs", "--json").stdout)
        assert [r["run"] for r in listed] == [first["run"], second["run"]]
        assert journal.is_file() and path.is_file()
    finally:
        holder.communicate("go\n", timeout=30)
    assert holder.returncode == 0
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT count(*) FROM runs WHERE run = 'held'").fetchone() == (1,)
