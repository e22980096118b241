"""The command line's app: its error handler, global options, shared option types and entry point."""

from __future__ import annotations

import logging
import os
import sys
import traceback
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from typer.core import TyperGroup
from typer.exceptions import TyperException

from modver import __version__, _fs, errors
from modver.cli import _output

if TYPE_CHECKING:  # pragma: no cover
    from modver.project import Project


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
        return exc.exit_code
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
    # the last resort for a write the file system refused that no code on the way named (a full
    # disk, a quota, a read-only file system, an I/O error): still one clear error, not a bug
    failed = _fs.write_failure("modver could not write a file", exc)
    if failed is not None:
        _output.fail(str(failed), failed.hint)
        return 1
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

# Shared options, declared once. `-m` is the manifest where no message takes it (index, pin, unpin,
# diff); `snapshot -m` is its message, as in git and modver 0.1 (CHANGELOG.md).
JsonOpt = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]
ManifestOpt = Annotated[
    Path | None, typer.Option("--manifest", "-m", help="Manifest file (default: manifest.yaml at the project root).")
]
LongManifestOpt = Annotated[
    Path | None, typer.Option("--manifest", help="Manifest file (default: manifest.yaml at the project root).")
]
NoPagerOpt = Annotated[bool, typer.Option("--no-pager", help="Do not send long output through the pager.")]
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
    no_pager: NoPagerOpt = False,
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


def root_command() -> Any:
    """The app as typer's click group (its commands and parameters: :mod:`modver.cli._surface`)."""
    from typer.main import get_command

    return get_command(app)


def _invoke(args: list[str]) -> int:
    """Run one modver command in-process, as the demo's narration shows it."""
    command = root_command()
    try:
        code = command.main(args=args, prog_name="modver", standalone_mode=False)
    except typer.Exit as exc:
        return exc.exit_code
    return code if isinstance(code, int) else 0


def run() -> None:
    """Entry point of the console script."""
    app()
