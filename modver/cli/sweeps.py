"""Commands for many runs at once: sweep, sweeps."""

from __future__ import annotations

import contextlib
import shlex
import signal
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer

from modver import errors
from modver.cli import _output
from modver.cli._app import JsonOpt, ManifestArg, ProjectOpt, _project, _state, app

if TYPE_CHECKING:  # pragma: no cover
    from modver.models import SweepSpec
    from modver.store.sweepstore import Best, SweepPoint, SweepRecord
    from modver.sweep.study import Optimize

JobsOpt = Annotated[
    int | None,
    typer.Option("--jobs", "-j", metavar="N", help="Worker processes of the local Dask cluster (default: cores)."),
]


OptimizeOpt = Annotated[
    str | None,
    typer.Option("--optimize", metavar="METRIC", help="Search: draw trials (Optuna) to maximize this metric."),
]
MinimizeOpt = Annotated[bool, typer.Option("--minimize", help="Search for the lowest METRIC instead.")]
TrialsOpt = Annotated[
    int | None, typer.Option("--trials", metavar="N", help="Search: how many finished trials (with --optimize).")
]
SamplerOpt = Annotated[
    str | None, typer.Option("--sampler", metavar="NAME", help="Search: tpe (default), random, cmaes, grid, qmc.")
]
SeedOpt = Annotated[int | None, typer.Option("--seed", metavar="S", help="Search: the sampler's seed.")]
PruneOpt = Annotated[
    str | None, typer.Option("--prune", metavar="NAME", help="Search: stop bad trials early: median, asha, hyperband.")
]
StudyOpt = Annotated[
    str | None, typer.Option("--study", metavar="NAME", help="Search: the study's name (default: the sweep id).")
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
    optimize: OptimizeOpt = None,
    minimize: MinimizeOpt = False,
    trials: TrialsOpt = None,
    sampler: SamplerOpt = None,
    seed: SeedOpt = None,
    study: StudyOpt = None,
    prune: PruneOpt = None,
    as_json: JsonOpt = False,
    project: ProjectOpt = Path("."),
) -> None:
    """Run many points at once: every combination of the --set axes (or --zip, or a sweep file),
    each point one run, shared stage tasks executed once, on Dask. With --optimize, a search:
    Optuna draws --trials N points from the --set distributions (uniform, loguniform, int, choice).
    `--best ID` alone prints a search's best params as --set lines."""
    from modver.store.sweepstore import parse_best

    searching = _search_options(optimize, minimize, trials, sampler, seed, study, prune)
    if best is not None and not (set_ or file or resume or manifest or searching):
        _print_best(best, as_json, project)
        return
    _check_options(manifest, set_, zip_, file, resume, dry_run, detach)
    if searching or (resume is not None and (trials is not None or _is_search(resume, project))):
        _search(manifest, set_, file, resume, searching, dry_run, detach, jobs, scheduler, cluster, as_json,
                project, trials, zip_)  # fmt: skip
        return
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
        metrics = {} if as_json else _point_metrics(p, record)
    _output.print_json(record.to_json()) if as_json else sweep_summary(record, following, leader, metrics)
    _fail_if_failed(record)


def _point_metrics(p: Any, record: SweepRecord) -> dict[int, Mapping[str, Any]]:
    """Each succeeded point's metrics (from its run's record), by point index."""
    found: dict[int, Mapping[str, Any]] = {}
    for point in record.points:
        if point.run is not None and point.status == "succeeded":
            with contextlib.suppress(errors.ModverError):  # a record gone or damaged: `modver runs` says so
                found[point.index] = p.runs.record(point.run).metrics
    return found


def _is_search(resume: str, project: Path) -> bool:
    with _project(project) as p:
        return p.sweeps.record(resume).optimize is not None


def _fail_if_failed(record: SweepRecord) -> None:
    """A sweep with failed points exits 1, naming them; an interrupted one exits 1 too."""
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


def _search_options(
    optimize: str | None, minimize: bool, trials: int | None, sampler: str | None, seed: int | None, study: str | None,
    prune: str | None,
) -> Optimize | None:  # fmt: skip
    """The search that --optimize and its options describe; options of a search without it are an error."""
    from modver.sweep.study import Optimize

    if optimize is None:
        given = [n for n, v in (("--minimize", minimize), ("--sampler", sampler), ("--seed", seed is not None),
                                ("--study", study), ("--prune", prune)) if v]  # fmt: skip
        if given:
            raise errors.UsageError(f"{given[0]} is an option of a search: give --optimize METRIC too",
                                    hint="e.g. --optimize accuracy --trials 20")  # fmt: skip
        return None
    if trials is None:
        raise errors.UsageError("--optimize needs --trials N: how many trials to run",
                                hint="e.g. --optimize accuracy --trials 20")  # fmt: skip
    return Optimize(optimize, trials, minimize, sampler or "tpe", seed, study, prune or "none")


