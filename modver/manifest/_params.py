"""The params file of script stages (``params.yaml`` unless the manifest says ``params_file:``).

List-form params (``params: [train.lr, prepare.seed]``) are keys of this file: a dotted key goes
down into mappings (``train.lr`` is ``lr`` under ``train``; a key may also name a whole section).
:func:`read_params` reads the file (bounded, YAML or JSON) as plain values, :func:`lookup` finds
a key in it, and :func:`render_params` writes the file again with some keys set — the copy a
stage's workspace gets, never the user's file. Comments and key order are kept.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from modver.errors import ManifestError
from modver.manifest._yaml import MAX_MANIFEST_BYTES, Budget, parse, round_trip, to_plain
from modver.names import did_you_mean

__all__ = ["lookup", "read_params", "render_params"]

_MISSING = object()


def read_params(path: Path, where: str) -> tuple[str, dict[str, Any]]:
    """The params file's text and its content as plain values; a missing file is empty."""
    try:
        with open(path, "rb") as handle:
            raw = handle.read(MAX_MANIFEST_BYTES + 1)
    except FileNotFoundError:
        return "", {}
    except OSError as exc:
        raise ManifestError(f"cannot read the params file {where}: {exc.strerror or exc}", where=where) from exc
    if len(raw) > MAX_MANIFEST_BYTES:
        raise ManifestError(f"the params file {where} is larger than {MAX_MANIFEST_BYTES // 1024} KiB", where=where)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ManifestError(f"the params file {where} is not UTF-8 text", where=where) from exc
    doc = parse(text, where)
    budget = Budget("the params file holds")
    budget.start("", where)
    plain = to_plain(doc, where, where, budget) if doc is not None else {}
    if not isinstance(plain, dict):
        raise ManifestError(f"the params file {where} must be a mapping of keys", where=where)
    return text, plain


def lookup(doc: Mapping[str, Any], key: str) -> Any:
    """The value of dotted ``key`` in ``doc``; :class:`KeyError` when it is not there."""
    if key in doc:  # a key with dots of its own
        return doc[key]
    node: Any = doc
    for part in key.split("."):
        if not isinstance(node, Mapping) or part not in node:
            raise KeyError(key)
        node = node[part]
    return node


def missing_key(doc: Mapping[str, Any], key: str, stage: str, where: str) -> ManifestError:
    """The error for a list-form param ``key`` of ``stage`` that the params file lacks."""
    known = sorted(_keys(doc))
    return ManifestError(
        f"stage {stage!r} lists param {key!r}, which the params file {where} does not have",
        where=where,
        hint=f"{did_you_mean(key, known)}add `{key}` to {where}, or remove it from the stage's `params:`",
    )


def _keys(doc: Mapping[str, Any], prefix: str = "") -> list[str]:
    out = []
    for key, value in doc.items():
        out.append(prefix + key)
        if isinstance(value, Mapping):
            out += _keys(value, prefix + key + ".")
    return out


def render_params(text: str, values: Mapping[str, Any], json_file: bool) -> str:
    """``text`` (the params file) with each dotted key of ``values`` set (missing sections made)."""
    if json_file:
        doc = json.loads(text) if text.strip() else {}
        for key, value in values.items():
            _set(doc, key, value)
        return json.dumps(doc, indent=2) + "\n"

    def change(doc: Any) -> None:
        for key, value in values.items():
            _set(doc, key, value)

    if not text.strip():
        text = "{}\n"
    return round_trip(text, change)


def _set(doc: Any, key: str, value: Any) -> None:
    if key in doc:
        doc[key] = value
        return
    parts = key.split(".")
    node = doc
    for part in parts[:-1]:
        if part not in node or not isinstance(node[part], Mapping):
            node[part] = {}
        node = node[part]
    node[parts[-1]] = value
