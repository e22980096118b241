"""The ``modver`` command line: a thin typer layer over :mod:`modver.project`.

Every command calls one façade method and renders what it returns (:mod:`modver._output`): rich
tables and syntax-highlighted diffs on a terminal, plain text otherwise, JSON with ``--json``.
Errors go through one handler, installed once on the app (:class:`_Handled`): a
:class:`ModverError` prints ``Error: ...`` and a hint on stderr and exits 1; anything else is an
internal error whose traceback shows only with ``--debug``.
"""

from __future__ import annotations

import logging
import os
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from typer.core import TyperGroup
from typer.exceptions import TyperException

from modver import __version__, _output, errors

if TYPE_CHECKING:  # pragma: no cover
    from modver.engine import StageEvent
    from modver.project import Project
    from modver.record import RunRecord
    from modver.sharing import TagClash
    from modver.storage import Transfer

_state: dict[str, Any] = {"debug": False, "no_pager": False}  # set by the global options, per call


class _Handled(TyperGroup):
    """The app's group: every command's errors go through :func:`_handle` (one place, every command)."""

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except (typer.Exit, typer.Abort, TyperException):  # usage errors, --help, explicit exits
            raise
        except BaseException as exc:  # noqa: BLE001 - the one place that turns errors into a clean exit
            raise typer.Exit(_handle(exc)) from None


def _handle(exc: BaseException) -> int:
    """Report ``exc`` as modver reports errors; the exit code."""
    if isinstance(exc, errors.ModverError):
        if _state["debug"]:
            traceback.print_exception(exc)
        _output.fail(str(exc), exc.hint)
        return 1
    if isinstance(exc, KeyboardInterrupt):
        _output.fail("interrupted", None)
        return 130
    if isinstance(exc, BrokenPipeError):  # `modver log | head`: the reader left; say nothing more, like git
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    if not isinstance(exc, Exception):
        raise exc  # SystemExit and the like pass
    if _state["debug"]:
        traceback.print_exception(exc)
    _output.fail(f"internal error: {type(exc).__name__}: {exc}", "rerun with --debug for the traceback, and report it")
    return 1


app = typer.Typer(
    name="modver",
    cls=_Handled,
    help="Version each stage of an ML pipeline on its own, by what its code means.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)

# Shared options, declared once; `-m` is the manifest in every command.
JsonOpt = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]
ManifestOpt = Annotated[
    Path | None, typer.Option("--manifest", "-m", help="Manifest file (default: manifest.yaml at the project root).")
]
ManifestArg = Annotated[Path | None, typer.Argument(help="Manifest (default: manifest.yaml).")]
ProjectOpt = Annotated[Path, typer.Option("--project", "-C", help="Run as if started in this folder.")]


def _project(project: Path, manifest: Path | None = None) -> Project:
    from modver.project import Project

    return Project(project, manifest=manifest)


def _version_callback(value: bool) -> None:
    if value:
        print(f"modver {__version__}")
        raise typer.Exit()


class _StderrLines(logging.Handler):
    """What the library says it waits for (another process's lock), one line on stderr."""

    def emit(self, record: logging.LogRecord) -> None:
        sys.stderr.write(record.getMessage() + "\n")  # the stderr of the current call