def _search(
    manifest: Path | None, sets: list[str] | None, file: Path | None, resume: str | None, optimize: Optimize | None,
    dry_run: bool, detach: bool, jobs: int | None, scheduler: str | None, cluster: str | None, as_json: bool,
    project: Path, trials: int | None, zip_: bool = False,
) -> None:  # fmt: skip
    """``sweep --optimize`` (or ``--resume`` of a search): checked, then run; its summary."""
    from modver.sweep.study import Optimize, check_search

    with _project(project, manifest) as p:
        recorded = p.sweeps.record(resume) if resume is not None else None
        if recorded is not None:
            if recorded.optimize is None:
                raise errors.UsageError(f"sweep {recorded.sweep} is a grid: --trials is for a search",
                                        hint=f"resume it with `modver sweep --resume {recorded.sweep}`")  # fmt: skip
            spec = recorded.spec
            optimize = Optimize.from_json(recorded.optimize)
            optimize = replace(optimize, trials=trials or optimize.trials)
            check_search(spec, optimize)
        else:
            assert optimize is not None
            spec = p.sweeps.spec(sets or (), zip_axes=zip_, file=file, optimize=optimize)
        where = p.root / recorded.manifest if recorded is not None else None
        executor = p.sweeps.executor(where, jobs=jobs, scheduler=scheduler, cluster=cluster, debug=_state["debug"])
        p.sweeps.check_search(spec, where)
        if dry_run:
            _search_plan(spec, optimize, as_json)
            return
        if detach:
            queued, job = p.sweeps.detach(None if resume else spec, where, resume=resume, executor=executor,
                                          optimize=optimize)  # fmt: skip
            _output.print_json({**queued.to_json(), "job": job}) if as_json else print(
                f"search {queued.sweep}: {optimize.trials} trials, driver submitted as batch job {job}\n"
                f"  follow it with `modver sweeps`; continue it with `modver sweep --resume {queued.sweep}`"
            )
            return
        best = optimize.best
        with _stopped_by_sigterm() as stop, _output.sweep_progress(best, quiet=as_json, unit="trial") as on_progress:
            try:
                record = p.sweeps.search(None if resume else spec, optimize, resume=resume, executor=executor,
                                         on_progress=on_progress)  # fmt: skip
            except KeyboardInterrupt as exc:
                stop.interrupted(getattr(exc, "sweep", None))
        leader = p.sweeps.best_point(record, best)
        metrics = {} if as_json else _point_metrics(p, record)
    if as_json:
        _output.print_json(_with_best(record, leader))
    else:
        sweep_summary(record, best, leader, metrics)
    if record.status == "interrupted":
        raise typer.Exit(1)


def _with_best(record: SweepRecord, leader: tuple[SweepPoint, float] | None) -> dict[str, Any]:
    best = None
    if leader is not None:
        best = {"point": leader[0].index, "trial": leader[0].trial, "run": leader[0].run, "value": leader[1],
                "params": dict(leader[0].params)}  # fmt: skip
    return {**record.to_json(), "best": best}


def _search_plan(spec: SweepSpec, optimize: Optimize, as_json: bool) -> None:
    """What ``sweep --optimize --dry-run`` prints: the search space; nothing runs."""
    space = {a.target: f"choice({','.join(map(str, a.values))})" for a in spec.grid}
    space.update({d.target: d.text() for d in spec.search})
    if as_json:
        _output.print_json({"optimize": optimize.to_json(), "space": space, "sets": list(spec.sets)})
        return
    direction = "lowest" if optimize.minimize else "highest"
    print(f"search for the {direction} {optimize.metric}: {optimize.trials} trials, sampler {optimize.sampler}")
    for target, text in space.items():
        print(f"  {target} ~ {text}")
    for fixed in spec.sets:
        print(f"  {fixed}")
    print("(dry run: nothing executed or recorded)")


def _print_best(ref: str, as_json: bool, project: Path) -> None:
    """``modver sweep --best ID``: a search's best params, one ``--set`` line each."""
    with _project(project) as p:
        found = p.sweeps.best_params(ref)
    if found is None:
        raise errors.SweepError(f"search {ref} has no trial with a value yet", hint="see `modver sweeps`")
    record, point, value, lines = found
    if as_json:
        _output.print_json({"sweep": record.sweep, "trial": point.trial, "run": point.run, "value": value,
                            "params": dict(point.params), "sets": lines})  # fmt: skip
        return
    for line in lines:
        print(f"--set {shlex.quote(line)}")


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
    """Every sweep: its status, points done, running and failed, and its best point by --best (a
    search: its best trial by its metric, with its params)."""
    from modver.store.sweepstore import parse_best

    following = parse_best(best) if best else None
    with _project(project) as p:
        records = p.sweeps()
        leaders = [p.sweeps.best_point(r, by) if (by := following or r.best) else None for r in records]
    if as_json:
        _output.print_json([_with_best(r, b) for r, b in zip(records, leaders, strict=True)])
        return
    sweep_table(records, leaders, following)


