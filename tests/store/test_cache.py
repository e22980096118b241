"""OutputCache: round trips, metadata, atomic and concurrent puts, verification, damage."""

from __future__ import annotations

import json
import multiprocessing
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from modver import _fs, serialize
from modver.errors import CacheError
from modver.store.cache import ENTRY_FILE, OutputCache, key_hex
from tests.helpers import cli, mv_json

KEY = "mv1:" + "ab" * 32
OTHER = "mv1:" + "cd" * 32


@pytest.fixture
def cache(tmp_path: Path) -> OutputCache:
    return OutputCache(tmp_path / ".modver" / "cache" / "outputs")


def test_put_get_load_roundtrip(cache: OutputCache) -> None:
    assert cache.get(KEY) is None and KEY not in cache
    events = [{"name": "acc", "value": 0.9, "step": None, "stage": "model"}]
    entry = cache.put(
        KEY,
        {"w": [1, 2, 3]},
        {
            "stage": "model",
            "version": "v3",
            "duration": 1.5,
            "metrics": events,
            "stdout": "hello\n",
            "stderr": b"warn",
            "seed": 7,
        },
    )
    assert KEY in cache
    again = cache.get(KEY)
    assert again == entry
    assert entry.key == KEY and entry.serializer == "pickle" and entry.stage == "model" and entry.version == "v3"
    assert entry.duration == 1.5 and entry.metrics == events and entry.meta == {"seed": 7}
    assert entry.stdout.read_text() == "hello\n" and entry.stderr.read_bytes() == b"warn"
    assert entry.path == cache.root / key_hex(KEY) and entry.created.endswith("+00:00")
    assert cache.load(KEY) == {"w": [1, 2, 3]}
    assert cache.verify(KEY) and cache.problems(KEY) == []
    assert list(cache.keys()) == [KEY]


def test_numpy_output_and_log_from_a_path(cache: OutputCache, tmp_path: Path) -> None:
    log = tmp_path / "captured.txt"
    log.write_text("progress\n")
    array = np.random.default_rng(1).random((100, 10))
    entry = cache.put(KEY, array, {"stdout": log})
    assert entry.serializer == "numpy" and entry.stdout.read_text() == "progress\n" and entry.stderr is None
    np.testing.assert_array_equal(cache.load(KEY, verify=True), array)


def test_put_of_existing_key_keeps_the_first(cache: OutputCache) -> None:
    first = cache.put(KEY, "first", {})
    second = cache.put(KEY, "second", {})
    assert second == first and cache.load(KEY) == "first"
    assert [p.name for p in cache.root.iterdir() if not p.name.startswith(".")] == [key_hex(KEY)]


def test_failed_serialization_leaves_nothing(cache: OutputCache) -> None:
    with pytest.raises(CacheError, match="generator"):
        cache.put(KEY, (i for i in range(3)), {})
    assert cache.get(KEY) is None
    assert [p.name for p in cache.root.iterdir() if p.name.startswith(_fs.TEMP_PREFIX)] == []


def test_invalid_keys_are_rejected(cache: OutputCache) -> None:
    for bad in ["../etc", "mv1:xyz", "", "ABCDEF0123456789"]:
        with pytest.raises(CacheError, match="invalid cache key"):
            cache.put(bad, 1, {})
    assert key_hex("0123456789abcdef") == "0123456789abcdef"


def test_verify_detects_damage_and_load_refuses_truncation(cache: OutputCache) -> None:
    entry = cache.put(KEY, b"x" * 1000, {})
    data = entry.path / "object"
    data.write_bytes(b"y" * 1000)  # same size, other bytes
    assert not cache.verify(KEY)
    assert "checksum" in cache.problems(KEY)[0]
    with pytest.raises(CacheError, match="damaged"):
        cache.load(KEY)
    data.write_bytes(b"x" * 10)
    with pytest.raises(CacheError, match="10 bytes"):
        cache.load(KEY, verify=False)


def _folder_dump(obj: dict, path: Path) -> None:
    path.mkdir()
    (path / "parts").mkdir()
    for name, value in obj.items():
        (path / "parts" / name).write_bytes(value)


