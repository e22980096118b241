"""The serializer registry: built-ins round-trip, choice order, lazy imports, clear errors."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from modver import serialize
from modver.errors import CacheError


def roundtrip(obj, tmp_path: Path):
    folder = tmp_path / "entry"
    folder.mkdir()
    name = serialize.dump(obj, folder)
    return name, serialize.load(folder, name)


def test_bytes_are_a_raw_file(tmp_path: Path) -> None:
    name, back = roundtrip(b"\x00raw\xff", tmp_path)
    assert name == "bytes" and back == b"\x00raw\xff"
    assert (tmp_path / "entry" / serialize.OBJECT_NAME).read_bytes() == b"\x00raw\xff"


@pytest.mark.parametrize(
    "array",
    [
        np.arange(12, dtype=np.float64).reshape(3, 4),
        np.arange(10, dtype=np.int32)[::2],  # not contiguous
        np.asfortranarray(np.ones((3, 2))),
        np.zeros((0, 3)),
        np.array(3.5),
        np.array([("a", 1)], dtype=[("n", "U2"), ("v", "i4")]),
    ],
)
def test_numpy_arrays_roundtrip_as_npy(array, tmp_path: Path) -> None:
    name, back = roundtrip(array, tmp_path)
    assert name == "numpy"
    assert back.dtype == array.dtype and back.shape == array.shape
    np.testing.assert_array_equal(back, array)
    assert np.load(tmp_path / "entry" / serialize.OBJECT_NAME).shape == array.shape


@pytest.mark.parametrize("array", [np.arange(13, dtype=np.int8), np.random.default_rng(0).random(100_000), np.zeros(0)])
def test_numpy_checksum_matches_the_file(array, tmp_path: Path) -> None:
    name, checksum = serialize.dump_with_checksum(array, tmp_path)
    assert name == "numpy"
    assert checksum.startswith("xxh3-128:") and len(checksum) == len("xxh3-128:") + 32
    assert checksum == serialize.checksum_file(tmp_path / serialize.OBJECT_NAME)


def test_object_arrays_and_subclasses_go_to_pickle(tmp_path: Path) -> None:
    name, back = roundtrip(np.array([1, "a", None], dtype=object), tmp_path)
    assert name == "pickle" and list(back) == [1, "a", None]
    masked = np.ma.masked_array([1, 2, 3], mask=[0, 1, 0])
    other = tmp_path / "m"
    other.mkdir()
    name = serialize.dump(masked, other)
    assert name == "pickle"
    assert isinstance(serialize.load(other, name), np.ma.MaskedArray)


def test_pandas_frame_roundtrips_exactly(tmp_path: Path) -> None:
    # cells and index details that a columnar format such as parquet would change
    frame = pd.DataFrame(
        {"a": [1, 2], "b": ["x", None], "cells": [[1, 2], (3,)], "sets": [{1}, set()]},
        index=pd.date_range("2020-01-01", periods=2, freq="D"),
    )
    frame.attrs["note"] = "kept"
    name, back = roundtrip(frame, tmp_path)
    assert name == "pandas"
    pd.testing.assert_frame_equal(back, frame)
    assert back.index.freq == frame.index.freq and back.attrs == {"note": "kept"}
    assert [type(v) for v in back["cells"]] == [list, tuple] and back["sets"].iloc[0] == {1}


def test_default_is_pickle(tmp_path: Path) -> None:
    obj = {"a": [1, 2.5, None], "b": (True, "s")}
    name, back = roundtrip(obj, tmp_path)
    assert name == "pickle" and back == obj


def test_pickle_checksum_matches_the_file(tmp_path: Path) -> None:
    name, checksum = serialize.dump_with_checksum(list(range(10_000)), tmp_path)
    assert name == "pickle" and checksum == serialize.checksum_file(tmp_path / serialize.OBJECT_NAME)


def test_unserializable_object_names_type_and_reason(tmp_path: Path) -> None:
    with pytest.raises(CacheError) as info:
        serialize.dump({"lock": threading.Lock()}, tmp_path)
    message = str(info.value)
    assert "dict" in message and "lock" in message and info.value.hint

    def local() -> None: ...

    other = tmp_path / "x"
    other.mkdir()
    with pytest.raises(CacheError, match="function"):
        serialize.dump(local, other)


def test_registered_serializers_come_first_and_can_be_removed(tmp_path: Path) -> None:
    class Point:
        def __init__(self, x: int):
            self.x = x

    def dump(obj: Point, path: Path) -> None:
        path.write_text(str(obj.x))

    def load(path: Path) -> Point:
        return Point(int(path.read_text()))

    serialize.register("point", lambda o: isinstance(o, Point), dump, load)
    try:
        name, back = roundtrip(Point(7), tmp_path)
        assert name == "point" and back.x == 7
        assert serialize.serializers()[0].name == "point"
    finally:
        serialize.unregister("point")
    assert all(s.name != "point" for s in serialize.serializers())
    with pytest.raises(CacheError, match="no serializer named 'point'"):
        serialize.load(tmp_path / "entry", "point")


def test_checking_types_never_imports_heavy_libraries() -> None:
    code = (
        "import sys, tempfile, pathlib\n"
        "from modver import serialize\n"
        "d = pathlib.Path(tempfile.mkdtemp())\n"
        "assert serialize.dump({'a': 1}, d) == 'pickle'\n"
        "bad = [m for m in ('numpy', 'pandas', 'torch', 'pyarrow') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_missing_or_corrupt_data_is_a_cache_error(tmp_path: Path) -> None:
    with pytest.raises(CacheError, match="missing"):
        serialize.load(tmp_path, "pickle")
    (tmp_path / serialize.OBJECT_NAME).write_bytes(b"not a pickle")
    with pytest.raises(CacheError, match="unreadable"):
        serialize.load(tmp_path, "pickle")


def test_checksum_labels_are_stable(tmp_path: Path) -> None:
    """Entries carry these labels: a change here would make every stored entry look damaged."""
    path = tmp_path / "f"
    path.write_bytes(bytes(range(256)) * 50 + b"tail")
    assert serialize.checksum_file(path) == "xxh3-128:d36d82fc021d609d4cdb2c558020fa43"
    assert serialize.checksum_file(path, "crc32") == "crc32:1e5dbd25"  # entries of older versions
    assert serialize.checksum_file(path, "fletcher64") == "fletcher64:efa9631d42f9a8740dbb691730db7874"
    state = serialize.new_checksum()
    data = path.read_bytes()
    for start in range(0, len(data), 1000):
        state.update(data[start : start + 1000])
    assert serialize.checksum_label(state) == serialize.checksum_file(path)
    path.write_bytes(b"")
    assert serialize.checksum_file(path) == "xxh3-128:99aa06d3014798d86001c324468d497f"


def test_xxh3_sees_a_changed_byte_and_swapped_words() -> None:
    def label(data: bytes) -> str:
        state = serialize.new_checksum()
        state.update(data)
        return serialize.checksum_label(state)

    data = np.random.default_rng(4).bytes(8192)
    changed = bytearray(data)
    changed[5000] ^= 0x40
    swapped = data[8:16] + data[:8] + data[16:]  # two words of one block: Fletcher64 misses it
    assert len({label(data), label(bytes(changed)), label(swapped)}) == 3
    fletcher = [serialize.Fletcher64() for _ in range(2)]
    fletcher[0].update(data)
    fletcher[1].update(swapped)
    assert fletcher[0].label() == fletcher[1].label()  # why new entries do not use it


def test_fletcher64_sees_changed_bits_moved_blocks_and_lengths() -> None:
    def label(*chunks: bytes) -> str:
        state = serialize.Fletcher64()
        for chunk in chunks:
            state.update(chunk)
        return state.label()

    page_a, page_b = b"a" * 4096, b"b" * 4096
    assert label(page_a, page_b) != label(page_b, page_a)  # pages moved around
    flipped = bytearray(page_a)
    flipped[100] ^= 1
    assert label(page_a) != label(bytes(flipped))
    assert label(page_a, b"x") != label(page_a, b"y")  # the short tail counts
    assert label(b"\1") == label(b"\1" + b"\0" * 8)  # zero padding: the recorded size tells them apart
    data = np.random.default_rng(3).bytes(3 * 4096 + 77)
    assert label(data) == label(data[:5], data[5:4100], data[4100:])  # any chunking
    assert label(b"\xff" * 8192) == label(b"\xff" * 8192)  # sums wrap, never overflow


def test_unknown_checksum_algorithm(tmp_path: Path) -> None:
    (tmp_path / "f").write_bytes(b"x")
    with pytest.raises(CacheError, match="unknown checksum"):
        serialize.checksum_file(tmp_path / "f", "md5")
