"""``modver report``: one self-contained HTML file of the runs, their metrics and curves, sweeps,
and each stage's versions with the semantic diff of each from the one before.

The file works offline from a ``file://`` URL: its data (JSON), style and script are inside it.
The script and style are modver's own (``modver/report/templates/report.js`` and ``report.css``, a
small hand-written SVG renderer: no third-party code, nothing fetched). :func:`report_data`
collects what the page shows; :func:`render` puts it into ``templates/report.html``.

Size is bounded: step series are thinned to evenly spaced points (the first and last kept) so
that the file holds at most :data:`POINT_BUDGET` points in all, and values are written with 4
significant digits in the curves (the runs table keeps them whole).
"""

from __future__ import annotations

import html
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any

from modver.engine.diff import diff_closures
from modver.engine.runtable import cached_cell, flatten_record, short_headers, table_columns, unique_prefixes
from modver.record import RunRecord
from modver.store.history import History
from modver.store.runindex import Steps

__all__ = ["POINT_BUDGET", "ReportResult", "VersionDiff", "render", "report_data", "stage_timelines"]

POINT_BUDGET = 200_000  # points of step series in one report (~2.5 MB of JSON)
MIN_POINTS = 10  # a curve keeps at least this many points, however many there are


@dataclass(frozen=True)
class ReportResult:
    """A report written: where, how many runs it shows, its size in bytes."""

    path: Path
    runs: int
    size: int

    def to_json(self) -> dict[str, Any]:
        return {"path": str(self.path), "runs": self.runs, "size": self.size}


@dataclass(frozen=True)
class VersionDiff:
    """A version of a stage on the timeline, with what changed from the version before it."""

    stage: str
    version: str
    fingerprint: str
    created: str
    origin: str | None
    message: str
    status: str  # "first", or the diff's status: changed, formatting only
    changes: tuple[tuple[str, str, str, str], ...]  # (kind, name, status, unified diff)


def stage_timelines(history: History, stages: Iterable[str]) -> list[VersionDiff]:
    """Every version of ``stages`` (oldest first per stage), each diffed with the one before."""
    out = []
    for stage in stages:
        previous = None
        for version in history.versions(stage):
            closure, tree = history.closure(version), history.source_tree(version)
            changes: tuple[tuple[str, str, str, str], ...] = ()
            if previous is None:
                status = "first"
            else:
                label_a = f"{stage}@{previous[0].version}"
                diff = diff_closures(
                    stage, label_a, previous[1], previous[2], f"{stage}@{version.version}", closure, tree
                )
                status = diff.status
                changes = tuple((c.kind, c.name, c.status, c.diff) for c in diff.changes)
            out.append(
                VersionDiff(stage, version.version, version.fingerprint, version.created, version.origin,
                            version.message, status, changes)
            )  # fmt: skip
            previous = (version, closure, tree)
    return out


def _thin(steps: Sequence[int], values: Sequence[float], keep: int) -> tuple[list[int], list[float | None]]:
    """At most ``keep`` evenly spaced points of a curve, its first and last among them."""
    if len(steps) <= keep:
        return list(steps), [_round(v) for v in values]
    stride = math.ceil(len(steps) / (keep - 1))
    picked_steps, picked_values = list(steps[::stride]), list(values[::stride])
    if picked_steps[-1] != steps[-1]:
        picked_steps.append(steps[-1])
        picked_values.append(values[-1])
    return picked_steps, [_round(v) for v in picked_values]


def _round(value: float) -> float | None:
    if not isinstance(value, (int, float)) or math.isnan(value) or math.isinf(value):
        return None
    return float(f"{value:.4g}")


def _jsonable(value: Any) -> Any:
    if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
        return None
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return json.dumps(value, sort_keys=True, default=str)


