"""Run records as typed models: one schema, JSON both ways, and records of modver 0.1 load unchanged."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from modver.record import FORMAT, RunRecord, RunStatus, StageStatus, check_shape
from tests._records import full_record_json

FIXTURES = Path(__file__).parent / "fixtures" / "records_0.1"


@pytest.mark.parametrize("path", sorted(FIXTURES.glob("*.json")), ids=lambda p: p.stem)
def test_records_written_by_modver_0_1_load_unchanged(path: Path) -> None:
    """Real records of the release before typed records (a success, one fully cached, a
    reproduction, a failed stage, an interrupted run) load, and write back with the same data."""
    data = json.loads(path.read_text())
    record = RunRecord.from_json(data)
    assert record.format == FORMAT and record.status is RunStatus(data["status"])
    assert record.versions == data["versions"] and record.fingerprints == data["fingerprints"]
    assert record.cached == data["cached"] and record.metrics == data["metrics"]
    assert list(record.stages) == data["order"]
    again = record.to_json()
    assert_contains(again, data)  # every field of the old record survives, unchanged (new ones added)
    assert again["format"] == FORMAT
    assert RunRecord.from_json(json.loads(json.dumps(again))) == record


def assert_contains(new: object, old: object, where: str = "record") -> None:
    """``old`` is in ``new``: equal values, every key of an old object in the new one."""
    if isinstance(old, dict):
        assert isinstance(new, dict), where
        for key, value in old.items():
            assert key in new, f"{where}.{key} is gone"
            assert_contains(new[key], value, f"{where}.{key}")
    else:
        assert new == old, where


def test_the_fixtures_cover_every_end_of_a_run() -> None:
    statuses = {json.loads(p.read_text())["status"] for p in FIXTURES.glob("*.json")}
    assert statuses == {"succeeded", "failed", "interrupted"}
    stage_statuses = {
        s["status"] for p in FIXTURES.glob("*.json") for s in json.loads(p.read_text())["stages"].values()
    }
    assert {"succeeded", "cached", "failed", "interrupted", "skipped"} <= stage_statuses


def test_a_full_record_round_trips() -> None:
    data = full_record_json("20261122-150000-000000-000001-abcdef")
    record = RunRecord.from_json(data)
    stage = record.stages["prep"]
    assert stage.status is StageStatus.SUCCEEDED and stage.key_parts is not None
    assert stage.key_parts.inputs["raw"].data == "data/raw.txt" and stage.timings["call"] == 0.5
    assert record.timings == {"plan": 0.1, "stages": 0.81, "other": 0.05}
    assert RunRecord.from_json(record.to_json()) == record
    assert record.to_json() == {**data, "order": ["prep"]}


def test_a_record_needs_its_run_and_status_and_may_hold_more() -> None:
    assert check_shape(full_record_json("x")) is None
    assert check_shape({"run": "x", "status": "failed"}) is None  # older records lack newer fields
    newer = {"run": "x", "status": "failed", "future": {"id": 1}, "stages": {"a": {"cache_key": "k", "later": [1]}}}
    assert check_shape(newer) is None
    assert RunRecord.from_json(newer).extra == {"future": {"id": 1}}  # kept, and written back
    assert RunRecord.from_json(newer).to_json()["future"] == {"id": 1}
    point = RunRecord.from_json({"run": "x", "status": "failed", "sweep": "20261201-sweep"})  # a sweep's point
    assert point.sweep == "20261201-sweep" and point.to_json()["sweep"] == "20261201-sweep"
    assert "sweep" not in RunRecord.from_json({"run": "x", "status": "failed"}).to_json()
    assert check_shape({"run": "x", "status": "failed", "sweep": 1}) == "sweep should be a string, found an integer 1"
    assert check_shape({"status": "failed"}) == "run is missing"
    assert check_shape({"run": "x", "status": "ok"}).startswith("status should be one of")
    assert check_shape({"run": "x", "status": "failed", "data": {"raw": {"path": "d"}}}) == "data.raw.hash is missing"
    assert check_shape({"run": "x", "status": "failed", "stages": {"a": {"status": "succeeded"}}}) == (
        "stages.a.cache_key is missing"
    )


def test_no_module_probes_records_with_get_chains() -> None:
    """The record's schema lives in modver/record.py: nobody else digs in raw record JSON."""
    import modver

    package = Path(modver.__file__).parent
    for path in package.rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        assert ('get("stages") or {}' not in text and "get('stages') or {}" not in text) or path.name == "record.py", (
            path
        )
