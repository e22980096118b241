"""The façade: every CLI command is a thin call of a method here. Returns models, never prints.

>>> with Project("path/to/repo") as project:          # doctest: +SKIP
...     project.index()
...     [v.version for v in project.log("preprocess")]

It computes nothing itself: versions come from :class:`~modver.registry.Registry`, the history
walk from :mod:`modver.indexer`, runs from :mod:`modver.engine`, the runs table from
:mod:`modver.runtable`; what it returns is in :mod:`modver.results`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from modver import errors
from modver._sweep_facade import SweepMethods
from modver.models import Closure, SourceTree, StageSpec, StageVersion
from modver.names import did_you_mean
from modver.results import InitResult, PinResult, RunDiff, ShownRun, ShownVersion, SnapshotResult, StageState

if TYPE_CHECKING:  # pragma: no cover
    import pandas

    from modver._git import GitRepo
    from modver.diff import ManifestDiff, StageDiff
    from modver.engine import Event
    from modver.fingerprint import SummaryCache
    from modver.history import History
    from modver.indexer import IndexResult, Progress
    from modver.manifest import Manifest
    from modver.planner import Pipeline, StagePlan
    from modver.record import KeyParts, RunRecord
    from modver.registry import Registry
    from modver.report import ReportResult
    from modver.retention import GcResult
    from modver.runindex import RunIndex
    from modver.runstore import RunStore
    from modver.sharing import PullResult, PushResult
    from modver.storage import Storage
    from modver.verify import VersionCheck

STORE_DIR = ".modver"
DEFAULT_MANIFEST = "manifest.yaml"

PathArg = str | os.PathLike[str] | None


def make_store(root: Path) -> Path:
    """``root/.modver``, made if missing with a ``.gitignore`` of ``*`` inside it, so git ignores
    the store whichever command makes it first, without editing any file of the user's."""
    store = root / STORE_DIR
    if not (store / ".gitignore").is_file():
        from modver import _fs

        with _fs.write_faults(f"cannot make the store {store}", str(store)):
            store.mkdir(exist_ok=True)
            _fs.write_text_atomic(store / ".gitignore", "# made by modver: git ignores the whole store\n*\n")
    return store


def init(path: str | os.PathLike[str] = ".") -> InitResult:
    """Make ``.modver/``, git-ignore it, write a starter manifest, ``git init`` if needed."""
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
        root = repo.root
    temp_dir = make_store(root) / "tmp"  # a killed init leaves no temp file for `git status` to show
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
    if not manifest_path.exists():
        _fs.replace_file(manifest_path, manifest.STARTER_MANIFEST.encode(), temp_dir=temp_dir)
        created_manifest = True
    return InitResult(root, created_repo, created_manifest, updated)


