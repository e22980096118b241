"""A sweep's axes and points: what ``modver sweep --set``, ``--zip`` and ``--file`` describe.

- ``--set model.C=0.1,1,10``: a value with commas at its top level (outside brackets and quotes)
  is an **axis** of values, each typed as a YAML scalar like any ``--set`` value;
- ``--set model.seed=range(0,5)``: ``range(START,STOP[,STEP])`` is an axis too (integers, or
  numbers with a number step: ``range(0,1,0.25)`` is 0, 0.25, 0.5, 0.75);
- ``--set model.kernel=[1,2]`` or ``--set model.C=1``: one value (not an axis), as for ``run``;
- ``--set model.C=loguniform(1e-4,1)``: a **distribution** a search (``sweep --optimize``) draws
  from: ``uniform(LOW,HIGH)``, ``loguniform(LOW,HIGH)`` (0 < LOW), ``int(LOW,HIGH)`` (both ends
  included, as Optuna's; ``int(LOW,HIGH,log)`` on a log scale) or ``choice(V1,V2,...)`` (each value
  typed as a YAML scalar: ``choice(1,2)`` are ints, ``choice(adam,sgd)`` strings).

Axes combine as a grid (every combination, the first axis varying slowest) or, with ``--zip``,
pair in order (equal lengths). A sweep file holds the same axes::

    grid:                    # every combination of these
      model.C: [0.1, 1, 10]
      augment.noise: [0.0, 0.1]
    zip:                     # these paired in order, as one more axis of the grid
      model.seed: [1, 2, 3]
      model.tag: [a, b, c]
    search:                  # distributions (sweep --optimize only)
      model.lr: loguniform(1e-4, 1)

:func:`parse_axes` and :func:`load_sweep_file` give a :class:`~modver.models.SweepSpec` (a model:
sweep records keep it); :meth:`~modver.models.SweepSpec.points` its points (``{"model.C": 0.1, ...}``),
at most :data:`~modver.models.MAX_POINTS`.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from modver import errors
from modver.models import DISTRIBUTIONS, MAX_POINTS, Axis, Distribution, SweepSpec

__all__ = ["MAX_FILE_CHARS", "load_sweep_file", "parse_axes", "parse_distribution", "render_value", "split_top_level"]

MAX_FILE_CHARS = 100_000  # a sweep file, as a --set value may be (manifest MAX_SET_CHARS)
_RANGE = re.compile(r"^\s*range\((.*)\)\s*$", re.S)
_DISTRIBUTION = re.compile(r"^\s*(" + "|".join(DISTRIBUTIONS) + r")\((.*)\)\s*$", re.S)
_DIST_HINT = "e.g. uniform(0,1), loguniform(1e-4,1), int(1,64), int(1,1024,log), choice(adam,sgd)"


def split_top_level(text: str) -> list[str]:
    """``text`` split at commas outside brackets, braces, parentheses and quotes."""
    parts, depth, quote, start = [], 0, "", 0
    for i, ch in enumerate(text):
        if quote:
            if ch == quote:
                quote = ""
        elif ch in "'\"":
            quote = ch
        elif ch in "[{(":
            depth += 1
        elif ch in "]})":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return parts


def parse_axes(sets: Sequence[str], *, zip_axes: bool = False) -> SweepSpec:
    """The axes in ``--set`` options (see the module docstring): values with top-level commas
    and ``range(...)`` are axes; the others are plain ``--set`` values kept in ``sets``."""
    from modver.manifest import parse_scalar, split_set

    axes: list[Axis] = []
    plain: list[str] = []
    search: list[Distribution] = []
    for item in sets:
        split = split_set(item)
        if split is None:
            shown = item if len(item) <= 80 else item[:77] + "..."
            raise errors.SweepError(
                f"bad --set {shown!r}: expected stage.param=value", hint="e.g. --set model.C=0.1,1,10"
            )
        target, text = split
        where = f"--set {target}"
        drawn = parse_distribution(text, target, where)
        if drawn is not None:
            search.append(drawn)
            continue
        ranged = _RANGE.match(text)
        if ranged:
            axes.append(Axis(target, _range(ranged.group(1), where)))
            continue
        parts = split_top_level(text)
        if len(parts) == 1:
            plain.append(item)
            continue
        if any(not p.strip() for p in parts):
            raise errors.SweepError(
                f"{where}: {text[:80]!r} has an empty value between commas",
                hint="write the values as V1,V2,... (quote a value that holds a comma: 'a,b')",
            )
        axes.append(Axis(target, tuple(parse_scalar(p.strip(), where) for p in parts)))
    targets = [a.target for a in axes] + [d.target for d in search] + [s.partition("=")[0] for s in plain]
    _check_distinct(targets, "--set")
    if zip_axes:
        _check_zip(axes, "--zip")
        return SweepSpec((), tuple(axes), tuple(plain), tuple(search))
    return SweepSpec(tuple(axes), (), tuple(plain), tuple(search))


def render_value(value: Any) -> str:
    """``value`` as a ``--set`` value that reads back as itself (a YAML scalar): ``0.001``, ``64``,
    ``true``, ``null``, ``adam``; a string that would read as something else is quoted (``'1'``)."""
    import json

    from modver.manifest import parse_scalar

    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    if isinstance(value, int | float):
        return repr(value)
    text = json.dumps(value) if not isinstance(value, str) else value
    try:
        same = isinstance(value, str) and "," not in value and parse_scalar(value) == value
    except errors.ModverError:
        same = False
    return text if same else json.dumps(value)


def parse_distribution(text: str, target: str, where: str) -> Distribution | None:
    """The distribution ``text`` writes (see the module docstring), None when it writes none; a
    malformed one is a :class:`~modver.errors.SweepError` naming ``where``."""
    from modver.manifest import parse_scalar

    found = _DISTRIBUTION.match(text)
    if found is None:
        return None
    kind, inner = found.group(1), found.group(2)
    shown = f"{kind}({inner[:60]})"
    parts = split_top_level(inner)
    if any(not p.strip() for p in parts):
        raise errors.SweepError(f"{where}: {shown} has an empty argument", hint=_DIST_HINT)
    log = kind == "int" and len(parts) == 3 and parts[2].strip() == "log"
    values = [parse_scalar(p.strip(), where) for p in (parts[:2] if log else parts)]
    if kind == "choice":
        return _choice(target, values, shown, where)
    numbers = all(isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) for v in values)
    whole = all(isinstance(v, int) and not isinstance(v, bool) for v in values)
    if len(values) != 2 or not numbers or (kind == "int" and not whole):
        what = "whole numbers" if kind == "int" else "numbers"
        form = "int(LOW,HIGH) or int(LOW,HIGH,log)" if kind == "int" else f"{kind}(LOW,HIGH)"
        raise errors.SweepError(f"{where}: bad {shown}: expected {form} of {what}", hint=_DIST_HINT)
    low, high = values
    if not low < high:
        raise errors.SweepError(
            f"{where}: {shown} needs LOW < HIGH", hint=f"a single value is not searched: --set {target}={low}"
        )
    if (kind == "loguniform" or log) and low <= 0:
        raise errors.SweepError(f"{where}: {shown} is on a log scale, so LOW must be above 0", hint=_DIST_HINT)
    if kind in ("uniform", "loguniform"):
        return Distribution(target, kind, (float(low), float(high)))
    return Distribution(target, kind, (low, high), log=log)


def _choice(target: str, values: list[Any], shown: str, where: str) -> Distribution:
    if any(v is not None and not isinstance(v, bool | int | float | str) for v in values):
        raise errors.SweepError(
            f"{where}: {shown}: each choice must be one plain value (a number, a string, true/false, null)",
            hint="a list or a mapping is not a choice; give it as a fixed --set value",
        )
    typed = [(type(v), v) for v in values]
    if len(set(typed)) != len(typed):
        raise errors.SweepError(f"{where}: {shown} gives a value twice", hint="give each choice once")
    return Distribution(target, "choice", tuple(values))


def _range(args: str, where: str) -> tuple[Any, ...]:
    from modver.manifest import parse_scalar

    parts: list[Any] = [parse_scalar(p.strip(), where) if p.strip() else None for p in split_top_level(args)]
    numbers = all(isinstance(p, int | float) and not isinstance(p, bool) for p in parts)
    if not 2 <= len(parts) <= 3 or not numbers:
        raise errors.SweepError(
            f"{where}: bad range({args[:60]}): expected range(START,STOP) or range(START,STOP,STEP) of numbers",
            hint="e.g. --set model.seed=range(0,5) gives 0,1,2,3,4",
        )
    start, stop, step = parts[0], parts[1], (parts[2] if len(parts) == 3 else 1)
    if step == 0 or not all(math.isfinite(p) for p in (start, stop, step)):
        raise errors.SweepError(
            f"{where}: range({args[:60]}) needs a finite, non-zero step", hint="e.g. range(0,1,0.25)"
        )
    count = max(0, math.ceil((stop - start) / step - 1e-9))
    if count > MAX_POINTS:
        raise errors.SweepError(
            f"{where}: range({args[:60]}) has {count:,} values, more than {MAX_POINTS:,}",
            hint="use a larger step or a smaller range",
        )
    if count == 0:
        raise errors.SweepError(
            f"{where}: range({args[:60]}) is empty", hint="STOP is not included: range(0,3) is 0,1,2"
        )
    if all(isinstance(p, int) for p in (start, stop, step)):
        return tuple(range(start, stop, step))
    return tuple(round(start + i * step, 12) for i in range(count))


def _check_distinct(targets: Sequence[str], what: str) -> None:
    seen: set[str] = set()
    for target in targets:
        if target in seen:
            raise errors.SweepError(
                f"{what} {target} is given twice", hint="give each param one axis (its values separated by commas)"
            )
        seen.add(target)


def _check_zip(axes: Sequence[Axis], what: str) -> None:
    lengths = {a.target: len(a.values) for a in axes}
    if len(set(lengths.values())) > 1:
        shown = ", ".join(f"{t} has {n}" for t, n in lengths.items())
        raise errors.SweepError(
            f"{what} pairs axes in order, so they need as many values each: {shown}",
            hint="give every zipped axis the same number of values, or drop --zip for a grid",
        )


def load_sweep_file(path: Path, sets: Sequence[str] = (), *, zip_axes: bool = False) -> SweepSpec:
    """The axes of a sweep file (``grid:`` and ``zip:`` mappings of ``stage.param: [values]``),
    with the ``--set`` options given beside it (their axes join the file's grid, or its zip with
    ``zip_axes``)."""
    from modver.manifest import parse_scalar

    where = str(path)
    text = _read_sweep_file(path)
    doc = parse_scalar(text, where) if text.strip() else None
    keys = {"grid", "zip", "search"}
    if not isinstance(doc, dict) or not doc or set(doc) - keys:
        extra = sorted(set(doc) - keys) if isinstance(doc, dict) else []
        raise errors.SweepError(
            f"the sweep file {path} must be a mapping with `grid:`, `zip:` and/or `search:`"
            + (f"; unknown key {extra[0]!r}" if extra else ""),
            where=where,
            hint="e.g.\ngrid:\n  model.C: [0.1, 1, 10]\nzip:\n  model.seed: [1, 2]\n  model.tag: [a, b]",
        )
    found = {key: _file_axes(doc.get(key), f"{where}: {key}") for key in ("grid", "zip")}
    given = parse_axes(sets)
    grid, zipped = list(found["grid"]), list(found["zip"])
    (zipped if zip_axes else grid).extend(given.axes)
    search = [*_file_search(doc.get("search"), f"{where}: search"), *given.search]
    targets = [a.target for a in grid + zipped] + [d.target for d in search] + [s.partition("=")[0] for s in given.sets]
    _check_distinct(targets, "sweep param")
    _check_zip(zipped, f"{where}: zip")
    return SweepSpec(tuple(grid), tuple(zipped), given.sets, tuple(search))


def _file_targets(node: Any, where: str, what: str, example: str) -> Iterator[tuple[str, Any]]:
    """The ``stage.param: VALUE`` entries of a sweep file's section, each target checked."""
    from modver.manifest import SET_TARGET

    if node is None:
        return
    if not isinstance(node, dict):
        raise errors.SweepError(f"{where} must be a mapping of stage.param: {what}", where=where,
                                hint=f"e.g. {example}")  # fmt: skip
    for target, value in node.items():
        if not isinstance(target, str) or not SET_TARGET.match(target):
            raise errors.SweepError(f"{where}: {target!r} is not stage.param", where=where,
                                    hint=f"e.g. {example.split(':')[0]}")  # fmt: skip
        yield target, value


