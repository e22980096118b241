"""The ``modver`` command line: a thin typer layer over :mod:`modver.project`.

Every command calls one façade method and renders what it returns: rich tables and
syntax-highlighted diffs on a terminal, plain text otherwise, JSON with ``--json``. Errors go
through one handler: a :class:`ModverError` prints ``Error: ...`` and a hint on stderr and exits 1;
anything else is an internal error whose traceback shows only with ``--debug``.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import sys
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from modver import __version__, errors

app = typer.Typer(
    name="modver",
    help="Version each stage of an ML pipeline on its own, by what its code means.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)

_state: dict[str, Any] = {"debug": False}  # set by the --debug option (or MODVER_DEBUG=1) per call

# Shared options, declared once.
JsonOpt = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]
ManifestOpt = Annotated[
    Path | None, typer.Option("--manifest", "-m", help="Manifest file (default: manifest.yaml at the project root).")
]
ProjectOpt = Annotated[Path, typer.Option("--project", "-C", help="Run as if started in this folder.")]

F = TypeVar("F", bound=Callable[..., Any])


# --------------------------------------------------------------------------- output helpers


def _console(stderr: bool = False):
    if not stderr and _state.get("paged") is not None:
        return _state["paged"]  # inside _paged(): what is printed goes to the pager
    from rich.console import Console

    return Console(stderr=stderr, highlight=False, soft_wrap=not sys.stdout.isatty())


@contextlib.contextmanager
def _paged() -> Iterator[None]:
    """On a terminal, send what the block prints through the pager, as git does: ``$PAGER`` (less
    by default, with ``LESS=FRX``: it quits at once when the text fits one screen); never with
    ``--no-pager``, an empty ``PAGER``, or when stdout is not a terminal."""
    if not _is_terminal() or not sys.stdin.isatty() or _state.get("no_pager") or os.environ.get("PAGER") == "":
        yield
        return
    os.environ.setdefault("LESS", "FRX")
    console = _console()
    _state["paged"] = console
    try:
        with console.pager(styles=True):
            yield
    finally:
        _state["paged"] = None


def _is_terminal() -> bool:
    return sys.stdout.isatty()


def _print_json(value: Any) -> None:
    sys.stdout.write(json.dumps(value, indent=2, sort_keys=False, default=str) + "\n")


def _table(columns: list[str], rows: list[list[Any]], title: str | None = None) -> None:
    """A rich table on a terminal; plain aligned columns otherwise."""
    if not _is_terminal():
        widths = [len(c) for c in columns]
        cells = [["" if v is None else str(v) for v in row] for row in rows]
        for row in cells:
            widths = [max(w, len(v)) for w, v in zip(widths, row)]
        if title:
            print(title)
        print("  ".join(c.ljust(w) for c, w in zip(columns, widths)).rstrip())
        for row in cells:
            print("  ".join(v.ljust(w) for v, w in zip(row, widths)).rstrip())
        return
    from rich.table import Table

    table = Table(title=title, header_style="bold")
    for c in columns:
        table.add_column(c)
    for row in rows:
        table.add_row(*["" if v is None else str(v) for v in row])
    _console().print(table)


def _show_code(code: str, lexer: str) -> None:
    if not _is_terminal():
        sys.stdout.write(code if code.endswith("\n") or not code else code + "\n")
        return
    from rich.syntax import Syntax

    _console().print(Syntax(code, lexer, theme="ansi_dark", background_color="default", word_wrap=True))


def _short(fingerprint: str | None, n: int = 12) -> str:
    if not fingerprint:
        return "-"
    return fingerprint.split(":", 1)[-1][:n]


def _date(iso: str | None) -> str:
    return (iso or "")[:19].replace("T", " ")


# --------------------------------------------------------------------------- error handling


def _fail(message: str, hint: str | None) -> None:
    err = _console(stderr=True)
    from rich.markup import escape

    err.print(f"[bold red]Error:[/] {escape(message)}")
    if hint:
        err.print(f"[dim]{escape(hint)}[/]")


def handle_errors(func: F) -> F:
    """The one error handler: ModverError → message + hint, exit 1; others → internal error."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except (typer.Exit, typer.Abort):
            raise
        except errors.ModverError as exc:
            if _state["debug"]:
                traceback.print_exc()
            _fail(str(exc), exc.hint)
            raise typer.Exit(1) from None
        except KeyboardInterrupt:
            _fail("interrupted", None)
            raise typer.Exit(130) from None
        except BrokenPipeError:
            # `modver log | head`: the reader left; say nothing more, like git does
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            raise typer.Exit(141) from None
        except Exception as exc:
            if _state["debug"]:
                traceback.print_exc()
            _fail(f"internal error: {type(exc).__name__}: {exc}", "rerun with --debug for the traceback, and report it")
            raise typer.Exit(1) from None

    return wrapper  # type: ignore[return-value]


