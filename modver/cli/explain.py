"""Commands that explain a result: blame (which factor moved a metric) and bisect (which version)."""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from modver.cli import _output
from modver.cli._app import JsonOpt, ProjectOpt, _project, app

if TYPE_CHECKING:  # pragma: no cover
    from modver.engine.recorder import StageEvent
    from modver.explain.bisect import BisectResult
    from modver.explain.blame import BlameResult

JobsOpt = Annotated[
    int | None,
    typer.Option("--jobs", "-j", metavar="N", help="Worker processes of the local Dask cluster (default: cores)."),
]
SchedulerOpt = Annotated[
    str | None, typer.Option("--scheduler", metavar="ADDRESS", help="A running Dask scheduler (tcp://HOST:PORT).")
]
ClusterOpt = Annotated[
    str | None,
    typer.Option(
        "--cluster", metavar="KIND", help="Workers as batch jobs: slurm, pbs, sge or lsf (manifest cluster:)."
    ),
]


@contextlib.contextmanager
def _stopped(what: str) -> Iterator[None]:
    """Ctrl-C or SIGTERM (a batch system's stop) ends the command cleanly: the configurations
    recorded interrupted, the executor shut down, one line; exit 130 or 143."""
    received = {"signal": "SIGINT"}
    previous = None
    if threading.current_thread() is threading.main_thread():

        def on_term(signum: int, frame: object) -> None:
            received["signal"] = "SIGTERM"
            raise KeyboardInterrupt

        previous = signal.signal(signal.SIGTERM, on_term)
    try:
        yield
    except KeyboardInterrupt:
        _output.fail(f"interrupted: the {what} stopped",
                     "run it again: what finished comes from the cache")  # fmt: skip
        raise typer.Exit(143 if received["signal"] == "SIGTERM" else 130) from None
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _say_stage(event: StageEvent) -> None:
    """A stage that executes, one line on stderr (cached stages are the rule: not said)."""
    if event.kind == "start":
        print(f"- {event.name}@{event.label}: running", file=sys.stderr)
    elif event.kind == "failed":
        print(f"- {event.name}@{event.label}: FAILED", file=sys.stderr)


def _signed(value: float | None) -> str:
    return "not measured" if value is None else f"{value:+.4g}"


def waterfall(result: BlameResult) -> None:
    """The blame as a waterfall: A's metric, each factor's share, the interaction, B's metric."""
    rows: list[list[str]] = [[f"A  run {result.run_a}", "", _output.num(result.value_a)]]
    level = result.value_a
    for s in result.shares:
        if s.share is not None:
            level += s.share
        rows.append([s.factor.label, _signed(s.share), _output.num(level)])
    rows.append(["interaction", _signed(result.interaction), _output.num(level + result.interaction)])
    rows.append([f"B  run {result.run_b}", _signed(result.change), _output.num(result.value_b)])
    print(f"blame {result.blame}: {result.metric} {_output.num(result.value_a)} -> {_output.num(result.value_b)}"
          f" ({result.method}, {len(result.runs)} configurations, {result.executions} stage executions)")  # fmt: skip
    _output.table(["", "share", result.metric], rows)
    versions = [s.factor for s in result.shares if s.factor.kind == "version"]
    for f in versions:
        print(f"  {f.label}: {f.summary} — see `{f.command}`")
    for note in result.notes:
        print(f"  note: {note}")
    for package, a, b in result.environment:
        print(f"  environment: {package} {a or '(absent)'} -> {b or '(absent)'} (not varied)")


@app.command()
def blame(
    metric: Annotated[str, typer.Argument(help="The metric whose change to explain.")],
    run_a: Annotated[str, typer.Argument(help="The run before (id, unique prefix, latest~N).")],
    run_b: Annotated[str, typer.Argument(help="The run after.")],
    jobs: JobsOpt = None,
    scheduler: SchedulerOpt = None,
    cluster: ClusterOpt = None,
    max_runs: Annotated[
        int | None,
        typer.Option("--max-runs", metavar="N", help="At most N mixed configurations (default 14: 4 factors exactly)."),
    ] = None,
    as_json: JsonOpt = False,
    project: ProjectOpt = Path("."),
) -> None:
    """Share a metric's change between two runs among the factors that differ (stage versions,
    params, data), by running their mixed configurations (from the cache where they ran)."""
    with _project(project) as p, _stopped("blame"):
        result = p.blame(metric, run_a, run_b, jobs=jobs, scheduler=scheduler, cluster=cluster, max_runs=max_runs,
                         on_stage=_say_stage)  # fmt: skip
    if as_json:
        _output.print_json(result.to_json())
        return
    waterfall(result)


def bisect_report(result: BisectResult) -> None:
    """The probes in order, then the first bad step with its diff, or the candidates."""
    direction = "higher is better" if result.higher_is_better else "lower is better"
    print(f"bisect {result.bisect}: {result.metric}, threshold {_output.num(result.threshold)} ({direction}); "
          f"{len(result.steps)} steps, {len(result.probes)} probes, {result.executions} stage executions")  # fmt: skip
    rows = [[str(p.step), p.label, _output.num(p.value), p.verdict + (f" ({p.why})" if p.why else ""), p.run]
            for p in result.probes]  # fmt: skip
    if rows:
        _output.table(["step", "probe", result.metric, "verdict", "run"], rows)
    if result.found:
        print(f"first bad: {result.first_bad} (last good: {result.last_good})")
        for stage, summary, command in result.changes:
            print(f"  {stage}: {summary} — see `{command}`")
        print(f"  runs: {' '.join(result.shown_by)}")
    else:
        print(f"ambiguous: skipped probes leave the first bad among: {', '.join(result.candidates)}")
    for note in result.notes:
        print(f"  note: {note}")


@app.command("bisect")
def bisect_(
    metric: Annotated[str, typer.Argument(help="The metric that went bad.")],
    good: Annotated[str, typer.Option("--good", metavar="RUN", help="A run with a good value.")],
    bad: Annotated[str, typer.Option("--bad", metavar="RUN", help="A later run with a bad value.")],
    stage: Annotated[
        str | None, typer.Option("--stage", metavar="STAGE", help="Walk this stage's versions (default: commits).")
    ] = None,
    threshold: Annotated[
        float | None, typer.Option("--threshold", metavar="X", help="Bad past X (default: halfway).")
    ] = None,
    higher_is_better: Annotated[
        bool | None,
        typer.Option("--higher-is-better/--lower-is-better", help="The metric's direction (default: good to bad)."),
    ] = None,
    jobs: Annotated[
        int | None,
        typer.Option("--jobs", "-j", metavar="N", help="Probe N points at once, on N local Dask workers."),
    ] = None,
    scheduler: SchedulerOpt = None,
    cluster: ClusterOpt = None,
    as_json: JsonOpt = False,
    project: ProjectOpt = Path("."),
) -> None:
    """Find the first version (of --stage, or commit) whose metric crosses the threshold, by
    binary search; exit 1 when failed probes leave it ambiguous."""
    with _project(project) as p, _stopped("bisect"):
        result = p.bisect(metric, good, bad, stage=stage, threshold=threshold, higher_is_better=higher_is_better,
                          jobs=jobs, scheduler=scheduler, cluster=cluster, on_stage=_say_stage)  # fmt: skip
    if as_json:
        _output.print_json(result.to_json())
    else:
        bisect_report(result)
    if not result.found:
        raise typer.Exit(1)
