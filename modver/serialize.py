"""Turn stage outputs into files and back: a small registry of serializers.

A serializer is ``(name, type_check, dump, load)``:

- ``type_check(obj) -> bool`` says whether it handles ``obj``;
- ``dump(obj, path) -> str | None`` writes ``obj`` to ``path`` (a file, or a folder it creates);
  it may return the checksum of the file it wrote (:func:`checksum_label`, or any label
  :func:`checksum_file` knows) so the cache need not read a large file back to checksum it;
  ``None`` lets the caller compute it;
- ``load(path) -> object`` reads it back.

Choice order: serializers added with :func:`register` (newest first), then the built-ins
``bytes`` (raw file), ``numpy`` (``.npy``, ``allow_pickle=False``), ``pandas`` (pickle protocol 5:
exact, and faster than parquet), ``torch`` (``torch.save``), and last ``pickle``
(protocol 5), which takes anything picklable. The numpy/pandas/torch checks look the library
up in ``sys.modules`` only: an object cannot be an ndarray unless numpy is already imported, so
checking a type never imports a heavy library. Exact types are matched (``type(x) is ndarray``):
subclasses such as masked arrays go to pickle, which keeps their type.

An object that cannot be written raises :class:`~modver.errors.CacheError` naming its type and
the reason. :func:`dump` writes into ``directory/OBJECT_NAME``; :func:`load` reads it back given
the serializer's name.

Checksums (what the cache verifies on every load): new files get ``"xxh3-128:<32 hex>"``, the
128-bit XXH3 hash of their bytes (the ``xxhash`` library): about 17 GB/s here, so checking a
1 GiB output costs 0.06 s. It is an integrity check against damage (a flipped bit, a torn or
overwritten page, bytes moved around), not a defence against someone who can also rewrite
``entry.json``. Entries written before it carry ``"crc32:<8 hex>"`` (zlib) or
``"fletcher64:<32 hex>"`` (:class:`Fletcher64`); both are still verified.
"""

from __future__ import annotations

import io
import mmap
import os
import pickle
import sys
import threading
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from modver import _fs
from modver.errors import CacheError

OBJECT_NAME = "object"
PICKLE_PROTOCOL = 5
_CHUNK = 64 << 20  # bytes per read system call (and write buffer) for large buffers
_WRITE_CHUNK = 16 << 20  # bytes per write: the flusher thread starts after the first one


@dataclass(frozen=True)
class Serializer:
    """One way of storing a kind of object. See the module docstring for the contract."""

    name: str
    type_check: Callable[[Any], bool]
    dump: Callable[[Any, Path], str | None]
    load: Callable[[Path], Any]


_registered: list[Serializer] = []  # user-registered, newest first
_lock = threading.Lock()


def register(
    name: str,
    type_check: Callable[[Any], bool],
    dump: Callable[[Any, Path], str | None],
    load: Callable[[Path], Any],
) -> Serializer:
    """Add a serializer, tried before every built-in one; a same-named one is replaced."""
    if not name or not name.replace("_", "").replace("-", "").replace(".", "").isalnum():
        raise ValueError(f"serializer name must be alphanumeric (with _ - .), got {name!r}")
    serializer = Serializer(name, type_check, dump, load)
    with _lock:
        _registered[:] = [s for s in _registered if s.name != name]
        _registered.insert(0, serializer)
    return serializer


def unregister(name: str) -> None:
    """Remove a serializer added with :func:`register` (built-ins cannot be removed)."""
    with _lock:
        _registered[:] = [s for s in _registered if s.name != name]


def serializers() -> list[Serializer]:
    """Every serializer in the order they are tried."""
    with _lock:
        return [*_registered, *_BUILTINS]


def get_serializer(name: str) -> Serializer:
    """The serializer called ``name``; unknown names raise :class:`CacheError`."""
    for serializer in serializers():
        if serializer.name == name:
            return serializer
    raise CacheError(
        f"no serializer named {name!r} (known: {', '.join(s.name for s in serializers())})",
        hint="register it with modver.serialize.register() before loading this output",
    )


def choose(obj: Any) -> Serializer:
    """The first serializer whose ``type_check`` accepts ``obj``."""
    for serializer in serializers():
        if serializer.type_check(obj):
            return serializer
    raise CacheError(f"no serializer accepts an object of type {_type_name(obj)}")  # pragma: no cover