def _file_search(node: Any, where: str) -> Iterator[Distribution]:
    for target, text in _file_targets(node, where, "distribution", "model.lr: loguniform(1e-4, 1)"):
        drawn = parse_distribution(text, target, f"{where}: {target}") if isinstance(text, str) else None
        if drawn is None:
            raise errors.SweepError(f"{where}: {target} must be a distribution, not {text!r}", where=where,
                                    hint=_DIST_HINT)  # fmt: skip
        yield drawn


def _read_sweep_file(path: Path) -> str:
    """The sweep file's text: a regular file of at most :data:`MAX_FILE_CHARS` characters. A
    FIFO, a socket or a device is refused unread (reading one could block or never end)."""
    import stat

    hint = "give --file a YAML file with `grid:` and/or `zip:` mappings"
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            os.close(fd)
            what = "a folder" if stat.S_ISDIR(mode) else "not a regular file (a FIFO, a socket or a device)"
            raise errors.SweepError(f"the sweep file {path} is {what}", where=str(path), hint=hint)
        with os.fdopen(fd, "rb") as handle:
            raw = handle.read(4 * MAX_FILE_CHARS + 1)
        text = raw.decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise errors.SweepError(
            f"cannot read the sweep file {path}: {getattr(exc, 'strerror', None) or exc}", where=str(path), hint=hint
        ) from exc
    if len(raw) > 4 * MAX_FILE_CHARS or len(text) > MAX_FILE_CHARS:
        raise errors.SweepError(
            f"the sweep file {path} is larger than {MAX_FILE_CHARS:,} characters",
            where=str(path),
            hint="a sweep file holds axes, not points: give ranges (`range(0,100)` with --set) or fewer values",
        )
    return text


def _file_axes(node: Any, where: str) -> Iterator[Axis]:
    for target, values in _file_targets(node, where, "[values]", "model.C: [0.1, 1, 10]"):
        if not isinstance(values, list) or not values:
            raise errors.SweepError(
                f"{where}: {target} must be a non-empty list of values", where=where, hint=f"e.g. {target}: [1, 2, 3]"
            )
        yield Axis(target, tuple(values))
