"""What the first-hour tests (issue 21) share: a two-stage pipeline (the `first_hour` fixture of
tests/cli/conftest.py) whose model fails on FAIL_BIG_C, and ``modver ARGS | cat`` at a pipe's width."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

FILES = {
    "manifest.yaml": (
        "stages:\n"
        "  augment:\n    entry: pipe/augment.py:augment\n    params: {copies: 1, noise: 0.1}\n"
        "  model:\n    entry: pipe/model.py:model\n    inputs: {data: augment}\n    params: {C: 1.0}\n"
    ),
    "pipe/__init__.py": "",
    "pipe/augment.py": "def augment(copies, noise):\n    return [noise] * copies\n",
    "pipe/model.py": (
        "import os\n\nimport modver\n\n\ndef model(data, C):\n"
        "    if C > 5 and os.environ.get('FAIL_BIG_C'):\n        raise ValueError('C too big')\n"
        "    modver.log_metrics(accuracy=round(C * len(data) / 100, 4), loss=round(1 / (C + len(data)), 4))\n"
        "    return C\n"
    ),
}


def piped(root: Path, *args: str, code: int = 0, env: dict[str, str] | None = None) -> str:
    """``modver ARGS | cat`` with no COLUMNS and no terminal: the width a pipe gets (80)."""
    base = {k: v for k, v in os.environ.items() if k != "COLUMNS"}
    done = subprocess.run(
        [sys.executable, "-m", "modver", *args],
        cwd=root,
        capture_output=True,
        text=True,
        env={**base, **(env or {})},
        stdin=subprocess.DEVNULL,
        start_new_session=True,  # no controlling terminal: /dev/tty cannot be opened
        timeout=120,
    )
    assert done.returncode == code, done.stderr
    return done.stdout