def dump(obj: Any, directory: Path) -> str:
    """Write ``obj`` into ``directory`` (which must exist); return the serializer's name."""
    return dump_with_checksum(obj, directory)[0]


def dump_with_checksum(obj: Any, directory: Path) -> tuple[str, str | None]:
    """:func:`dump`, also returning the serializer's checksum of the file when it computed one."""
    serializer = choose(obj)
    target = Path(directory) / OBJECT_NAME
    try:
        checksum = serializer.dump(obj, target)
    except CacheError:
        raise
    except RecursionError as exc:
        raise _cannot_serialize(obj, serializer, "it is nested too deeply") from exc
    except (pickle.PicklingError, TypeError, AttributeError, ValueError, NotImplementedError) as exc:
        raise _cannot_serialize(obj, serializer, str(exc) or type(exc).__name__) from exc
    except OSError as exc:
        raise _fs.write_failure(f"cannot write output of type {_type_name(obj)}", exc, str(target)) or CacheError(
            f"cannot write output of type {_type_name(obj)} to {target}: {exc.strerror or exc}",
            where=str(target),
            hint="check free disk space and permissions of the .modver folder",
        ) from exc
    return serializer.name, checksum


def load(directory: Path, name: str) -> Any:
    """Read back the object :func:`dump` wrote into ``directory`` with serializer ``name``."""
    serializer = get_serializer(name)
    target = Path(directory) / OBJECT_NAME
    try:
        return serializer.load(target)
    except CacheError:
        raise
    except FileNotFoundError as exc:
        raise CacheError(f"cached output is missing its data file {target}", where=str(target)) from exc
    except (ImportError, AttributeError) as exc:
        raise CacheError(
            f"cannot load cached output ({name}): {exc}",
            where=str(target),
            hint="the object's class comes from code that is not importable here; load it through "
            "modver.load(), which makes stored versions importable",
        ) from exc
    except (pickle.UnpicklingError, EOFError, ValueError, OSError) as exc:
        raise CacheError(
            f"cached output {target} is unreadable ({name}): {exc}",
            where=str(target),
            hint="remove the entry (it will be recomputed) with `modver run --force STAGE`",
        ) from exc


def _type_name(obj: Any) -> str:
    cls = type(obj)
    return cls.__qualname__ if cls.__module__ == "builtins" else f"{cls.__module__}.{cls.__qualname__}"


def _cannot_serialize(obj: Any, serializer: Serializer, reason: str) -> CacheError:
    return CacheError(
        f"cannot serialize output of type {_type_name(obj)} with {serializer.name}: {reason}",
        hint="return plain data (numbers, lists, dicts, arrays, frames) or objects of classes defined "
        "at module level; open files, locks, generators, lambdas and local classes cannot be stored",
    )


CHECKSUM = "xxh3-128"  # the checksum of new entries; older ones: "crc32", "fletcher64"
CHECKSUMS = (CHECKSUM, "crc32", "fletcher64")


def new_checksum() -> Any:
    """A running checksum of the kind new entries get: ``update(bytes)``, then :func:`checksum_label`."""
    import xxhash

    return xxhash.xxh3_128()


def checksum_label(state: Any) -> str:
    """``"xxh3-128:<32 hex>"`` of a :func:`new_checksum` state: what the cache records."""
    return f"{CHECKSUM}:{state.hexdigest()}"


def crc32_label(value: int) -> str:
    """The label of a CRC-32 (entries written before xxh3-128, and user serializers that still
    return one): ``crc32:<8 hex>``."""
    return f"crc32:{value & 0xFFFFFFFF:08x}"


def checksum_file(path: Path, algorithm: str = CHECKSUM) -> str:
    """``<algorithm>:<hex>`` of a file's bytes (an algorithm of :data:`CHECKSUMS`), read in place."""
    if algorithm not in CHECKSUMS:
        raise CacheError(f"unknown checksum algorithm {algorithm!r}", where=str(path))
    state = new_checksum() if algorithm == CHECKSUM else Fletcher64() if algorithm == "fletcher64" else None
    crc = 0
    with open(path, "rb", buffering=0) as handle:
        size = os.fstat(handle.fileno()).st_size
        if size:  # map the file: the page cache is read in place, without copying it
            with mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
                view = memoryview(mapped)
                try:
                    for start in range(0, size, _CHUNK):
                        if state is not None:
                            state.update(view[start : start + _CHUNK])
                        else:
                            crc = zlib.crc32(view[start : start + _CHUNK], crc)
                finally:
                    view.release()
    if state is None:
        return crc32_label(crc)
    return checksum_label(state) if algorithm == CHECKSUM else state.label()


