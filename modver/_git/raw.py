"""What the bytes of raw git objects say: commits, trees and tags, parsed without dulwich's classes.

Hot paths (walking thousands of commits, looking up a file in each) parse raw objects here
rather than build dulwich objects; :class:`~modver._git.GitRepo` caches the results. Damaged
bytes raise :class:`~modver.errors.StoreError` naming the object.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from dulwich.objects import parse_tree

from modver import errors
from modver._git.faults import FSCK_HINT, STORE_FAULTS, store_error

HEX40 = re.compile(rb"[0-9a-f]{40}\Z")
_SHA_LEN = 20  # bytes of a binary SHA-1 object id in a tree entry

# Tree entries, parsed: name -> (mode, hex sha), names decoded as utf-8 (surrogateescape).
Entries = dict[str, tuple[int, str]]


@dataclass(frozen=True)
class CommitInfo:
    """What modver reads of a commit."""

    tree: str
    parents: tuple[str, ...]
    time: int  # committer time, seconds since the epoch
    offset: int  # committer timezone offset, seconds east of UTC
    message: bytes


def decode_name(name: bytes) -> str:
    """A file or ref name as text (utf-8; other bytes kept as surrogate escapes)."""
    return name.decode("utf-8", "surrogateescape")


def parse_commit(sha: str, data: bytes) -> CommitInfo:
    """The tree, parents, committer time and message of commit ``sha`` (its raw bytes ``data``)."""
    head, _, message = data.partition(b"\n\n")
    tree = None
    parents: list[str] = []
    when, offset = 0, 0
    try:
        for line in head.split(b"\n"):
            if line.startswith(b"tree "):
                tree = line[5:].decode("ascii")
            elif line.startswith(b"parent "):
                parents.append(line[7:].decode("ascii"))
            elif line.startswith(b"committer "):
                _, _, stamp = line.rpartition(b">")
                seconds, tz = stamp.split()
                when = int(seconds)
                sign = -1 if tz.startswith(b"-") else 1
                digits = tz.lstrip(b"+-")
                offset = sign * (int(digits[:2]) * 3600 + int(digits[2:4]) * 60)
    except ValueError as exc:
        raise store_error(f"malformed git commit {sha}", exc) from exc
    if tree is None:
        raise errors.StoreError(f"malformed git commit {sha}: no tree", hint=FSCK_HINT)
    return CommitInfo(tree, tuple(parents), when, offset, message)


def parse_tree_entries(sha: str, data: bytes) -> Entries:
    """The entries of tree ``sha`` (its raw bytes ``data``): name -> (mode, hex sha)."""
    try:
        parsed = parse_tree(data, _SHA_LEN)
    except STORE_FAULTS as exc:  # parse_tree reads only these bytes: what it raises is about them
        raise store_error(f"malformed git tree {sha}", exc) from exc
    return {decode_name(name): (mode, hexsha.decode("ascii")) for name, mode, hexsha in parsed}


def tag_target(sha: str, data: bytes) -> str:
    """The object that annotated tag ``sha`` (its raw bytes ``data``) points at."""
    first = data.split(b"\n", 1)[0]
    if not (first.startswith(b"object ") and HEX40.match(first[7:])):
        raise errors.StoreError(f"malformed git tag {sha}", hint=FSCK_HINT)
    return first[7:].decode("ascii")
