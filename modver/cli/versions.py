"""Commands about stage versions: init, index, snapshot, log, status, show, pin, unpin, tag, verify, diff."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from modver import errors
from modver.cli import _output
from modver.cli._app import (
    JsonOpt,
    LongManifestOpt,
    ManifestArg,
    ManifestOpt,
    NoPagerOpt,
    ProjectOpt,
    _project,
    _state,
    app,
)

if TYPE_CHECKING:  # pragma: no cover
    from modver.record import RunRecord


@app.command()
def init(
    path: Annotated[
        Path, typer.Argument(help="Project folder; with --from-dvc, the dvc.yaml or its folder.", metavar="[PATH]")
    ] = Path("."),
    from_dvc: Annotated[
        bool, typer.Option("--from-dvc", help="Convert the DVC pipeline (PATH's dvc.yaml) into manifest.yaml.")
    ] = False,
    force: Annotated[
        bool, typer.Option("--force", help="With --from-dvc: replace a manifest.yaml that differs.")
    ] = False,
) -> None:
    """Create .modver/, git-ignore it, and write a starter manifest (git init if needed), or
    convert a DVC pipeline: `modver init --from-dvc [dvc.yaml]` (`init(path, from_dvc=...)`)."""
    from modver.project import init as init_project

    dvc_yaml = None
    if from_dvc:
        dvc_yaml, path = ("dvc.yaml", path) if not path.is_file() else (path.name, path.parent)
    result = init_project(path, from_dvc=dvc_yaml, force=force)
    if result.converted is not None:
        _output.dvc_conversion(result.converted, result.manifest_state, result.root)
    if result.created_repository:
        print(f"Initialized an empty git repository in {result.root}")
    print(f"modver store: {result.root / '.modver'}")
    if result.updated_gitignore:
        print("Added .modver/ to .gitignore")
    if result.created_manifest and result.converted is None:
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
        declared = p.manifest(manifest)
        if not declared.stages and not as_json:
            print(
                f"Nothing to index: {declared.path.name} declares no stages yet.\n"
                "Declare one under `stages:` (its comments show how), then run `modver index`."
            )
            return
        if _output.is_terminal() and not as_json:
            from rich.progress import Progress

            with Progress(transient=True) as bar:
                task = bar.add_task("indexing commits", total=None)
                result = p.versions.index(
                    rev, all_branches=all_, progress=lambda done, total: bar.update(task, completed=done, total=total)
                )
        else:
            result = p.versions.index(rev, all_branches=all_)
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
    message: Annotated[str, typer.Option("--message", "-m", help="A note stored with new versions.")] = "",
    manifest: LongManifestOpt = None,
    as_json: JsonOpt = False,
    project: ProjectOpt = Path("."),
) -> None:
    """Register the working tree's version of each stage (code that was never committed)."""
    with _project(project, manifest) as p:
        results = p.versions.snapshot(stages or (), message)
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
    no_pager: NoPagerOpt = False,
    project: ProjectOpt = Path("."),
) -> None:
    """Per-stage history: version, fingerprint, date, origin commit, message, tags, runs."""
    with _project(project) as p:
        versions = p.versions.log(stage)
        used = {s: p.runs.by_version(s) for s in {v.stage for v in versions}}

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
    with _output.paged(no_pager or _state["no_pager"]):
        Column = _output.Column
        _output.fitted_table(
            [  # a message keeps 30 characters before the runs column gives way; empty columns go first
                Column("version", [r[0] for r in rows], 0, "id"),
                Column("fingerprint", [r[1] for r in rows], 4, "id"),
                Column("created", [r[2] for r in rows], 3, "id"),
                Column("origin", [r[3] for r in rows], 5),
                Column("tags", [r[4] for r in rows], 2),
                Column("message", [r[5] for r in rows], 1, min_width=30),
                Column("runs", [r[6] for r in rows], 2, min_width=16),
            ]
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
                state = "error (below)"
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
        for r in rows:  # in full, under the table: a cut message is no message
            if r.error:
                print(f"error: {r.stage}: {r.error}", file=sys.stderr)
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
            run = p.runs.show(ref)
            _output.print_json(run.to_json()) if as_json else _output.shown_run(run)
            return
        if "@" not in ref:
            if p.runs.is_ref(ref):
                print(
                    f"note: {ref!r} is a stage and also names a run: showing {ref}@latest "
                    "(give the run's full id to see the run)",
                    file=sys.stderr,
                )
            ref = f"{ref}@latest"
        shown = p.versions.show(ref)
    _output.print_json(shown.to_json()) if as_json else _output.shown_version(shown)


@app.command()
def pin(
    ref: Annotated[str, typer.Argument(help="STAGE@REF to pin, e.g. preprocess@v3.")],
    manifest: ManifestOpt = None,
    project: ProjectOpt = Path("."),
) -> None:
    """Pin a stage to a version in the manifest (comments and formatting are kept)."""
    with _project(project, manifest) as p:
        result = p.versions.pin(ref)
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
        result = p.versions.unpin(stage)
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
        version = p.versions.tag(ref, name, force=force)
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
        checks = p.versions.verify(stages or ())
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
            runs = p.runs.diff(a, b)
            _output.print_json(runs.to_json()) if as_json else _output.run_diff(runs)
        else:
            raise errors.UsageError(
                f"cannot tell what to compare: {a!r}" + (f" and {b!r}" if b else ""),
                hint="give STAGE@A [STAGE@B], two manifests (A.yaml B.yaml), two runs (RUN_A RUN_B), "
                "or nothing (working tree vs pins)",
            )


def _is_manifest(text: str) -> bool:
    return text.endswith((".yaml", ".yml"))
