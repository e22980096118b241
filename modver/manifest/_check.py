"""Checks shared by the manifest's validators: keys, mappings, names and project paths."""

from __future__ import annotations

import keyword
import posixpath
import re
from collections.abc import Mapping
from typing import Any

from modver.errors import ManifestError
from modver.manifest._yaml import pos, type_name
from modver.names import did_you_mean

__all__ = ["check_keys", "is_identifier", "mapping_or_empty", "project_path"]


def check_keys(node: Any, allowed: tuple[str, ...], what: str, where: str) -> None:
    for key in node:
        if not isinstance(key, str):
            raise ManifestError(
                f"keys in {what} must be strings, found {type_name(key)} {key!r}",
                where=pos(where, node, key),
                hint=f"allowed keys: {', '.join(allowed)}",
            )
        if key not in allowed:
            raise ManifestError(
                f"unknown key {key!r} in {what}",
                where=pos(where, node, key),
                hint=f"{did_you_mean(key, allowed)}allowed keys: {', '.join(allowed)}",
            )


def mapping_or_empty(parent: Any, key: str, what: str, where: str, hint: str) -> Any:
    value = parent.get(key)
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ManifestError(
            f"{what} must be a mapping, found {type_name(value)}",
            where=pos(where, parent, key, value=True),
            hint=hint,
        )
    return value


def is_identifier(name: Any) -> bool:
    return isinstance(name, str) and name.isidentifier() and not keyword.iskeyword(name)


def project_path(value: Any, what: str, loc: str, *, suffix: str | None = None) -> str:
    """A ``/``-separated path inside the project, normalised; else ManifestError."""
    if not isinstance(value, str) or not value.strip():
        raise ManifestError(
            f"{what} must be a file path, found {type_name(value)}",
            where=loc,
            hint="write a path relative to the project root, e.g. `configs/model.yaml`",
        )
    if "\\" in value:
        raise ManifestError(f"{what} {value!r} uses '\\'", where=loc, hint="write paths with '/' on every platform")
    if value.startswith("/") or re.match(r"[A-Za-z]:", value):
        raise ManifestError(f"{what} {value!r} is absolute", where=loc, hint="write it relative to the project root")
    norm = posixpath.normpath(value)
    if norm == ".." or norm.startswith("../") or norm == ".":
        raise ManifestError(
            f"{what} {value!r} is outside the project",
            where=loc,
            hint="stage code must live inside the project root",
        )
    if suffix is not None and (not norm.endswith(suffix) or posixpath.basename(norm) == suffix):
        raise ManifestError(f"{what} {value!r} is not a {suffix} file", where=loc)
    return norm
