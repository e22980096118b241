"""Fitting tables (modver.cli._output.fit) and the runs table's columns (modver.engine.runtable.runs_view)."""

from __future__ import annotations

import pytest

from modver.cli._output import GAP, Column, fit
from modver.engine.runtable import runs_view, short_headers, unique_prefixes
from modver.errors import UsageError
from tests._records import ids_at, record


def width_of(fitted) -> int:
    return sum(fitted.widths) + GAP * (len(fitted.widths) - 1)


def test_nothing_changes_when_the_table_fits_or_no_width_is_known() -> None:
    columns = [Column("a", ["1"]), Column("message", ["x" * 40], priority=1)]
    for width in (None, 200):
        out = fit(columns, width)
        assert out.columns == columns and out.widths == [1, 40] and out.hidden == []


def test_text_is_cut_before_columns_are_dropped_and_numbers_never() -> None:
    columns = [
        Column("id", ["run-1"], kind="id"),
        Column("message", ["a long message " * 3], priority=2, min_width=10),
        Column("accuracy", ["0.98765"], priority=1, kind="number"),
    ]
    out = fit(columns, 40)
    assert out.hidden == [] and width_of(out) == 40 and out.widths[2] == len("accuracy")
    out = fit(columns, 24)  # the message at its minimum still does not fit: it goes, the number stays
    assert [c.header for c in out.columns] == ["id", "accuracy"] and [c.header for c in out.hidden] == ["message"]


def test_columns_go_highest_priority_number_first_rightmost_first_and_priority_0_stays() -> None:
    columns = [Column(h, ["x" * 8], priority=p, kind="id") for h, p in [("a", 0), ("b", 3), ("c", 1), ("d", 3)]]
    assert [c.header for c in fit(columns, 30).hidden] == ["d"]
    assert [c.header for c in fit(columns, 20).hidden] == ["b", "d"]
    assert [c.header for c in fit(columns, 5).columns] == ["a"]  # too narrow even so: priority 0 is kept


def test_unique_prefixes_name_one_run_among_all() -> None:
    a, b, c = ids_at(3)
    near = a[:21] + "9" + a[22:]  # the same time to 1/100,000 s as a
    prefixes = unique_prefixes([a, b], [a, b, c, near])
    assert len({len(p) for p in prefixes.values()}) == 1 and len(prefixes[a]) > 15
    for run_id, prefix in prefixes.items():
        assert [other for other in (a, b, c, near) if other.startswith(prefix)] == [run_id]
    assert unique_prefixes([a], [a]) == {a: a[:15]}


def test_headers_are_short_unless_two_read_alike() -> None:
    headers = short_headers(["run", "version.model", "param.model.C", "param.prep.C", "metric.model", "metric.f1"])
    assert headers == {
        "run": "run",
        "version.model": "version.model",
        "param.model.C": "model.C",
        "param.prep.C": "prep.C",
        "metric.model": "metric.model",
        "metric.f1": "f1",
    }


def test_runs_view_priorities_columns_and_globs() -> None:
    ids = ids_at(3)
    records = [
        record(ids[0], params={"model": {"C": 1.0, "k": 3}}, metrics={"accuracy": 0.5}),
        record(ids[1], params={"model": {"C": 2.0, "k": 3}}, metrics={"accuracy": 0.7}),
        record(ids[2], params={"model": {"C": 2.0, "k": 3}}, metrics={"accuracy": 0.9}, versions={"prep": "v1", "model": "v3"}),
    ]  # fmt: skip
    view = {c.name: c for c in runs_view(records, ids)}
    assert "param.model.k" not in view  # the same in every run
    assert view["run"].priority == 0 and view["metric.accuracy"].priority == 1
    assert view["version.model"].priority < view["version.prep"].priority  # differing versions stay longer
    assert view["param.model.C"].header == "model.C"
    chosen = runs_view(records, ids, ["run", "model.*", "acc*"])
    assert [c.name for c in chosen] == ["run", "param.model.C", "param.model.k", "metric.accuracy"]
    with pytest.raises(UsageError, match="did you mean 'accuracy'"):
        runs_view(records, ids, ["accuracyy"])
