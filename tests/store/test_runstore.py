"""The run records on disk: ids, atomic writes, listing with damage, resolving."""

from __future__ import annotations

import json
import multiprocessing
import threading
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest

from modver.errors import InvalidNameError, StoreError, UnknownRunError
from modver.record import RunRecord, RunStatus
from modver.store.runstore import RunStore, new_run_id, now_iso, run_id_time
from tests._records import full_record_json, ids_at, record, record_json


@pytest.fixture
def store(tmp_path: Path) -> RunStore:
    return RunStore(tmp_path / ".modver" / "runs")


def running(run_id: str) -> RunRecord:
    return RunRecord(run_id, RunStatus.RUNNING, now_iso())


def test_run_ids_sort_by_time_and_carry_it() -> None:
    ids = ids_at(3)
    assert ids == sorted(ids) and len(set(ids)) == 3
    assert run_id_time(ids[0]) == "2026-11-22T15:00:00.000000+00:00"
    same = datetime(2026, 1, 1, tzinfo=UTC)
    assert new_run_id(same) != new_run_id(same)


def _ids(n: int) -> list[str]:
    return [new_run_id() for _ in range(n)]


def test_run_ids_are_unique_across_processes() -> None:
    with multiprocessing.get_context("spawn").Pool(4) as pool:
        batches = pool.map(_ids, [2000] * 4)
    all_ids = [i for batch in batches for i in batch]
    assert len(set(all_ids)) == len(all_ids)


def test_create_update_load(store: RunStore) -> None:
    run_id = new_run_id()
    store.create(running(run_id))
    assert store.load(run_id).status is RunStatus.RUNNING and store.load(run_id).run == run_id
    store.update(replace(store.load(run_id), status=RunStatus.SUCCEEDED))
    assert store.load(run_id).status is RunStatus.SUCCEEDED
    text = (store.path(run_id) / "run.json").read_text()
    assert json.loads(text)["run"] == run_id and json.loads(text)["format"] == 1 and text.endswith("\n")
    with pytest.raises(StoreError, match="exists already"):
        store.create(running(run_id))
    assert store.load(run_id).status is RunStatus.SUCCEEDED  # the existing record is untouched
    assert not [p for p in store.root.iterdir() if p.name.startswith(".")]


def test_a_run_being_created_is_never_listed_half_made(store: RunStore) -> None:
    done = threading.Event()

    def create_many() -> None:
        for _ in range(300):
            store.create(running(new_run_id()))
        done.set()

    writer = threading.Thread(target=create_many)
    writer.start()
    seen: set[str] = set()
    while not done.is_set():
        seen.update(str(r.status) for r in store.list())
    writer.join()
    assert seen <= {"running"}
    with pytest.raises(UnknownRunError):
        store.update(running(new_run_id()))
    with pytest.raises(UnknownRunError, match="no run"):
        store.load("20200101-000000-000000-000001-abcdef")


def test_stage_logs(store: RunStore) -> None:
    run_id = new_run_id()
    store.create(running(run_id))
    path = store.write_log(run_id, "prep", "stdout", "hi\n")
    assert path.name == "prep.stdout" and store.read_log(run_id, "prep", "stdout") == "hi\n"
    assert store.read_log(run_id, "prep", "stderr") is None
    with pytest.raises(InvalidNameError):
        store.log_path(run_id, "../x", "stdout")


def test_list_sorted_and_survives_damage(store: RunStore) -> None:
    ids = ids_at(4)
    for run_id in reversed(ids[:3]):
        store.create(record(run_id))
    (store.path(ids[1]) / "run.json").write_text('{"run": "half')  # torn by hand
    (store.path(ids[2]) / "run.json").write_bytes(b'{"run": "\xff\xfe"}')  # not UTF-8
    store.path(ids[3]).mkdir()  # died between mkdir and the first write
    (store.root / ".tmp-run.json-1-2").write_text("junk")
    listed = store.list()
    assert [r.run for r in listed] == ids
    assert [str(r.status) for r in listed] == ["succeeded", "corrupt", "corrupt", "corrupt"]
    assert listed[1].error is not None and "not valid JSON" in listed[1].error.message
    assert listed[2].error is not None and "not valid JSON" in listed[2].error.message
    assert listed[3].error is not None and "no run.json" in listed[3].error.message
    assert listed[1].to_json() == {"run": ids[1], "status": "corrupt", "started": listed[1].started,
                                   "error": listed[1].error.to_json()}  # fmt: skip


