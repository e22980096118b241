"""The command line changes only on purpose: docs/cli-surface.txt lists every command, argument and
option with its short flags, and must equal what the app declares."""

from __future__ import annotations

import difflib
import subprocess
import sys
from pathlib import Path

from modver.cli._surface import surface
from tests.helpers import mv, mv_json

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = ROOT / "docs" / "cli-surface.txt"
REGENERATE = "python -m modver.cli._surface > docs/cli-surface.txt"


def test_the_cli_surface_is_the_checked_in_one():
    expected, actual = GOLDEN.read_text(encoding="utf-8"), surface()
    if actual != expected:
        diff = "".join(difflib.unified_diff(expected.splitlines(True), actual.splitlines(True), str(GOLDEN), "app"))
        raise AssertionError(
            f"the command line's surface changed:\n{diff}\n"
            f"If the change is deliberate, regenerate the listing with\n    {REGENERATE}\n"
            "and add a line for it under 'Unreleased' in CHANGELOG.md (users are promised backward compatibility)."
        )


def test_the_regeneration_command_prints_the_listing(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "modver.cli._surface"], cwd=tmp_path, capture_output=True, text=True, check=True
    )
    assert done.stdout == surface()
    assert "modver snapshot\n" in done.stdout and "  option --project -C PATH default=.\n" in done.stdout


def test_the_listing_names_short_flags_and_what_each_parameter_takes():
    listing = surface()
    assert "\nmodver tag\n" in listing and "  option --force -f flag\n" in listing
    assert "  option --jobs -j INT\n" in listing
    assert "  option --set STR repeatable\n" in listing


# -- the deliberate changes of the surface (CHANGELOG.md) --


def test_snapshot_m_is_the_message_as_in_git_and_0_1(pipeline_project):
    p = pipeline_project
    p.write("pipe/prep.py", p.read("pipe/prep.py").replace("* scale", "* scale * 2"))  # never committed
    (prep,) = mv_json(p.root, "snapshot", "prep", "-m", "first try")
    assert prep["new"] and mv_json(p.root, "log", "prep")[0]["message"] == "first try"
    p.write("exp.yaml", p.read("manifest.yaml").replace("scale: 2", "scale: 3"))
    (again,) = mv_json(p.root, "snapshot", "prep", "--manifest", "exp.yaml", "--message", "long forms")
    assert not again["new"]  # the params are not the code: the same version


def test_pin_keeps_m_for_its_manifest_as_documented(pipeline_project):
    p = pipeline_project
    p.write("exp.yaml", p.read("manifest.yaml"))
    before = p.read("manifest.yaml")
    mv(p.root, "index")
    shown = mv(p.root, "pin", "prep@v1", "-m", "exp.yaml").stdout
    assert shown.startswith("Pinned prep to v1") and "exp.yaml" in shown
    assert p.read("exp.yaml") != before and p.read("manifest.yaml") == before
