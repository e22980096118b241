"""DataHasher: content hashes of data files and folders, the memo, symlinks and special files."""

from __future__ import annotations

import hashlib
import json
import os
import socket
import stat
import sys
import time
from pathlib import Path

import pytest

from modver import _encoding
from modver.errors import PathError, RunError
from modver.store import data
from modver.store.data import DataHasher
from modver.store.layout import Store

_opened: list[str] | None = None  # set by a test to record the files opened for reading


def _audit(event: str, args: tuple) -> None:
    if _opened is not None and event == "open" and isinstance(args[0], (str, bytes)):
        _opened.append(os.fsdecode(args[0]))


sys.addaudithook(_audit)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = tmp_path / "proj"
    (root / "data").mkdir(parents=True)
    return root


@pytest.fixture
def no_racy_window(monkeypatch: pytest.MonkeyPatch) -> None:
    """Files written by a test are seconds old at most: let the memo trust them (see RACY_NS)."""
    monkeypatch.setattr(data, "RACY_NS", 0)
    time.sleep(0.02)


def make(root: Path, files: dict[str, bytes | None]) -> None:
    """Create files (bytes) and empty folders (None) under ``root``."""
    for rel, content in files.items():
        path = root / rel
        if content is None:
            path.mkdir(parents=True, exist_ok=True)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(content)


def digest(root: Path, rel: str, name: str = "d") -> str:
    hasher = DataHasher(Store(root))
    result = hasher.hash(name, rel)
    hasher.save()
    return result


def opened_while(fn) -> list[str]:
    global _opened
    _opened = []
    try:
        fn()
        return [p for p in _opened if "/.modver/" not in p]
    finally:
        _opened = None


TREE = {
    "data/img/a/1.bin": b"one",
    "data/img/a/2.bin": b"",
    "data/img/b/3.bin": b"three",
    "data/img/empty": None,
    "data/img/top.txt": b"top",
}


def test_a_file_hashes_as_before(project: Path) -> None:
    """``blake2b:`` of the bytes, as before folders were supported: users' cache keys stay valid."""
    make(project, {"data/raw.txt": b"1 2 3\n"})
    assert digest(project, "data/raw.txt") == "blake2b:" + hashlib.blake2b(b"1 2 3\n", digest_size=32).hexdigest()
    assert digest(project, "data/raw.txt") == "blake2b:d4b2ce1c1b5f34ab800fc1e5b44ceab86c180f823d8a6da36fb40b580b66fced"


def test_a_folder_hashes_by_the_documented_encoding(project: Path) -> None:
    make(project, TREE)
    items = sorted(
        [b"d" + name for name in (b"a", b"b", b"empty")]
        + [
            b"f" + hashlib.blake2b(content, digest_size=32).digest() + name
            for name, content in [(b"a/1.bin", b"one"), (b"a/2.bin", b""), (b"b/3.bin", b"three"), (b"top.txt", b"top")]
        ]
    )
    expected = "blake2b-tree1:" + hashlib.blake2b(_encoding.encode(items), digest_size=32).hexdigest()
    assert digest(project, "data/img") == expected
    # golden: a change of the scheme must be deliberate (a new scheme name), never silent
    assert expected == "blake2b-tree1:233e48f6cb5bf1c1fc9d3b5fb2d52b8e444ef0fc3abd740e22e690686f161ce5"


def _edits() -> dict[str, object]:
    def rename(root: Path) -> None:
        (root / "data/img/top.txt").rename(root / "data/img/top2.txt")

    def move(root: Path) -> None:
        (root / "data/img/a/1.bin").rename(root / "data/img/b/1.bin")

    def byte(root: Path) -> None:
        (root / "data/img/b/3.bin").write_bytes(b"thrEe")

    def empty_file(root: Path) -> None:
        (root / "data/img/a/new").write_bytes(b"")

    def empty_folder(root: Path) -> None:
        (root / "data/img/a/new").mkdir()

    def drop_empty_folder(root: Path) -> None:
        (root / "data/img/empty").rmdir()

    def file_for_folder(root: Path) -> None:  # an empty folder replaced by an empty file
        (root / "data/img/empty").rmdir()
        (root / "data/img/empty").write_bytes(b"")

    def swap_contents(root: Path) -> None:
        (root / "data/img/a/1.bin").write_bytes(b"top")
        (root / "data/img/top.txt").write_bytes(b"one")

    return {
        f.__name__: f
        for f in (rename, move, byte, empty_file, empty_folder, drop_empty_folder, file_for_folder, swap_contents)
    }


