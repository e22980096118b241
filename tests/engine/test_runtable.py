"""The runs table: rows, columns in the manifest's order, the DataFrame, --where and --sort."""

from __future__ import annotations

import math

import pytest

from modver.engine.runtable import filter_records, flatten_record, resolve_column, runs_dataframe, sort_records
from modver.errors import ModverError
from modver.record import ErrorInfo, RunRecord
from modver.store.runstore import new_run_id
from tests._records import ids_at, record


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
    corrupt = runs_dataframe([RunRecord.corrupt(old, None, ErrorInfo("StoreError", "unreadable"))])
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
    pick = lambda expr: [r.run for r in filter_records(records, expr)]  # noqa: E731
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
    assert [r.run for r in filter_records(records, "not " * 40 + 'status == "failed"')] == [b]  # 40 nots cancel out
    many = "run in (" + ", ".join(repr(r) for r in [a, b] * 100) + ")"
    assert [r.run for r in filter_records(records, many)] == [a, b]


def test_sort_orders_any_mix_of_values() -> None:
    ids = ids_at(7)
    values = [2, 0.5, {"b": 1}, None, "v", {"a": 1}, float("nan")]  # found by tests/fuzz
    records = [record(i, params={"model": {"C": v}}) for i, v in zip(ids, values)]
    order = [r.params["model"]["C"] for r in sort_records(records, "C")]
    assert order[:5] == [0.5, 2, "v", {"a": 1}, {"b": 1}] and order[5] is None and math.isnan(order[6])
    assert [r.run for r in sort_records(records, "-model.C")][:2] == [ids[2], ids[5]]
    assert sort_records([], "C") == []
