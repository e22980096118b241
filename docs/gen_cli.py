"""Regenerate docs/cli.md from the commands' --help (run: python docs/gen_cli.py).

tests/test_docs.py checks that docs/cli.md matches what this prints.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
INTRO = HERE / "cli_intro.md"
OUT = HERE / "cli.md"


def help_text(args: list[str]) -> str:
    """The --help output of ``modver ARGS``, at a fixed width, without colour."""
    from typer.testing import CliRunner

    from modver.cli import app

    result = CliRunner().invoke(app, [*args, "--help"], env={"COLUMNS": "100", "NO_COLOR": "1", "TERM": "dumb"})
    assert result.exit_code == 0, result.output
    return result.stdout.rstrip() + "\n"


def commands() -> list[str]:
    from typer.main import get_command

    from modver.cli import app

    return list(get_command(app).commands)  # type: ignore[attr-defined]


def render() -> str:
    """docs/cli.md: the hand-written intro, then every command's help."""
    parts = [INTRO.read_text(encoding="utf-8").rstrip() + "\n", "\n## `modver`\n\n```text\n" + help_text([]) + "```\n"]
    for name in commands():
        parts.append(f"\n## `modver {name}`\n\n```text\n{help_text([name])}```\n")
    return "".join(parts)


if __name__ == "__main__":
    sys.path.insert(0, str(HERE.parent))
    os.environ.setdefault("NO_COLOR", "1")
    OUT.write_text(render(), encoding="utf-8")
    print(f"wrote {OUT}")
