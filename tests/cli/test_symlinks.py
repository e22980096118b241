"""Symlinks never bring files from outside the project into a stage's history."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from tests.helpers import cli as modver

SECRET = "aws_secret_access_key = wJalrXUtnFEMI-K7MDENG-bPxRfiCYEXAMPLEKEY"
SECRET_PY = f"KEY = {SECRET!r}\n"


def every_object(root: Path) -> str:
    """The content of every object in the repository's database, as text."""
    done = subprocess.run(
        ["git", "cat-file", "--batch-all-objects", "--batch", "--unordered"], cwd=root, capture_output=True, check=True
    )
    return done.stdout.decode("utf-8", "replace")


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A credentials file outside the project, as Python so that it would fingerprint."""
    secret = tmp_path / "home" / ".aws" / "credentials"
    secret.parent.mkdir(parents=True)
    secret.write_text(SECRET_PY, encoding="utf-8")
    return secret


def link(p, path: str, target: Path | str) -> None:
    full = p.root / path
    full.parent.mkdir(parents=True, exist_ok=True)
    if full.exists() or full.is_symlink():
        full.unlink()
    full.symlink_to(target)


def test_a_stage_file_linking_outside_is_an_error_naming_link_and_target(pipeline_project, outside):
    p = pipeline_project
    link(p, "pipe/train.py", outside)
    p.commit("train is a link")
    done = modver(p.root, "snapshot", code=1)
    assert f"pipe/train.py is a symlink to {outside}, outside the project" in done.stderr
    assert "Traceback" not in done.stderr
    done = modver(p.root, "run", code=1)
    assert "pipe/train.py is a symlink to" in done.stderr
    status = json.loads(modver(p.root, "status", "--json", code=1).stdout)
    assert "symlink" in {s["stage"]: s for s in status}["train"]["error"]
    assert SECRET not in every_object(p.root)


def test_a_helper_module_linking_outside_is_refused(pipeline_project, outside):
    p = pipeline_project
    link(p, "pipe/settings.py", outside)
    p.write(
        "pipe/util.py",
        p.read("pipe/util.py").replace("FACTOR = 3", "from pipe.settings import KEY\n\nFACTOR = len(KEY)"),
    )
    p.commit("util reads the key")
    done = modver(p.root, "snapshot", "prep", code=1)
    assert "pipe/settings.py is a symlink to" in done.stderr and str(outside) in done.stderr
    assert SECRET not in every_object(p.root)


def test_a_deps_file_linking_outside_is_refused(pipeline_project, outside):
    p = pipeline_project
    link(p, "configs/model.yaml", outside)
    p.write(
        "manifest.yaml",
        p.read("manifest.yaml").replace(
            "    inputs: {data: prep}", "    inputs: {data: prep}\n    deps: [configs/model.yaml]"
        ),
    )
    p.commit("train depends on a config")
    done = modver(p.root, "snapshot", "train", code=1)
    assert "configs/model.yaml is a symlink to" in done.stderr
    assert SECRET not in every_object(p.root)


def test_a_folder_linking_outside_is_refused(pipeline_project, tmp_path):
    p = pipeline_project
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "util.py").write_text(SECRET_PY, encoding="utf-8")
    (p.root / "pipe" / "util.py").unlink()
    link(p, "pipe/lib", elsewhere)
    p.write(
        "pipe/prep.py",
        p.read("pipe/prep.py").replace("from pipe.util import helper", "from pipe.lib.util import KEY as helper"),
    )
    done = modver(p.root, "snapshot", "prep", code=1)
    assert "pipe/lib (in pipe/lib/util.py) is a symlink to" in done.stderr
    assert SECRET not in every_object(p.root)


def test_a_link_inside_the_project_is_followed(pipeline_project):
    p = pipeline_project
    link(p, "pipe/helpers.py", "util.py")  # relative: pipe/helpers.py -> pipe/util.py
    p.write(
        "pipe/prep.py",
        p.read("pipe/prep.py").replace("from pipe.util import helper", "from pipe.helpers import helper"),
    )
    p.commit("prep imports through a link")
    modver(p.root, "snapshot", "prep")
    shown = json.loads(modver(p.root, "show", "prep@latest", "--json").stdout)
    assert "pipe/helpers.py" in shown["files"]
    stored = p.git("show", f"{shown['commit']}:src/pipe/helpers.py")
    assert stored == p.read("pipe/util.py").rstrip("\n")  # the target's content, as a regular file
    mode = p.git("ls-tree", shown["commit"], "src/pipe/helpers.py").split()[0]
    assert mode == "100644"


def test_a_symlink_in_git_history_is_a_link_not_its_target(pipeline_project, outside):
    """`index` reads committed trees: a committed link is a link (git stores its target path),
    never the file it points to."""
    p = pipeline_project
    link(p, "pipe/settings.py", outside)
    p.write("pipe/util.py", "from pipe.settings import KEY\n\nFACTOR = 3\n\n\ndef helper(x):\n    return x * FACTOR\n")
    p.commit("util imports a linked module")
    modver(p.root, "index")
    shown = json.loads(modver(p.root, "show", "prep@latest", "--json").stdout)
    assert "pipe/settings.py" not in shown["files"] + shown["imports"]
    assert SECRET not in every_object(p.root)


def test_pin_through_a_symlinked_manifest_edits_the_target_and_keeps_the_link(pipeline_project):
    p = pipeline_project
    (p.root / "experiments").mkdir()
    os.replace(p.root / "manifest.yaml", p.root / "experiments" / "a.yaml")
    link(p, "manifest.yaml", "experiments/a.yaml")
    p.commit("the manifest is a link to an experiment")
    modver(p.root, "snapshot")
    modver(p.root, "pin", "prep@v1")
    assert (p.root / "manifest.yaml").is_symlink()
    assert os.readlink(p.root / "manifest.yaml") == "experiments/a.yaml"
    assert "version: v1" in p.read("experiments/a.yaml")
    assert p.git("status", "--porcelain") == "M experiments/a.yaml"
    modver(p.root, "unpin", "prep")
    assert (p.root / "manifest.yaml").is_symlink()
    assert p.git("status", "--porcelain") == ""