@app.callback()
def main(
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks of errors.")] = False,
    no_pager: Annotated[bool, typer.Option("--no-pager", help="Do not send long output through the pager.")] = False,
    version: Annotated[
        bool, typer.Option("--version", callback=_version_callback, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """Version each stage of an ML pipeline on its own, by what its code means."""
    _state["debug"] = debug or bool(os.environ.get("MODVER_DEBUG"))
    _state["no_pager"] = no_pager
    logger = logging.getLogger("modver")
    if not any(h.get_name() == "modver-cli" for h in logger.handlers):
        handler = _StderrLines(logging.INFO)
        handler.set_name("modver-cli")
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)


# --------------------------------------------------------------------------- versions


@app.command()
def init(path: Annotated[Path, typer.Argument(help="Project folder.")] = Path(".")) -> None:
    """Create .modver/, git-ignore it, and write a starter manifest (git init if needed)."""
    from modver.project import init as init_project

    result = init_project(path)
    if result.created_repository:
        print(f"Initialized an empty git repository in {result.root}")
    print(f"modver store: {result.root / '.modver'}")
    if result.updated_gitignore:
        print("Added .modver/ to .gitignore")
    if result.created_manifest:
        print(f"Wrote a starter manifest: {result.root / 'manifest.yaml'}")


@app.command()
def index(
    rev: Annotated[str | None, typer.Option("--rev", help="Walk this revision instead of the current branch.")] = None,
    all_: Annotated[bool, typer.Option("--all", help="Walk every local branch.")] = False,
    manifest: ManifestOpt = None,
    as_json: JsonOpt = False,
    project: ProjectOpt = Path("."),
) -> None:
    """Walk git history (first parent, oldest first) and register every declared stage's versions."""
    with _project(project, manifest) as p:
        if _output.is_terminal() and not as_json:
            from rich.progress import Progress

            with Progress(transient=True) as bar:
                task = bar.add_task("indexing commits", total=None)
                result = p.index(
                    rev, all_branches=all_, progress=lambda done, total: bar.update(task, completed=done, total=total)
                )
        else:
            result = p.index(rev, all_branches=all_)
    if as_json:
        _output.print_json(result.to_json())
        return
    if result.up_to_date:
        print("Up to date: no new commits since the last index.")
        return
    if result.commits == 0:
        print("Nothing to index: the repository has no commits yet (use `modver snapshot`).")
        return
    n = len(result.new_versions)
    print(f"Walked {result.walked} of {result.commits} commits; {n} new version{'s' if n != 1 else ''}.")
    if n <= 20:
        for v in result.new_versions:
            print(f"  {v.stage}@{v.version}  {_output.short(v.fingerprint)}  {(v.origin or '')[:10]}  {v.message}")
    else:
        by_stage: dict[str, list[Any]] = {}
        for v in result.new_versions:
            by_stage.setdefault(v.stage, []).append(v)
        for stage_name, versions in by_stage.items():
            print(f"  {stage_name}: {len(versions)} new ({versions[0].version}..{versions[-1].version})")
    for v in result.committed:
        print(f"  {v.stage}@{v.version} (registered from the working tree) is committed in {(v.committed or '')[:10]}")
    for stage, count in sorted(result.skipped.items()):
        print(
            f"  {stage}: skipped {count} commit{'s' if count != 1 else ''} where the stage was missing or did not parse"
        )


@app.command()
def snapshot(
    stages: Annotated[list[str] | None, typer.Argument(help="Stages to snapshot (default: all declared).")] = None,
    message: Annotated[str, typer.Option("--message", help="A note stored with new versions.")] = "",
    manifest: ManifestOpt = None,
    as_json: JsonOpt = False,
    project: ProjectOpt = Path("."),
) -> None:
    """Register the working tree's version of each stage (code that was never committed)."""
    with _project(project, manifest) as p:
        results = p.snapshot(stages or (), message)
    if as_json:
        _output.print_json([r.to_json() for r in results])
        return
    for r in results:
        what = "new version" if r.new else "already registered as"
        print(f"{r.version.stage}: {what} {r.version.version} ({_output.short(r.version.fingerprint)})")


@app.command()
def log(
    stage: Annotated[str | None, typer.Argument(help="Stage (default: every stage).")] = None,
    as_json: JsonOpt = False,
    project: ProjectOpt = Path("."),
) -> None:
    """Per-stage history: version, fingerprint, date, origin commit, message, tags, runs."""
    with _project(project) as p:
        versions = p.log(stage)
        used = {s: p.version_runs(s) for s in {v.stage for v in versions}}

    def runs_of(stage: str, version: str) -> list[RunRecord]:
        return used[stage].get(version, [])

    if as_json:
        _output.print_json(
            [
                {
                    **v.to_json(),
                    "runs": [
                        {"run": r.run, "status": str(r.status), "metrics": dict(r.metrics)}
                        for r in runs_of(v.stage, v.version)
                    ],
                }
                for v in versions
            ]
        )
        return
    if not versions:
        print("No versions registered yet: run `modver index` or `modver snapshot`.")
        return
    rows = []
    for v in versions:
        origin = (
            v.origin[:10] if v.origin else "working tree" + (f", committed {v.committed[:10]}" if v.committed else "")
        )
        rows.append(
            [
                f"{v.stage}@{v.version}",
                _output.short(v.fingerprint),
                _output.date(v.created),
                origin,
                ", ".join(v.tags),
                v.message,
                _runs_cell(runs_of(v.stage, v.version)),
            ]
        )
    with _output.paged(_state["no_pager"]):
        _output.table(
            ["version", "fingerprint", "created", "origin", "tags", "message", "runs"],
            rows,
            priorities=[0, 4, 3, 5, 2, 1, 2],
            kinds=["id", "id", "id", "text", "text", "text", "id"],
        )


def _runs_cell(runs: list[RunRecord]) -> str:
    """How many runs used a version, and the metrics of the latest one."""
    if not runs:
        return ""
    metrics = " ".join(f"{k}={_output.num(v)}" for k, v in runs[-1].metrics.items())
    return f"{len(runs)} (last: {metrics})" if metrics else str(len(runs))


@app.command()
def status(manifest: ManifestArg = None, as_json: JsonOpt = False, project: ProjectOpt = Path(".")) -> None:
    """Per stage: the working tree's version against its pin (or its last run's version), and
    whether a run would be cached. Exits 1 when a stage's pin or code has a problem."""
    with _project(project, manifest) as p:
        rows = p.status()
    if as_json:
        _output.print_json([{k: v for k, v in r.to_json().items() if k != "error" or v is not None} for r in rows])
    else:
        table = []
        for r in rows:
            working = r.working or ("unregistered" if r.working_fingerprint else "error")
            if r.error:
                state = "error: " + r.error.splitlines()[0]
            elif r.compared_source is None:
                state = "new" if r.changed else "unchanged"
            else:
                state = "changed" if r.changed else "unchanged"
            compared = f"{r.compared_with} ({r.compared_source})" if r.compared_with else "-"
            cached = "-" if r.cached is None else ("yes" if r.cached else "no")
            table.append(
                [
                    r.stage,
                    r.pinned or "(working tree)",
                    working,
                    _output.short(r.working_fingerprint),
                    compared,
                    state,
                    cached,
                ]
            )
        _output.table(
            ["stage", "pinned", "working", "fingerprint", "compared with", "state", "cached"],
            table,
            priorities=[0, 1, 1, 4, 3, 0, 2],
            kinds=["id", "id", "id", "id", "text", "text", "id"],
        )
    if any(r.error for r in rows):
        raise typer.Exit(1)


@app.command()
def show(
    ref: Annotated[
        str,
        typer.Argument(
            help="STAGE@REF (e.g. preprocess@v3), STAGE (its latest version), or a run (id, prefix, latest)."
        ),
    ],
    as_json: JsonOpt = False,
    manifest: ManifestOpt = None,
    project: ProjectOpt = Path("."),
) -> None:
    """A version's metadata, closure and source (STAGE@REF, or STAGE for its latest version:
    `Project.show_version`); or a run's record and logs (`Project.show_run`)."""
    with _project(project, manifest) as p:
        if "@" not in ref and ref not in p.stage_names():
            run = p.show_run(ref)
            _output.print_json(run.to_json()) if as_json else _output.shown_run(run)
            return
        if "@" not in ref:
            if p.names_run(ref):
                print(
                    f"note: {ref!r} is a stage and also names a run: showing {ref}@latest "
                    "(give the run's full id to see the run)",
                    file=sys.stderr,
                )
            ref = f"{ref}@latest"
        shown = p.show_version(ref)
    _output.print_json(shown.to_json()) if as_json else _output.shown_version(shown)


@app.command()
def pin(
    ref: Annotated[str, typer.Argument(help="STAGE@REF to pin, e.g. preprocess@v3.")],
    manifest: ManifestOpt = None,
    project: ProjectOpt = Path("."),
) -> None:
    """Pin a stage to a version in the manifest (comments and formatting are kept)."""
    with _project(project, manifest) as p:
        result = p.pin(ref)
    assert result.version is not None
    v = result.version
    print(f"Pinned {result.stage} to {v.version} ({_output.short(v.fingerprint)}) in {result.manifest}")


@app.command()
def unpin(
    stage: Annotated[str, typer.Argument(help="Stage to unpin.")],
    manifest: ManifestOpt = None,
    project: ProjectOpt = Path("."),
) -> None:
    """Clear a stage's pin: it follows the working tree again."""
    with _project(project, manifest) as p:
        result = p.unpin(stage)
    print(f"Unpinned {result.stage} in {result.manifest}: it follows the working tree")


@app.command()
def tag(
    ref: Annotated[str, typer.Argument(help="STAGE@REF to name.")],
    name: Annotated[str, typer.Argument(help="The tag, usable as STAGE@NAME.")],
    force: Annotated[bool, typer.Option("--force", "-f", help="Move the tag if it exists.")] = False,
    project: ProjectOpt = Path("."),
) -> None:
    """Name a version, so that STAGE@NAME refers to it."""
    with _project(project) as p:
        version = p.tag(ref, name, force=force)
    print(f"Tagged {version.stage}@{version.version} as {version.stage}@{name}")


@app.command()
def verify(
    stages: Annotated[
        list[str] | None, typer.Argument(help="Stages to check (default: every stage with a history).")
    ] = None,
    as_json: JsonOpt = False,
    project: ProjectOpt = Path("."),
) -> None:
    """Check that every stored version holds exactly the code of its fingerprint (exit 1 if not)."""
    with _project(project) as p:
        checks = p.verify(stages or ())
    if as_json:
        _output.print_json([c.to_json() for c in checks])
    else:
        for c in checks:
            label = f"{c.version.stage}@{c.version.version}"
            print(f"{label}  ok" if c.ok else f"{label}  DAMAGED: {'; '.join(c.problems)}")
        bad = sum(not c.ok for c in checks)
        print(f"{len(checks)} version{'s' if len(checks) != 1 else ''} checked, {bad} damaged.")
    if any(not c.ok for c in checks):
        raise typer.Exit(1)


@app.command()
def diff(
    a: Annotated[
        str | None, typer.Argument(help="STAGE@A, a manifest, a run, or nothing (working tree vs pins).")
    ] = None,
    b: Annotated[str | None, typer.Argument(help="STAGE@B (default: working tree), a second manifest or run.")] = None,
    manifest: ManifestOpt = None,
    as_json: JsonOpt = False,
    project: ProjectOpt = Path("."),
) -> None:
    """What changed in meaning, chosen by the arguments: nothing — the working tree against the pins
    (`diff_working`); STAGE@A [STAGE@B] — two versions (`diff_versions`); A.yaml B.yaml — two
    manifests (`diff_manifests`); RUN_A RUN_B — two runs (`diff_runs`)."""
    with _project(project, manifest) as p:
        if a is None:
            diffs = p.diff_working()
            _output.print_json([d.to_json() for d in diffs]) if as_json else _output.stage_diffs(diffs)
        elif "@" in a:
            one = p.diff_versions(a, b)
            _output.print_json([one.to_json()]) if as_json else _output.stage_diffs([one])
        elif _is_manifest(a) and b is not None and _is_manifest(b):
            manifests = p.diff_manifests(a, b)
            _output.print_json(manifests.to_json()) if as_json else _output.manifest_diff(manifests)
        elif b is not None and not _is_manifest(a) and not _is_manifest(b) and "@" not in b:
            runs = p.diff_runs(a, b)
            _output.print_json(runs.to_json()) if as_json else _output.run_diff(runs)
        else:
            raise errors.UsageError(
                f"cannot tell what to compare: {a!r}" + (f" and {b!r}" if b else ""),
                hint="give STAGE@A [STAGE@B], two manifests (A.yaml B.yaml), two runs (RUN_A RUN_B), "
                "or nothing (working tree vs pins)",
            )


def _is_manifest(text: str) -> bool:
    return text.endswith((".yaml", ".yml"))


# --------------------------------------------------------------------------- runs


def _with_progress(call: Callable[[Any, Any], RunRecord], explain: bool, as_json: bool) -> RunRecord:
    """Run ``call(on_event, echo)`` with a live stage display on a terminal, plain lines otherwise."""
    say = (lambda text: print(text, file=sys.stderr)) if as_json else print
    spinner: Any = None  # on a terminal

    def on_event(event: StageEvent) -> None:
        label = f"{event.name}@{event.label}"
        why = f" — {event.reason}" if explain else ""
        if event.kind == "start":
            say(f"- {label}: running{why}")
            if spinner is not None:
                spinner.update(f"running {label}")
        elif event.kind == "cached":
            say(f"- {label}: cached{why}")
        elif event.kind == "done":
            say(
                f"- {label}: done in {event.duration or 0:.2f}s"
                + (f" ({_output.timings(event.timings)})" if explain else "")
            )
        elif event.kind == "failed":
            say(f"- {label}: FAILED")
        if event.kind in ("start", "cached"):
            for note in event.notes:
                say(f"  note: {note}")

    if _output.is_terminal() and not as_json:
        from rich.status import Status

        with Status("planning", console=_output.console()) as spinner:
            return call(on_event, sys.stdout)  # rich's proxy: stage output prints above the spinner
    return call(on_event, sys.stderr if as_json else sys.stdout)


@app.command("run")
def run_(
    manifest: ManifestArg = None,
    set_: Annotated[
        list[str] | None,
        typer.Option("--set", metavar="STAGE.PARAM=VALUE", help="Override a param (value typed as YAML)."),
    ] = None,
    force: Annotated[
        list[str] | None, typer.Option("--force", metavar="STAGE", help="Run this stage even if cached (repeatable).")
    ] = None,
    explain: Annotated[
        bool, typer.Option("--explain", help="Say why each stage ran or came from the cache, and where the time went.")
    ] = False,
    jobs: Annotated[
        int | None, typer.Option("--jobs", "-j", metavar="N", help="Run independent stages at once on N Dask workers.")
    ] = None,
    as_json: JsonOpt = False,
    project: ProjectOpt = Path("."),
) -> None:
    """Run the pipeline at its pinned versions, reusing cached stage outputs; record the run."""
    with _project(project, manifest) as p:
        record = _with_progress(
            lambda on_event, echo: p.run(sets=set_ or (), force=force or (), on_event=on_event, echo=echo, jobs=jobs),
            explain,
            as_json,
        )
    if as_json:
        _output.print_json(record.to_json())
        return
    _output.run_summary(record)
    if explain and record.timings is not None:
        print(f"  time: {_output.run_timings(record.timings)}")


@app.command()
def reproduce(
    run: Annotated[str, typer.Argument(help="Run id, unique prefix, latest or latest~N.")],
    use_cache: Annotated[bool, typer.Option("--use-cache", help="Reuse cached outputs instead of executing.")] = False,
    as_json: JsonOpt = False,
    project: ProjectOpt = Path("."),
) -> None:
    """Run again with exactly the recorded versions, params and data; compare the metrics."""
    with _project(project) as p:
        record = _with_progress(
            lambda on_event, echo: p.reproduce(run, use_cache=use_cache, on_event=on_event, echo=echo), False, as_json
        )
    if as_json:
        _output.print_json(record.to_json())
        return
    _output.run_summary(record)
    if record.comparison:
        _output.table(
            ["metric", f"original ({(record.reproduces or '')[:22]})", "reproduced", "match"],
            [
                [name, _output.num(c["original"]), _output.num(c["reproduced"]), "yes" if c["match"] else "NO"]
                for name, c in record.comparison.items()
            ],
        )


@app.command("runs")
def runs_(
    where: Annotated[
        str | None, typer.Option("--where", help="Filter, e.g. 'metric.accuracy > 0.9' (or 'accuracy > 0.9').")
    ] = None,
    sort: Annotated[
        str | None, typer.Option("--sort", help="Sort by a column (e.g. -accuracy); prefix - for descending.")
    ] = None,
    last: Annotated[
        int | None, typer.Option("--last", metavar="N", min=0, help="Only the N newest runs (of those --where keeps).")
    ] = None,
    columns: Annotated[
        str | None,
        typer.Option(
            "--columns",
            metavar="A,B,GLOB*",
            help="Show these columns (names as headed or in full, or globs), in order.",
        ),
    ] = None,
    csv: Annotated[bool, typer.Option("--csv", help="Print CSV (every column).")] = False,
    sweep: Annotated[
        str | None, typer.Option("--sweep", metavar="ID", help="Only the runs of this sweep's points.")
    ] = None,
    as_json: JsonOpt = False,
    project: ProjectOpt = Path("."),
) -> None:
    """All runs as one table: versions, params, metrics, status, time. The table fits the
    terminal: columns that do not fit are hidden (a line says which); "cached: all" marks a run
    served entirely from the cache; run ids are cut to unique prefixes."""
    from modver.runtable import flatten_record, runs_view, table_columns

    with _project(project) as p:
        records = p.runs(where, sort, last, sweep) if as_json else p.run_summaries(where, sort, last, sweep)
        ids = p.runs_store.ids()
    if as_json:
        _output.print_json([r.to_json() for r in records])
        return
    if csv:
        import csv as _csv

        rows = [flatten_record(r) for r in records]
        names = table_columns(rows)
        writer = _csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow(names)
        for row in rows:
            writer.writerow(["" if row.get(c) is None else row.get(c) for c in names])
        return
    if not records:
        print(f"No run matches --where {where!r}." if where else "No runs yet: start one with `modver run`.")
        return
    select = [c.strip() for c in columns.split(",") if c.strip()] if columns is not None else None
    _output.runs_table(runs_view(records, ids, select))


@app.command()
def gc(
    keep_last: Annotated[
        int | None, typer.Option("--keep-last", metavar="N", help="Keep the outputs of the newest N runs only.")
    ] = None,
    older_than: Annotated[
        str | None,
        typer.Option(
            "--older-than", metavar="DURATION", help="Let go of runs older than this (45s, 90m, 12h, 30d, 2w)."
        ),
    ] = None,
    remove_records: Annotated[
        bool, typer.Option("--remove-records", help="Also remove the records of the runs not kept.")
    ] = False,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="List what would be removed and the space it frees; remove nothing.")
    ] = False,
    as_json: JsonOpt = False,
    project: ProjectOpt = Path("."),
) -> None:
    """Remove cached outputs and materialized versions that no kept run uses (safe during runs)."""
    with _project(project) as p:
        result = p.gc(keep_last=keep_last, older_than=older_than, remove_records=remove_records, dry_run=dry_run)
    if as_json:
        _output.print_json(result.to_json())
        return
    verb = "would remove" if result.dry_run else "removed"
    for item in result.removed:
        print(f"{verb} {item.kind} {item.detail}  {_output.size(item.size)}  {item.path}")
    what = "would free" if result.dry_run else "freed"
    n = len(result.removed)
    print(
        f"{n} item{'s' if n != 1 else ''}, {what} {_output.size(result.freed)}; "
        f"kept what {result.kept_runs} of {result.runs} runs use."
    )


