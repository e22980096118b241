"""Where a run's time went: per stage materialize, import, load, call, save; the run's own overhead."""

from __future__ import annotations

import json
import re

from tests.helpers import cli as modver


def seconds(pattern: str, text: str) -> float:
    """The seconds ``pattern`` (with one ``(\\d+\\.\\d+)s?``) shows in ``text``."""
    found = re.search(pattern, text)
    assert found, f"{pattern!r} not in:\n{text}"
    return float(found.group(1))


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
    assert a["import"] >= 0.3 and b["call"] >= 0.3  # the sleeps land in their phases (upper bounds are the load's)
    run = record["timings"]
    assert set(run) == {"plan", "stages", "other"}
    assert abs(run["plan"] + run["stages"] + run["other"] - record["duration"]) < 0.01
    assert run["stages"] >= 0.6
    shown = modver(p.root, "show", record["run"]).stdout
    assert "where the time went" in shown and "time:     planning" in shown
    assert seconds(r"import (\d+\.\d+)s", shown) >= 0.3
    explained = modver(p.root, "run", "--explain", "--force", "slow_call").stdout
    line = next(x for x in explained.splitlines() if x.startswith("- slow_call@v1: done in "))
    total = float(line.split("done in ", 1)[1].split("s", 1)[0])  # "done in" is all of the stage's time
    phases = [float(p.rsplit(" ", 1)[1].rstrip("s)")) for p in line.split("(", 1)[1].split(", ")]
    assert abs(total - sum(phases)) <= 0.011 * len(phases), line
    assert seconds(r"call (\d+\.\d+)s", explained) >= 0.3
    assert "time: planning" in explained