# -- how a sweep's end and the sweeps are shown -----------------------------------------------------


def sweep_summary(
    record: SweepRecord,
    best: Best | None,
    leader: tuple[SweepPoint, float] | None,
    metrics: Mapping[int, Mapping[str, Any]] | None = None,
) -> None:
    """The table a sweep ends with: per point its params, status, metrics (the objective first,
    the best marked ``*``) and run; then its totals and its best point, each line fitted."""
    metrics = metrics or {}
    search = record.optimize is not None
    targets = list(dict.fromkeys(t for pt in record.points for t in pt.params))
    names = sorted({m for values in metrics.values() for m in values if isinstance(values[m], (int, float))})
    if best is not None and best.metric in names:
        names = [best.metric, *(m for m in names if m != best.metric)]
    from modver.engine.runtable import unique_prefixes

    runs = [pt.run for pt in record.points if pt.run]
    ids = unique_prefixes(runs, runs)
    marked = leader[0].index if leader is not None else None
    columns = [
        _output.Column("trial" if search else "point", [str(pt.trial if search else pt.index) for pt in record.points]),
        *(_output.Column(t, [_output.fmt(pt.params.get(t)) for pt in record.points], kind="number") for t in targets),
        _output.Column("status", [pt.status for pt in record.points], min_width=9),
    ]
    for rank, name in enumerate(names):
        objective = best is not None and name == best.metric
        cells = [_output.num(metrics.get(pt.index, {}).get(name)) for pt in record.points]
        if objective:  # the best point's value marked, the others padded so the numbers line up
            cells = [c + ("*" if pt.index == marked else " ") for c, pt in zip(cells, record.points)]
        columns.append(_output.Column(name, cells, priority=0 if objective else 10 + rank, kind="number"))
    columns.append(_output.Column("run", [ids.get(pt.run or "", "-") for pt in record.points], priority=5, kind="id"))
    _output.fitted_table(columns)
    width = _output.width_limit()
    tasks = record.tasks
    lines = [
        f"sweep {record.sweep}: {record.status}; {record.count('succeeded')} of {len(record.points)} points succeeded"
    ]
    if tasks:
        lines.append(
            f"  {tasks.get('executions', 0)} stage executions, {tasks.get('shared', 0)} shared, "
            f"{tasks.get('cached', 0)} cached"
        )
    if best is not None:
        lines.append(
            f"best {best.metric}: {_output.num(leader[1])} at {_output._point_name(leader[0])} ({_output.point_params(leader[0].params)}), "
            f"run {leader[0].run}"
            if leader
            else f"best {best.metric}: no succeeded point logged it"
        )
    elif names:
        lines.append(f"(no objective: `modver sweeps --best {names[0]}` names the best point)")
    import textwrap

    for text in lines:
        print("\n".join(textwrap.wrap(text, width, subsequent_indent="  ", break_on_hyphens=False)))


def sweep_table(
    records: Sequence[SweepRecord], leaders: Sequence[tuple[SweepPoint, float] | None], best: Best | None
) -> None:
    """``modver sweeps``: one row per sweep."""
    if not records:
        print("No sweeps yet: start one with `modver sweep --set stage.param=V1,V2,...`.")
        return
    from modver.engine.runtable import unique_prefixes

    ids = [r.sweep for r in records]
    short = unique_prefixes(ids, ids)  # like run ids: the shortest prefix that names one sweep
    columns = ["sweep", "status", "started", "points", "done", "running", "failed", "axes"]
    columns.append(f"best {best.metric}" if best is not None else "best")
    rows = []
    for r, leader in zip(records, leaders, strict=True):
        targets = [a.target for a in r.spec.axes] + [d.target for d in r.spec.search]
        row = [short[r.sweep], r.status, _output.date(r.started), str(len(r.points)), str(r.count("succeeded")),
               str(r.count("running")), str(r.count("failed")), ", ".join(targets)]  # fmt: skip
        metric = "" if best is not None or r.best is None else f"{r.best.metric} "
        row.append(f"{metric}{_output.num(leader[1])} ({_output._point_name(leader[0])})" if leader else "-")
        rows.append(row)
    _output.table(
        columns,
        rows,
        priorities=[0, 0, 5, 3, 1, 4, 0, 2, 0],  # hidden first: started, running, points, axes, done
        kinds=["id", "text", "text", "number", "number", "number", "number", "text", "id"],  # best: never cut
    )
    if best is None and any(r.best is None for r in records):
        print("(a grid sweep has no objective: `modver sweeps --best METRIC` names its best point)")
