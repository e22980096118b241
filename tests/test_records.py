"""Run records: ids, atomic writes, listing with damage, resolving, the table, --where."""

from __future__ import annotations

import json
import math
import multiprocessing
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from modver.errors import ModverError, StoreError
from modver.records import (
    RunStore,
    UnknownRunError,
    filter_records,
    flatten_record,
    new_run_id,
    now_iso,
    resolve_column,
    run_id_time,
    runs_dataframe,
)


def record(run_id: str, **extra) -> dict:
    base = {
        "run": run_id,
        "status": "succeeded",
        "started": run_id_time(run_id),
        "finished": None,
        "duration": 1.0,
        "versions": {"prep": "v1", "model": "v2"},
        "params": {"model": {"C": 1.0}},
        "metrics": {"accuracy": 0.8},
    }
    base.update(extra)
    return base


def ids_at(n: int) -> list[str]:
    start = datetime(2026, 11, 22, 15, 0, tzinfo=UTC)
    return [new_run_id(start + timedelta(seconds=i)) for i in range(n)]


@pytest.fixture
def store(tmp_path: Path) -> RunStore:
    return RunStore(tmp_path / ".modver" / "runs")


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
    store.create(run_id, {"status": "running", "started": now_iso()})
    assert store.load(run_id)["status"] == "running" and store.load(run_id)["run"] == run_id
    store.update(run_id, {**store.load(run_id), "status": "succeeded"})
    assert store.load(run_id)["status"] == "succeeded"
    text = (store.path(run_id) / "run.json").read_text()
    assert json.loads(text)["run"] == run_id and text.endswith("\n")
    with pytest.raises(StoreError, match="exists already"):
        store.create(run_id, {})
    assert store.load(run_id)["status"] == "succeeded"  # the existing record is untouched
    assert not [p for p in store.root.iterdir() if p.name.startswith(".")]


def test_a_run_being_created_is_never_listed_half_made(store: RunStore) -> None:
    import threading

    done = threading.Event()

    def create_many() -> None:
        for _ in range(300):
            store.create(new_run_id(), {"status": "running", "started": now_iso()})
        done.set()

    writer = threading.Thread(target=create_many)
    writer.start()
    seen: set[str] = set()
    while not done.is_set():
        seen.update(r["status"] for r in store.list())
    writer.join()
    assert seen <= {"running"}
    with pytest.raises(UnknownRunError):
        store.update(new_run_id(), {})
    with pytest.raises(UnknownRunError, match="no run"):
        store.load("20200101-000000-000000-000001-abcdef")


def test_stage_logs(store: RunStore) -> None:
    run_id = new_run_id()
    store.create(run_id, {})
    path = store.write_log(run_id, "prep", "stdout", "hi\n")
    assert path.name == "prep.stdout" and store.read_log(run_id, "prep", "stdout") == "hi\n"
    assert store.read_log(run_id, "prep", "stderr") is None
    with pytest.raises(ModverError):
        store.log_path(run_id, "../x", "stdout")


def test_list_sorted_and_survives_damage(store: RunStore) -> None:
    ids = ids_at(4)
    for run_id in reversed(ids[:3]):
        store.create(run_id, record(run_id))
    (store.path(ids[1]) / "run.json").write_text('{"run": "half')  # torn by hand
    (store.path(ids[2]) / "run.json").write_bytes(b'{"run": "\xff\xfe"}')  # not UTF-8
    store.path(ids[3]).mkdir()  # died between mkdir and the first write
    (store.root / ".tmp-run.json-1-2").write_text("junk")
    listed = store.list()
    assert [r["run"] for r in listed] == ids
    assert [r["status"] for r in listed] == ["succeeded", "corrupt", "corrupt", "corrupt"]
    assert "not valid JSON" in listed[1]["error"]["message"]
    assert "not valid JSON" in listed[2]["error"]["message"]
    assert "no run.json" in listed[3]["error"]["message"]


def test_resolve(store: RunStore) -> None:
    with pytest.raises(UnknownRunError, match="no runs"):
        store.resolve("latest")
    ids = ids_at(3)
    for run_id in ids:
        store.create(run_id, record(run_id))
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


def test_dataframe_columns_and_missing_cells() -> None:
    old, new = ids_at(2)
    records = [
        record(old),
        record(
            new,
            params={"model": {"C": 2.0, "lr": 0.1}},
            metrics={"accuracy": 0.9, "f1": 0.7},
            versions={"prep": "v1", "model": "v3"},
        ),
    ]
    frame = runs_dataframe(records)
    assert list(frame.columns) == [
        "run",
        "status",
        "started",
        "duration",
        "version.prep",
        "version.model",
        "param.model.C",
        "param.model.lr",
        "metric.accuracy",
        "metric.f1",
    ]  # fmt: skip  (stages in the order the runs ran them, not alphabetically)
    assert math.isnan(frame.loc[0, "param.model.lr"]) and math.isnan(frame.loc[0, "metric.f1"])
    assert frame.loc[1, "metric.f1"] == 0.7 and frame.loc[1, "version.model"] == "v3"
    assert str(frame["started"].dtype).startswith("datetime64") and frame["started"].dt.tz is not None
    empty = runs_dataframe([])
    assert list(empty.columns) == ["run", "status", "started", "duration"] and len(empty) == 0
    corrupt = runs_dataframe([{"run": old, "status": "corrupt", "started": None}])
    assert corrupt.loc[0, "status"] == "corrupt"