@app.command()
def demo(
    keep: Annotated[
        Path | None,
        typer.Option("--keep", help="Build the demo project in this (new or empty) folder instead of a temporary one."),
    ] = None,
) -> None:
    """Build the bundled example in a new folder and walk through the main workflow; the folder stays."""
    from modver.demo import run_demo

    run_demo(keep, echo=print, show=_invoke)


# --------------------------------------------------------------------------- sweeps (issue 9)

JobsOpt = Annotated[
    int | None,
    typer.Option("--jobs", "-j", metavar="N", help="Worker processes of the local Dask cluster (default: cores)."),
]


@app.command("sweep")
def sweep_(
    manifest: ManifestArg = None,
    set_: Annotated[
        list[str] | None,
        typer.Option(
            "--set",
            metavar="STAGE.PARAM=V1,V2,...",
            help="An axis (values separated by commas, or range(START,STOP[,STEP])), or one value.",
        ),
    ] = None,
    zip_: Annotated[
        bool, typer.Option("--zip", help="Pair the axes in order instead of a grid (equal lengths).")
    ] = False,
    file: Annotated[
        Path | None, typer.Option("--file", metavar="SWEEP.yaml", help="A sweep file: `grid:` and `zip:` mappings.")
    ] = None,
    jobs: JobsOpt = None,
    scheduler: Annotated[
        str | None, typer.Option("--scheduler", metavar="ADDRESS", help="A running Dask scheduler (tcp://HOST:PORT).")
    ] = None,
    cluster: Annotated[
        str | None,
        typer.Option(
            "--cluster", metavar="KIND", help="Workers as batch jobs: slurm, pbs, sge or lsf (manifest cluster:)."
        ),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="List every point and what each stage would do; run nothing.")
    ] = False,
    fail_fast: Annotated[bool, typer.Option("--fail-fast", help="Stop the sweep at the first failed point.")] = False,
    best: Annotated[
        str | None, typer.Option("--best", metavar="METRIC", help="Follow the best value: acc (highest), min:loss.")
    ] = None,
    resume: Annotated[
        str | None, typer.Option("--resume", metavar="ID", help="Continue a recorded sweep: run its unfinished points.")
    ] = None,
    detach: Annotated[
        bool, typer.Option("--detach", help="Submit the sweep's driver as a batch job and return at once.")
    ] = False,
    as_json: JsonOpt = False,
    project: ProjectOpt = Path("."),
) -> None:
    """Run many points at once: every combination of the --set axes (or --zip, or a sweep file),
    each point one run, shared stage tasks executed once, on Dask."""
    from modver.sweepstore import parse_best

    following = parse_best(best) if best else None
    with _project(project, manifest) as p:
        if resume is None:
            spec = p.sweep_spec(set_ or (), zip_axes=zip_, file=file)
            if dry_run:
                graph = p.plan_sweep(spec)
                _output.print_json(graph.to_json()) if as_json else _output.sweep_plan(graph)
                return
        executor = p.executor(
            p.root / p.sweep_record(resume).manifest if resume else None, jobs=jobs, scheduler=scheduler,
            cluster=cluster, debug=_state["debug"],
        )  # fmt: skip
        if detach:
            queued, job = p.detach_sweep(
                None if resume else spec, resume=resume, executor=executor, fail_fast=fail_fast
            )
            _output.print_json({**queued.to_json(), "job": job}) if as_json else print(
                f"sweep {queued.sweep}: {len(queued.points)} points, driver submitted as batch job {job}\n"
                f"  follow it with `modver sweeps`; continue it with `modver sweep --resume {queued.sweep}`"
            )
            return
        with _output.sweep_progress(following, quiet=as_json) as on_progress:
            record = p.sweep(None if resume else spec, resume=resume, executor=executor, fail_fast=fail_fast,
                             best=following, on_progress=on_progress)  # fmt: skip
        leader = p.best_point(record, following) if following else None
    _output.print_json(record.to_json()) if as_json else _output.sweep_summary(record, following, leader)
    failed = [pt for pt in record.points if pt.status == "failed"]
    if failed:
        raise errors.SweepError(
            f"{len(failed)} of {len(record.points)} points of sweep {record.sweep} failed: "
            + "; ".join(f"point {pt.index} ({_output.point_params(pt.params)}): {pt.error}" for pt in failed[:5])
            + (" ..." if len(failed) > 5 else ""),
            hint=f"see `modver runs --sweep {record.sweep}` and `modver show RUN`; "
            f"after a fix, `modver sweep --resume {record.sweep}` runs only the points that did not succeed",
        )
    if record.status == "interrupted":
        raise typer.Exit(1)


