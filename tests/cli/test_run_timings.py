"""Where a run's time went: per stage materialize, import, load, call, save; the run's own overhead."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path


def modver(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [sys.executable, "-m", "modver", *args], cwd=root, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done


def test_a_run_records_where_each_stage_spent_its_time(git_project):
    p = git_project
    p.write(
        "manifest.yaml",
        "stages:\n  slow_import:\n    entry: a.py:f\n  slow_call:\n    entry: b.py:g\n    inputs: {x: slow_import}\n",
    )
    p.write("a.py", "import time\n\ntime.sleep(0.3)  # a heavy import, like sklearn's\n\n\ndef f():\n    return 1\n")
    p.write("b.py", "import time\n\n\ndef g(x):\n    time.sleep(0.3)\n    return x + 1\n")
    p.commit("two slow stages")
    record = json.loads(modver(p.root, "run", "--json").stdout)
    a, b = record["stages"]["slow_import"]["timings"], record["stages"]["slow_call"]["timings"]
    assert set(a) == {"materialize", "import", "call", "save"} and all(v >= 0 for v in a.values())
    assert a["import"] >= 0.3 > a["call"]
    assert b["call"] >= 0.3 > b["import"]
    run = record["timings"]
    assert set(run) == {"plan", "stages", "other"}
    assert abs(run["plan"] + run["stages"] + run["other"] - record["duration"]) < 0.01
    assert run["stages"] >= 0.6
    shown = modver(p.root, "show", record["run"]).stdout
    assert "where the time went" in shown and "import 0.3" in shown and "time:     planning" in shown
    explained = modver(p.root, "run", "--explain", "--force", "slow_call").stdout
    line = next(x for x in explained.splitlines() if x.startswith("- slow_call@v1: done in "))
    total = float(line.split("done in ", 1)[1].split("s", 1)[0])  # "done in" is all of the stage's time
    phases = [float(p.rsplit(" ", 1)[1].rstrip("s)")) for p in line.split("(", 1)[1].split(", ")]
    assert "call 0.3" in line and abs(total - sum(phases)) <= 0.011 * len(phases), line
    assert "time: planning" in explained