def _project(project: Path, manifest: Path | None = None):
    from modver.project import Project

    return Project(project, manifest=manifest)


def _version_callback(value: bool) -> None:
    if value:
        print(f"modver {__version__}")
        raise typer.Exit()


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
    # The library says what it waits for (another process's lock) on the "modver" logger.
    import logging

    logger = logging.getLogger("modver")
    if not any(h.get_name() == "modver-cli" for h in logger.handlers):

        class StderrLines(logging.Handler):
            def emit(self, record: logging.LogRecord) -> None:
                sys.stderr.write(record.getMessage() + "\n")  # the stderr of the current call

        handler = StderrLines(logging.INFO)
        handler.set_name("modver-cli")
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)


# --------------------------------------------------------------------------- commands


@app.command()
@handle_errors
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
@handle_errors
def index(
    rev: Annotated[str | None, typer.Option("--rev", help="Walk this revision instead of the current branch.")] = None,
    all_: Annotated[bool, typer.Option("--all", help="Walk every local branch.")] = False,
    manifest: ManifestOpt = None,
    as_json: JsonOpt = False,
    project: ProjectOpt = Path("."),
) -> None:
    """Walk git history (first parent, oldest first) and register every declared stage's versions."""
    with _project(project, manifest) as p:
        if _is_terminal() and not as_json:
            from rich.progress import Progress

            with Progress(transient=True) as bar:
                task = bar.add_task("indexing commits", total=None)

                def tick(done: int, total: int) -> None:
                    bar.update(task, completed=done, total=total)

                result = p.index(rev, all_branches=all_, progress=tick)
        else:
            result = p.index(rev, all_branches=all_)
    if as_json:
        _print_json(result.to_json())
        return
    if result.up_to_date:
        print("Up to date: no new commits since the last index.")
        return
    if result.commits == 0:
        print("Nothing to index: the repository has no commits yet (use `modver snapshot`).")
        return
    print(
        f"Walked {result.walked} of {result.commits} commits; "
        f"{len(result.new_versions)} new version{'s' if len(result.new_versions) != 1 else ''}."
    )
    if len(result.new_versions) <= 20:
        for v in result.new_versions:
            print(f"  {v.stage}@{v.version}  {_short(v.fingerprint)}  {(v.origin or '')[:10]}  {v.message}")
    else:
        by_stage: dict[str, list[Any]] = {}
        for v in result.new_versions:
            by_stage.setdefault(v.stage, []).append(v)
        for stage_name, versions in by_stage.items():
            print(f"  {stage_name}: {len(versions)} new ({versions[0].version}..{versions[-1].version})")
    for v in result.committed:
        print(f"  {v.stage}@{v.version} (registered from the working tree) is committed in {(v.committed or '')[:10]}")
    for stage, n in sorted(result.skipped.items()):
        print(f"  {stage}: skipped {n} commit{'s' if n != 1 else ''} where the stage was missing or did not parse")


@app.command()
@handle_errors
def snapshot(
    stages: Annotated[list[str] | None, typer.Argument(help="Stages to snapshot (default: all declared).")] = None,
    message: Annotated[str, typer.Option("--message", "-m", help="A note stored with new versions.")] = "",
    manifest: Annotated[Path | None, typer.Option("--manifest", help="Manifest file.")] = None,
    as_json: JsonOpt = False,
    project: ProjectOpt = Path("."),
) -> None:
    """Register the working tree's version of each stage (code that was never committed)."""
    with _project(project, manifest) as p:
        results = p.snapshot(stages or (), message)
    if as_json:
        _print_json([r.to_json() for r in results])
        return
    for r in results:
        what = "new version" if r.new else "already registered as"
        print(f"{r.version.stage}: {what} {r.version.version} ({_short(r.version.fingerprint)})")