class Fletcher64:
    """The checksum of numpy entries written before xxh3-128: Fletcher over 4 KiB blocks.

    The stream is cut into blocks of 512 little-endian 64-bit words (the last block may be
    shorter; a trailing partial word is zero-padded, and the cache also records each file's
    size). Each block is summed (modulo 2**64, one numpy reduction); then ``s1`` is the sum of
    the block sums and ``s2`` the sum of the running ``s1`` (Fletcher), so a changed bit, a
    zeroed or torn page, and blocks moved around all change it. It is an integrity check, not
    a cryptographic hash; words swapped inside one block are not seen (xxh3-128 sees them).
    ``update`` may be called with pieces of any length. Kept to verify old entries.
    """

    BLOCK = 4096  # bytes

    def __init__(self) -> None:
        import numpy as np

        self._np = np
        self.s1 = np.uint64(0)
        self.s2 = np.uint64(0)
        self._carry = b""

    def update(self, data: Any) -> None:
        view = memoryview(data).cast("B")
        if self._carry:
            need = self.BLOCK - len(self._carry)
            self._carry += bytes(view[:need])
            view = view[need:]
            if len(self._carry) < self.BLOCK:
                return
            self._blocks(memoryview(self._carry))
            self._carry = b""
        whole = len(view) - len(view) % self.BLOCK
        if whole:
            self._blocks(view[:whole])
        self._carry = bytes(view[whole:])

    def _blocks(self, view: memoryview) -> None:
        np = self._np
        if len(view) % 8:
            view = memoryview(bytes(view) + b"\0" * (8 - len(view) % 8))
        words = np.frombuffer(view, dtype="<u8")
        per_block = self.BLOCK // 8
        if len(words) % per_block == 0:
            sums = np.add.reduce(words.reshape(-1, per_block), axis=1, dtype=np.uint64)
        else:  # only the final, short block
            sums = np.add.reduce(words, dtype=np.uint64, keepdims=True)
        k = len(sums)
        with np.errstate(over="ignore"):
            self.s2 = self.s2 + np.uint64(k) * self.s1 + np.dot(sums, np.arange(k, 0, -1, dtype=np.uint64))
            self.s1 = self.s1 + np.add.reduce(sums, dtype=np.uint64)

    def label(self) -> str:
        s1, s2 = self.s1, self.s2
        if self._carry:  # the last, short block, without changing the state
            saved = (self.s1, self.s2)
            self._blocks(memoryview(self._carry))
            s1, s2 = self.s1, self.s2
            self.s1, self.s2 = saved
        return f"fletcher64:{int(s1):016x}{int(s2):016x}"


class _ChecksumWriter(io.RawIOBase):
    """A write-only file that checksums what passes through (for pickle)."""

    def __init__(self, handle: BinaryIO):
        super().__init__()
        self._handle = handle
        self.checksum = new_checksum()

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        self.checksum.update(data)
        return self._handle.write(data)


def _write_all(fd: int, data: memoryview, checksum: Any = None) -> None:
    """Write a large buffer with few system calls, handling short writes; ``checksum`` (a
    :func:`new_checksum` state) is updated with what is written.

    While it writes, a second thread flushes what is already written to disk (``fdatasync``),
    so that the cache's fsync before it publishes the entry has little left to wait for (the
    checksum is computed meanwhile). Measured (docs/performance.md): a 1 GiB put takes 0.40-0.56
    s this way, a copy followed by fsync 0.61-0.72 s.
    """
    offset, total = 0, len(data)
    flusher: threading.Thread | None = None
    failures: list[OSError] = []

    def flush() -> None:
        try:
            getattr(os, "fdatasync", os.fsync)(fd)
        except OSError as exc:  # re-raised below: a lost write error would hide lost data
            failures.append(exc)

    try:
        while offset < total:
            written = os.write(fd, data[offset : offset + _WRITE_CHUNK])
            if checksum is not None:
                checksum.update(data[offset : offset + written])
            offset += written
            if offset < total and not failures and (flusher is None or not flusher.is_alive()):
                flusher = threading.Thread(target=flush, name="modver-flush", daemon=True)
                flusher.start()
    finally:
        if flusher is not None:
            flusher.join()
    if failures:
        raise failures[0]


