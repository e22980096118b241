"""Project paths that never leave the project, and files that are safe to open.

Entries, ``deps:`` and ``data:`` name files inside the project. A committed symlink can point
anywhere (``pipe/settings.py -> ~/.aws/credentials``): what such a path names must never be read
into a stage's history, where ``git push 'refs/modver/*'`` would publish it (SPEC, "Bad input and
faults"). :func:`resolve_inside` resolves a project-relative path through its symlinks and
refuses one that ends outside the project root, naming the link and its target.

:func:`check_kind` refuses what is neither a regular file nor a folder: reading a FIFO blocks
forever, a device never ends, a socket cannot be opened.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from modver.errors import PathError

__all__ = ["check_kind", "resolve_inside"]

_HINT = "copy what it points to into the project, or make the link point inside the project"


def _inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def resolve_inside(root: Path | str, rel: str, what: str = "path") -> Path:
    """The real location of project-relative ``rel`` (which need not exist).

    Raises :class:`PathError` when ``rel`` is absolute, climbs out with ``..``, or passes through
    a symlink whose target lies outside ``root``; the message names the link and its target.
    ``what`` names the path in messages ("entry file", "data folder data.images", ...).
    """
    rel_text = os.fspath(rel)
    parts = [p for p in rel_text.replace("\\", "/").split("/") if p not in ("", ".")]
    if os.path.isabs(rel_text) or ".." in parts:
        raise PathError(
            f"{what} {rel_text!r} leaves the project: paths are relative to the project root, without '..'",
            where=rel_text,
            hint="give a path inside the project folder",
        )
    real_root = os.path.realpath(root)
    real = os.path.realpath(os.path.join(real_root, *parts))
    if _inside(real, real_root):
        return Path(real)
    # find the link that leads out, to name it
    current = real_root
    for index, part in enumerate(parts):
        current = os.path.join(current, part)
        if os.path.islink(current):
            target = os.readlink(current)
            resolved = os.path.realpath(current)
            if not _inside(resolved, real_root):
                link = "/".join(parts[: index + 1])
                shown = link if link == rel_text else f"{link} (in {rel_text})"
                raise PathError(
                    f"{what} {shown} is a symlink to {target}, outside the project ({resolved})",
                    where=link,
                    hint=_HINT,
                )
            current = resolved
    raise PathError(  # pragma: no cover - realpath left the root without a link on the way
        f"{what} {rel_text!r} resolves to {real}, outside the project", where=rel_text, hint=_HINT
    )


def check_kind(path: Path | str, st: os.stat_result, what: str = "path", *, folders: bool = False) -> None:
    """Raise :class:`PathError` unless ``st`` (of ``path``) is a regular file (or, with
    ``folders``, a folder): FIFOs, devices and sockets are refused before anything opens them."""
    mode = st.st_mode
    if stat.S_ISREG(mode) or (folders and stat.S_ISDIR(mode)):
        return
    kind = (
        "a folder"
        if stat.S_ISDIR(mode)
        else "a FIFO (named pipe)"
        if stat.S_ISFIFO(mode)
        else "a socket"
        if stat.S_ISSOCK(mode)
        else "a device"
        if stat.S_ISCHR(mode) or stat.S_ISBLK(mode)
        else "not a regular file"
    )
    expected = "a file or a folder" if folders else "a regular file"
    raise PathError(
        f"{what} {os.fspath(path)} is {kind}, not {expected}",
        where=os.fspath(path),
        hint="point it at a regular file" + (" or folder" if folders else ""),
    )