@pytest.mark.parametrize("edit", list(_edits()))
def test_any_change_of_names_contents_or_shape_changes_the_hash(project: Path, edit: str) -> None:
    make(project, TREE)
    before = digest(project, "data/img")
    _edits()[edit](project)
    assert digest(project, "data/img") != before


def test_times_modes_and_creation_order_do_not_change_the_hash(project: Path, tmp_path: Path) -> None:
    make(project, TREE)
    before = digest(project, "data/img")
    os.utime(project / "data/img/a/1.bin", (1_000_000, 1_000_000))
    os.chmod(project / "data/img/top.txt", 0o600)
    assert digest(project, "data/img") == before
    other = tmp_path / "other"
    make(other, dict(reversed(TREE.items())))
    assert digest(other, "data/img") == before


def test_an_empty_folder_and_an_empty_file_differ(project: Path) -> None:
    make(project, {"data/folder": None, "data/file": b""})
    assert digest(project, "data/folder").startswith("blake2b-tree1:")
    assert digest(project, "data/file") == "blake2b:" + hashlib.blake2b(b"", digest_size=32).hexdigest()


@pytest.mark.usefixtures("no_racy_window")
def test_an_unchanged_folder_is_not_read_again_and_a_changed_file_is_read_alone(project: Path) -> None:
    make(project, {f"data/img/c{i % 3}/{i}.bin": bytes([i]) * 100 for i in range(30)})
    first = digest(project, "data/img")
    memo = json.loads((project / ".modver/cache/data.json").read_text())
    assert memo["format"] == 2 and len(memo["files"]) == 30 and list(memo["folders"]) == ["data/img"]
    assert opened_while(lambda: digest(project, "data/img")) == []
    (project / "data/img/c1/4.bin").write_bytes(b"changed")
    second: list[str] = []
    opened = opened_while(lambda: second.append(digest(project, "data/img")))
    assert second[0] != first and opened == [str(project / "data/img/c1/4.bin")]
    memo["folders"] = {}  # the per-file memo alone gives the same answer
    (project / ".modver/cache/data.json").write_text(json.dumps(memo))
    (project / "data/img/c1/4.bin").write_bytes(bytes([4]) * 100)
    assert digest(project, "data/img") == first


@pytest.mark.usefixtures("no_racy_window")
def test_the_memo_forgets_deleted_files_and_ignores_other_formats(project: Path) -> None:
    make(project, {"data/img/a": b"a", "data/img/b": b"b", "data/raw": b"raw"})
    digest(project, "data/img")
    (project / "data/img/b").unlink()
    digest(project, "data/img")
    assert set(json.loads((project / ".modver/cache/data.json").read_text())["files"]) == {"data/img/a"}
    st = (project / "data/raw").stat()
    old = {"data/raw": {"stamp": [st.st_size, st.st_mtime_ns], "hash": "blake2b:" + "0" * 64}}  # format 1
    (project / ".modver/cache/data.json").write_text(json.dumps(old))
    assert digest(project, "data/raw") == "blake2b:" + hashlib.blake2b(b"raw", digest_size=32).hexdigest()
    (project / ".modver/cache/data.json").write_text("{ damaged")
    assert digest(project, "data/raw") == "blake2b:" + hashlib.blake2b(b"raw", digest_size=32).hexdigest()


def test_a_file_written_in_the_last_moments_is_not_remembered(project: Path) -> None:
    """Git's "racy" rule: a save in the same clock tick as the hashing would keep size, times and
    inode, so a file this young is read again next time."""
    make(project, {"data/img/fresh": b"fresh", "data/single": b"single"})
    old = time.time() - 3600
    digest(project, "data/img")
    digest(project, "data/single")
    memo = json.loads((project / ".modver/cache/data.json").read_text())
    assert memo["files"] == {} and memo["folders"] == {}
    assert opened_while(lambda: digest(project, "data/img")) == [str(project / "data/img/fresh")]
    assert os.stat(project / "data/single").st_ctime > old  # (its ctime is what made it young)


@pytest.mark.usefixtures("no_racy_window")
def test_names_that_are_not_utf8_hash_and_are_remembered(project: Path) -> None:
    folder = project / "data" / "img"
    folder.mkdir()
    with open(os.path.join(os.fsencode(folder), b"caf\xe9.bin"), "wb") as handle:
        handle.write(b"x")
    first = digest(project, "data/img")
    assert opened_while(lambda: digest(project, "data/img")) == []
    assert digest(project, "data/img") == first


