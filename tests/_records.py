"""Run records for tests: JSON as `modver run` writes it, and the typed records made from it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from modver.record import RunRecord
from modver.store.runstore import new_run_id, run_id_time


def record_json(run_id: str, *, versions: dict[str, str] | None = None, **extra: Any) -> dict[str, Any]:
    """A small record's JSON: one stage per version, succeeded."""
    versions = {"prep": "v1", "model": "v2"} if versions is None else versions
    base: dict[str, Any] = {
        "run": run_id,
        "status": "succeeded",
        "started": run_id_time(run_id),
        "finished": None,
        "duration": 1.0,
        "versions": versions,
        "stages": {s: {"status": "succeeded", "cache_key": f"k-{s}"} for s in versions},
        "params": {"model": {"C": 1.0}},
        "metrics": {"accuracy": 0.8},
    }
    base.update(extra)
    return base


def record(run_id: str, **extra: Any) -> RunRecord:
    """:func:`record_json` as a :class:`RunRecord`."""
    return RunRecord.from_json(record_json(run_id, **extra))


def ids_at(n: int) -> list[str]:
    start = datetime(2026, 11, 22, 15, 0, tzinfo=UTC)
    return [new_run_id(start + timedelta(seconds=i)) for i in range(n)]


def full_record_json(run_id: str) -> dict[str, Any]:
    """A record with every field the product reads, as `modver run` writes them."""
    key_parts = {
        "entry": "pipe/prep.py:prep",
        "fingerprint": "mv1:ab",
        "version": "v1",
        "params": {"scale": 2},
        "inputs": {"raw": {"data": "data/raw.txt", "hash": "blake2b:cd"}},
    }
    return record_json(
        run_id,
        versions={"prep": "v1"},
        format=1,
        host="h",
        pid=12,
        manifest={
            "path": "manifest.yaml",
            "content": {
                "data": {"raw": "data/raw.txt"},
                "stages": {
                    "prep": {
                        "entry": "pipe/prep.py:prep",
                        "version": None,
                        "inputs": {"raw": "data.raw"},
                        "params": {},
                        "deps": [],
                    }
                },
                "fingerprint": {"docstrings": False},
            },
        },
        fingerprints={"prep": "mv1:ab"},
        params={"prep": {"scale": 2}},
        data={"raw": {"path": "data/raw.txt", "hash": "blake2b:cd"}},
        cached={"prep": False},
        order=["prep"],
        stages={
            "prep": {
                "status": "succeeded",
                "duration": 0.5,
                "cache_key": "k",
                "key_parts": key_parts,
                "reason": "first run",
                "notes": [],
                "error": None,
                "entry": "pipe/prep.py:prep",
                "timings": {"materialize": 0.1, "import": 0.2, "call": 0.5, "save": 0.01},
            }
        },
        metric_series={"accuracy": [{"step": None, "value": 0.8, "stage": "prep"}]},
        git={"commit": None, "dirty": False},
        python="3.11.9",
        packages={"dulwich": "0.22"},
        error=None,
        timings={"plan": 0.1, "stages": 0.81, "other": 0.05},
        reproduces="x",
        comparison={"accuracy": {"original": 0.8, "reproduced": 0.8, "match": True}},
    )
