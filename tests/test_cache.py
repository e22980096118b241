"""OutputCache: round trips, metadata, atomic and concurrent puts, verification, damage."""

from __future__ import annotations

import multiprocessing
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from modver import _fs
from modver.cache import ENTRY_FILE, OutputCache, key_hex
from modver.errors import CacheError

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
        {"stage": "model", "version": "v3", "duration": 1.5, "metrics": events, "stdout": "hello\n", "stderr": b"warn", "seed": 7},
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
        cache.load(KEY, verify=True)
    data.write_bytes(b"x" * 10)
    with pytest.raises(CacheError, match="10 bytes"):
        cache.load(KEY)


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
        from modver.cache import OutputCache
        real = serialize._write_all
        def dying(fd, data):
            real(fd, data[: len(data) // 2])
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