def _folder_load(path: Path) -> dict:
    return {p.name: p.read_bytes() for p in sorted((path / "parts").iterdir())}


@pytest.fixture
def folder_serializer():
    """A serializer that writes a folder (what a model checkpoint or a dataset often is)."""
    serialize.register(
        "folder-test", lambda o: type(o) is dict and o.get("kind") == b"folder", _folder_dump, _folder_load
    )
    yield
    serialize.unregister("folder-test")


def _flip_one_byte(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))  # same size, one bit changed


@pytest.mark.parametrize(
    ("value", "damaged_file", "offset"),
    [
        ([1, 2, 3, 250], "object", -3),  # pickle: the tampered list still unpickles, as [1, 2, 3, 251]
        (np.arange(1000, dtype=np.int64), "object", -8),  # npy: the last element changes
        ({"kind": b"folder", "weights": b"\x00" * 64}, "object/parts/weights", 10),  # a folder output
    ],
    ids=["pickle", "npy", "folder"],
)
@pytest.mark.usefixtures("folder_serializer")
def test_load_refuses_an_output_tampered_without_changing_its_size(
    cache: OutputCache, value, damaged_file, offset
) -> None:
    entry = cache.put(KEY, value, {"stage": "prep", "version": "v2"})
    _flip_one_byte(entry.path / damaged_file, offset)
    tampered = cache.load(KEY, verify=False)  # the damage is silent to a size check
    assert repr(tampered) != repr(value)
    with pytest.raises(CacheError) as info:
        cache.load(KEY)
    message = str(info.value)
    assert "cached output of stage prep (v2) is damaged" in message and damaged_file in message
    assert str(entry.path) in message and "modver run --force prep" in info.value.hint
    assert not cache.verify(KEY)
    cache.put(KEY, value, {"stage": "prep"})  # a rerun replaces the damaged entry, not keep it
    assert repr(cache.load(KEY)) == repr(value) and cache.verify(KEY)


def test_entries_with_older_checksums_still_verify(cache: OutputCache) -> None:
    """Entries written before xxh3-128 carry crc32 / fletcher64 labels: they load and are checked."""
    for algorithm, value in [("crc32", {"a": 1}), ("fletcher64", np.ones(5000))]:
        entry = cache.put(KEY, value, {})
        record = json.loads((entry.path / ENTRY_FILE).read_text())
        record["files"]["object"]["checksum"] = serialize.checksum_file(entry.path / "object", algorithm)
        (entry.path / ENTRY_FILE).write_text(json.dumps(record))
        assert repr(cache.load(KEY)) == repr(value) and cache.verify(KEY)
        _flip_one_byte(entry.path / "object", -2)
        with pytest.raises(CacheError, match="does not match its checksum"):
            cache.load(KEY)
        cache.remove(KEY)


@pytest.mark.usefixtures("folder_serializer")
def test_put_syncs_every_file_and_folder_before_publishing(cache: OutputCache, monkeypatch: pytest.MonkeyPatch) -> None:
    """A crash of the machine never publishes an entry whose data is not on disk: every file and
    folder of the entry is fsynced before the one rename that publishes it."""
    events: list[tuple[str, str]] = []
    real_fsync, real_rename = os.fsync, os.rename

    def fsync(fd: int) -> None:
        events.append(("fsync", os.readlink(f"/proc/self/fd/{fd}")))
        real_fsync(fd)

    def rename(src, dst) -> None:
        events.append(("rename", os.fspath(src)))
        real_rename(src, dst)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "rename", rename)
    entry = cache.put(KEY, {"kind": b"folder", "a": b"1", "b": b"2"}, {"stdout": "out\n"})
    published = [
        i for i, (kind, path) in enumerate(events) if kind == "rename" and Path(path).name.startswith(_fs.TEMP_PREFIX)
    ]
    assert len(published) == 1
    tmp = Path(events[published[0]][1])
    synced_before = {
        Path(path).relative_to(tmp).as_posix()
        for kind, path in events[: published[0]]
        if kind == "fsync" and path.startswith(str(tmp))
    }
    written = {p.relative_to(entry.path).as_posix() for p in entry.path.rglob("*")} | {"."}
    assert written == {
        ".",
        "entry.json",
        "stamp.json",
        "stdout",
        "object",
        "object/parts",
        *(f"object/parts/{n}" for n in ("a", "b", "kind")),
    }
    assert written <= synced_before
    assert ("fsync", str(cache.root.resolve())) in events[published[0] :]  # the rename itself


