"""Run records, the façade's part: ``project.runs`` — the runs table, one run's record and logs,
two runs side by side, and the HTML report.

``project.runs()`` lists the records (``--where``, ``--sort``, ``--last``, ``--sweep``); the
tables read summaries through the runs index (:mod:`modver.store.runindex`), fast for many runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from modver import errors
from modver.api.workspace import PathArg, Workspace
from modver.engine.recorder import mark_dead
from modver.results import RunDiff, ShownRun

if TYPE_CHECKING:  # pragma: no cover
    from modver.record import RunRecord
    from modver.report.page import ReportResult

__all__ = ["Runs"]


class Runs:
    """A project's run records (see the module docstring)."""

    def __init__(self, workspace: Workspace):
        self._ws = workspace

    def __call__(
        self, where: str | None = None, sort: str | None = None, last: int | None = None, sweep: str | None = None
    ) -> list[RunRecord]:
        """Every run record, oldest first (or sorted by a column, ``-column`` descending);
        ``where`` filters, ``sweep`` keeps that sweep's points, ``last`` the N newest of those
        (see :meth:`summaries`)."""
        selected = self.summaries(where, sort, last, sweep=sweep)
        store = self._ws.runs_store
        return [mark_dead(store.load_listed(s.run)) for s in selected]

    def summaries(
        self, where: str | None = None, sort: str | None = None, last: int | None = None, sweep: str | None = None
    ) -> list[RunRecord]:
        """What :meth:`__call__` selects, as summaries (records without manifest, series, packages
        and tracebacks: :func:`modver.store.runindex.summarize`), read through the runs index: fast
        for tables of many runs. ``last``: the N newest runs that ``where`` and ``sweep`` keep."""
        from modver.api.sweeps import Sweeps
        from modver.engine.runtable import filter_records, sort_records

        narrowed = bool(where) or sweep is not None
        records = [mark_dead(r) for r in self._ws.run_index.summaries(last=None if narrowed else last)]
        if sweep is not None:
            sweep_id = Sweeps(self._ws).record(sweep).sweep
            records = [r for r in records if r.sweep == sweep_id]
        if where:
            records = filter_records(records, where)
        if narrowed and last is not None:
            records = records[-last:] if last > 0 else []
        return sort_records(records, sort) if sort else records

    def record(self, ref: str = "latest") -> RunRecord:
        """One run's record (a run id, a unique prefix, ``latest`` or ``latest~N``)."""
        store = self._ws.runs_store
        return mark_dead(store.load(store.resolve(ref)))

    def is_ref(self, ref: str) -> bool:
        """Whether ``ref`` reads as a run reference: ``latest``, ``latest~N``, or a prefix of a run id."""
        try:
            self._ws.runs_store.resolve(ref)
        except errors.AmbiguousRunError:
            return True  # a prefix of several runs: a run reference, still
        except errors.UnknownRunError:
            return False
        return True

    def show(self, ref: str = "latest") -> ShownRun:
        """A run's record and what each of its stages printed."""
        from modver.store.runstore import LOG_STREAMS

        record = self.record(ref)
        store = self._ws.runs_store
        logs = {stage: {s: store.read_log(record.run, stage, s) for s in LOG_STREAMS} for stage in record.stages}
        return ShownRun(record, logs)

    def latest_with_output(self, stage: str) -> RunRecord | None:
        """The newest run that has an output of ``stage`` (damaged records are passed over)."""
        store = self._ws.runs_store
        for run_id in reversed(store.ids()):
            try:
                record = store.load(run_id)
            except errors.StoreError:
                continue
            if stage in record.stages and record.stages[stage].status.has_output:
                return record
        return None

    def by_version(self, stage: str) -> dict[str, list[RunRecord]]:
        """For each version label of ``stage``, the runs that used it, oldest first."""
        out: dict[str, list[RunRecord]] = {}
        for record in self.summaries():
            label = record.stages[stage].version if stage in record.stages else None
            if label:
                out.setdefault(label, []).append(record)
        return out

    def diff(self, a: str, b: str) -> RunDiff:
        """Versions, params, data, cache use and metrics of two runs, where they differ."""
        ra, rb = self.record(a), self.record(b)
        ca, cb = _run_columns(ra), _run_columns(rb)
        skip = {"run", "started", "duration"}  # differ between any two runs
        keys = [k for k in ca if k not in skip] + [k for k in cb if k not in ca and k not in skip]
        return RunDiff(ra.run, rb.run, tuple((k, ca.get(k), cb.get(k)) for k in keys if ca.get(k) != cb.get(k)))

    def report(self, out: PathArg = None, *, where: str | None = None, sweep: str | None = None) -> ReportResult:
        """Write the HTML report of the runs (``where`` filters; ``sweep``: one sweep's runs) to
        ``out`` (default ``.modver/report.html``): see :mod:`modver.report.page`."""
        from modver import _fs
        from modver.report.page import ReportResult, render, report_data, stage_timelines

        ws = self._ws
        records = self.summaries(where, sweep=sweep)
        have = set(ws.history.stages())
        timelines = stage_timelines(ws.history, [s for s in ws.stage_names() if s in have])
        from modver.store.sweepstore import SweepStore

        searches = {r.sweep: r.best.lowest for r in SweepStore(ws.store.sweeps).list() if r.best is not None}
        data = report_data(
            records, ws.run_index.steps([r.run for r in records]), timelines, ids=ws.runs_store.ids(),
            title=f"modver report: {ws.root.name}", where=where, sweep=sweep, searches=searches,
        )  # fmt: skip
        path = ws.store.report if out is None else (ws.base / Path(out)).resolve()
        from modver.report.compare import COMPARE_RUNS, compare_data
        from modver.report.waterfall import explain_html

        def summary(stage: str, a: str, b: str) -> str:
            from modver.engine.planner import change_summary  # only when two versions are compared

            return change_summary(ws.registry, stage, a, b)

        whole = [ws.runs_store.load_listed(r.run) for r in records[-COMPARE_RUNS:]]  # a damaged one: "corrupt"
        data["compare"] = compare_data(whole, summary)
        page = render(data, timelines, explain_html(ws.store.explain)).encode("utf-8")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            _fs.replace_file(path, page, temp_dir=ws.store.tmp)
        except OSError as exc:
            raise errors.UsageError(
                f"cannot write the report to {path}: {exc.strerror or exc}", where=str(path),
                hint="give -o a file in a folder that can be written",
            ) from exc  # fmt: skip
        return ReportResult(path, len(records), len(page))


def _run_columns(record: RunRecord) -> dict[str, Any]:
    """A run's row of the runs table, with its data hashes and which stages came from the cache."""
    from modver.engine.runtable import flatten_record

    row = flatten_record(record)
    for name, info in record.data.items():
        row[f"data.{name}"] = info.get("hash")
    for name, cached in record.cached.items():
        row[f"cached.{name}"] = cached
    return row
