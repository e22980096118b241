"""``python -m modver`` and the ``modver`` console script."""

from __future__ import annotations

import os
import sys


def main() -> None:
    """Run the CLI. ``--version`` answers before typer and rich are imported."""
    if "MODVER_FAULT_KILL_AT" in os.environ or "MODVER_FAULT_TRACE" in os.environ:
        from modver import _faults  # the fault suite's kill switch (tests only)

        _faults.install_from_env()
    if sys.argv[1:] == ["--version"]:
        from modver import __version__

        print(f"modver {__version__}")
        return
    from modver.cli import run

    run()


if __name__ == "__main__":
    main()