def test_corrupt_entry_json_is_a_miss_and_put_replaces_it(cache: OutputCache) -> None:
    entry = cache.put(KEY, 1, {})
    (entry.path / ENTRY_FILE).write_text("{ half")
    assert cache.get(KEY) is None and not cache.verify(KEY)
    cache.put(KEY, 2, {})
    assert cache.load(KEY) == 2 and cache.verify(KEY)


def test_put_replaces_an_entry_whose_object_is_truncated(cache: OutputCache) -> None:
    entry = cache.put(KEY, b"x" * 1000, {})
    (entry.path / "object").write_bytes(b"x" * 10)
    assert cache.get(KEY) is not None  # its metadata still reads
    cache.put(KEY, b"z" * 1000, {})
    assert cache.load(KEY) == b"z" * 1000 and cache.verify(KEY)


def test_temp_folder_of_a_crashed_writer_is_invisible_and_cleaned(cache: OutputCache) -> None:
    tmp = _fs.make_temp_dir(cache.root, key_hex(KEY)[:16])
    (tmp / "object").write_bytes(b"partial")
    assert cache.get(KEY) is None and list(cache.entries()) == []
    assert cache.remove_stale_temps(older_than=3600) == 0
    old = 1_000_000_000
    os.utime(tmp, (old, old))
    assert cache.remove_stale_temps(older_than=3600) == 1 and not tmp.exists()


def test_remove(cache: OutputCache) -> None:
    cache.put(KEY, 1, {})
    cache.put(OTHER, 2, {})
    assert cache.remove(KEY) and not cache.remove(KEY)
    assert KEY not in cache and cache.load(OTHER) == 2
    with pytest.raises(CacheError, match="no cached output"):
        cache.load(KEY)


def _put_worker(root: str, key: str, payload: int, barrier) -> str:
    barrier.wait()
    entry = OutputCache(Path(root)).put(key, np.full(200_000, payload, dtype=np.int64), {"stage": f"p{payload}"})
    return entry.stage


def test_concurrent_puts_from_processes_leave_one_valid_entry(cache: OutputCache) -> None:
    ctx = multiprocessing.get_context("spawn")
    n = 6
    with ctx.Manager() as manager:
        barrier = manager.Barrier(n)
        with ctx.Pool(n) as pool:
            winners = pool.starmap(_put_worker, [(str(cache.root), KEY, i, barrier) for i in range(n)])
    assert len(set(winners)) == 1  # every process got the one published entry
    names = [p.name for p in cache.root.iterdir() if not p.name.startswith(".")]
    assert names == [key_hex(KEY)]
    assert not [p for p in cache.root.iterdir() if p.name.startswith((_fs.TEMP_PREFIX, _fs.TRASH_PREFIX))]
    assert cache.verify(KEY)
    value = cache.load(KEY, verify=True)
    assert winners[0] == f"p{int(value[0])}" and (value == value[0]).all()


def test_killed_writer_leaves_the_store_readable(cache: OutputCache) -> None:
    """A process killed in the middle of a large put never exposes a partial entry."""
    script = textwrap.dedent(
        f"""
        import os, signal, numpy as np
        from pathlib import Path
        from modver import serialize
        from modver.store.cache import OutputCache
        real = serialize._write_all
        def dying(fd, data, *args):
            real(fd, data[: len(data) // 2], *args)
            os.kill(os.getpid(), signal.SIGKILL)
        serialize._write_all = dying
        OutputCache(Path({str(cache.root)!r})).put({KEY!r}, np.zeros(1_000_000), {{}})
        """
    )
    done = subprocess.run([sys.executable, "-c", script])
    assert done.returncode != 0
    assert cache.get(KEY) is None and KEY not in cache
    cache.put(KEY, np.ones(3), {})
    np.testing.assert_array_equal(cache.load(KEY, verify=True), np.ones(3))


