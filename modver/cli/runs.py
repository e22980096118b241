"""Commands about runs: run, reproduce, runs, gc, demo, and the HTML report."""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from modver.cli import _output
from modver.cli._app import JsonOpt, ManifestArg, ProjectOpt, _invoke, _project, app

if TYPE_CHECKING:  # pragma: no cover
    from modver.engine.recorder import StageEvent
    from modver.record import RunRecord


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
            total = sum(event.timings.values()) if event.timings else (event.duration or 0)  # all of its time
            say(f"- {label}: done in {total:.2f}s" + (f" ({_output.timings(event.timings)})" if explain else ""))
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
    force_outs: Annotated[
        bool,
        typer.Option("--force-outs", help="Replace script stages' outs in the working tree even if edited by hand."),
    ] = False,
    pin: Annotated[
        list[str] | None,
        typer.Option("--pin", metavar="STAGE@REF", help="Pin a stage for this run only; the manifest is untouched."),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Show what would run and what comes from the cache; run nothing.")
    ] = False,
    as_json: JsonOpt = False,
    project: ProjectOpt = Path("."),
) -> None:
    """Run the pipeline at its pinned versions, reusing cached stage outputs; record the run."""
    if dry_run:
        _dry_run(project, manifest, set_ or (), force or (), pin or (), as_json)
        return
    with _project(project, manifest) as p:
        record = _with_progress(
            lambda on_event, echo: p.run(
                sets=set_ or (),
                force=force or (),
                on_event=on_event,
                echo=echo,
                jobs=jobs,
                pins=pin or (),
                force_outs=force_outs,
            ),
            explain,
            as_json,
        )
    if as_json:
        _output.print_json(record.to_json())
        return
    _output.run_summary(record)
    if record.pins:
        print(f"  pinned for this run only: {', '.join(f'{s}@{ref}' for s, ref in record.pins.items())}")
    if explain and record.timings is not None:
        print(f"  time: {_output.run_timings(record.timings)}")


def _dry_run(
    project: Path, manifest: Path | None, sets: Sequence[str], force: Sequence[str], pins: Sequence[str], as_json: bool
) -> None:
    """``run --dry-run``: the plan, stage by stage, with keys and reasons; nothing executed or recorded."""
    with _project(project, manifest) as p:
        plans = p.plan(sets=sets, force=force, pins=pins)
    rows = [
        {"stage": s.name, "version": s.label, "action": "cached" if s.cached else "run", "key": s.key,
         "reason": s.reason}
        for s in plans
    ]  # fmt: skip
    if as_json:
        _output.print_json(rows)
        return
    for row in rows:
        verb = "from the cache" if row["action"] == "cached" else "would run"
        print(f"- {row['stage']}@{row['version']}: {verb} — {row['reason']} (key {row['key'][:16]})")
    runs = sum(r["action"] == "run" for r in rows)
    print(f"dry run: {runs} of {len(rows)} stages would run; nothing was executed or recorded.")


@app.command()
def checkout(
    run: Annotated[str, typer.Argument(help="Run id, unique prefix, latest or latest~N.")] = "latest",
    force: Annotated[bool, typer.Option("--force", help="Replace outs edited by hand.")] = False,
    as_json: JsonOpt = False,
    project: ProjectOpt = Path("."),
) -> None:
    """Put a run's script outs at their paths in the working tree, from the cache."""
    with _project(project) as p:
        written = p.checkout(run, force=force)
    if as_json:
        _output.print_json({"written": written})
        return
    print(f"{len(written)} out(s) written" + (": " + ", ".join(written) if written else " (all in place)"))


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
    from modver.engine.runtable import flatten_record, runs_view, table_columns

    with _project(project) as p:
        records = p.runs(where, sort, last, sweep) if as_json else p.runs.summaries(where, sort, last, sweep)
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
        result = p.outputs.gc(
            keep_last=keep_last, older_than=older_than, remove_records=remove_records, dry_run=dry_run
        )
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
        result = p.runs.report(out, where=where, sweep=sweep)
    if as_json:
        _output.print_json(result.to_json())
    else:
        print(f"Wrote {result.path} ({result.runs} runs, {_output.size(result.size)}); open it in a browser")
    if open_:
        import webbrowser

        if not webbrowser.open(result.path.as_uri()):
            print(f"No web browser found to open it: open {result.path.as_uri()} in a browser, or copy the file.")
