"""Commands for a team: push, pull."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from modver.cli import _output
from modver.cli._app import JsonOpt, ProjectOpt, _project, app

if TYPE_CHECKING:  # pragma: no cover
    from modver.share.versions import Refusal, TagClash
    from modver.store.storage import Transfer


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
        result = p.sharing.push(remote, dry_run=dry_run)
    if as_json:
        _output.print_json(result.to_json())
    else:
        verb = "Would push" if dry_run else "Pushed"
        sent = _counted(result.new_versions, result.new_tags)
        print(f"{verb} to {result.remote.name}: {sent}" if sent else f"Nothing new to push to {result.remote.name}.")
        _print_clashes(result.clashes, result.remote.name)
        _print_transfer(result.storage, "would send" if dry_run else "sent")
    _print_not_sent(result.storage)
    if result.storage is not None and (result.storage.damaged or result.storage.failed):
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
        result = p.sharing.pull(remote, outputs=outputs, dry_run=dry_run)
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
    _print_refused(result.refused, result.remote.name)  # on stderr with --json too: why it exits 1
    if result.refused or (result.storage is not None and result.storage.damaged):
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


def _print_refused(refused: tuple[Refusal, ...], remote: str) -> None:
    for r in refused:
        print(f"refused from {remote}: {r.what}: {r.why}", file=sys.stderr)
    if refused:
        items = f"{len(refused)} item{'s' if len(refused) != 1 else ''}"
        _output.fail(
            f"{items} of {remote} refused (everything else was taken)",
            f"{remote}'s refs/modver/ was changed outside modver: restore the refused refs there "
            "from a clone that has them right",
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
    for item in transfer.failed:
        print(f"not sent (the next push tries again): {item}", file=sys.stderr)


def _print_not_sent(transfer: Transfer | None) -> None:
    """One error line for a push that exits 1 because items were not sent (with --json too):
    the first reason; the others are listed above, or in the JSON."""
    if transfer is None or not transfer.failed:
        return
    items = f"{len(transfer.failed)} item{'s' if len(transfer.failed) != 1 else ''}"
    _output.fail(
        f"{items} not sent to the storage: {transfer.failed[0]}",
        "once what went wrong is fixed, `modver push` sends what the storage still lacks",
    )