# -- end to end: a run and modver.load on a real project ------------------------------------------

TAMPER_PIPELINE = {
    "manifest.yaml": """\
data:
  raw: data/raw.txt
stages:
  prep:
    entry: pipe/prep.py:prep
    inputs: {raw: data.raw}
  train:
    entry: pipe/train.py:train
    inputs: {data: prep}
    params: {offset: 0}
""",
    "data/raw.txt": "1 2 3\n",
    "pipe/__init__.py": "",
    "pipe/prep.py": "def prep(raw):\n    return [int(x) * 2 for x in open(raw).read().split()]\n",
    "pipe/train.py": "def train(data, offset):\n    return sum(data) + offset\n",
}


@pytest.fixture
def tamper_project(git_project):
    for path, text in TAMPER_PIPELINE.items():
        git_project.write(path, text)
    git_project.write(".gitignore", ".modver/\n")
    git_project.commit("pipeline")
    return git_project


def _run(root: Path, *args: str) -> dict:
    done = subprocess.run(
        [sys.executable, "-m", "modver", "run", "--json", *args], cwd=root, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def _tamper_prep_output(root: Path, record: dict) -> Path:
    """Change prep's cached [2, 4, 6] into [9, 4, 6]: one byte, same size, still a valid pickle."""
    obj = root / ".modver" / "cache" / "outputs" / key_hex(record["stages"]["prep"]["cache_key"]) / "object"
    data = obj.read_bytes()
    assert data.count(b"K\x02") == 1  # pickle's BININT1 opcode for the 2
    obj.write_bytes(data.replace(b"K\x02", b"K\x09"))
    return obj


def test_a_tampered_output_fails_modver_load_clearly(tamper_project) -> None:
    import modver

    root = tamper_project.root
    first = _run(root)
    assert modver.load("prep", path=root) == [2, 4, 6]
    _tamper_prep_output(root, first)
    with pytest.raises(CacheError) as info:
        modver.load("prep", path=root)
    assert "cached output of stage prep (v1) is damaged: object does not match its checksum" in str(info.value)
    assert "modver run --force prep" in info.value.hint
    _run(root, "--force", "prep")  # what the hint says: the entry is replaced
    assert modver.load("prep", path=root) == [2, 4, 6]


def test_a_run_that_needs_a_tampered_output_recomputes_it(tamper_project) -> None:
    import modver

    root = tamper_project.root
    first = _run(root)
    assert modver.load("train", path=root) == 12
    _tamper_prep_output(root, first)
    done = subprocess.run(
        [sys.executable, "-m", "modver", "run", "--explain", "--set", "train.offset=1"],
        cwd=root,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    prep_line = next(line for line in done.stdout.splitlines() if line.startswith("- prep") and "running" in line)
    assert "recomputed: its cached output is damaged" in prep_line and "checksum" in prep_line
    record = _run(root, "--set", "train.offset=1")  # everything cached now, from healthy entries
    assert record["cached"] == {"prep": True, "train": True}
    assert modver.load("train", path=root) == 13  # 2 + 4 + 6 + 1, not 9 + 4 + 6 + 1
    assert modver.load("prep", path=root) == [2, 4, 6]


# -- the stat stamps a cached run checks ---------------------------------------------------------


def _flip_in_place_keeping_mtime(path: Path, offset: int) -> None:
    """Change one byte of ``path`` in place (same inode, same size) and put its mtime back, as
    ``touch -r`` would: only the ctime tells."""
    before = path.stat()
    with open(path, "r+b") as handle:
        handle.seek(offset % before.st_size)
        byte = handle.read(1)
        handle.seek(offset % before.st_size)
        handle.write(bytes([byte[0] ^ 0x01]))
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    after = path.stat()
    assert (after.st_ino, after.st_size, after.st_mtime_ns) == (before.st_ino, before.st_size, before.st_mtime_ns)


@pytest.fixture
def checksums(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The files whose checksums are computed (a spy on the real function)."""
    seen: list[str] = []
    real = serialize.checksum_file

    def spy(path: Path, algorithm: str = serialize.CHECKSUM) -> str:
        seen.append(Path(path).name)
        return real(path, algorithm)

    monkeypatch.setattr(serialize, "checksum_file", spy)
    return seen


def test_check_reads_no_file_whose_stamp_is_unchanged(cache: OutputCache, checksums: list[str]) -> None:
    entry = cache.put(KEY, list(range(1000)), {"stdout": "hello\n"})
    checksums.clear()
    assert cache.check(entry) == [] and checksums == []  # a few stat calls
    os.utime(entry.path / "object")  # touched, bytes unchanged: checked in full once, then stamped again
    assert cache.check(entry) == [] and checksums == ["object"]
    checksums.clear()
    assert cache.check(entry) == [] and checksums == []


@pytest.mark.parametrize("damaged", ["object", "stdout", ENTRY_FILE])
def test_check_finds_bytes_flipped_with_the_mtime_restored(cache: OutputCache, damaged: str) -> None:
    entry = cache.put(KEY, list(range(1000)), {"stdout": "hello\n"})
    _flip_in_place_keeping_mtime(entry.path / damaged, -3)
    problems = cache.check(entry)
    assert problems and damaged in problems[0]
    assert cache.check(entry) == problems  # a damaged entry is never stamped as good


def test_an_entry_without_stamps_is_checked_in_full_then_stamped(cache: OutputCache, checksums: list[str]) -> None:
    """Entries written before stamps, or brought from storage, have no stamp.json."""
    from modver.store.cache import STAMP_FILE

    entry = cache.put(KEY, {"a": 1}, {})
    (entry.path / STAMP_FILE).unlink()
    checksums.clear()
    assert cache.check(entry) == [] and sorted(checksums) == [ENTRY_FILE, "object"]
    assert (entry.path / STAMP_FILE).is_file()
    checksums.clear()
    assert cache.check(entry) == [] and checksums == []
    (entry.path / STAMP_FILE).write_text("{not json")  # a damaged stamp file costs a full check, nothing more
    assert cache.check(entry) == [] and sorted(checksums) == [ENTRY_FILE, "object"]


def test_a_damaged_last_stage_output_is_recomputed_not_served(tamper_project) -> None:
    """Nothing downstream loads the last stage's output, so only the stamp check can see it."""
    import modver

    root = tamper_project.root
    first = _run(root)
    assert first["cached"] == {"prep": False, "train": False}
    obj = root / ".modver" / "cache" / "outputs" / key_hex(first["stages"]["train"]["cache_key"]) / "object"
    _flip_in_place_keeping_mtime(obj, -2)  # 12 becomes 13: still a valid pickle
    done = cli(root, "run", "--explain")
    train = next(line for line in done.stdout.splitlines() if line.startswith("- train") and "running" in line)
    assert "recomputed: its cached output is damaged (object does not match its checksum)" in train
    record = mv_json(root, "runs")[-1]
    assert record["cached"] == {"prep": True, "train": False}
    assert "damaged" in _run_record(root, record["run"])["stages"]["train"]["reason"]
    assert modver.load("train", path=root) == 12
    assert _run(root)["cached"] == {"prep": True, "train": True}  # the new entry is served again


def test_a_touched_but_intact_output_is_still_served(tamper_project) -> None:
    root = tamper_project.root
    first = _run(root)
    entry = root / ".modver" / "cache" / "outputs" / key_hex(first["stages"]["train"]["cache_key"])
    os.utime(entry / "object")  # `touch`: metadata only
    again = _run(root)
    assert again["cached"] == {"prep": True, "train": True}


def _run_record(root: Path, run_id: str) -> dict:
    return json.loads((root / ".modver" / "runs" / run_id / "run.json").read_text())
