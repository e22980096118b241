"""Commands for many runs at once: sweep, sweeps."""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, NoReturn

import typer

from modver import errors
from modver.cli import _output
from modver.cli._app import JsonOpt, ManifestArg, ProjectOpt, _project, _state, app

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
    from modver.store.sweepstore import parse_best

    _check_options(manifest, set_, zip_, file, resume, dry_run, detach)
    following = parse_best(best) if best else None
    with _project(project, manifest) as p:
        recorded = p.sweeps.record(resume) if resume is not None else None
        spec = recorded.spec if recorded is not None else p.sweeps.spec(set_ or (), zip_axes=zip_, file=file)
        executor = p.sweeps.executor(  # checked before anything runs, a dry run too
            p.root / recorded.manifest if recorded is not None else None, jobs=jobs, scheduler=scheduler,
            cluster=cluster, debug=_state["debug"],
        )  # fmt: skip
        if dry_run:
            graph = p.sweeps.plan(spec, resume=recorded.sweep if recorded is not None else None)
            _output.print_json(graph.to_json()) if as_json else _output.sweep_plan(graph)
            return
        if detach:
            queued, job = p.sweeps.detach(
                None if resume else spec, resume=resume, executor=executor, fail_fast=fail_fast
            )
            _output.print_json({**queued.to_json(), "job": job}) if as_json else print(
                f"sweep {queued.sweep}: {len(queued.points)} points, driver submitted as batch job {job}\n"
                f"  follow it with `modver sweeps`; continue it with `modver sweep --resume {queued.sweep}`"
            )
            return
        with _stopped_by_sigterm() as stop, _output.sweep_progress(following, quiet=as_json) as on_progress:
            try:
                record = p.sweeps.run(None if resume else spec, resume=resume, executor=executor,
                                      fail_fast=fail_fast, best=following, on_progress=on_progress)  # fmt: skip
            except KeyboardInterrupt as exc:
                stop.interrupted(getattr(exc, "sweep", None))
        leader = p.sweeps.best_point(record, following) if following else None
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


def _check_options(
    manifest: Path | None, sets: list[str] | None, zip_: bool, file: Path | None, resume: str | None, dry_run: bool,
    detach: bool,
) -> None:  # fmt: skip
    """Options that contradict each other are an error, before anything is read or run."""
    if resume is not None:
        given = [name for name, value in (("MANIFEST", manifest), ("--set", sets), ("--zip", zip_), ("--file", file))
                 if value]  # fmt: skip
        if given:
            raise errors.UsageError(
                f"--resume continues a recorded sweep with its own manifest and axes: it takes no {given[0]}",
                hint="give --resume ID alone (with executor options), or start a new sweep without --resume",
            )
    if dry_run and detach:
        raise errors.UsageError("--dry-run runs nothing, so it cannot --detach", hint="give one of them")


class _Stop:
    """How the sweep was stopped: Ctrl-C (exit 130) or SIGTERM (exit 143)."""

    def __init__(self) -> None:
        self.signal = "SIGINT"

    def interrupted(self, sweep: str | None) -> NoReturn:
        """One line, and the command that resumes the sweep; the exit of an interrupted command."""
        if sweep is None:
            _output.fail("interrupted before the sweep started; nothing was recorded", None)
        else:
            _output.fail(f"interrupted: sweep {sweep} stopped", f"resume it with `modver sweep --resume {sweep}`")
        raise typer.Exit(143 if self.signal == "SIGTERM" else 130)


@contextlib.contextmanager
def _stopped_by_sigterm() -> Iterator[_Stop]:
    """SIGTERM stops the sweep the way Ctrl-C does (every point recorded, the cluster shut down)."""
    stop = _Stop()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return

    def on_term(signum: int, frame: object) -> None:
        stop.signal = "SIGTERM"
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, on_term)
    try:
        yield stop
    finally:
        signal.signal(signal.SIGTERM, previous)


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
    from modver.store.sweepstore import parse_best

    following = parse_best(best) if best else None
    with _project(project) as p:
        records = p.sweeps()
        leaders = [p.sweeps.best_point(r, following) if following else None for r in records]
    if as_json:
        _output.print_json(
            [
                {**r.to_json(), "best": None if b is None else {"point": b[0].index, "run": b[0].run, "value": b[1]}}
                for r, b in zip(records, leaders, strict=True)
            ]
        )
        return
    _output.sweep_table(records, leaders, following)