@app.command("sweeps")
def sweeps_(
    best: Annotated[
        str | None,
        typer.Option("--best", metavar="METRIC", help="Show each sweep's best point: acc (highest), min:loss."),
    ] = None,
    as_json: JsonOpt = False,
    project: ProjectOpt = Path("."),
) -> None:
    """Every sweep: its status, points done, running and failed, and its best point by --best."""
    from modver.sweepstore import parse_best

    following = parse_best(best) if best else None
    with _project(project) as p:
        records = p.sweeps()
        leaders = [p.best_point(r, following) if following else None for r in records]
    if as_json:
        _output.print_json(
            [
                {**r.to_json(), "best": None if b is None else {"point": b[0].index, "run": b[0].run, "value": b[1]}}
                for r, b in zip(records, leaders, strict=True)
            ]
        )
        return
    _output.sweep_table(records, leaders, following)


# --------------------------------------------------------------------------- seeing results (issue 11)


@app.command()
def report(
    out: Annotated[
        Path | None, typer.Option("--output", "-o", help="The HTML file to write (default: .modver/report.html).")
    ] = None,
    where: Annotated[
        str | None, typer.Option("--where", help="Only the runs this filter keeps (as `runs --where`).")
    ] = None,
    sweep: Annotated[str | None, typer.Option("--sweep", metavar="ID", help="Only the runs of this sweep.")] = None,
    open_: Annotated[bool, typer.Option("--open", help="Open the report in the web browser.")] = False,
    as_json: JsonOpt = False,
    project: ProjectOpt = Path("."),
) -> None:
    """Write one self-contained HTML file (works offline): the runs table (sortable, filterable),
    each metric across runs coloured by a stage's version, step series as curves, params and
    sweeps as lines and heat maps, and each stage's versions with their diffs."""
    with _project(project) as p:
        result = p.report(out, where=where, sweep=sweep)
    if as_json:
        _output.print_json(result.to_json())
    else:
        print(f"Wrote {result.path} ({result.runs} runs, {_output.size(result.size)}); open it in a browser")
    if open_:
        import webbrowser

        webbrowser.open(result.path.as_uri())