def test_many_files_hash_alike_in_threads_and_alone(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    make(project, {f"data/img/{i}.bin": os.urandom(50_000) for i in range(40)})
    threaded = digest(project, "data/img")
    (project / ".modver/cache/data.json").unlink(missing_ok=True)
    monkeypatch.setattr(data, "_THREADS", 1)
    assert digest(project, "data/img") == threaded


# -- symlinks -----------------------------------------------------------------------------------


def test_a_symlink_inside_the_project_is_hashed_as_its_target(project: Path, tmp_path: Path) -> None:
    make(project, {"data/img/a.bin": b"a", "shared/b.bin": b"b", "shared/sub/c.bin": b"c"})
    (project / "data/img/b.bin").symlink_to("../../shared/b.bin")
    (project / "data/img/sub").symlink_to(project / "shared/sub")
    copy = tmp_path / "copy"
    make(copy, {"data/img/a.bin": b"a", "data/img/b.bin": b"b", "data/img/sub/c.bin": b"c"})
    assert digest(project, "data/img") == digest(copy, "data/img")
    (project / "data/link").symlink_to("img")
    assert digest(project, "data/link") == digest(copy, "data/img")


@pytest.mark.parametrize("where", ["data path", "inside the folder"])
def test_a_symlink_out_of_the_project_is_refused_naming_link_and_target(
    project: Path, tmp_path: Path, where: str
) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("credentials")
    make(project, {"data/img/a.bin": b"a"})
    link = project / ("data/out" if where == "data path" else "data/img/out")
    link.symlink_to(secret)
    global _opened
    _opened = []
    try:
        with pytest.raises(PathError) as info:
            digest(project, "data/out" if where == "data path" else "data/img", "images")
    finally:
        opened, _opened = _opened, None
    message = str(info.value)
    assert "data.images:" in message and str(link.relative_to(project)) in message and str(secret) in message
    assert "outside the project" in message and info.value.hint
    assert str(secret) not in opened


def test_a_symlink_to_a_folder_it_is_in_is_refused(project: Path) -> None:
    make(project, {"data/img/a/x.bin": b"x"})
    (project / "data/img/a/loop").symlink_to("..")
    with pytest.raises(PathError, match=r"data.d: data/img/a/loop is a symlink to \.\., a folder it is in"):
        digest(project, "data/img")


def test_a_dangling_symlink_is_a_clear_error(project: Path) -> None:
    make(project, {"data/img/a.bin": b"a"})
    (project / "data/img/gone").symlink_to("nowhere")
    with pytest.raises(RunError, match="data.d: cannot read data/img/gone: No such file"):
        digest(project, "data/img")


# -- special files and bad paths ------------------------------------------------------------------


def _special(path: Path, kind: str) -> object:
    if kind == "fifo":
        os.mkfifo(path)
        return None
    if kind == "socket":
        server = socket.socket(socket.AF_UNIX)
        server.bind(str(path))
        return server
    try:
        os.mknod(path, stat.S_IFCHR | 0o600, os.makedev(1, 3))  # like /dev/null
    except PermissionError:
        pytest.skip("cannot make a device node here")
    return None


@pytest.mark.parametrize(
    ("kind", "said"), [("fifo", "a FIFO (named pipe)"), ("socket", "a socket"), ("device", "a device")]
)
@pytest.mark.parametrize("where", ["data path", "inside the folder"])
def test_fifos_sockets_and_devices_are_refused_before_anything_opens_them(
    project: Path, kind: str, said: str, where: str
) -> None:
    make(project, {"data/img/a.bin": b"a"})
    special = project / ("data/special" if where == "data path" else "data/img/deep/special")
    special.parent.mkdir(parents=True, exist_ok=True)
    keep = _special(special, kind)
    try:
        rel = "data/special" if where == "data path" else "data/img"
        opened = []
        with pytest.raises(PathError) as info:
            opened = opened_while(lambda: digest(project, rel, "images"))
        assert f"data.images: {special.relative_to(project)} is {said}" in str(info.value)
        assert str(special) not in opened
        if where == "inside the folder":
            assert "remove it from the data folder" in info.value.hint
    finally:
        if keep is not None:
            keep.close()


def test_a_fifo_swapped_in_after_the_walk_does_not_block(project: Path) -> None:
    """The file is opened without blocking (O_NONBLOCK) and checked on the open descriptor."""
    os.mkfifo(project / "data/pipe")
    hasher = DataHasher(Store(project))
    with pytest.raises(PathError, match="is a FIFO"):
        hasher._hash_files("d", [data._File(str(project / "data/pipe"), "data/pipe", "data/pipe")])


def test_missing_and_escaping_paths(project: Path) -> None:
    with pytest.raises(RunError, match=r"data.raw: data/nope.txt does not exist") as info:
        digest(project, "data/nope.txt", "raw")
    assert "fix `data:`" in info.value.hint
    with pytest.raises(PathError, match="leaves the project"):
        digest(project, "../elsewhere", "raw")
