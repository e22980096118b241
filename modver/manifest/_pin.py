"""Pin edits: a stage's ``version`` changed in the manifest's text, every other byte kept.

:func:`edit_in_place` edits block-style mappings (one line per key) and single-line flow
mappings in the text itself (comments, order, quoting, indentation, line endings kept);
anything else falls back to :func:`edit_round_trip`, through ruamel's round-trip dump. The
caller (:func:`modver.manifest.set_pin`) re-parses the result and checks that only the pin
changed before it replaces the file.
"""

from __future__ import annotations

import re
from typing import Any

from modver.errors import ManifestError
from modver.manifest._yaml import reads_as_plain_string, round_trip

_PLAIN_VERSION_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.:/@~^+-]*\Z")


def _scalar_end(line: str, start: int, *, flow: bool = False) -> int | None:
    """End index (exclusive) of the single-line YAML scalar starting at ``start``, or None."""
    quote = line[start : start + 1]
    if quote == "'":
        i = start + 1
        while i < len(line):
            if line[i] == "'":
                if line[i + 1 : i + 2] == "'":
                    i += 2
                    continue
                return i + 1
            i += 1
        return None
    if quote == '"':
        i = start + 1
        while i < len(line):
            if line[i] == "\\":
                i += 2
                continue
            if line[i] == '"':
                return i + 1
            i += 1
        return None
    content = line.rstrip("\r\n")
    stop = re.search(r"\s#|[,}\]]" if flow else r"\s#", content[start:])
    end = start + stop.start() if stop else len(content)
    while end > start and content[end - 1] in " \t":
        end -= 1
    return end if end > start else None


def _render_scalar(value: str, like: str) -> str:
    """``value`` as a YAML scalar, quoted the way the old scalar text ``like`` was."""
    import json

    if like.startswith("'"):
        return "'" + value.replace("'", "''") + "'"
    if like.startswith('"') or not _PLAIN_VERSION_RE.match(value) or not reads_as_plain_string(value):
        return json.dumps(value)
    return value


def edit_in_place(text: str, doc: Any, stage: str, version: str | None) -> str | None:
    """Edit only the ``version`` of one stage in the text; None when that is not possible.

    Handles block mappings (one line per key) and single-line flow mappings
    (``{entry: a.py, version: v1}``); the caller re-parses the result to check it.
    """
    body = doc["stages"][stage]
    lines = text.splitlines(keepends=True)
    try:
        flow = bool(body.fa.flow_style())
        if "version" in body:
            kline, kcol = body.lc.key("version")
            vline, vcol = body.lc.value("version")
        else:
            kline, kcol = body.lc.key("entry")
            vline, vcol = body.lc.value("entry")
    except (AttributeError, KeyError, TypeError, IndexError):
        return None
    if vline != kline or kline >= len(lines):
        return None
    line = lines[kline]
    end = _scalar_end(line, vcol, flow=flow)
    if end is None:
        return None
    if "version" in body:
        if version is not None:
            lines[kline] = line[:vcol] + _render_scalar(version, line[vcol:end]) + line[end:]
        elif not flow:
            del lines[kline]
        else:
            after = re.match(r"\s*,\s*", line[end:])
            before = re.search(r",\s*\Z", line[:kcol])
            if after:
                lines[kline] = line[:kcol] + line[end + after.end() :]
            elif before:
                lines[kline] = line[: before.start()] + line[end:]
            else:
                lines[kline] = line[:kcol] + line[end:]
        return "".join(lines)
    if version is None:
        return text
    rendered = _render_scalar(version, "")
    if flow:
        lines[kline] = line[:end] + ", version: " + rendered + line[end:]
        return "".join(lines)
    newline = line[len(line.rstrip("\r\n")) :]
    if not newline:
        newline = "\r\n" if "\r\n" in text else "\n"
        lines[kline] = line + newline
    lines.insert(kline + 1, " " * kcol + "version: " + rendered + newline)
    return "".join(lines)


def edit_round_trip(text: str, stage: str, version: str | None, where: str) -> str:
    """Fallback edit through ruamel's round-trip dump (keeps comments and order)."""

    def change(doc: Any) -> None:
        body = doc["stages"][stage]
        if version is None:
            body.pop("version", None)
        elif "version" in body:
            old = body["version"]
            # keep the old quoting style (ruamel's ScalarString subclasses)
            styled = isinstance(old, str) and type(old) is not str
            body["version"] = type(old)(version) if styled else version
        else:
            keys = list(body)
            body.insert(keys.index("entry") + 1 if "entry" in keys else 0, "version", version)

    try:
        return round_trip(text, change)
    except Exception as exc:
        raise ManifestError(
            f"could not rewrite the manifest: {type(exc).__name__}: {exc}",
            where=where,
            hint=f"edit the `version:` of {stage!r} by hand",
        ) from exc
