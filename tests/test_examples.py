"""The bundled example through the real CLI: `modver demo` end to end, in tmp_path."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest


@pytest.mark.slow
def test_demo_walks_through_the_workflow(tmp_path):
    folder = tmp_path / "demo"
    done = subprocess.run(
        [sys.executable, "-m", "modver", "demo", "--keep", str(folder)], capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert "Walked 4 of 4 commits" in out
    assert "(2/4 from cache)" in out  # only the changed model and evaluate ran again
    assert "new version v3 of model (was v2)" in out
    assert "version v1 of preprocess (was v2)" in out and "new version v1" not in out
    assert "Pinned preprocess to v1" in out
    assert "function normalize: changed" in out
    assert out.rstrip().endswith(
        f"The demo project is in {folder.resolve()}: `cd` there to try more commands; delete it when done."
    )

    def cli(*args: str):
        res = subprocess.run(
            [sys.executable, "-m", "modver", *args, "--json"], cwd=folder, capture_output=True, text=True
        )
        assert res.returncode == 0, res.stderr
        return json.loads(res.stdout)

    runs = cli("runs")
    assert [r["status"] for r in runs] == ["succeeded"] * 3
    assert [r["versions"]["preprocess"] for r in runs] == ["v2", "v2", "v1"]
    assert all(0 < r["metrics"]["accuracy"] <= 1 for r in runs)
    # the formatting-only commit made no version; the helper change made one of two stages
    assert [v["version"] for v in cli("log", "preprocess")] == ["v1", "v2"]
    assert [v["version"] for v in cli("log", "augment")] == ["v1", "v2"]
    assert [v["version"] for v in cli("log", "evaluate")] == ["v1"]
    assert [v["origin"] is None for v in cli("log", "model")] == [False, False, True]