# -- bytes ------------------------------------------------------------------------------------


def _bytes_check(obj: Any) -> bool:
    return type(obj) is bytes


def _bytes_dump(obj: bytes, path: Path) -> str:
    state = new_checksum()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        _write_all(fd, memoryview(obj), state)
    finally:
        os.close(fd)
    return checksum_label(state)


def _bytes_load(path: Path) -> bytes:
    return Path(path).read_bytes()


# -- numpy ------------------------------------------------------------------------------------


def _numpy_check(obj: Any) -> bool:
    np = sys.modules.get("numpy")
    return np is not None and type(obj) is np.ndarray and not obj.dtype.hasobject


def _numpy_dump(array: Any, path: Path) -> str | None:
    """``.npy`` format: header, then the raw buffer with large writes, checksummed as written."""
    import numpy as np
    from numpy.lib import format as npformat

    if not array.flags.c_contiguous:
        with open(path, "xb", buffering=_CHUNK) as handle:  # a handle: np.save would add ".npy"
            np.save(handle, array, allow_pickle=False)
        return None
    header = io.BytesIO()
    info = npformat.header_data_from_array_1_0(array)
    try:
        npformat.write_array_header_1_0(header, info)
    except ValueError:  # header too large for format 1.0
        header = io.BytesIO()
        npformat.write_array_header_2_0(header, info)
    head = header.getvalue()  # padded to a multiple of 64 bytes by numpy
    data = memoryview(array.reshape(-1).view(np.uint8)) if array.size else memoryview(b"")
    state = new_checksum()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        _write_all(fd, memoryview(head), state)
        _write_all(fd, data, state)
    finally:
        os.close(fd)
    return checksum_label(state)


def _numpy_load(path: Path) -> Any:
    import numpy as np

    return np.load(path, allow_pickle=False, mmap_mode=None)


# -- pandas -----------------------------------------------------------------------------------

# Frames are stored with pickle protocol 5, not parquet: parquet is lossy for a cache (cells that
# are lists, tuples or sets come back as ndarrays, a DatetimeIndex loses its freq), and measured
# here on a 2,000,000-row frame pickle was faster too (save 0.12 s, load 0.08 s against
# 0.29 s / 0.15 s for parquet). The serializer keeps its own name so entries say what they hold.


def _pandas_check(obj: Any) -> bool:
    pd = sys.modules.get("pandas")
    return pd is not None and type(obj) is pd.DataFrame


# -- torch ------------------------------------------------------------------------------------


def _torch_check(obj: Any) -> bool:
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(obj, torch.Tensor)


def _torch_dump(tensor: Any, path: Path) -> None:
    import torch

    torch.save(tensor, path)


def _torch_load(path: Path) -> Any:
    import torch

    return torch.load(path, weights_only=True)


# -- pickle -----------------------------------------------------------------------------------


def _pickle_check(obj: Any) -> bool:
    return True


def _pickle_dump(obj: Any, path: Path) -> str:
    with open(path, "xb", buffering=1 << 20) as handle:
        writer = _ChecksumWriter(handle)
        pickle.dump(obj, writer, protocol=PICKLE_PROTOCOL)
    return checksum_label(writer.checksum)


def _pickle_load(path: Path) -> Any:
    with open(path, "rb", buffering=1 << 20) as handle:
        return pickle.load(handle)


_BUILTINS: tuple[Serializer, ...] = (
    Serializer("bytes", _bytes_check, _bytes_dump, _bytes_load),
    Serializer("numpy", _numpy_check, _numpy_dump, _numpy_load),
    Serializer("pandas", _pandas_check, _pickle_dump, _pickle_load),
    Serializer("torch", _torch_check, _torch_dump, _torch_load),
    Serializer("pickle", _pickle_check, _pickle_dump, _pickle_load),
)