# --------------------------------------------------------------------------- end of seeing results
# --------------------------------------------------------------------------- sharing (push, pull)

RemoteArg = Annotated[
    str | None, typer.Argument(help="Git remote: a name in .git/config or a URL/path (default: origin).")
]
DryRunOpt = Annotated[bool, typer.Option("--dry-run", help="Say what would move and how much; move nothing.")]


@app.command()
def push(remote: RemoteArg = None, dry_run: DryRunOpt = False, as_json: JsonOpt = False,
         project: ProjectOpt = Path(".")) -> None:  # fmt: skip
    """Send new stage versions and tags to the git remote, then run records and cached outputs to
    the storage (modver.toml). Refused when the remote has versions this clone lacks: pull first."""
    with _project(project) as p:
        result = p.push(remote, dry_run=dry_run)
    if as_json:
        _output.print_json(result.to_json())
    else:
        verb = "Would push" if dry_run else "Pushed"
        sent = _counted(result.new_versions, result.new_tags)
        print(f"{verb} to {result.remote.name}: {sent}" if sent else f"Nothing new to push to {result.remote.name}.")
        _print_clashes(result.clashes, result.remote.name)
        _print_transfer(result.storage, "would send" if dry_run else "sent")
    if result.storage is not None and result.storage.damaged:
        raise typer.Exit(1)


