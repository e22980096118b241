"""`modver gc`: cached outputs and materialized versions no kept run uses go; records stay."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from tests.helpers import cli as modver


def outputs(root: Path) -> set[str]:
    folder = root / ".modver" / "cache" / "outputs"
    return {p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")}


def test_gc_keeps_what_the_kept_runs_use(run_project):
    p = run_project
    runs = [json.loads(modver(p.root, "run", "--json", "--set", f"other.x={x}").stdout) for x in (1, 2, 3)]
    before = outputs(p.root)
    assert len(before) == 5  # prep, train, and other three times
    dry = json.loads(modver(p.root, "gc", "--dry-run", "--keep-last", "1", "--json").stdout)
    assert dry["dry_run"] and dry["kept_runs"] == 1 and dry["runs"] == 3
    assert sorted(r["detail"] for r in dry["removed"] if r["kind"] == "output") == ["other@v1", "other@v1"]
    assert dry["freed"] == sum(r["size"] for r in dry["removed"]) > 0
    assert outputs(p.root) == before  # a dry run removes nothing
    text = modver(p.root, "gc", "--keep-last", "1").stdout
    assert "removed output other@v1" in text and "kept what 1 of 3 runs use" in text
    last = runs[-1]["stages"]
    assert outputs(p.root) == {last[s]["cache_key"].split(":")[1] for s in ("prep", "other", "train")}
    assert len(json.loads(modver(p.root, "runs", "--json").stdout)) == 3  # records stay
    again = modver(p.root, "run", "--explain", "--set", "other.x=1").stdout
    assert "- other@v1: running" in again and "- prep@v1: cached" in again
    modver(p.root, "gc", "--keep-last", "1", "--remove-records")
    assert [r["params"]["other"]["x"] for r in json.loads(modver(p.root, "runs", "--json").stdout)] == [1]


def test_gc_older_than_and_bad_input(run_project):
    p = run_project
    modver(p.root, "run")
    time.sleep(1.2)
    result = json.loads(modver(p.root, "gc", "--older-than", "1s", "--json").stdout)
    assert result["kept_runs"] == 0 and {r["kind"] for r in result["removed"]} == {"output", "version"}
    assert outputs(p.root) == set()
    assert "invalid duration '3 weeks'" in modver(p.root, "gc", "--older-than", "3 weeks", code=1).stderr
    assert "--keep-last must be 0 or more" in modver(p.root, "gc", "--keep-last", "-1", code=1).stderr


def test_gc_during_a_run_keeps_what_the_run_uses(run_project, tmp_path):
    p = run_project
    modver(p.root, "run")  # prep, other and train cached
    go = tmp_path / "go"  # train runs until the test has collected the garbage (an event, not a sleep)
    p.write(
        "pipe/train.py",
        "import os\nimport time\n\n\ndef train(data):\n    deadline = time.monotonic() + 120\n"
        f"    while not os.path.exists({str(go)!r}) and time.monotonic() < deadline:\n        time.sleep(0.05)\n"
        "    return sum(data)\n",
    )
    slow = subprocess.Popen(
        [sys.executable, "-m", "modver", "run", "--json"],
        cwd=p.root,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # wait until the run is recorded as running train
            records = json.loads(modver(p.root, "runs", "--json").stdout)
            if len(records) == 2 and records[-1]["stages"].get("train", {}).get("status") == "running":
                break
            time.sleep(0.1)
        else:
            raise AssertionError("the slow run never started train")
        result = json.loads(modver(p.root, "gc", "--keep-last", "0", "--json").stdout)
        assert result["kept_runs"] == 1  # the run in progress
        assert not any(r["kind"] == "version" and "running" in r["detail"] for r in result["removed"])
        go.write_text("")
        out, err = slow.communicate(timeout=120)
    finally:
        slow.kill()
    assert slow.returncode == 0, err
    record = json.loads(out)
    assert record["status"] == "succeeded"
    load = f"import modver; print(modver.load('train', run={record['run']!r}))"
    done = subprocess.run([sys.executable, "-c", load], cwd=p.root, capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "36"  # sum of prep's [6, 12, 18], from the output the run saved
    kept = {record["stages"][s]["cache_key"].split(":")[1] for s in ("prep", "train")}
    assert kept <= outputs(p.root)