def report_data(
    records: Sequence[RunRecord],
    steps: Mapping[str, Mapping[str, Steps]],
    timelines: Sequence[VersionDiff],
    *,
    ids: Iterable[str] = (),
    title: str = "modver report",
    where: str | None = None,
    sweep: str | None = None,
    searches: Mapping[str, bool] | None = None,
) -> dict[str, Any]:
    """What the page shows, as JSON: the runs table (columns and rows), each run's step series
    (thinned), sweeps (run positions by sweep id), a search's trials (run position -> trial
    number; ``searches``: sweep id -> whether its metric is minimized, for the best-so-far line
    of the optimization history), and the versions of each stage with the runs that used them."""
    rows = [flatten_record(r) for r in records]
    # what differs first: run, status, metrics, versions, params; then cache use, sweep and time
    listed = table_columns(rows)
    names = ["run", "status", *(c for c in listed if c.startswith("metric.")),
             *(c for c in listed if c.startswith(("version.", "param."))), "cached", "sweep", "started", "duration"]  # fmt: skip
    headers = short_headers(names)
    prefixes = unique_prefixes([r.run for r in records], ids)
    for record, row in zip(records, rows):
        row["cached"] = cached_cell(record)
        row["sweep"] = record.sweep
        row["started"] = (row["started"] or "")[:19].replace("T", " ") or None
    if not any(row["sweep"] for row in rows):
        names.remove("sweep")
    curves = sum(len(steps.get(r.run, {})) for r in records)
    keep = max(MIN_POINTS, POINT_BUDGET // curves) if curves else 0
    series: dict[str, list[Any]] = {}
    for i, record in enumerate(records):
        for metric, (xs, ys) in steps.get(record.run, {}).items():
            series.setdefault(metric, []).append([i, *_thin(xs, ys, keep)])
    sweeps: dict[str, list[int]] = {}
    for i, row in enumerate(rows):
        if row["sweep"]:
            sweeps.setdefault(row["sweep"], []).append(i)
    used: dict[tuple[str, str], int] = {}
    for record in records:
        for stage, label in record.versions.items():
            if label:
                used[(stage, label)] = used.get((stage, label), 0) + 1
    return {
        "title": title,
        "generated": datetime.now(UTC).isoformat(timespec="seconds"),
        "where": where,
        "sweep": sweep,
        "columns": [{"name": c, "header": headers[c]} for c in names],
        "rows": [
            [_jsonable(prefixes[r.run] if c == "run" else row.get(c)) for c in names] for r, row in zip(records, rows)
        ],
        "runs": [r.run for r in records],
        "series": series,
        "thinned": keep if any(len(xs) > keep for s in steps.values() for xs, _ in s.values()) else None,
        "sweeps": sweeps,
        "trials": {str(i): r.trial for i, r in enumerate(records) if r.trial is not None},
        "searches": dict(searches or {}),
        "versions": [
            {
                "stage": v.stage,
                "version": v.version,
                "created": v.created,
                "message": v.message,
                "status": v.status,
                "runs": used.get((v.stage, v.version), 0),
                "id": _anchor(v),
            }
            for v in timelines
        ],
    }


def _anchor(v: VersionDiff) -> str:
    return "diff-" + "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in f"{v.stage}-{v.version}")


def _diff_html(timelines: Sequence[VersionDiff]) -> str:
    """Each version's changes from the one before, as ``<details>`` blocks (readable without script)."""
    parts = []
    for v in timelines:
        if v.status == "first":
            what = "first version"
        else:
            what = f"{v.status} from the previous version: " + (
                ", ".join(f"{kind} {name} ({status})" for kind, name, status, _ in v.changes) or "no definition differs"
            )
        body = []
        for kind, name, status, diff in v.changes:
            lines = []
            for line in diff.splitlines():
                css = (
                    "add"
                    if line.startswith("+")
                    else "del"
                    if line.startswith("-")
                    else "hunk"
                    if line.startswith("@@")
                    else ""
                )
                lines.append(f'<span class="{css}">{html.escape(line)}</span>' if css else html.escape(line))
            body.append(f"<h4>{html.escape(kind)} {html.escape(name)}: {html.escape(status)}</h4>")
            if lines:
                body.append('<pre class="diff">' + "\n".join(lines) + "</pre>")
        origin = f" · commit {html.escape(v.origin[:10])}" if v.origin else " · working tree snapshot"
        parts.append(
            f'<details id="{_anchor(v)}" class="version"><summary><b>{html.escape(v.stage)}@{html.escape(v.version)}</b>'
            f" <span class=dim>{html.escape(v.created[:19].replace('T', ' '))}{origin} · {html.escape(v.message)}</span>"
            f" — {html.escape(what)}</summary>{''.join(body)}</details>"
        )
    return "\n".join(parts)


def render(data: Mapping[str, Any], timelines: Sequence[VersionDiff], blames: str = "") -> str:
    """The HTML page: the template with its style, script, data and the versions' diffs inside
    (and ``blames``, the section of blames: :func:`modver.report.waterfall.blames_html`)."""
    folder = resources.files("modver.report") / "templates"
    page = (folder / "report.html").read_text(encoding="utf-8")
    # no "<" in the data: it cannot end its <script> element nor hold a marker replaced after it
    payload = json.dumps(data, separators=(",", ":"), ensure_ascii=False, allow_nan=False).replace("<", "\\u003c")
    for marker, text in (  # in this order: what one inserts never holds a later marker (all are replaced)
        ("/*STYLE*/", (folder / "report.css").read_text(encoding="utf-8")),
        ("/*SCRIPT*/", (folder / "report.js").read_text(encoding="utf-8")),
        ("/*DATA*/", payload),
        ("<!--TITLE-->", html.escape(str(data["title"]))),
        ("<!--DIFFS-->", _diff_html(timelines)),
        ("<!--BLAMES-->", blames),
    ):
        page = page.replace(marker, text)
    return page
