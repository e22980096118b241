"""``python -m modver`` and the ``modver`` console script."""

from __future__ import annotations

import sys


def main() -> None:
    """Run the CLI. ``--version`` answers before typer and rich are imported."""
    if sys.argv[1:] == ["--version"]:
        from modver import __version__

        print(f"modver {__version__}")
        return
    from modver.cli import run

    run()


if __name__ == "__main__":
    main()
