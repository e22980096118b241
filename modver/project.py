"""The façade: every CLI command is a thin call of a method of the project or of one of its parts.
Returns models, never prints.

>>> with Project("path/to/repo") as project:          # doctest: +SKIP
...     project.versions.index()
...     [v.version for v in project.versions.log("preprocess")]
...     project.sweeps.run(project.sweeps.spec(["model.C=0.1,1"]))

A :class:`Project` is a :class:`~modver.api.workspace.Workspace` (the repository, its store, stage
histories, registry, run records and manifests) with ``status``, the diffs and running; it holds
the parts for the rest (:mod:`modver.api`): ``project.versions`` (snapshot, index, log, resolve,
tag, show, verify, pin), ``project.runs`` (the records, the runs table, the report),
``project.sweeps``, ``project.outputs`` (load, gc) and ``project.sharing`` (push, pull). The
method names the docs show for those (``project.log``, ``project.push``...) are kept, as one-line
calls of the part. Nothing here computes: versions come from
:class:`~modver.engine.registry.Registry`, runs from :mod:`modver.engine.run`; what it returns is
in :mod:`modver.results`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from modver import errors
from modver.api.workspace import DEFAULT_MANIFEST, PathArg, Workspace
from modver.models import SourceTree, StageVersion
from modver.results import InitResult, PinResult, RunDiff, ShownRun, ShownVersion, SnapshotResult, StageState
from modver.store.layout import STORE_DIR, Store

if TYPE_CHECKING:  # pragma: no cover
    import pandas

    from modver.api.explain import Explain
    from modver.api.outputs import Outputs
    from modver.api.runs import Runs
    from modver.api.sharing import Sharing
    from modver.api.sweeps import Sweeps
    from modver.api.versions import Versions
    from modver.engine.diff import ManifestDiff, StageDiff
    from modver.engine.indexer import IndexResult, Progress
    from modver.engine.planner import StagePlan
    from modver.engine.recorder import Event
    from modver.engine.verify import VersionCheck
    from modver.explain.bisect import BisectResult
    from modver.explain.blame import BlameResult
    from modver.models import SweepSpec
    from modver.record import KeyParts, RunRecord
    from modver.report.page import ReportResult
    from modver.share.versions import PullResult, PushResult
    from modver.store.retention import GcResult
    from modver.store.sweepstore import Best, SweepRecord
    from modver.sweep.cluster import ExecutorSpec
    from modver.sweep.driver import OnProgress
    from modver.sweep.graph import Graph

__all__ = ["Project", "init", "load", "runs"]


def init(path: str | os.PathLike[str] = ".", *, from_dvc: str | None = None, force: bool = False) -> InitResult:
    """Make ``.modver/``, git-ignore it, write a starter manifest, ``git init`` if needed.

    With ``from_dvc`` (the path of a ``dvc.yaml``, relative to the project folder), the manifest
    is converted from that DVC pipeline instead (docs/from-dvc.md): written when there is none,
    left as it is when it already says the same, replaced only with ``force``. dvc.yaml,
    dvc.lock, params files and ``.dvc/`` are only read."""
    from modver import _fs, _git, manifest

    folder = Path(path).resolve()
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise errors.UsageError(
            f"cannot make the project folder {folder}: {exc.strerror or exc}", where=str(folder),
            hint="give `modver init` a folder, or a path where one can be made",
        ) from exc  # fmt: skip
    created_repo = False
    try:
        repo = _git.GitRepo.discover(folder)
    except errors.NotARepositoryError:
        repo = _git.GitRepo.init(folder)
        created_repo = True
    with repo:
        root, store = repo.root, Store.of(repo)
    temp_dir = store.make().tmp  # a killed init leaves no temp file for `git status` to show
    gitignore = root / ".gitignore"
    text = gitignore.read_text(encoding="utf-8") if gitignore.exists() else ""
    ignored = {line.strip().rstrip("/") for line in text.splitlines()}
    updated = False
    if STORE_DIR not in ignored and f"/{STORE_DIR}" not in ignored:
        sep = "" if not text or text.endswith("\n") else "\n"
        _fs.replace_file(gitignore, f"{text}{sep}{STORE_DIR}/\n".encode(), temp_dir=temp_dir)
        updated = True
    manifest_path = root / DEFAULT_MANIFEST
    created_manifest = False
    if from_dvc is not None:
        conversion, state = _init_from_dvc(root, folder / from_dvc, manifest_path, force, temp_dir)
        return InitResult(root, created_repo, state != "unchanged", updated, conversion, state)
    if not manifest_path.exists():
        _fs.replace_file(manifest_path, manifest.STARTER_MANIFEST.encode(), temp_dir=temp_dir)
        created_manifest = True
    return InitResult(root, created_repo, created_manifest, updated)


def _init_from_dvc(root: Path, dvc_yaml: Path, manifest_path: Path, force: bool, temp_dir: Path) -> tuple[Any, str]:
    """Convert ``dvc_yaml`` and write the manifest: ``(conversion, "written"|"replaced"|"unchanged")``."""
    from modver import _fs, manifest
    from modver.fingerprint import fingerprint_stage
    from modver.manifest.from_dvc import convert_dvc
    from modver.sourcetree import WorkingTree

    if not dvc_yaml.is_file():
        raise errors.UsageError(
            f"no DVC pipeline at {dvc_yaml}", where=str(dvc_yaml),
            hint="run `modver init --from-dvc` in the DVC project, or give the dvc.yaml's path: --from-dvc path/to/dvc.yaml",
        )  # fmt: skip
    try:
        where = dvc_yaml.resolve().relative_to(root).as_posix()
    except ValueError:
        raise errors.UsageError(
            f"{dvc_yaml} is not inside the project {root}", where=str(dvc_yaml), hint="give a dvc.yaml of this project"
        ) from None
    text = manifest.read_manifest_bytes(dvc_yaml).decode("utf-8", "replace")
    tree = WorkingTree(root)

    def closure(entry: str) -> tuple[str, ...]:
        try:
            return fingerprint_stage(tree, entry).files
        except errors.ModverError:  # a script that does not parse: only the script itself is dropped
            return (entry,)

    conversion = convert_dvc(text, tree, closure, where=where)
    if not conversion.stages:
        lines = "\n  ".join(n.render(where) for n in conversion.notes)
        raise errors.ManifestError(
            f"no stage of {where} converts:\n  {lines}", where=where,
            hint="modver converts stages whose cmd runs a Python script of the project (`python FILE ARGS`)",
        )  # fmt: skip
    new = conversion.text()
    manifest.load_manifest_text(new, manifest_path, root)  # the SPEC's keys, checked as any manifest is
    state = "written"
    if manifest_path.exists():
        old = manifest.read_manifest_bytes(manifest_path).decode("utf-8", "replace")
        if old == new:
            return conversion, "unchanged"
        if not force:
            raise errors.UsageError(
                f"{DEFAULT_MANIFEST} already exists and differs from the conversion of {where}",
                where=str(manifest_path),
                hint="`modver init --from-dvc --force` replaces it (git keeps the old one if it is committed)",
            )
        state = "replaced"
    _fs.replace_file(manifest_path, new.encode(), temp_dir=temp_dir)
    return conversion, state


class Project(Workspace):
    """A git repository using modver and what can be done with it (see the module docstring). Use
    it as a context manager (or call :meth:`close`) so the git repository is closed."""

    # -- the parts ---------------------------------------------------------------------

    @cached_property
    def versions(self) -> Versions:
        """The stage versions (:class:`~modver.api.versions.Versions`)."""
        from modver.api.versions import Versions

        return Versions(self)

    @cached_property
    def runs(self) -> Runs:
        """The run records; ``project.runs()`` lists them (:class:`~modver.api.runs.Runs`)."""
        from modver.api.runs import Runs

        return Runs(self)

    @cached_property
    def sweeps(self) -> Sweeps:
        """The sweeps; ``project.sweeps()`` lists their records (:class:`~modver.api.sweeps.Sweeps`)."""
        from modver.api.sweeps import Sweeps

        return Sweeps(self)

    @cached_property
    def outputs(self) -> Outputs:
        """The cached stage outputs (:class:`~modver.api.outputs.Outputs`)."""
        from modver.api.outputs import Outputs

        return Outputs(self)

    @cached_property
    def explain(self) -> Explain:
        """Blame and bisect (:class:`~modver.api.explain.Explain`)."""
        from modver.api.explain import Explain

        return Explain(self)

    @cached_property
    def sharing(self) -> Sharing:
        """Push and pull (:class:`~modver.api.sharing.Sharing`)."""
        from modver.api.sharing import Sharing

        return Sharing(self)

    # -- status and diffs --------------------------------------------------------------

    def status(self, manifest: PathArg = None) -> list[StageState]:
        """Per declared stage: the working tree's version against its pin or the version its last
        run used, and whether a run now would be cached (see :mod:`modver.engine.status`)."""
        from modver.engine.status import stage_states

        return stage_states(self.registry, self.manifest(manifest), self.store)

    def diff_working(self, manifest: PathArg = None) -> list[StageDiff]:
        """Each declared stage's working tree against what status compares it with (its pin, or the
        version its last run used: :func:`modver.engine.status.baseline`), else its latest version,
        definition by definition."""
        from modver.engine.diff import diff_closures
        from modver.engine.planner import last_key_parts
        from modver.engine.status import baseline

        m = self.manifest(manifest)
        tree = self.working_tree()
        previous = last_key_parts(self.runs_store, list(m.stages))
        manifest_rel = self.registry.manifest_rel(self.manifest_path(manifest))
        out = []
        for name, spec in m.stages.items():
            closure = self.fingerprint(spec, tree, docstrings=self.docstrings(manifest))
            compared = baseline(self.registry, spec, previous.get(name), docstrings=self.docstrings(manifest),
                                manifest_rel=manifest_rel)  # fmt: skip
            if compared.error is not None:
                raise compared.error
            base = compared.version
            if base is None and compared.source != "pin":
                base = self.history.latest(name) if name in self.history.stages() else None
            if base is None:
                out.append(diff_closures(name, "(nothing registered)", None, None, "working tree", closure, tree))
                continue
            stored, tree_at = self.history.closure(base), self.history.source_tree(base)
            out.append(diff_closures(name, f"{name}@{base.version}", stored, tree_at, "working tree", closure, tree))
        return out

    def diff_versions(self, a: str, b: str | None = None, manifest: PathArg = None) -> StageDiff:
        """Two versions of one stage (``STAGE@A``, ``STAGE@B`` or just ``B``); B defaults to the
        working tree. ``STAGE@working`` is the working tree, fingerprinted, never registered."""
        from modver.engine.diff import diff_closures

        stage = a.partition("@")[0]

        def side(ref: str) -> tuple[str, Any, SourceTree]:
            if ref.partition("@")[2] == "working":
                tree: SourceTree = self.working_tree()
                spec = self.versions.spec(stage, manifest)
                return "working tree", self.fingerprint(spec, tree, docstrings=self.docstrings(manifest)), tree
            v = self.versions.resolve(ref, manifest)
            return f"{v.stage}@{v.version}", self.history.closure(v), self.history.source_tree(v)

        label_a, ca, ta = side(a)
        label_b, cb, tb = side(f"{stage}@working" if b is None else b if "@" in b else f"{stage}@{b}")
        return diff_closures(stage, label_a, ca, ta, label_b, cb, tb)

    def diff_manifests(self, a: str | os.PathLike[str], b: str | os.PathLike[str]) -> ManifestDiff:
        """Two manifests side by side: data, entries, pins, inputs and params."""
        from modver.engine.diff import diff_manifests

        return diff_manifests(self.manifest(a), self.manifest(b), self.history)

    def plan(
        self,
        manifest: PathArg = None,
        *,
        sets: Sequence[str] = (),
        force: Sequence[str] = (),
        previous: dict[str, KeyParts] | None = None,
        pins: Sequence[str] = (),
    ) -> list[StagePlan]:
        """What a run would do, stage by stage, and why (nothing is executed or registered).

        ``previous``: the last recorded key parts per stage (read from the run records if None).
        """
        from modver.engine.planner import last_key_parts, plan

        pipeline = self.pipeline(manifest, sets, pins)
        if previous is None:
            previous = last_key_parts(self.runs_store, [s.name for s in pipeline.stages])
        return plan(self.registry, self.store, pipeline, force=force, previous=previous)

    def run(
        self,
        manifest: PathArg = None,
        *,
        sets: Sequence[str] = (),
        force: Sequence[str] = (),
        on_event: Event | None = None,
        echo: TextIO | None = None,
        jobs: int | None = None,
        pins: Sequence[str] = (),
        force_outs: bool = False,
    ) -> RunRecord:
        """Run the manifest at its pinned versions, with caching; the run's record. ``jobs`` > 1
        runs independent stages at once on a local Dask cluster of that many workers. ``pins``
        (``["model@v3"]``) change pins for this run only: the manifest is not touched, and the
        record names them (``pins``). Script stages' outs are placed in the working tree (not with
        ``jobs`` > 1); ``force_outs`` replaces outs edited by hand (:mod:`modver.engine.outs`)."""
        from modver.engine.run import execute

        pipeline = self.pipeline(manifest, sets, pins)
        if jobs is not None and jobs < 1:
            raise errors.UsageError(f"--jobs must be at least 1, not {jobs}", hint="give --jobs N with N >= 1")
        if jobs is not None and jobs > 1:
            from modver.sweep.cluster import ExecutorSpec
            from modver.sweep.driver import run_parallel

            return run_parallel(
                self.registry, self.store, pipeline, ExecutorSpec(jobs=jobs), force=force, on_event=on_event
            )
        return execute(
            self.registry, self.store, pipeline, force=force, on_event=on_event, echo=echo, place=True,
            force_outs=force_outs,
        )  # fmt: skip

    def checkout(self, ref: str = "latest", *, force: bool = False) -> list[str]:
        """Put the outs of run ``ref``'s script stages at their paths in the working tree, from
        the cache; the outs written. An out edited by hand is refused unless ``force``."""
        from modver.engine.outs import place_outs

        return place_outs(self.store, self.runs.record(ref), force=force)

    def reproduce(
        self, ref: str, *, use_cache: bool = False, on_event: Event | None = None, echo: TextIO | None = None
    ) -> RunRecord:
        """Run again exactly the recorded versions, params and data; compare the metrics
        (:func:`modver.engine.run.reproduce`)."""
        from modver.engine.run import reproduce

        original = self.runs.record(ref)
        return reproduce(self.registry, self.store, original, use_cache=use_cache, on_event=on_event, echo=echo)

    # -- names the docs show, kept: each is a call of the part that is its home ------

    def index(
        self, rev: str | None = None, *, all_branches: bool = False, manifest: PathArg = None,
        progress: Progress | None = None,
    ) -> IndexResult:  # fmt: skip
        """:meth:`project.versions.index <modver.api.versions.Versions.index>`."""
        return self.versions.index(rev, all_branches=all_branches, manifest=manifest, progress=progress)

    def snapshot(self, stages: Sequence[str] = (), message: str = "", manifest: PathArg = None) -> list[SnapshotResult]:
        """:meth:`project.versions.snapshot <modver.api.versions.Versions.snapshot>`."""
        return self.versions.snapshot(stages, message, manifest)

    def log(self, stage: str | None = None) -> list[StageVersion]:
        """:meth:`project.versions.log <modver.api.versions.Versions.log>`."""
        return self.versions.log(stage)

    def resolve(self, ref: str, manifest: PathArg = None) -> StageVersion:
        """:meth:`project.versions.resolve <modver.api.versions.Versions.resolve>`."""
        return self.versions.resolve(ref, manifest)

    def tag(self, ref: str, name: str, *, force: bool = False) -> StageVersion:
        """:meth:`project.versions.tag <modver.api.versions.Versions.tag>`."""
        return self.versions.tag(ref, name, force=force)

    def show_version(self, ref: str, manifest: PathArg = None) -> ShownVersion:
        """:meth:`project.versions.show <modver.api.versions.Versions.show>`."""
        return self.versions.show(ref, manifest)

    def verify(self, stages: Sequence[str] = ()) -> list[VersionCheck]:
        """:meth:`project.versions.verify <modver.api.versions.Versions.verify>`."""
        return self.versions.verify(stages)

    def pin(self, ref: str, manifest: PathArg = None) -> PinResult:
        """:meth:`project.versions.pin <modver.api.versions.Versions.pin>`."""
        return self.versions.pin(ref, manifest)

    def unpin(self, stage: str, manifest: PathArg = None) -> PinResult:
        """:meth:`project.versions.unpin <modver.api.versions.Versions.unpin>`."""
        return self.versions.unpin(stage, manifest)

    def run_record(self, ref: str = "latest") -> RunRecord:
        """:meth:`project.runs.record <modver.api.runs.Runs.record>`."""
        return self.runs.record(ref)

    def show_run(self, ref: str = "latest") -> ShownRun:
        """:meth:`project.runs.show <modver.api.runs.Runs.show>`."""
        return self.runs.show(ref)

    def diff_runs(self, a: str, b: str) -> RunDiff:
        """:meth:`project.runs.diff <modver.api.runs.Runs.diff>`."""
        return self.runs.diff(a, b)

    def version_runs(self, stage: str) -> dict[str, list[RunRecord]]:
        """:meth:`project.runs.by_version <modver.api.runs.Runs.by_version>`."""
        return self.runs.by_version(stage)

    def report(self, out: PathArg = None, *, where: str | None = None, sweep: str | None = None) -> ReportResult:
        """:meth:`project.runs.report <modver.api.runs.Runs.report>`."""
        return self.runs.report(out, where=where, sweep=sweep)

    def load(self, stage: str, run: str = "latest") -> Any:
        """:meth:`project.outputs.load <modver.api.outputs.Outputs.load>`."""
        return self.outputs.load(stage, run)

    def gc(
        self, *, keep_last: int | None = None, older_than: str | None = None, remove_records: bool = False,
        dry_run: bool = False,
    ) -> GcResult:  # fmt: skip
        """:meth:`project.outputs.gc <modver.api.outputs.Outputs.gc>`."""
        return self.outputs.gc(
            keep_last=keep_last, older_than=older_than, remove_records=remove_records, dry_run=dry_run
        )

    def push(self, remote: str | None = None, *, dry_run: bool = False) -> PushResult:
        """:meth:`project.sharing.push <modver.api.sharing.Sharing.push>`."""
        return self.sharing.push(remote, dry_run=dry_run)

    def pull(self, remote: str | None = None, *, outputs: bool = False, dry_run: bool = False) -> PullResult:
        """:meth:`project.sharing.pull <modver.api.sharing.Sharing.pull>`."""
        return self.sharing.pull(remote, outputs=outputs, dry_run=dry_run)

    def executor(
        self, manifest: PathArg = None, *, jobs: int | None = None, scheduler: str | None = None,
        cluster: str | None = None, debug: bool = False,
    ) -> ExecutorSpec:  # fmt: skip
        """:meth:`project.sweeps.executor <modver.api.sweeps.Sweeps.executor>`."""
        return self.sweeps.executor(manifest, jobs=jobs, scheduler=scheduler, cluster=cluster, debug=debug)

    def sweep_spec(self, sets: Sequence[str], *, zip_axes: bool = False, file: PathArg = None) -> SweepSpec:
        """:meth:`project.sweeps.spec <modver.api.sweeps.Sweeps.spec>`."""
        return self.sweeps.spec(sets, zip_axes=zip_axes, file=file)

    def plan_sweep(
        self, spec: SweepSpec | None = None, manifest: PathArg = None, *, resume: str | None = None
    ) -> Graph:
        """:meth:`project.sweeps.plan <modver.api.sweeps.Sweeps.plan>`."""
        return self.sweeps.plan(spec, manifest, resume=resume)

    def sweep(
        self, spec: SweepSpec | None = None, manifest: PathArg = None, *, resume: str | None = None,
        executor: ExecutorSpec | None = None, fail_fast: bool = False, best: Best | None = None,
        on_progress: OnProgress | None = None,
    ) -> SweepRecord:  # fmt: skip
        """:meth:`project.sweeps.run <modver.api.sweeps.Sweeps.run>`."""
        return self.sweeps.run(spec, manifest, resume=resume, executor=executor, fail_fast=fail_fast, best=best,
                               on_progress=on_progress)  # fmt: skip

    def blame(
        self, metric: str, run_a: str, run_b: str, *, jobs: int | None = None, scheduler: str | None = None,
        cluster: str | None = None, max_runs: int | None = None, on_stage: Event | None = None,
    ) -> BlameResult:  # fmt: skip
        """:meth:`project.explain.blame <modver.api.explain.Explain.blame>`."""
        return self.explain.blame(metric, run_a, run_b, jobs=jobs, scheduler=scheduler, cluster=cluster,
                                  max_runs=max_runs, on_stage=on_stage)  # fmt: skip

    def bisect(
        self, metric: str, good: str, bad: str, *, stage: str | None = None, threshold: float | None = None,
        higher_is_better: bool | None = None, jobs: int | None = None, scheduler: str | None = None,
        cluster: str | None = None, on_stage: Event | None = None,
    ) -> BisectResult:  # fmt: skip
        """:meth:`project.explain.bisect <modver.api.explain.Explain.bisect>`."""
        return self.explain.bisect(metric, good, bad, stage=stage, threshold=threshold,
                                   higher_is_better=higher_is_better, jobs=jobs, scheduler=scheduler, cluster=cluster,
                                   on_stage=on_stage)  # fmt: skip

    def sweep_record(self, ref: str = "latest") -> SweepRecord:
        """:meth:`project.sweeps.record <modver.api.sweeps.Sweeps.record>`."""
        return self.sweeps.record(ref)


def runs(
    path: str | os.PathLike[str] = ".",
    sweep: str | None = None,
    *,
    where: str | None = None,
    sort: str | None = None,
    last: int | None = None,
) -> pandas.DataFrame:
    """The runs of the project at ``path`` as a pandas DataFrame, one row per run: all of them, or
    those of one ``sweep``, kept by ``where``, sorted by ``sort``, the ``last`` N (as ``modver runs``)."""
    from modver.engine.runtable import runs_dataframe

    with Project(path) as project:
        return runs_dataframe(project.runs.summaries(where, sort, last, sweep))


def load(stage: str, run: str = "latest", path: str | os.PathLike[str] = ".") -> Any:
    """The output object of ``stage`` in ``run`` (default: the newest run that produced one)."""
    with Project(path) as project:
        return project.outputs.load(stage, run)
