"""``python -m modver`` and the ``modver`` console script."""

from __future__ import annotations

import os
import sys


def main() -> None:
    """Run the CLI. ``--version`` answers before typer and rich are imported."""
    if any(f"MODVER_FAULT_{name}" in os.environ for name in ("KILL_AT", "FAIL_AT", "TRACE")):
        from modver import _faults  # the fault suite's kill and fail switches (tests only)

        _faults.install_from_env()
    if sys.argv[1:] == ["--version"]:
        from modver import __version__

        print(f"modver {__version__}")
        return
    from modver.cli import run

    run()


if __name__ == "__main__":
    main()
