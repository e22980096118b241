"""However the Python API is used, nothing is printed when the interpreter exits."""

from __future__ import annotations

import subprocess
import sys

import pytest

SCRIPTS = {
    "a project at module level, never closed": "import modver\np = modver.Project()\np.log('prep')\np.status()\n",
    "the module-level helpers": "import modver\nmodver.runs()\nmodver.load('train')\n",
    "a project left to the garbage collector in a function": (
        "import modver\n\n\ndef f():\n    return modver.Project().history.versions('prep')\n\n\nv = f()\n"
    ),
    "a context manager, then more use": "import modver\nwith modver.Project() as p:\n    p.log()\nprint(p.log('prep'))\n",
}


@pytest.mark.parametrize("how", sorted(SCRIPTS))
def test_nothing_is_printed_at_exit(run_project, how):
    p = run_project
    for command in ("index", "run"):  # index writes a pack: dulwich keeps packs open
        subprocess.run([sys.executable, "-m", "modver", command], cwd=p.root, check=True, capture_output=True)
    done = subprocess.run([sys.executable, "-c", SCRIPTS[how]], cwd=p.root, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
