from __future__ import annotations

import subprocess

from modver.sourcetree import DictTree, WorkingTree, git_blob_id


def test_git_blob_id_matches_git(tmp_path):
    data = b"hello\nworld\n"
    (tmp_path / "f").write_bytes(data)
    expected = subprocess.run(
        ["git", "hash-object", str(tmp_path / "f")], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert git_blob_id(data) == expected
    assert git_blob_id(b"") == "e69de29bb2d1d6434b8b29ae775ad8c2e48c5391"


def test_working_tree(tmp_path):
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "a.py").write_text("x = 1\n")
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "b.py").write_text("")
    tree = WorkingTree(tmp_path)
    assert tree.read("pkg/a.py") == b"x = 1\n"
    assert tree.read("pkg/missing.py") is None
    assert tree.read("pkg") is None
    assert tree.read("../etc/passwd") is None
    assert tree.content_id("pkg/a.py") == git_blob_id(b"x = 1\n")
    assert tree.content_id("pkg") is None
    assert tree.is_dir("pkg") and tree.is_dir("") and not tree.is_dir("pkg/a.py")
    assert tree.list_python_files() == ["pkg/a.py"]
    (tmp_path / "pkg" / "a.py").write_text("x = 22\n")
    # one tree reads a file once: what it fingerprints is what it stores, whatever an editor saves
    assert tree.read("pkg/a.py") == b"x = 1\n"
    assert tree.content_id("pkg/a.py") == git_blob_id(b"x = 1\n")
    assert WorkingTree(tmp_path).content_id("pkg/a.py") == git_blob_id(b"x = 22\n")


def test_dict_tree():
    tree = DictTree({"a/b/c.py": b"1", "d.txt": "text"})
    assert tree.read("a/b/c.py") == b"1"
    assert tree.read("d.txt") == b"text"
    assert tree.content_id("a/b/c.py") == git_blob_id(b"1")
    assert tree.content_id("a/b") is None
    assert tree.is_dir("a") and tree.is_dir("a/b") and tree.is_dir("")
    assert not tree.is_dir("a/b/c.py") and not tree.is_dir("x")
    assert tree.list_python_files() == ["a/b/c.py"]