def test_columns_follow_the_order_stages_ran_in_even_from_sorted_json() -> None:
    [run_id] = ids_at(1)
    on_disk = record(
        run_id,
        versions={"evaluate": "v1", "model": "v2", "prep": "v1"},
        order=["prep", "model", "evaluate"],
        params={"evaluate": {}, "model": {"C": 1.0}, "prep": {"scale": 2}},
    )
    columns = [c for c in runs_dataframe([on_disk]).columns if c.startswith(("version.", "param."))]
    assert columns == ["version.prep", "version.model", "version.evaluate", "param.prep.scale", "param.model.C"]


def test_where_filters() -> None:
    a, b, c = ids_at(3)
    records = [
        record(a, metrics={"accuracy": 0.85}),
        record(b, metrics={"accuracy": 0.95}, versions={"model": "v3", "my-stage": "v1"}),
        record(c, status="failed", metrics={}),
    ]
    pick = lambda expr: [r["run"] for r in filter_records(records, expr)]  # noqa: E731
    assert pick('metric.accuracy > 0.9 and version.model == "v3"') == [b]
    assert pick("metric.accuracy > 0.8") == [a, b]
    assert pick("metric.accuracy is None") == [c]
    assert pick('status in ("failed", "interrupted")') == [c]
    assert pick('not status == "failed" or duration >= 1') == [a, b, c]
    assert pick('version["my-stage"] == "v1"') == [b]
    assert pick("0.8 < metric.accuracy <= 0.9") == [a]
    assert pick('metric.accuracy > "x"') == []  # mismatched types never match, never crash
    assert pick("param.model.C == 1.0 and duration > -1") == [a, b, c]
    assert flatten_record(records[1])["version.my-stage"] == "v1"


@pytest.mark.parametrize(
    "expression",
    [
        "__import__('os').system('echo hi')",
        "metric.accuracy > ",
        "metric.accuracy + 1 > 2",
        "len(run) > 3",
        "[x for x in run]",
        "status == [status]",
        "(lambda: 1)()",
    ],
)
def test_where_rejects_anything_but_comparisons(expression: str) -> None:
    with pytest.raises(ModverError, match="invalid --where") as info:
        filter_records([record(new_run_id())], expression)
    assert info.value.hint


def test_where_reports_unknown_columns() -> None:
    with pytest.raises(ModverError, match="unknown column 'metric.acuracy'.*did you mean 'metric.accuracy'") as info:
        filter_records([record(new_run_id())], "metric.acuracy > 0.5")
    assert "metric.accuracy" in info.value.hint


def test_columns_by_the_short_names_of_the_table_headers() -> None:
    columns = ["run", "version.model", "param.model.C", "param.prep.C", "metric.accuracy", "metric.model"]
    assert resolve_column("accuracy", columns) == "metric.accuracy"
    assert resolve_column("model.C", columns) == "param.model.C"
    assert resolve_column("run", columns) == "run"
    with pytest.raises(ModverError, match="ambiguous: param.model.C, param.prep.C"):
        resolve_column("C", columns)
    with pytest.raises(ModverError, match="ambiguous: version.model, metric.model"):
        resolve_column("model", columns)
    low, high = record(new_run_id(), metrics={"accuracy": 0.3}), record(new_run_id())
    assert filter_records([low, high], "accuracy > 0.5") == [high]


# -- the shape of a record --------------------------------------------------------------------