@app.command()
@handle_errors
def log(
    stage: Annotated[str | None, typer.Argument(help="Stage (default: every stage).")] = None,
    as_json: JsonOpt = False,
    project: ProjectOpt = Path("."),
) -> None:
    """Per-stage history: version, fingerprint, date, origin commit, message, tags, runs."""
    with _project(project) as p:
        versions = p.log(stage)
        used = {s: p.version_runs(s) for s in {v.stage for v in versions}}
    if as_json:
        _print_json([{**v.to_json(), "runs": used[v.stage].get(v.version, [])} for v in versions])
        return
    if not versions:
        print("No versions registered yet: run `modver index` or `modver snapshot`.")
        return
    rows = [
        [
            f"{v.stage}@{v.version}",
            _short(v.fingerprint),
            _date(v.created),
            v.origin[:10]
            if v.origin
            else (f"working tree, committed {v.committed[:10]}" if v.committed else "working tree"),
            ", ".join(v.tags),
            v.message,
            _runs_cell(used[v.stage].get(v.version, [])),
        ]
        for v in versions
    ]
    with _paged():
        _table(["version", "fingerprint", "created", "origin", "tags", "message", "runs"], rows)


def _runs_cell(runs: list[dict[str, Any]]) -> str:
    """How many runs used a version, and the metrics of the latest one."""
    if not runs:
        return ""
    last = runs[-1]
    metrics = " ".join(f"{k}={_num(v)}" for k, v in last["metrics"].items())
    return f"{len(runs)} (last: {metrics})" if metrics else str(len(runs))


@app.command()
@handle_errors
def status(
    manifest: Annotated[Path | None, typer.Argument(help="Manifest (default: manifest.yaml).")] = None,
    as_json: JsonOpt = False,
    project: ProjectOpt = Path("."),
) -> None:
    """Per stage: the working tree's version against its pin (or its last run's version), and
    whether a run would be cached. Exits 1 when a stage's pin or code has a problem."""
    with _project(project, manifest) as p:
        rows = p.status()
    if as_json:
        _print_json([{k: v for k, v in r.to_json().items() if k != "error" or v is not None} for r in rows])
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
                [r.stage, r.pinned or "(working tree)", working, _short(r.working_fingerprint), compared, state, cached]
            )
        _table(["stage", "pinned", "working", "fingerprint", "compared with", "state", "cached"], table)
    if any(r.error for r in rows):
        raise typer.Exit(1)


@app.command()
@handle_errors
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
    """A version's metadata, closure and source (STAGE@REF, or STAGE for its latest version); or a
    run's record and logs."""
    with _project(project, manifest) as p:
        if "@" not in ref:
            if ref not in p.stage_names():
                _show_run(ref, as_json, p)
                return
            if p.names_run(ref):
                print(
                    f"note: {ref!r} is a stage and also names a run: showing {ref}@latest "
                    "(give the run's full id to see the run)",
                    file=sys.stderr,
                )
            ref = f"{ref}@latest"
        shown = p.show(ref)
    if as_json:
        _print_json(shown.to_json())
        return
    v, c = shown.version, shown.closure
    print(f"{v.stage}@{v.version}  {v.fingerprint}")
    print(f"entry:   {v.entry}")
    if shown.declared_entry not in (None, v.entry):
        print(
            f"         (stored under this path; the manifest now declares {shown.declared_entry}: the version runs from its stored path)"
        )
    print(f"origin:  {v.origin or 'working tree snapshot'}")
    if v.committed:
        print(f"committed: {v.committed}  (where `modver index` later found this code)")
    print(f"created: {_date(v.created)}")
    if v.message:
        print(f"message: {v.message}")
    if v.tags:
        print(f"tags:    {', '.join(v.tags)}")
    print(f"files:   {', '.join(c.files)}")
    if c.deps:
        print(f"deps:    {', '.join(c.deps)}")
    if c.imports:
        print(f"imports: {', '.join(c.imports)}  (imported on load, not in the fingerprint)")
    if c.unresolved:
        print("not resolved statically (included conservatively):")
        for u in c.unresolved:
            print(f"  {u.path}:{u.line}: {u.reason} -> {u.included}")
        if any(u.included.startswith("nothing") for u in c.unresolved):  # a file or module named at run time
            print(f"to count the files these calls run or import, list them under `{v.stage}:` in the manifest:")
            print(f"    deps: [{', '.join([*c.deps, 'path/to/file.py'])}]")
    print()
    _table(
        ["definition", "kind", "file", "lines"],
        [
            [d.name, d.kind, d.path, str(d.line) if d.line == d.end_line else f"{d.line}-{d.end_line}"]
            for d in c.definitions
        ],
    )
    for key, source in shown.sources.items():
        print()
        print(f"# {key}")
        _show_code(source, "python")