class Project(SweepMethods):
    """A git repository using modver: manifests, stage histories, runs and the store (sweeps:
    :class:`~modver._sweep_facade.SweepMethods`).

    Use it as a context manager (or call :meth:`close`) so the git repository is closed.
    """

    def __init__(self, path: str | os.PathLike[str] = ".", manifest: PathArg = None):
        from modver import _git

        self._base = Path(path).resolve()  # relative manifest paths start here (`modver -C DIR`, like git)
        self._repo: GitRepo = _git.GitRepo.discover(self._base)
        self.root: Path = self._repo.root
        self._manifest_arg = manifest
        self._manifests: dict[Path, Manifest] = {}

    # -- plumbing ----------------------------------------------------------------------

    def __enter__(self) -> Project:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the underlying git repository."""
        self._repo.close()

    @property
    def store(self) -> Path:
        """The ``.modver/`` folder (created on first use, git-ignored: see :func:`make_store`)."""
        return make_store(self.root)

    @cached_property
    def history(self) -> History:
        """The stage histories under ``refs/modver/``."""
        from modver.history import History

        return History(self._repo)

    @cached_property
    def summary_cache(self) -> SummaryCache:
        """Parsed module summaries, by file content (``.modver/cache/parse/``)."""
        from modver.fingerprint import SummaryCache

        return SummaryCache(self.store / "cache" / "parse")

    @cached_property
    def registry(self) -> Registry:
        """Fingerprinting, registering and resolving the stages' versions."""
        from modver.registry import Registry

        return Registry(self._repo, self.history, self.summary_cache)

    @property
    def runs_store(self) -> RunStore:
        """The run records (``.modver/runs/``)."""
        from modver.runstore import RunStore

        return RunStore(self.store / "runs")

    @property
    def run_index(self) -> RunIndex:
        """The cache of the run records' summaries (``.modver/cache/runs-index.sqlite``)."""
        from modver.runindex import index_of

        return index_of(self.runs_store)

    def manifest_path(self, manifest: PathArg = None) -> Path:
        """The manifest to use: the argument, the project's default, or ``manifest.yaml``."""
        chosen = manifest if manifest is not None else self._manifest_arg
        if chosen is None:
            return self.root / DEFAULT_MANIFEST
        path = Path(chosen)
        return path if path.is_absolute() else (self._base / path).resolve()

    def manifest(self, manifest: PathArg = None) -> Manifest:
        """Load (once) and validate a manifest (remembered in ``.modver/cache/manifests/``)."""
        from modver.manifest import load_manifest_cached

        path = self.manifest_path(manifest)
        if path not in self._manifests:
            cache_dir = self.root / STORE_DIR / "cache" / "manifests" if (self.root / STORE_DIR).is_dir() else None
            self._manifests[path] = load_manifest_cached(path, self.root, cache_dir)
        return self._manifests[path]

    def _docstrings(self, manifest: PathArg = None) -> bool:
        """Whether the manifest counts docstrings in fingerprints (its errors are raised)."""
        return bool(self.manifest(manifest).options.get("docstrings", False))

    def working_tree(self) -> SourceTree:
        """The project's files as they are now."""
        return self.registry.working_tree()

    def fingerprint(self, spec: StageSpec, tree: SourceTree | None = None, *, docstrings: bool = False) -> Closure:
        """The closure and fingerprint of a declared stage in ``tree`` (default: working tree)."""
        return self.registry.fingerprint(spec, tree if tree is not None else self.working_tree(), docstrings=docstrings)

    def stage_names(self, manifest: PathArg = None) -> list[str]:
        """Every stage the manifest declares (in its order), then those only the history has."""
        try:
            declared = list(self.manifest(manifest).stages)
        except errors.ModverError:  # a broken or missing manifest: the history's stages only
            declared = []
        return declared + [s for s in self.history.stages() if s not in declared]

    def names_run(self, ref: str) -> bool:
        """Whether ``ref`` reads as a run reference: ``latest``, ``latest~N``, or a prefix of a run id."""
        try:
            self.runs_store.resolve(ref)
        except errors.UnknownRunError as exc:
            return "ambiguous" in str(exc)
        return True

    def _spec(self, stage: str, manifest: PathArg = None) -> StageSpec:
        """The stage's declaration in the manifest, or, failing that, in its history."""
        from modver.names import validate_name

        validate_name(stage)
        try:
            m: Manifest | None = self.manifest(manifest)
        except errors.ManifestError:
            m = None
        if m is not None and stage in m.stages:
            return m.stages[stage]
        versions = self.history.versions(stage) if stage in self.history.stages() else []
        if versions:
            return StageSpec(name=stage, entry=versions[-1].entry)
        if m is None:
            return self.manifest(manifest).stage(stage)  # re-raise the manifest's error
        return m.stage(stage)  # raises UnknownStageError listing the declared stages

    # -- versions ----------------------------------------------------------------------

    def snapshot(self, stages: Sequence[str] = (), message: str = "", manifest: PathArg = None) -> list[SnapshotResult]:
        """Register the working tree's version of each stage (all declared stages by default)."""
        m = self.manifest(manifest)
        docstrings = self._docstrings(manifest)
        tree = self.working_tree()
        results = []
        for name in list(stages) or list(m.stages):
            spec = m.stage(name)
            closure = self.registry.fingerprint(spec, tree, docstrings=docstrings)
            version, new = self.registry.register_working(
                spec, closure, tree, message or "working tree snapshot", docstrings=docstrings
            )
            results.append(SnapshotResult(version, new))
        return results

    def index(
        self,
        rev: str | None = None,
        *,
        all_branches: bool = False,
        manifest: PathArg = None,
        progress: Progress | None = None,
    ) -> IndexResult:
        """Walk first-parent git history (oldest first) and register every declared stage's
        versions; incremental (see :mod:`modver.indexer`)."""
        from modver.indexer import index_history

        return index_history(
            self.registry, self.manifest(manifest), self.store / "index.json", rev,
            all_branches=all_branches, progress=progress,
        )  # fmt: skip

    def log(self, stage: str | None = None) -> list[StageVersion]:
        """Every registered version of one stage (or of all stages), oldest first."""
        if stage is None:  # in the manifest's order, then the stages only the history has
            have = set(self.history.stages())
            return [v for s in self.stage_names() if s in have for v in self.history.versions(s)]
        from modver.names import validate_name

        validate_name(stage)
        if stage not in self.history.stages():
            try:
                declared = list(self.manifest().stages)
            except errors.ModverError:  # a broken manifest: name the history's stages only
                declared = []
            if stage in declared:
                return []
            known = sorted(set(self.history.stages()) | set(declared))
            raise errors.UnknownStageError(
                f"unknown stage {stage!r}; known stages: {', '.join(known) or '(none)'}",
                hint=f"{did_you_mean(stage, known)}declare it in the manifest, then `modver snapshot` or `modver index`",
            )
        return self.history.versions(stage)

    def resolve(self, ref: str, manifest: PathArg = None) -> StageVersion:
        """Resolve ``STAGE@REF`` (vN, latest, working, fingerprint prefix, git:REV, tag).

        ``working`` and ``git:REV`` register the code they name when it is new.
        """
        version = self._resolve(ref, manifest, register=True)
        assert version is not None  # a registering resolve gives a version
        return version

    def check_ref(self, ref: str, manifest: PathArg = None) -> None:
        """Raise what :meth:`resolve` would raise for ``ref``, registering nothing."""
        self._resolve(ref, manifest, register=False)

    def _resolve(self, ref: str, manifest: PathArg, *, register: bool) -> StageVersion | None:
        stage, _, what = ref.partition("@")
        if not stage or not what:
            raise errors.UnknownVersionError(
                f"bad version reference {ref!r}: expected STAGE@REF",
                hint="e.g. preprocess@v3, model@latest, augment@working, model@git:HEAD~2",
            )
        spec = self._spec(stage, manifest)
        if what != "working" and not what.startswith("git:"):
            return self.history.resolve(stage, what)  # the history's own: no manifest needed
        return self.registry.resolve(
            spec,
            what,
            docstrings=self._docstrings(manifest),
            manifest_rel=self.registry.manifest_rel(self.manifest_path(manifest)),
            register=register,
        )

    def tag(self, ref: str, name: str, *, force: bool = False) -> StageVersion:
        """Give a version a name usable as ``STAGE@NAME``."""
        version = self.resolve(ref)
        self.history.tag(version.stage, version, name, force=force)
        return self.history.resolve(version.stage, name)

    def show_version(self, ref: str, manifest: PathArg = None) -> ShownVersion:
        """A version's metadata, closure and the exact source of each of its definitions."""
        from modver.diff import definition_text

        version = self.resolve(ref, manifest)
        closure = self.history.closure(version)
        tree = self.history.source_tree(version)
        try:
            declared = self.manifest(manifest).stages.get(version.stage)
        except errors.ModverError:
            declared = None  # a broken manifest: the version is still shown
        cache: dict[tuple[int, str], str] = {}
        sources = {f"{d.path}:{d.name}": definition_text(tree, d, cache) for d in closure.definitions}
        return ShownVersion(version, closure, sources, declared.entry if declared is not None else None)

    def verify(self, stages: Sequence[str] = ()) -> list[VersionCheck]:
        """Re-fingerprint every stored version (of ``stages``, default all) and compare.

        A version whose stored code does not give its fingerprint, or whose files are missing
        or damaged, comes back with its problems; nothing is written.
        """
        from modver.verify import verify_history

        have = set(self.history.stages())
        try:
            docstrings = self._docstrings()
        except errors.ModverError:
            docstrings = False  # verify tries both settings: the manifest's is only tried first
        names = list(stages) or [s for s in self.stage_names() if s in have]
        return verify_history(self.history, names, docstrings=docstrings)

    # -- the manifest ------------------------------------------------------------------

    def pin(self, ref: str, manifest: PathArg = None) -> PinResult:
        """Pin ``STAGE@REF`` in the manifest (comments and formatting kept)."""
        from modver.manifest import set_pin

        stage = ref.partition("@")[0]
        self.manifest(manifest).stage(stage)
        version = self.resolve(ref, manifest)
        path = self.manifest_path(manifest)
        with self._manifest_lock(path):
            set_pin(path, stage, version.version, temp_dir=self.store / "tmp")
        self._manifests.pop(path, None)
        return PinResult(path, stage, version)

    def unpin(self, stage: str, manifest: PathArg = None) -> PinResult:
        """Clear a stage's pin: it follows the working tree again."""
        from modver.manifest import set_pin

        self.manifest(manifest).stage(stage)
        path = self.manifest_path(manifest)
        with self._manifest_lock(path):
            set_pin(path, stage, None, temp_dir=self.store / "tmp")
        self._manifests.pop(path, None)
        return PinResult(path, stage, None)

    def _manifest_lock(self, path: Path) -> Any:  # a context manager
        """An inter-process lock so that concurrent pins of one manifest never lose an edit."""
        from modver import _encoding, _fs

        name = _encoding.digest_value(os.path.realpath(path)).split(":")[1][:16]  # one lock per file, however reached
        return _fs.file_lock(self.store / "locks" / f"manifest-{name}.lock", what=f"manifest {path}")

    # -- status and diffs --------------------------------------------------------------

    def status(self, manifest: PathArg = None) -> list[StageState]:
        """Per declared stage: the working tree's version against its pin or the version its last
        run used, and whether a run now would be cached (see :mod:`modver.status`)."""
        from modver.status import stage_states

        return stage_states(self.registry, self.manifest(manifest), self.store)

    def diff_working(self, manifest: PathArg = None) -> list[StageDiff]:
        """Each declared stage's working tree against its pin (or the version its last run used,
        or its latest version), definition by definition."""
        from modver.diff import diff_closures
        from modver.planner import last_key_parts

        m = self.manifest(manifest)
        tree = self.working_tree()
        previous = last_key_parts(self.runs_store, list(m.stages))
        out = []
        for name, spec in m.stages.items():
            closure = self.fingerprint(spec, tree, docstrings=self._docstrings(manifest))
            last = previous.get(name)
            used = self.registry.find(name, last.fingerprint) if last is not None else None
            if spec.version:
                base: StageVersion | None = self.resolve(f"{name}@{spec.version}", manifest)
            elif used is not None:
                base = used  # what the stage's last run used, as status compares
            else:
                base = self.history.latest(name) if name in self.history.stages() else None
            if base is None:
                out.append(diff_closures(name, "(nothing registered)", None, None, "working tree", closure, tree))
                continue
            stored, tree_at = self.history.closure(base), self.history.source_tree(base)
            out.append(diff_closures(name, f"{name}@{base.version}", stored, tree_at, "working tree", closure, tree))
        return out

    def diff_versions(self, a: str, b: str | None = None, manifest: PathArg = None) -> StageDiff:
        """Two versions of one stage (``STAGE@A``, ``STAGE@B`` or just ``B``); B defaults to the
        working tree."""
        from modver.diff import diff_closures

        stage = a.partition("@")[0]
        va = self.resolve(a, manifest)
        ta, ca = self.history.source_tree(va), self.history.closure(va)
        if b is None:
            tb: SourceTree = self.working_tree()
            cb = self.fingerprint(self._spec(stage, manifest), tb, docstrings=self._docstrings(manifest))
            label_b = "working tree"
        else:
            vb = self.resolve(b if "@" in b else f"{stage}@{b}", manifest)
            tb, cb, label_b = self.history.source_tree(vb), self.history.closure(vb), f"{vb.stage}@{vb.version}"
        return diff_closures(stage, f"{stage}@{va.version}", ca, ta, label_b, cb, tb)

    def diff_manifests(self, a: str | os.PathLike[str], b: str | os.PathLike[str]) -> ManifestDiff:
        """Two manifests side by side: data, entries, pins, inputs and params."""
        from modver.diff import diff_manifests

        return diff_manifests(self.manifest(a), self.manifest(b), self.history)

    def diff_runs(self, a: str, b: str) -> RunDiff:
        """Versions, params, data, cache use and metrics of two runs, where they differ."""
        ra, rb = self.run_record(a), self.run_record(b)
        ca, cb = _run_columns(ra), _run_columns(rb)
        skip = {"run", "started", "duration"}  # differ between any two runs
        keys = [k for k in ca if k not in skip] + [k for k in cb if k not in ca and k not in skip]
        return RunDiff(ra.run, rb.run, tuple((k, ca.get(k), cb.get(k)) for k in keys if ca.get(k) != cb.get(k)))

    # -- runs --------------------------------------------------------------------------

    def pipeline(self, manifest: PathArg = None, sets: Sequence[str] = ()) -> Pipeline:
        """The manifest as a :class:`modver.planner.Pipeline` in DAG order, ``--set`` applied."""
        from modver.planner import Pipeline

        return Pipeline.from_manifest(self.manifest(manifest), self.root, sets)

    def plan(
        self,
        manifest: PathArg = None,
        *,
        sets: Sequence[str] = (),
        force: Sequence[str] = (),
        previous: dict[str, KeyParts] | None = None,
    ) -> list[StagePlan]:
        """What a run would do, stage by stage, and why (nothing is executed or registered).

        ``previous``: the last recorded key parts per stage (read from the run records if None).
        """
        from modver.planner import last_key_parts, plan

        pipeline = self.pipeline(manifest, sets)
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
    ) -> RunRecord:
        """Run the manifest at its pinned versions, with caching; the run's record. ``jobs`` > 1
        runs independent stages at once on a local Dask cluster of that many workers."""
        from modver.engine import execute

        pipeline = self.pipeline(manifest, sets)
        if jobs is not None and jobs < 1:
            raise errors.UsageError(f"--jobs must be at least 1, not {jobs}", hint="give --jobs N with N >= 1")
        if jobs is not None and jobs > 1:
            from modver.cluster import ExecutorSpec
            from modver.driver import run_parallel

            return run_parallel(
                self.registry, self.store, pipeline, ExecutorSpec(jobs=jobs), force=force, on_event=on_event
            )
        return execute(self.registry, self.store, pipeline, force=force, on_event=on_event, echo=echo)

    def reproduce(
        self, ref: str, *, use_cache: bool = False, on_event: Event | None = None, echo: TextIO | None = None
    ) -> RunRecord:
        """Run again exactly the recorded versions, params and data; compare the metrics
        (:func:`modver.engine.reproduce`)."""
        from modver.engine import reproduce

        original = self.run_record(ref)
        return reproduce(self.registry, self.store, original, use_cache=use_cache, on_event=on_event, echo=echo)

    def runs(
        self, where: str | None = None, sort: str | None = None, last: int | None = None, sweep: str | None = None
    ) -> list[RunRecord]:
        """Every run record, oldest first (or sorted by a column, ``-column`` descending);
        ``where`` filters, ``sweep`` keeps that sweep's points, ``last`` the N newest of those
        (see :meth:`run_summaries`)."""
        from modver.recorder import mark_dead

        selected = self.run_summaries(where, sort, last, sweep=sweep)
        return [mark_dead(self.runs_store.load_listed(s.run)) for s in selected]

    def run_summaries(
        self, where: str | None = None, sort: str | None = None, last: int | None = None, sweep: str | None = None
    ) -> list[RunRecord]:
        """What :meth:`runs` selects, as summaries (records without manifest, series, packages
        and tracebacks: :func:`modver.runindex.summarize`), read through the runs index: fast
        for tables of many runs. ``last``: the N newest runs that ``where`` and ``sweep`` keep."""
        from modver.recorder import mark_dead
        from modver.runtable import filter_records, sort_records

        narrowed = bool(where) or sweep is not None
        records = [mark_dead(r) for r in self.run_index.summaries(last=None if narrowed else last)]
        if sweep is not None:
            sweep_id = self.sweep_record(sweep).sweep
            records = [r for r in records if r.sweep == sweep_id]
        if where:
            records = filter_records(records, where)
        if narrowed and last is not None:
            records = records[-last:] if last > 0 else []
        return sort_records(records, sort) if sort else records

    def report(self, out: PathArg = None, *, where: str | None = None, sweep: str | None = None) -> ReportResult:
        """Write the HTML report of the runs (``where`` filters; ``sweep``: one sweep's runs) to
        ``out`` (default ``.modver/report.html``): see :mod:`modver.report`."""
        from modver import _fs
        from modver.report import ReportResult, render, report_data, stage_timelines

        records = self.run_summaries(where, sweep=sweep)
        have = set(self.history.stages())
        timelines = stage_timelines(self.history, [s for s in self.stage_names() if s in have])
        data = report_data(
            records, self.run_index.steps([r.run for r in records]), timelines, ids=self.runs_store.ids(),
            title=f"modver report: {self.root.name}", where=where, sweep=sweep,
        )  # fmt: skip
        path = self.store / "report.html" if out is None else (self._base / Path(out)).resolve()
        page = render(data, timelines).encode("utf-8")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            _fs.replace_file(path, page, temp_dir=self.store / "tmp")
        except OSError as exc:
            raise errors.UsageError(
                f"cannot write the report to {path}: {exc.strerror or exc}", where=str(path),
                hint="give -o a file in a folder that can be written",
            ) from exc  # fmt: skip
        return ReportResult(path, len(records), len(page))

    def run_record(self, ref: str = "latest") -> RunRecord:
        """One run's record (a run id, a unique prefix, ``latest`` or ``latest~N``)."""
        from modver.recorder import mark_dead

        store = self.runs_store
        return mark_dead(store.load(store.resolve(ref)))

    def show_run(self, ref: str = "latest") -> ShownRun:
        """A run's record and what each of its stages printed."""
        from modver.runstore import LOG_STREAMS

        record = self.run_record(ref)
        store = self.runs_store
        logs = {stage: {s: store.read_log(record.run, stage, s) for s in LOG_STREAMS} for stage in record.stages}
        return ShownRun(record, logs)

    def load(self, stage: str, run: str = "latest") -> Any:
        """A stage's output object from a run; loads without the code in the working tree.

        ``run="latest"`` is the newest run that has an output of ``stage`` (a run that failed
        before it, or ran another manifest, is passed over); any other reference names one run.
        """
        from modver.cache import OutputCache
        from modver.materialize import make_importable

        record = self._latest_with_output(stage) if run.strip() == "latest" else None
        record = record or self.run_record(run)
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
        version = self.history.find(stage, info.fingerprint) if info.fingerprint else None
        if version is not None:  # a teammate's run: its classes live in a version not materialized here
            from modver.materialize import materialize

            materialize(lambda: self.history.files(version), version.fingerprint, self.store, entry=version.entry)
        make_importable(self.store)
        return OutputCache(self.store / "cache" / "outputs").load(info.cache_key)

    def _latest_with_output(self, stage: str) -> RunRecord | None:
        store = self.runs_store
        for run_id in reversed(store.ids()):
            try:
                record = store.load(run_id)
            except errors.StoreError:
                continue
            if stage in record.stages and record.stages[stage].status.has_output:
                return record
        return None

    def version_runs(self, stage: str) -> dict[str, list[RunRecord]]:
        """For each version label of ``stage``, the runs that used it, oldest first."""
        out: dict[str, list[RunRecord]] = {}
        for record in self.run_summaries():
            label = record.stages[stage].version if stage in record.stages else None
            if label:
                out.setdefault(label, []).append(record)
        return out

    # -- sharing: push and pull (modver.sharing: git; modver.storage: records and outputs) -----

    def push(self, remote: str | None = None, *, dry_run: bool = False) -> PushResult:
        """Send new stage versions, tags and notes to the git remote (default ``origin``), then
        finished run records and cached outputs to the storage that ``modver.toml`` names.
        Refuses ("pull first") when the remote has versions this clone lacks."""
        from dataclasses import replace

        from modver.sharing import push
        from modver.storage import push_items

        result = push(self.history, self.root, self.runs_store, remote, self._write_pin, dry_run=dry_run)
        storage = self._storage()
        return result if storage is None else replace(result, storage=push_items(storage, self.store, dry_run=dry_run))

    def pull(self, remote: str | None = None, *, outputs: bool = False, dry_run: bool = False) -> PullResult:
        """Take the remote's stage versions, tags and notes (versions made here that clash are
        renumbered after the remote's, their pins and records updated), then the run records this
        clone lacks from the storage; with ``outputs``, every cached output too."""
        from dataclasses import replace

        from modver.sharing import pull
        from modver.storage import pull_items

        result = pull(self.history, self.root, self.runs_store, remote, self._write_pin, dry_run=dry_run)
        storage = self._storage()
        if storage is None:
            return result
        return replace(result, storage=pull_items(storage, self.store, outputs=outputs, dry_run=dry_run))

    def _storage(self) -> Storage | None:
        """The storage ``modver.toml`` names, or None."""
        from modver.storage import Storage, load_config

        config = load_config(self.root)
        return None if config is None else Storage(config)

    def _write_pin(self, path: Path, stage: str, version: str) -> None:
        """Set a pin the way :meth:`pin` does (locked, formatting kept), for a renumbered version."""
        from modver.manifest import set_pin

        with self._manifest_lock(path):
            set_pin(path, stage, version, temp_dir=self.store / "tmp")
        self._manifests.pop(path, None)

    def gc(
        self, *, keep_last: int | None = None, older_than: str | None = None, remove_records: bool = False,
        dry_run: bool = False,
    ) -> GcResult:  # fmt: skip
        """Remove cached outputs and materialized versions that no kept run uses (all runs are
        kept unless ``keep_last``/``older_than`` — e.g. ``"30d"`` — narrow them); run records
        only with ``remove_records``. Safe while runs are in progress (see modver/retention.py)."""
        from modver.recorder import mark_dead
        from modver.retention import collect_garbage, parse_duration, store_lock

        seconds = parse_duration(older_than) if older_than is not None else None
        with store_lock(self.store, shared=False):
            records = [mark_dead(r) for r in self.runs_store.list()]
            return collect_garbage(
                self.store, records, keep_last=keep_last, older_than=seconds, remove_records=remove_records,
                dry_run=dry_run,
            )  # fmt: skip


def _run_columns(record: RunRecord) -> dict[str, Any]:
    """A run's row of the runs table, with its data hashes and which stages came from the cache."""
    from modver.runtable import flatten_record

    row = flatten_record(record)
    for name, info in record.data.items():
        row[f"data.{name}"] = info.get("hash")
    for name, cached in record.cached.items():
        row[f"cached.{name}"] = cached
    return row


def runs(path: str | os.PathLike[str] = ".", sweep: str | None = None) -> pandas.DataFrame:
    """All runs of the project at ``path`` (or of one ``sweep``) as a pandas DataFrame, one row per run."""
    from modver.runtable import runs_dataframe

    with Project(path) as project:
        return runs_dataframe(project.run_summaries(sweep=sweep))


def load(stage: str, run: str = "latest", path: str | os.PathLike[str] = ".") -> Any:
    """The output object of ``stage`` in ``run`` (default: the newest run that produced one)."""
    with Project(path) as project:
        return project.load(stage, run)