def full_record(run_id: str) -> dict:
    """A record with every field the product reads, as `modver run` writes them."""
    key_parts = {
        "entry": "pipe/prep.py:prep",
        "fingerprint": "mv1:ab",
        "version": "v1",
        "params": {"scale": 2},
        "inputs": {"raw": {"data": "data/raw.txt", "hash": "blake2b:cd"}},
    }
    return record(
        run_id,
        host="h",
        pid=12,
        manifest={
            "path": "manifest.yaml",
            "content": {
                "data": {"raw": "data/raw.txt"},
                "stages": {"prep": {"entry": "pipe/prep.py:prep", "version": None, "inputs": {"raw": "data.raw"}, "params": {}, "deps": []}},
                "fingerprint": {"docstrings": False},
            },
        },
        fingerprints={"prep": "mv1:ab"},
        data={"raw": {"path": "data/raw.txt", "hash": "blake2b:cd"}},
        cached={"prep": False},
        order=["prep"],
        stages={
            "prep": {
                "status": "succeeded", "duration": 0.5, "cache_key": "k", "key_parts": key_parts,
                "reason": "first run", "notes": [], "error": None, "entry": "pipe/prep.py:prep",
            }
        },
        metric_series={"accuracy": [{"step": None, "value": 0.8, "stage": "prep"}]},
        git={"commit": None, "dirty": False},
        python="3.11.9",
        packages={"dulwich": "0.22"},
        error=None,
        reproduces="x",
        comparison={"accuracy": {"original": 0.8, "reproduced": 0.8, "match": True}},
    )  # fmt: skip


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
    ],
)
def test_a_record_of_the_wrong_shape_is_a_clear_store_error(
    store: RunStore, path: tuple, value: object, needle: str
) -> None:
    run_id, other = ids_at(2)
    data = full_record(run_id)
    if path:
        target = data
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value
    else:
        data = value
    store.create(other, record(other))
    folder = store.path(run_id)
    folder.mkdir(parents=True)
    (folder / "run.json").write_text(json.dumps(data))
    with pytest.raises(StoreError) as info:
        store.load(run_id)
    message = str(info.value)
    assert f"damaged run record {folder / 'run.json'}" in message and needle in message
    assert str(folder) in info.value.hint and "move" in info.value.hint
    listed = store.list()  # the listing still works; the damaged run is "corrupt"
    assert [(r["run"], r["status"]) for r in listed] == [(run_id, "corrupt"), (other, "succeeded")]
    assert needle in listed[0]["error"]["message"]
    assert json.loads((folder / "run.json").read_text()) == data  # nothing is rewritten


def test_a_record_needs_only_its_run_id_and_may_hold_more() -> None:
    from modver.records import record_problem

    assert record_problem(full_record(new_run_id())) is None
    assert record_problem({"run": "x"}) is None  # older records lack newer fields
    assert record_problem({"run": "x", "sweep": {"id": 1}, "stages": {"a": {"cache_key": "k", "later": [1]}}}) is None
    assert record_problem({"status": "failed"}) == "run is missing"
    assert record_problem({"run": "x", "data": {"raw": {"path": "d"}}}) == "data.raw.hash is missing"
    assert record_problem({"run": "x", "stages": {"a": {"status": "succeeded"}}}) == "stages.a.cache_key is missing"


def test_a_record_in_another_runs_folder_is_damaged(store: RunStore) -> None:
    run_id, other = ids_at(2)
    store.create(run_id, record(run_id))
    store.path(other).mkdir()
    (store.path(other) / "run.json").write_bytes((store.path(run_id) / "run.json").read_bytes())  # a copied folder
    with pytest.raises(StoreError, match=f"it is the record of run '{run_id}', not of {other}"):
        store.load(other)
    assert [r["status"] for r in store.list()] == ["succeeded", "corrupt"]


# -- bounds of --where ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "expression",
    [
        "not " * 5000 + "run",  # RecursionError inside ast.parse
        "-" * 50000 + "1 == run",  # MemoryError inside ast.parse
        "not " * 600 + "run",  # parses, then nests deeper than the checker may recurse
        "-" * 2000 + "1 == run",
        "a" + ".a" * 1500 + " == 1",
        "a" + '["x"]' * 1000 + " == 1",
        " and ".join(["run == 1"] * 2000),  # flat but long
    ],
)
def test_where_refuses_overlong_and_deeply_nested_expressions(expression: str) -> None:
    with pytest.raises(ModverError, match="invalid --where expression") as info:
        filter_records([record(new_run_id())], expression)
    assert "characters long" in str(info.value) or "nested more than" in str(info.value)
    assert len(str(info.value)) < 300 and info.value.hint  # the expression is not echoed whole


def test_where_within_its_bounds() -> None:
    a, b = ids_at(2)
    records = [record(a), record(b, status="failed")]
    assert [r["run"] for r in filter_records(records, "not " * 40 + 'status == "failed"')] == [b]  # 40 nots cancel out
    many = "run in (" + ", ".join(repr(r) for r in [a, b] * 100) + ")"
    assert [r["run"] for r in filter_records(records, many)] == [a, b]


def test_sort_orders_any_mix_of_values() -> None:
    from modver.records import sort_records

    ids = ids_at(7)
    values = [2, 0.5, {"b": 1}, None, "v", {"a": 1}, float("nan")]  # found by tests/fuzz
    records = [record(i, params={"model": {"C": v}}) for i, v in zip(ids, values)]
    order = [r["params"]["model"]["C"] for r in sort_records(records, "C")]
    assert order[:5] == [0.5, 2, "v", {"a": 1}, {"b": 1}] and order[5] is None and math.isnan(order[6])
    assert [r["run"] for r in sort_records(records, "-model.C")][:2] == [ids[2], ids[5]]
    assert sort_records([], "C") == []


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
    assert store.list()[0]["status"] == "corrupt"