def _in_run_order(record: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """A record's stages in the order they ran (records before ``order`` existed: by name)."""
    stages = record.get("stages") or {}
    order = [n for n in record.get("order") or [] if n in stages]
    return [(n, stages[n]) for n in order + sorted(set(stages) - set(order))]


def _show_run(ref: str, as_json: bool, p: Any) -> None:
    record = p.run_record(ref)
    logs = p.run_logs(record["run"])
    if as_json:
        _print_json(record)
        return
    print(f"run {record['run']}  {record.get('status')}")
    print(f"started:  {_date(record.get('started'))}   duration: {record.get('duration') or 0:.2f}s")
    git = record.get("git") or {}
    print(f"git:      {(git.get('commit') or '(no commit)')[:12]}{' (dirty)' if git.get('dirty') else ''}")
    print(f"manifest: {(record.get('manifest') or {}).get('path')}")
    if record.get("reproduces"):
        print(f"reproduces: {record['reproduces']}")
    _table(
        ["stage", "version", "status", "duration", "where the time went", "params", "reason"],
        [
            [
                name,
                (record.get("versions") or {}).get(name),
                info.get("status"),
                f"{info['duration']:.2f}s" if info.get("duration") is not None else "-",
                _timings(info.get("timings")) or "-",
                _fmt((record.get("params") or {}).get(name) or {}),
                info.get("reason"),
            ]
            for name, info in _in_run_order(record)
        ],
    )
    if isinstance(record.get("timings"), dict):
        print(f"time:     {_run_timings(record['timings'])}")
    for name, value in (record.get("metrics") or {}).items():
        print(f"  {name} = {_num(value)}")
    error = record.get("error")
    if error:
        print(f"error in stage {error.get('stage')}: {error.get('type')}: {error.get('message')}")
        if error.get("traceback"):
            print(error["traceback"].rstrip())
    for stage, streams in logs.items():
        for stream, text in streams.items():
            if text:
                print(f"--- {stage} {stream} ---")
                print(text.rstrip())


@app.command()
@handle_errors
def pin(
    ref: Annotated[str, typer.Argument(help="STAGE@REF to pin, e.g. preprocess@v3.")],
    manifest: ManifestOpt = None,
    project: ProjectOpt = Path("."),
) -> None:
    """Pin a stage to a version in the manifest (comments and formatting are kept)."""
    with _project(project, manifest) as p:
        result = p.pin(ref)
    assert result.version is not None
    print(
        f"Pinned {result.stage} to {result.version.version} ({_short(result.version.fingerprint)}) in {result.manifest}"
    )


@app.command()
@handle_errors
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
@handle_errors
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
@handle_errors
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
        _print_json(result.to_json())
        return
    for item in result.removed:
        print(
            f"{'would remove' if result.dry_run else 'removed'} {item.kind} {item.detail}  {_bytes(item.size)}  {item.path}"
        )
    what = "would free" if result.dry_run else "freed"
    print(
        f"{len(result.removed)} item{'s' if len(result.removed) != 1 else ''}, {what} {_bytes(result.freed)}; "
        f"kept what {result.kept_runs} of {result.runs} runs use."
    )


def _bytes(size: int) -> str:
    value = float(size)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{value:.1f} TB"  # pragma: no cover


@app.command()
@handle_errors
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
        _print_json([c.to_json() for c in checks])
    else:
        for c in checks:
            label = f"{c.version.stage}@{c.version.version}"
            print(f"{label}  ok" if c.ok else f"{label}  DAMAGED: {'; '.join(c.problems)}")
        bad = sum(not c.ok for c in checks)
        print(f"{len(checks)} version{'s' if len(checks) != 1 else ''} checked, {bad} damaged.")
    if any(not c.ok for c in checks):
        raise typer.Exit(1)


@app.command()
@handle_errors
def diff(
    a: Annotated[str | None, typer.Argument(help="STAGE@A, a manifest, or nothing (working tree vs pins).")] = None,
    b: Annotated[str | None, typer.Argument(help="STAGE@B (default: working tree), or a second manifest.")] = None,
    manifest: ManifestOpt = None,
    as_json: JsonOpt = False,
    project: ProjectOpt = Path("."),
) -> None:
    """What changed in meaning: per stage unchanged, formatting only, or changed, with the diff."""
    with _project(project, manifest) as p:
        result = p.diff(a, b)
    if as_json:
        _print_json(result.to_json() if hasattr(result, "to_json") else [d.to_json() for d in result])
        return
    if hasattr(result, "rows") and result.rows and len(result.rows[0]) == 3:
        _table(["key", result.a, result.b], [[k, _fmt(va), _fmt(vb)] for k, va, vb in result.rows])
        return
    if hasattr(result, "rows"):
        if not result.rows:
            print(f"{result.a} and {result.b} declare the same pipeline")
            return
        _table(["section", "key", result.a, result.b], [[s, k, _fmt(va), _fmt(vb)] for s, k, va, vb in result.rows])
        return
    for d in result:
        print(f"{d.stage}: {d.status}  ({d.a} -> {d.b})")
        for c in d.changes:
            print(f"  {c.kind} {c.name}: {c.status}")
            if c.diff and d.status != "unchanged":
                _show_code(c.diff, "diff")


@app.command("run")
@handle_errors
def run_(
    manifest: Annotated[Path | None, typer.Argument(help="Manifest (default: manifest.yaml).")] = None,
    set_: Annotated[
        list[str] | None,
        typer.Option("--set", metavar="STAGE.PARAM=VALUE", help="Override a param (value typed as YAML)."),
    ] = None,
    force: Annotated[
        list[str] | None,
        typer.Option("--force", metavar="STAGE", help="Run this stage even if cached (repeatable)."),
    ] = None,
    explain: Annotated[
        bool, typer.Option("--explain", help="Say why each stage ran or came from the cache, and where the time went.")
    ] = False,
    as_json: JsonOpt = False,
    project: ProjectOpt = Path("."),
) -> None:
    """Run the pipeline at its pinned versions, reusing cached stage outputs; record the run."""
    with _project(project, manifest) as p:
        record = _with_progress(
            lambda on_event, echo: p.run(sets=set_ or (), force=force or (), on_event=on_event, echo=echo),
            explain,
            as_json,
        )
    _print_run(record, as_json)
    if explain and not as_json and isinstance(record.get("timings"), dict):
        print(f"  time: {_run_timings(record['timings'])}")


@app.command()
@handle_errors
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
    _print_run(record, as_json)
    if not as_json and record.get("comparison"):
        _table(
            ["metric", f"original ({record['reproduces'][:22]})", "reproduced", "match"],
            [
                [name, _num(c["original"]), _num(c["reproduced"]), "yes" if c["match"] else "NO"]
                for name, c in record["comparison"].items()
            ],
        )


@app.command("runs")
@handle_errors
def runs_(
    where: Annotated[
        str | None, typer.Option("--where", help="Filter, e.g. 'metric.accuracy > 0.9' (or 'accuracy > 0.9').")
    ] = None,
    sort: Annotated[
        str | None, typer.Option("--sort", help="Sort by a column (e.g. -accuracy); prefix - for descending.")
    ] = None,
    csv: Annotated[bool, typer.Option("--csv", help="Print CSV (every column).")] = False,
    as_json: JsonOpt = False,
    project: ProjectOpt = Path("."),
) -> None:
    """All runs as one table: versions, params, metrics, status, time."""
    from modver.records import flatten_record, table_columns

    with _project(project) as p:
        records = p.runs(where, sort)
    if as_json:
        _print_json(records)
        return
    rows = [flatten_record(r) for r in records]
    columns = table_columns(rows)
    if csv:
        import csv as _csv

        writer = _csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow(columns)
        for row in rows:
            writer.writerow(["" if row.get(c) is None else row.get(c) for c in columns])
        return
    if not rows:
        print(f"No run matches --where {where!r}." if where else "No runs yet: start one with `modver run`.")
        return
    shown = [c for c in columns if not c.startswith("param.") or len({str(r.get(c)) for r in rows}) > 1]
    _table(
        [c.replace("version.", "").replace("metric.", "") if c != "run" else c for c in shown],
        [[_cell(c, r.get(c)) for c in shown] for r in rows],
    )


def _cell(column: str, value: Any) -> str:
    if value is None or value != value:  # None or NaN
        return "-"
    if column == "started":
        return _date(str(value))
    if column == "duration":
        return f"{float(value):.2f}s"
    return _num(value)


def _num(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "-" if value is None else str(value)


def _with_progress(call: Callable[[Any, Any], dict[str, Any]], explain: bool, as_json: bool) -> dict[str, Any]:
    """Run ``call(on_event, echo)`` with a live stage display on a terminal, plain lines otherwise."""
    say = (lambda text: print(text, file=sys.stderr)) if as_json else print

    status: Any = None  # the spinner on a terminal

    def on_event(kind: str, plan: Any) -> None:
        label = f"{plan.name}@{plan.label}"
        if kind == "start":
            say(f"- {label}: running" + (f" — {plan.reason}" if explain else ""))
            if status is not None:
                status.update(f"running {label}")
        elif kind == "cached":
            say(f"- {label}: cached" + (f" — {plan.reason}" if explain else ""))
        elif kind == "done":
            say(f"- {label}: done in {plan.duration:.2f}s" + (f" ({_timings(plan.timings)})" if explain else ""))
        elif kind == "failed":
            say(f"- {label}: FAILED")
        if kind in ("start", "cached"):
            for note in plan.notes:
                say(f"  note: {note}")

    if _is_terminal() and not as_json:
        from rich.status import Status

        with Status("planning", console=_console()) as status:
            return call(on_event, sys.stdout)  # rich's proxy: stage output prints above the spinner
    return call(on_event, sys.stderr if as_json else sys.stdout)


def _timings(timings: Any) -> str:
    """``materialize 0.01s, import 0.30s, call 0.33s, save 0.02s`` (phases that took time)."""
    if not isinstance(timings, dict):
        return ""
    order = ("materialize", "import", "load", "call", "save")
    return ", ".join(f"{k} {float(timings[k]):.2f}s" for k in order if isinstance(timings.get(k), (int, float)))


def _run_timings(timings: dict[str, Any]) -> str:
    """A run's time outside its stages' work: planning (fingerprints, snapshots) and the rest."""
    parts = [("planning", "plan"), ("in stages", "stages"), ("other", "other")]
    return ", ".join(
        f"{label} {float(timings[k]):.2f}s" for label, k in parts if isinstance(timings.get(k), (int, float))
    )


def _print_run(record: dict[str, Any], as_json: bool) -> None:
    if as_json:
        _print_json(record)
        return
    cached = [s for s, c in (record.get("cached") or {}).items() if c]
    print(
        f"run {record['run']}: {record['status']} in {record.get('duration') or 0:.2f}s"
        + (f" ({len(cached)} of {len(record.get('cached') or {})} stages from cache)" if record.get("cached") else "")
    )
    for name, value in (record.get("metrics") or {}).items():
        print(f"  {name} = {_num(value)}")


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, (dict, list)):
        return json.dumps(value, sort_keys=True)
    return str(value)


@app.command()
@handle_errors
def demo(
    keep: Annotated[
        Path | None,
        typer.Option("--keep", help="Build the demo project in this (new or empty) folder instead of a temporary one."),
    ] = None,
) -> None:
    """Build the bundled example in a new folder and walk through the main workflow; the folder stays."""
    from modver.demo import run_demo

    run_demo(keep, echo=print, show=lambda args: _invoke(args))


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