def test_resolve(store: RunStore) -> None:
    with pytest.raises(UnknownRunError, match="no runs"):
        store.resolve("latest")
    ids = ids_at(3)
    for run_id in ids:
        store.create(record(run_id))
    assert store.resolve("latest") == ids[2]
    assert store.resolve("latest~0") == ids[2]
    assert store.resolve("latest~2") == ids[0]
    assert store.resolve(ids[1]) == ids[1]
    assert store.resolve(ids[1][:17]) == ids[1]  # "20261122-150001-0" is unique
    with pytest.raises(UnknownRunError, match="ambiguous"):
        store.resolve("20261122")
    with pytest.raises(UnknownRunError, match="only 3"):
        store.resolve("latest~3")
    with pytest.raises(UnknownRunError, match="no run 'zzz'") as info:
        store.resolve("zzz")
    assert info.value.hint


@pytest.mark.parametrize(
    ("path", "value", "needle"),
    [
        ((), [], "the record should be an object, found a list"),
        (("run",), 5, "run should be a string, found an integer 5"),
        (("stages",), [], "stages should be an object, found a list"),
        (("versions",), "x", "versions should be an object, found a string 'x'"),
        (("metrics",), 5, "metrics should be an object, found an integer 5"),
        (("metrics", "accuracy"), "high", "metrics.accuracy should be a number, found a string 'high'"),
        (("params",), {"a": 3}, "params.a should be an object, found an integer 3"),
        (("error",), "boom", "error should be an object or null, found a string 'boom'"),
        (("stages", "prep"), 5, "stages.prep should be an object"),
        (("stages", "prep", "duration"), "1s", "stages.prep.duration should be a number or null"),
        (("stages", "prep", "status"), "done", "stages.prep.status should be one of pending, cached"),
        (("stages", "prep", "key_parts", "inputs", "raw"), 3, "stages.prep.key_parts.inputs.raw should be an object"),
        (("stages", "prep", "notes"), [1], "stages.prep.notes[0] should be a string, found an integer 1"),
        (
            ("manifest", "content", "stages", "prep", "entry"),
            None,
            "manifest.content.stages.prep.entry should be a string",
        ),
        (("data", "raw", "hash"), None, "data.raw.hash should be a string, found null"),
        (("metric_series", "accuracy"), [5], "metric_series.accuracy[0] should be an object"),
        (("cached", "prep"), "yes", "cached.prep should be true or false"),
        (("git",), "abc", "git should be an object"),
        (("status",), "done", "status should be one of running, succeeded, failed, interrupted"),
        (("pid",), True, "pid should be an integer or null, found true"),
    ],
)
def test_a_record_of_the_wrong_shape_is_a_clear_store_error(
    store: RunStore, path: tuple, value: object, needle: str
) -> None:
    run_id, other = ids_at(2)
    data = full_record_json(run_id)
    if path:
        target = data
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value
    else:
        data = value
    store.create(record(other))
    folder = store.path(run_id)
    folder.mkdir(parents=True)
    (folder / "run.json").write_text(json.dumps(data))
    with pytest.raises(StoreError) as info:
        store.load(run_id)
    message = str(info.value)
    assert f"damaged run record {folder / 'run.json'}" in message and needle in message
    assert str(folder) in (info.value.hint or "") and "move" in (info.value.hint or "")
    listed = store.list()  # the listing still works; the damaged run is "corrupt"
    assert [(r.run, str(r.status)) for r in listed] == [(run_id, "corrupt"), (other, "succeeded")]
    assert listed[0].error is not None and needle in listed[0].error.message
    assert json.loads((folder / "run.json").read_text()) == data  # nothing is rewritten


def test_a_record_in_another_runs_folder_is_damaged(store: RunStore) -> None:
    run_id, other = ids_at(2)
    store.create(record(run_id))
    store.path(other).mkdir()
    (store.path(other) / "run.json").write_bytes((store.path(run_id) / "run.json").read_bytes())  # a copied folder
    with pytest.raises(StoreError, match=f"it is the record of run '{run_id}', not of {other}"):
        store.load(other)
    assert [str(r.status) for r in store.list()] == ["succeeded", "corrupt"]


def test_a_record_of_a_newer_format_says_to_upgrade(store: RunStore) -> None:
    run_id = new_run_id()
    store.path(run_id).mkdir(parents=True)
    (store.path(run_id) / "run.json").write_text(json.dumps({**record_json(run_id), "format": 99, "stages": "new"}))
    with pytest.raises(StoreError, match="record format 99, newer than this modver reads .1.: upgrade modver"):
        store.load(run_id)


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        ('{"run": "x", "params": ' + "[" * 100_000 + "]" * 100_000 + "}", "nested too deeply"),
        ('{"run": "x", "pid": ' + "1" * 5000 + "}", "integer string conversion"),
    ],
)
def test_json_python_cannot_read_is_a_damaged_record(store: RunStore, content: str, needle: str) -> None:
    run_id = new_run_id()
    store.path(run_id).mkdir(parents=True)
    (store.path(run_id) / "run.json").write_text(content)
    with pytest.raises(StoreError, match=f"damaged run record .*{needle}"):
        store.load(run_id)
    assert str(store.list()[0].status) == "corrupt"
