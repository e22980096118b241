"""Stage outputs, the façade's part: ``project.outputs`` — loading a run's output object, and
removing what no kept run uses (``modver gc``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from modver import errors
from modver.api.runs import Runs
from modver.api.workspace import Workspace
from modver.names import did_you_mean

if TYPE_CHECKING:  # pragma: no cover
    from modver.store.retention import GcResult

__all__ = ["Outputs"]


class Outputs:
    """A project's cached stage outputs (see the module docstring)."""

    def __init__(self, workspace: Workspace):
        self._ws = workspace

    def load(self, stage: str, run: str = "latest") -> Any:
        """A stage's output object from a run; loads without the code in the working tree.

        ``run="latest"`` is the newest run that has an output of ``stage`` (a run that failed
        before it, or ran another manifest, is passed over); any other reference names one run.
        """
        from modver.store.materialize import make_importable, materialize

        ws, runs = self._ws, Runs(self._ws)
        record = runs.latest_with_output(stage) if run.strip() == "latest" else None
        record = record or runs.record(run)
        info = record.stages.get(stage)
        if info is None:
            raise errors.UnknownStageError(
                f"run {record.run} has no stage {stage!r}; it has: {', '.join(record.stages) or '(none)'}",
                hint=f"{did_you_mean(stage, record.stages)}see `modver show {record.run}`",
            )
        if not info.status.has_output:
            raise errors.RunError(
                f"stage {stage} has no output in run {record.run} (it {info.status})",
                hint="load it from a run where it succeeded: modver.load(stage, run=...)",
            )
        version = ws.history.find(stage, info.fingerprint) if info.fingerprint else None
        if version is not None:  # a teammate's run: its classes live in a version not materialized here
            materialize(lambda: ws.history.files(version), version.fingerprint, ws.store, entry=version.entry)
        make_importable(ws.store)
        cache = ws.store.output_cache()
        output = cache.load(info.cache_key)  # verified: a script stage's outs are files of the entry
        if info.outs:  # a script stage: the path of its out in the cache (one out), or out -> path
            from modver.engine.workspace import OUTS_DIR

            paths = {out: cache.path(info.cache_key) / OUTS_DIR / out for out in info.outs}
            return next(iter(paths.values())) if len(paths) == 1 else paths
        return output

    def gc(
        self, *, keep_last: int | None = None, older_than: str | None = None, remove_records: bool = False,
        dry_run: bool = False,
    ) -> GcResult:  # fmt: skip
        """Remove cached outputs and materialized versions that no kept run uses (all runs are
        kept unless ``keep_last``/``older_than`` — e.g. ``"30d"`` — narrow them); run records
        only with ``remove_records``. Safe while runs are in progress (see modver/store/retention.py)."""
        from modver.engine.recorder import mark_dead
        from modver.store.retention import collect_garbage, parse_duration, store_lock

        seconds = parse_duration(older_than) if older_than is not None else None
        store = self._ws.store
        with store_lock(store, shared=False):
            records = [mark_dead(r) for r in self._ws.runs_store.list()]
            return collect_garbage(
                store, records, keep_last=keep_last, older_than=seconds, remove_records=remove_records,
                dry_run=dry_run,
            )  # fmt: skip
