"""Seeing results at scale: the runs table and the report over many run records.

    python benchmarks/bench_results.py [--runs 10000] [--report-runs 1000]

- ``modver runs --last 20`` with ``--runs`` records, against ``python -c pass`` (the issue asks
  for at most 15x), with the runs index cold (first listing, which builds it) and warm;
- ``modver.runs()`` (the DataFrame of every run; the issue asks for at most 2 s);
- ``modver report`` of ``--report-runs`` runs with 20 metrics of 100 steps each: its time and
  the file's size (at most 3 s and 5 MB), and the time Chromium takes to its load event (2 s),
  when /usr/bin/chromium and Playwright are installed.

The records are written as ``modver run`` writes them (:meth:`RunRecord.to_json`), without an
fsync each (a benchmark of reading, not of writing), in a real git repository.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._common import ENV, MODVER, timed
from modver.record import RunRecord, RunStatus, StageRecord, StageStatus
from modver.store.runstore import RUN_FILE, new_run_id

STAGES = ("preprocess", "augment", "model", "evaluate")


def make_record(i: int, start: datetime, metrics: int, steps: int, rng: random.Random) -> RunRecord:
    """A record like the digits example's: four stages, a few params, ``metrics`` metrics with
    ``steps`` steps each (final values in ``metrics``)."""
    run_id = new_run_id(start + timedelta(seconds=i))
    version = {s: f"v{1 + (i // (7 + k)) % 4}" for k, s in enumerate(STAGES)}
    stages = {
        s: StageRecord(
            status=StageStatus.CACHED if s == "preprocess" and i % 3 else StageStatus.SUCCEEDED,
            cache_key=f"{rng.getrandbits(64):016x}",
            fingerprint=f"mv1:{rng.getrandbits(64):016x}",
            version=version[s],
            duration=rng.random(),
        )
        for s in STAGES
    }
    series = {}
    final = {}
    for m in range(metrics):
        rate = 0.02 + 0.05 * rng.random()
        points = [{"step": t, "value": 1.0 - 0.9 * (1 - rate) ** t + 0.01 * rng.random(), "stage": "model"}
                  for t in range(steps)]  # fmt: skip
        series[f"m{m:02d}"] = points
        final[f"m{m:02d}"] = points[-1]["value"] if points else rng.random()
    started = (start + timedelta(seconds=i)).isoformat(timespec="microseconds")
    return RunRecord(
        run=run_id,
        status=RunStatus.SUCCEEDED,
        started=started,
        finished=started,
        duration=1.0 + rng.random(),
        host="bench",
        pid=1,
        manifest_path="manifest.yaml",
        stages=stages,
        params={"model": {"C": [0.1, 1.0, 10.0][i % 3], "gamma": [0.001, 0.01][i % 2]}, "augment": {"noise": 0.1}},
        metrics=final,
        metric_series=series,
        python="3.11",
        packages={"numpy": "2.0", "scikit-learn": "1.5"},
    )


def make_project(root: Path, runs: int, metrics: int = 3, steps: int = 0) -> Path:
    """A git repository at ``root`` with ``runs`` run records."""
    root.mkdir(parents=True)
    subprocess.run(["git", "init", "-q"], cwd=root, check=True)
    folder = root / ".modver" / "runs"
    folder.mkdir(parents=True)
    rng = random.Random(1)
    start = datetime(2026, 11, 1, tzinfo=UTC)
    for i in range(runs):
        record = make_record(i, start, metrics, steps, rng)
        (folder / record.run).mkdir()
        (folder / record.run / RUN_FILE).write_text(json.dumps(record.to_json(), indent=2, sort_keys=True))
    return root


def bench_runs(base: Path, runs: int) -> None:
    root = make_project(base / "runs", runs)
    baseline = timed([sys.executable, "-c", "pass"], base, repeat=5)
    cold = timed([*MODVER, "runs", "--last", "20"], root)
    warm = timed([*MODVER, "runs", "--last", "20"], root, repeat=5)
    print(f"python -c pass: {baseline * 1000:.0f} ms")
    print(f"modver runs --last 20, {runs} records, index cold: {cold * 1000:.0f} ms ({cold / baseline:.1f}x)")
    print(f"modver runs --last 20, {runs} records, index warm: {warm * 1000:.0f} ms ({warm / baseline:.1f}x)")
    full = timed([*MODVER, "runs"], root, repeat=3)
    print(f"modver runs (all {runs} rows): {full * 1000:.0f} ms")
    code = f"import time, modver; t = time.perf_counter(); f = modver.runs({str(root)!r}); print(time.perf_counter() - t, len(f))"
    for label in ("modver.runs()", "modver.runs() again"):
        done = subprocess.run([sys.executable, "-c", code], env=ENV, capture_output=True, text=True, check=True)
        seconds, rows = done.stdout.split()
        print(f"{label}: {float(seconds):.2f} s for {rows} rows")


def bench_report(base: Path, runs: int) -> None:
    root = make_project(base / "report", runs, metrics=20, steps=100)
    out = root / "report.html"
    for label in ("records not indexed yet, e.g. pulled", "index up to date, as after `modver run`s"):
        start = time.perf_counter()
        subprocess.run([*MODVER, "report", "-o", str(out)], cwd=root, env=ENV, check=True, stdout=subprocess.DEVNULL)
        seconds = time.perf_counter() - start
        print(f"modver report, {runs} runs x 20 metrics x 100 steps ({label}): {seconds:.2f} s, "
              f"{out.stat().st_size / 1e6:.2f} MB")  # fmt: skip
    print(f"load event in Chromium: {load_time(out)}")


def load_time(path: Path) -> str:
    """Milliseconds from navigation to the load event of ``path`` in headless Chromium."""
    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        return "not measured (Playwright is not installed)"
    if not Path(chromium).exists():
        return "not measured (no chromium)"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        try:
            times = []
            for _ in range(3):
                page = browser.new_page()
                page.goto(path.as_uri(), wait_until="load")
                times.append(page.evaluate("performance.timing.loadEventEnd - performance.timing.navigationStart"))
                page.close()
        finally:
            browser.close()
    return f"{sorted(times)[1]:.0f} ms (median of 3)"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--report-runs", type=int, default=1000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        bench_runs(Path(tmp), args.runs)
        if args.report_runs:
            bench_report(Path(tmp), args.report_runs)


if __name__ == "__main__":
    main()
