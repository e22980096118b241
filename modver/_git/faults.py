"""How the failures dulwich and the OS report for a damaged or unreadable repository become ours.

Every such failure is raised as :class:`~modver.errors.StoreError` (``raise ... from exc``, see
:class:`StoreFaults`), with the hint to run ``git fsck``; no dulwich exception escapes
:mod:`modver._git`. Programming errors (TypeError, AttributeError, ... after a dulwich upgrade)
are not a corrupt store: they propagate as they are. Tested with dulwich 1.2.13 to 1.2.21.
"""

from __future__ import annotations

import os
import struct
import traceback
import zlib
from types import TracebackType

import dulwich
from dulwich.errors import (
    ApplyDeltaError,
    ChecksumMismatch,
    FileFormatException,
    RefFormatError,
    WrongObjectException,
)
from dulwich.index import UnsupportedIndexFormat
from dulwich.pack import PackFileDisappeared, UnresolvedDeltas
from dulwich.refs import SymrefLoop
from dulwich.repo import InvalidWorktreeConfiguration, UnsupportedExtension, UnsupportedVersion

from modver import errors
from modver._fs import write_failure

FSCK_HINT = "the git object database may be corrupt; run `git fsck` to check it"
# What dulwich 1.2 and the OS raise on a damaged or unreadable repository (read from dulwich's
# source, and seen on damaged repositories: tests/test_git.py). Anything else is a bug.
STORE_FAULTS: tuple[type[Exception], ...] = (
    OSError,  # a missing, unreadable or vanished file; dulwich's PackInputTooLarge
    ValueError,  # malformed numbers, hex, headers or config; UnicodeDecodeError
    OverflowError,  # a damaged pack index's offsets
    zlib.error,  # a damaged compressed object
    struct.error,  # a truncated pack index
    FileFormatException,  # ObjectFormatException, EmptyFileException, PackedRefsException
    ChecksumMismatch,
    WrongObjectException,
    ApplyDeltaError,
    UnresolvedDeltas,
    PackFileDisappeared,
    SymrefLoop,
    RefFormatError,
    UnsupportedIndexFormat,
)
# Raised by dulwich itself, these are store faults too; raised by modver, they are bugs:
# dulwich's own words for "damaged" (``raise AssertionError(...)`` on a bad pack, pack index or
# index header) and "missing" (``KeyError(sha)``) ...
_DULWICH_CONVENTIONS = (AssertionError, KeyError)
# ... and what these functions of dulwich 1.2 raise on damaged bytes (found by damaging repositories)
_DAMAGE_SITES = frozenset(
    {
        "ShaFile._is_legacy_object",  # TypeError: a loose object of one byte
        "ShaFile._parse_object",  # TypeError: a loose object cut inside its size header
        "FilePackIndex._object_offset",  # TypeError: a pack index whose object names are cut short
        "DiskRefsContainer.get_packed_refs",  # StopIteration: an empty packed-refs file
        "DiskRefsContainer._read_loose_ref_file",  # StopIteration: a ref file holding only "ref: "
        "DiskRefsContainer.read_loose_ref",  # the same, before dulwich 1.2.17
    }
)
_DULWICH_DIR = os.path.dirname(os.path.abspath(dulwich.__file__)) + os.sep
# what may be a store fault (for an ``except`` clause; :func:`is_store_fault` decides)
CANDIDATES: tuple[type[Exception], ...] = (*STORE_FAULTS, *_DULWICH_CONVENTIONS, TypeError, StopIteration)
# opening a repository can also meet a repository format dulwich does not support
OPEN_FAULTS = (UnsupportedVersion, UnsupportedExtension, InvalidWorktreeConfiguration)


# A write that the file system refuses (a full disk, EIO, a read-only file system) is one StoreError
# too, :func:`modver._fs.write_failure` (modver moves a ref only after its objects are written, so
# nothing recorded is lost); ``write_failure`` is imported from here by modver's git callers.


def store_error(what: str, exc: BaseException, where: str | None = None) -> errors.StoreError:
    """``what: <exception type>: <exception>`` as a StoreError (raise it ``from exc``); a write the
    file system refused says so (:func:`write_failure`)."""
    # The failed dulwich frames may hold memoryviews of a pack's mmap; clearing their locals
    # lets the repository close while this error (with its __cause__) is still alive.
    traceback.clear_frames(exc.__traceback__)
    failed = write_failure(what, exc, where)
    if failed is not None:
        return failed
    return errors.StoreError(f"{what}: {type(exc).__name__}: {exc}", where=where, hint=FSCK_HINT)


def _dulwich_fault(exc: BaseException) -> bool:
    """Whether dulwich itself raised ``exc`` to say that the store is damaged (see above)."""
    tb = exc.__traceback__
    if tb is None:
        return False
    while tb.tb_next is not None:
        tb = tb.tb_next
    code = tb.tb_frame.f_code
    if not code.co_filename.startswith(_DULWICH_DIR):
        return False
    if isinstance(exc, _DULWICH_CONVENTIONS):
        return True
    return isinstance(exc, (TypeError, StopIteration)) and code.co_qualname in _DAMAGE_SITES


def is_store_fault(exc: BaseException, also: tuple[type[Exception], ...] = ()) -> bool:
    """Whether ``exc`` says that the repository is damaged or unreadable (not a bug)."""
    return isinstance(exc, STORE_FAULTS + also) or _dulwich_fault(exc)


class StoreFaults:
    """``with StoreFaults(what, where):`` raises a store fault of its block as StoreError.

    A store fault is one of :data:`STORE_FAULTS` (or of ``also``), or what dulwich raises
    itself to say that the store is damaged (:func:`_dulwich_fault`). The message is ``what:
    <exception type>: <exception>``. Everything else (a ModverError, a bug) propagates as it is.
    (Hot paths use ``except CANDIDATES`` with :func:`is_store_fault` instead: no object per call.)
    """

    __slots__ = ("also", "what", "where")

    def __init__(self, what: str, where: str | None = None, also: tuple[type[Exception], ...] = ()) -> None:
        self.what = what
        self.where = where
        self.also = also

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if exc is None:
            return
        if is_store_fault(exc, self.also):
            raise store_error(self.what, exc, self.where) from exc