@app.command()
def pull(
    remote: RemoteArg = None,
    outputs: Annotated[
        bool,
        typer.Option("--outputs", help="Also bring every cached output now (default: fetched when a run needs it)."),
    ] = False,
    dry_run: DryRunOpt = False,
    as_json: JsonOpt = False,
    project: ProjectOpt = Path("."),
) -> None:
    """Take the remote's stage versions and tags (yours that clash are renumbered after them, pins
    and run records updated), then the run records from the storage (modver.toml)."""
    with _project(project) as p:
        result = p.pull(remote, outputs=outputs, dry_run=dry_run)
    if as_json:
        _output.print_json(result.to_json())
    else:
        verb = "Would take" if dry_run else "Took"
        taken = _counted(result.new_versions, result.new_tags)
        print(f"{verb} from {result.remote.name}: {taken}" if taken else f"Up to date with {result.remote.name}.")
        for r in result.renumbered:
            pins = f"; {', '.join(r.pins)} pin{'s' if len(r.pins) > 1 else ''} updated" if r.pins else ""
            runs = f"; {r.runs} run record{'s' if r.runs != 1 else ''} updated" if r.runs else ""
            verb_is = "would become" if dry_run else "is now"
            print(f"{r.old.stage} {r.old.version} (yours, {r.old.message!r}) {verb_is} {r.new.version}{pins}{runs}")
        _print_clashes(result.clashes, result.remote.name)
        _print_transfer(result.storage, "would bring" if dry_run else "brought")
    if result.storage is not None and result.storage.damaged:
        raise typer.Exit(1)


