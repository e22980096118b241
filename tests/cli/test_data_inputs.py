"""End-to-end: data inputs that are folders, symlinks and special files, through the real CLI."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from pathlib import Path

import pytest

import modver
from tests.helpers import cli

PROJECT = {
    "manifest.yaml": """\
data:
  images: data/images
  labels: data/labels.txt
stages:
  index:
    entry: pipe/index.py:index
    inputs: {images: data.images, labels: data.labels}
  count:
    entry: pipe/count.py:count
    inputs: {index: index}
""",
    "data/images/cat/1.png": "cat one",
    "data/images/cat/2.png": "cat two",
    "data/images/dog/1.png": "dog one",
    "data/labels.txt": "cat\ndog\n",
    "pipe/__init__.py": "",
    "pipe/index.py": """\
import os


def index(images, labels):
    found = {}
    for folder, _, names in os.walk(images):
        for name in names:
            path = os.path.join(folder, name)
            found[os.path.relpath(path, images)] = open(path).read()
    return {"labels": open(labels).read().split(), "files": dict(sorted(found.items()))}
""",
    "pipe/count.py": "def count(index):\n    return len(index['files'])\n",
}


@pytest.fixture
def data_project(git_project):
    for path, text in PROJECT.items():
        git_project.write(path, text)
    git_project.write(".gitignore", ".modver/\n")
    git_project.commit("a pipeline whose data is a folder")
    return git_project


def mv(root: Path, *args: str, code: int = 0) -> subprocess.CompletedProcess[str]:
    """The CLI in a subprocess, with a timeout: a command that hangs (on a FIFO) fails the test."""
    return cli(root, *args, code=code, timeout=60)


def test_a_data_folder_is_hashed_handed_to_the_stage_and_cached(data_project) -> None:
    root = data_project.root
    first = json.loads(mv(root, "run", "--json").stdout)
    assert first["status"] == "succeeded"
    assert first["data"]["images"]["path"] == "data/images"
    assert first["data"]["images"]["hash"].startswith("blake2b-tree1:")
    labels = (root / "data/labels.txt").read_bytes()
    assert first["data"]["labels"]["hash"] == "blake2b:" + hashlib.blake2b(labels, digest_size=32).hexdigest()
    assert modver.load("index", path=root)["files"] == {
        "cat/1.png": "cat one",
        "cat/2.png": "cat two",
        "dog/1.png": "dog one",
    }
    again = json.loads(mv(root, "run", "--json").stdout)
    assert again["cached"] == {"index": True, "count": True} and again["data"] == first["data"]
    (root / "data/images/dog/2.png").write_text("dog two")
    explained = mv(root, "run", "--explain").stdout
    assert "data/images changed" in next(line for line in explained.splitlines() if line.startswith("- index"))
    assert modver.load("count", path=root) == 4


def test_reproduce_refuses_when_a_file_in_a_data_folder_changed(data_project) -> None:
    root = data_project.root
    first = json.loads(mv(root, "run", "--json").stdout)
    (root / "data/images/cat/1.png").write_text("cat ONE")  # same size
    done = mv(root, "reproduce", first["run"], code=1)
    assert "its data changed since: data/images" in done.stderr
    (root / "data/images/cat/1.png").write_text("cat one")
    mv(root, "reproduce", first["run"])


@pytest.mark.parametrize("where", ["data/stream", "data/images/dog/pipe"])
def test_a_fifo_as_data_is_refused_and_nothing_hangs(data_project, where: str) -> None:
    root = data_project.root
    if where == "data/stream":  # the data path itself
        data_project.write("manifest.yaml", PROJECT["manifest.yaml"].replace("data/images", where))
    os.mkfifo(root / where)
    status = mv(root, "status", code=1)  # it used to hang forever; the stage's row names the FIFO
    assert "error (below)" in status.stdout
    assert f"error: index: data.images: {where} is a FIFO (named pipe)" in status.stderr
    done = mv(root, "run", code=1)
    assert f"data.images: {where} is a FIFO (named pipe)" in done.stderr
    assert (
        "point it at a regular file or folder" if where == "data/stream" else "remove it from the data folder"
    ) in done.stderr


@pytest.mark.parametrize("where", ["data/images/dog/leak.png", "data/labels.txt"])
def test_a_symlink_out_of_the_project_is_refused_naming_link_and_target(
    data_project, tmp_path: Path, where: str
) -> None:
    root = data_project.root
    secret = tmp_path / "credentials"
    secret.write_text("aws_secret_access_key = do-not-publish")
    (root / where).unlink(missing_ok=True)
    (root / where).symlink_to(secret)
    done = mv(root, "run", code=1)
    name = "images" if "images" in where else "labels"
    assert f"data.{name}: {where} is a symlink to {secret}, outside the project" in done.stderr
    assert "copy what it points to into the project" in done.stderr
    store = root / ".modver"
    assert not any(b"do-not-publish" in p.read_bytes() for p in store.rglob("*") if p.is_file())
