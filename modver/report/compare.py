"""The report's comparison of two runs: what the page needs to set any two of the newest runs
side by side — each run's versions, params, metrics and why each stage ran (its record's
``reason``), and the one-line semantic diff of each pair of a stage's versions that the runs
used (``summary``: :func:`modver.engine.planner.change_summary`, the line blame and bisect give),
within a budget; beyond it the page gives the ``modver diff`` command alone."""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from typing import Any

from modver.record import RunRecord

__all__ = ["COMPARE_RUNS", "SUMMARY_BUDGET", "compare_data"]

COMPARE_RUNS = 100  # the newest runs that can be compared (their whole records are read: ~1.3 ms each)
SUMMARY_BUDGET = 400  # version pairs summarized in one report


def _value(value: Any) -> Any:
    if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
        return None
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return json.dumps(value, sort_keys=True, default=str)


def compare_data(records: Sequence[RunRecord], summary: Callable[[str, str, str], str]) -> dict[str, Any]:
    """``{"runs": {run: {versions, params, metrics, reasons, status, started}}, "summaries":
    {"stage vA vB": line}}`` for ``records`` (whole records, oldest first)."""
    runs: dict[str, Any] = {}
    used: dict[str, dict[str, str]] = {}  # stage -> version label -> fingerprint
    for record in records:
        runs[record.run] = {
            "status": str(record.status),
            "started": (record.started or "")[:19].replace("T", " "),
            "versions": {name: s.version for name, s in record.stages.items()},
            "params": {f"{stage}.{k}": _value(v) for stage, ps in record.params.items() for k, v in ps.items()},
            "metrics": {k: _value(v) for k, v in record.metrics.items()},
            "reasons": {name: s.reason for name, s in record.stages.items() if s.reason},
        }
        for name, s in record.stages.items():
            if s.version and s.fingerprint:
                used.setdefault(name, {})[s.version] = s.fingerprint
    summaries: dict[str, str] = {}
    pairs = [(stage, a, b) for stage, labels in used.items() for a in labels for b in labels if a != b]
    pairs.sort(key=lambda p: abs(_number(p[1]) - _number(p[2])))  # neighbours first: the likely comparisons
    for stage, a, b in pairs[:SUMMARY_BUDGET]:
        line = summary(stage, used[stage][a], used[stage][b])
        if line:
            summaries[f"{stage} {a} {b}"] = line
    return {"runs": runs, "summaries": summaries}


def _number(label: str) -> int:
    return int(label[1:]) if label[:1] == "v" and label[1:].isdigit() else 0