def _counted(new_versions: dict[str, int], tags: tuple[str, ...]) -> str:
    parts = [f"{stage} +{n} version{'s' if n != 1 else ''}" for stage, n in sorted(new_versions.items()) if n]
    if tags:
        parts.append(f"tag{'s' if len(tags) != 1 else ''} {', '.join(tags)}")
    return ", ".join(parts)


def _print_clashes(clashes: tuple[TagClash, ...], remote: str) -> None:
    for c in clashes:
        print(
            f"tag {c.stage}@{c.name} is {c.here} here and {c.remote} on {remote}: both kept as they are "
            f"(rename yours: `modver tag {c.stage}@{c.here} NEW-NAME`)",
            file=sys.stderr,
        )


def _print_transfer(transfer: Transfer | None, verb: str) -> None:
    if transfer is None:
        return
    runs, outputs = len(transfer.runs), len(transfer.outputs)
    print(
        f"Storage {transfer.url}: {verb} {runs} run record{'s' if runs != 1 else ''} and "
        f"{outputs} cached output{'s' if outputs != 1 else ''} ({_output.size(transfer.bytes)})."
    )
    for item in transfer.damaged:
        print(f"damaged, not used: {item} does not match its checksums", file=sys.stderr)


def _invoke(args: list[str]) -> int:
    """Run one modver command in-process, as the demo's narration shows it."""
    from typer.main import get_command

    command = get_command(app)
    try:
        code = command.main(args=args, prog_name="modver", standalone_mode=False)
    except typer.Exit as exc:
        return exc.exit_code
    return code if isinstance(code, int) else 0


def run() -> None:
    """Entry point of the console script."""
    app()
