"""Blames and bisects kept in .modver/explain/ are read back for the report; a damaged or foreign
file there is passed over, never an error that stops the report."""

from __future__ import annotations

import json
from pathlib import Path

from modver.report.waterfall import load_bisects, load_blames


def test_damaged_and_foreign_files_are_passed_over(tmp_path: Path) -> None:
    blames, bisects = tmp_path / "blames", tmp_path / "bisects"
    blames.mkdir()
    bisects.mkdir()
    (blames / "1.json").write_text(json.dumps({"a": {"run": "r1"}, "factors": []}))
    (blames / "2.json").write_text('{"a": {"run": ')  # torn
    (blames / "3.json").write_text(json.dumps({"a": "not a mapping", "factors": []}))
    (blames / "4.json").write_text(json.dumps([1, 2]))
    (bisects / "1.json").write_text(json.dumps({"steps": [], "probes": [{"version": "v2"}]}))
    (bisects / "2.json").write_text(json.dumps({"steps": [], "probes": "v2"}))
    (bisects / "3.json").write_bytes(b"\xff\xfe")
    assert load_blames(blames) == [{"a": {"run": "r1"}, "factors": []}]
    assert load_bisects(bisects) == [{"steps": [], "probes": [{"version": "v2"}]}]
    assert load_blames(tmp_path / "missing") == [] and load_bisects(tmp_path / "missing") == []
