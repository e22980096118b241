"""Run records: one plain JSON file per run, ``.modver/runs/<run-id>/run.json``.

Run ids (:func:`new_run_id`) look like ``20261122-153012-123456-0004d2-9f3ab1``: UTC date,
time, microseconds, process id (6 hex digits) and 24 random bits. They sort by start time as
strings and are unique across concurrent processes and machines sharing a file system.

``run.json`` (written atomically: temp file + ``os.replace``; sorted keys, indent 2)::

    run            str    the run id
    status         str    "running" | "succeeded" | "failed" | "interrupted"
    started        str    ISO 8601 UTC with microseconds
    finished       str | null
    duration       float | null   seconds
    manifest       {"path": str, "content": dict}   the manifest as loaded
    versions       {stage: "vN"}
    fingerprints   {stage: "mv1:<hex>"}
    params         {stage: {name: value}}
    data           {name: {"path": str, "hash": str}}
    cached         {stage: bool}          served from the cache
    stages         {stage: {"status", "duration", "cache_key", "reason", "error"}}
    metrics        {name: last value}
    metric_series  {name: [{"step": int | null, "value": float, "stage": str}]}
    git            {"commit": str | null, "dirty": bool}
    python         str    e.g. "3.11.9"
    packages       {name: version}
    error          {"stage", "type", "message", "traceback"} | null

Next to it, ``<stage>.stdout`` and ``<stage>.stderr`` hold what each stage printed.

:meth:`RunStore.load` checks the shape of what it reads against :data:`RECORD` (the type of
every field modver reads, nested ones too; a field may be absent, unknown fields are kept), so
a record that is valid JSON with wrong types is a :class:`StoreError` naming the file and the
field, never an error deep inside a command. :meth:`RunStore.list` never fails on a damaged
run: a folder whose ``run.json`` is missing, unreadable or damaged is listed as
``{"run": id, "status": "corrupt", "error": {...}}``.

:func:`runs_dataframe` flattens records into the table of ``modver runs`` / ``modver.runs()``
(columns ``run``, ``status``, ``started``, ``duration``, ``version.<stage>``,
``param.<stage>.<name>``, ``metric.<name>``) and :func:`filter_records` applies a ``--where``
expression such as ``metric.accuracy > 0.9 and version.model == "v3"``: it is parsed with
``ast`` and only comparisons, ``and``/``or``/``not``, constants, tuples/lists of constants and
column names are evaluated (``version["my-stage"]`` reaches names that are no identifiers);
nothing is ever ``eval``-ed.
"""

from __future__ import annotations

import ast
import math
import operator
import os
import re
import secrets
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from modver import _fs
from modver.errors import ModverError, StoreError, UnknownRunError
from modver.names import suggest, validate_name

if TYPE_CHECKING:  # pragma: no cover
    import pandas

RUN_FILE = "run.json"
STATUSES = ("running", "succeeded", "failed", "interrupted")
LOG_STREAMS = ("stdout", "stderr")
_RUN_ID = re.compile(r"^\d{8}-\d{6}-\d{6}-[0-9a-f]{6,}-[0-9a-f]+$")
_LATEST = re.compile(r"^latest(?:~(\d+))?$")
BASE_COLUMNS = ("run", "status", "started", "duration")


def now_iso() -> str:
    """The current time as the records write it: ISO 8601, UTC, microseconds."""
    return datetime.now(UTC).isoformat(timespec="microseconds")


def new_run_id(now: datetime | None = None) -> str:
    """A fresh run id, sortable by start time and unique across processes (see module doc)."""
    moment = (now or datetime.now(UTC)).astimezone(UTC)
    return f"{moment:%Y%m%d-%H%M%S-%f}-{os.getpid() & 0xFFFFFF:06x}-{secrets.token_hex(3)}"


def run_id_time(run_id: str) -> str | None:
    """The start time encoded in a run id, as ISO 8601 UTC, or None for a foreign id."""
    try:
        moment = datetime.strptime(run_id[:22], "%Y%m%d-%H%M%S-%f").replace(tzinfo=UTC)
    except ValueError:
        return None
    return moment.isoformat(timespec="microseconds")


# -- the shape of a record ---------------------------------------------------------------------
#
# A spec is a type (or a tuple of types), Opt(spec) (that or null), MapOf(spec) (a JSON object
# with any names), ListOf(spec), or Fields(...) (a JSON object with known fields, each of which
# may be absent unless required; unknown fields are allowed, so older modvers read newer records).


@dataclass(frozen=True)
class Opt:
    """``spec`` or null."""

    spec: Any


@dataclass(frozen=True)
class MapOf:
    """A JSON object whose values all match ``spec``."""

    spec: Any


@dataclass(frozen=True)
class ListOf:
    """A JSON array whose items all match ``spec``."""

    spec: Any


@dataclass(frozen=True)
class Fields:
    """A JSON object with known fields (name -> spec); ``required`` ones must be present."""

    fields: Mapping[str, Any]
    required: tuple[str, ...] = ()


ANY = object  # any JSON value
NUMBER = (int, float)
ERROR = Fields({"stage": Opt(str), "type": str, "message": str, "where": Opt(str), "traceback": Opt(str)})
KEY_PARTS = Fields(
    {
        "entry": str,
        "fingerprint": str,
        "version": Opt(str),
        "params": MapOf(ANY),
        "inputs": MapOf(Fields({"data": str, "hash": str, "stage": str, "key": str})),
    }
)
STAGE = Fields(
    {
        "status": str,
        "duration": Opt(NUMBER),
        "cache_key": str,
        "key_parts": KEY_PARTS,
        "reason": str,
        "notes": ListOf(str),
        "error": Opt(ERROR),
        "entry": str,
    },
    required=("cache_key",),
)
MANIFEST_STAGE = Fields(
    {"entry": str, "version": Opt(str), "inputs": MapOf(str), "params": MapOf(ANY), "deps": ListOf(str)},
    required=("entry",),
)
RECORD = Fields(
    {
        "run": str,
        "status": str,
        "host": Opt(str),
        "pid": Opt(int),
        "started": Opt(str),
        "finished": Opt(str),
        "duration": Opt(NUMBER),
        "manifest": Fields(
            {
                "path": str,
                "content": Fields({"data": MapOf(str), "stages": MapOf(MANIFEST_STAGE), "fingerprint": MapOf(ANY)}),
            }
        ),
        "versions": MapOf(Opt(str)),
        "fingerprints": MapOf(str),
        "params": MapOf(MapOf(ANY)),
        "data": MapOf(Fields({"path": str, "hash": str}, required=("path", "hash"))),
        "cached": MapOf(bool),
        "order": ListOf(str),
        "stages": MapOf(STAGE),
        "metrics": MapOf(NUMBER),
        "metric_series": MapOf(ListOf(Fields({"step": Opt(int), "value": NUMBER, "stage": Opt(str)}))),
        "git": Fields({"commit": Opt(str), "dirty": Opt(bool)}),
        "python": str,
        "packages": MapOf(str),
        "error": Opt(ERROR),
        "reproduces": str,
        "comparison": MapOf(Fields({"original": ANY, "reproduced": ANY, "match": bool})),
    },
    required=("run",),
)


def record_problem(value: Any, spec: Any = RECORD) -> str | None:
    """What is wrong with the shape of ``value`` (a run record by default), or None if nothing.

    The answer names the field, e.g. ``"stages.train.duration should be a number or null,
    found a string '1s'"``.
    """
    found = _mismatch(value, spec)
    if found is None:
        return None
    path, spec, value = found
    where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in reversed(path)).lstrip(".")
    if spec is _MISSING:
        return f"{where} is missing"
    return f"{where or 'the record'} should be {_kind(spec)}, found {_found(value)}"


_MISSING = object()


def _mismatch(value: Any, spec: Any) -> tuple[list[str | int], Any, Any] | None:
    """None, or the first place where ``value`` does not match ``spec``: (its path, innermost
    first; the spec; the value there). Paths are only built for a mismatch: records are big."""
    if value is None and isinstance(spec, Opt):
        return None
    inner = spec.spec if isinstance(spec, Opt) else spec
    if isinstance(inner, (Fields, MapOf)):
        if not isinstance(value, dict):
            return [], spec, value
        if isinstance(inner, Fields):
            for name in inner.required:
                if name not in value:
                    return [name], _MISSING, None
            items = ((name, value[name], field) for name, field in inner.fields.items() if name in value)
        elif inner.spec is ANY:
            return None
        else:
            items = ((name, item, inner.spec) for name, item in value.items())
    elif isinstance(inner, ListOf):
        if not isinstance(value, list):
            return [], spec, value
        items = ((index, item, inner.spec) for index, item in enumerate(value))
    else:
        return None if inner is ANY or isinstance(value, inner) else ([], spec, value)
    for key, item, field in items:
        found = _mismatch(item, field)
        if found is not None:
            found[0].append(key)
            return found
    return None


_KINDS = {str: "a string", int: "an integer", float: "a number", bool: "true or false", NUMBER: "a number"}


def _kind(spec: Any) -> str:
    if isinstance(spec, Opt):
        return f"{_kind(spec.spec)} or null"
    if isinstance(spec, (MapOf, Fields)):
        return "an object"
    if isinstance(spec, ListOf):
        return "a list"
    return _KINDS.get(spec, getattr(spec, "__name__", str(spec)))


def _found(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "a list"
    shown = repr(value)
    return f"{_KINDS.get(type(value), type(value).__name__)} {shown if len(shown) <= 40 else shown[:37] + '...'}"


class RunStore:
    """The run records under ``root`` (normally ``.modver/runs``)."""

    def __init__(self, root: Path):
        self.root = Path(root)

    def __repr__(self) -> str:
        return f"RunStore({str(self.root)!r})"

    def path(self, run_id: str) -> Path:
        """The folder of a run."""
        if not run_id or "/" in run_id or "\\" in run_id or run_id.startswith("."):
            raise UnknownRunError(f"invalid run id {run_id!r}")
        return self.root / run_id

    # -- writing ------------------------------------------------------------------------------

    def create(self, run_id: str, record: Mapping[str, Any]) -> dict[str, Any]:
        """Start a run's record; the run id must be new. Returns the record as written."""
        folder = self.path(run_id)
        data = dict(record, run=run_id)
        # the folder appears with its run.json in it: a reader never sees a run without a record
        tmp = _fs.make_temp_dir(self.root, run_id)
        try:
            _fs.write_json_atomic(tmp / RUN_FILE, data)
        except BaseException:
            _fs.remove_tree(tmp)
            raise
        if not _fs.publish_dir(tmp, folder):
            raise StoreError(f"run {run_id} exists already", where=str(folder), hint="use new_run_id() for every run")
        return data

    def update(self, run_id: str, record: Mapping[str, Any], *, durable: bool = True) -> dict[str, Any]:
        """Replace a run's record atomically (readers see the old or the new one).

        ``durable=False`` skips the fsync: for progress updates that a later write supersedes.
        """
        if not self.path(run_id).is_dir():
            raise UnknownRunError(f"no run {run_id}", where=str(self.root), hint="create() it first")
        return self._write(run_id, record, durable=durable)

    def _write(self, run_id: str, record: Mapping[str, Any], *, durable: bool = True) -> dict[str, Any]:
        data = dict(record)
        data["run"] = run_id
        _fs.write_json_atomic(self.path(run_id) / RUN_FILE, data, durable=durable)
        return data

    def log_path(self, run_id: str, stage: str, stream: str) -> Path:
        """``<run-id>/<stage>.stdout`` or ``.stderr``."""
        if stream not in LOG_STREAMS:
            raise ValueError(f"stream must be one of {LOG_STREAMS}, not {stream!r}")
        validate_name(stage)
        return self.path(run_id) / f"{stage}.{stream}"

    def write_log(self, run_id: str, stage: str, stream: str, content: str | bytes) -> Path:
        """Store what a stage printed (atomically, not fsynced)."""
        path = self.log_path(run_id, stage, stream)
        data = content.encode("utf-8") if isinstance(content, str) else bytes(content)
        _fs.write_bytes_atomic(path, data, durable=False)
        return path

    def read_log(self, run_id: str, stage: str, stream: str) -> str | None:
        """What a stage printed, or None when nothing was recorded."""
        try:
            return self.log_path(run_id, stage, stream).read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return None

    # -- reading ------------------------------------------------------------------------------

    def load(self, run_id: str) -> dict[str, Any]:
        """A run's record. Unknown runs raise :class:`UnknownRunError`, damaged ones StoreError."""
        path = self.path(run_id) / RUN_FILE
        try:
            record = _fs.read_json(path)
        except FileNotFoundError as exc:
            if self.path(run_id).is_dir():
                raise StoreError(
                    f"run {run_id} has no {RUN_FILE} (its process died while starting)", where=str(path)
                ) from exc
            raise UnknownRunError(
                f"no run {run_id}", where=str(self.root), hint="see `modver runs` for the recorded runs"
            ) from exc
        except StoreError as exc:  # not JSON, or JSON Python cannot read (too deep, huge integers)
            if isinstance(exc.__cause__, (ValueError, UnicodeDecodeError, RecursionError)):
                raise self.damaged(run_id, f"it is not valid JSON ({_fs.json_problem(exc.__cause__)})") from exc
            raise
        problem = record_problem(record)
        if problem is None and record["run"] != run_id:
            problem = f"it is the record of run {record['run']!r}, not of {run_id}"
        if problem:
            raise self.damaged(run_id, problem)
        return record

    def damaged(self, run_id: str, problem: str) -> StoreError:
        """The error for a run whose record is damaged: ``problem`` says what is wrong."""
        path = self.path(run_id) / RUN_FILE
        return StoreError(
            f"damaged run record {path}: {problem}",
            where=str(path),
            hint=f"move the folder {path.parent} out of {self.root} (the other runs are not affected) "
            "and run the command again",
        )

    def ids(self) -> list[str]:
        """Every run id, oldest first (ids sort by start time)."""
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if p.is_dir() and not p.name.startswith("."))

    def list(self) -> list[dict[str, Any]]:
        """Every record, oldest first by start time; damaged runs appear with status "corrupt"."""
        records = []
        for run_id in self.ids():
            try:
                record = self.load(run_id)
            except StoreError as exc:
                record = {
                    "run": run_id,
                    "status": "corrupt",
                    "started": run_id_time(run_id),
                    "error": {"stage": None, "type": type(exc).__name__, "message": str(exc), "traceback": None},
                }
            records.append(record)
        return sorted(records, key=_start_key)

    def resolve(self, ref: str) -> str:
        """The run id ``ref`` names: a run id, a unique prefix, ``latest`` or ``latest~N``."""
        ids = self.ids()
        if not ids:
            raise UnknownRunError("no runs recorded yet", where=str(self.root), hint="start one with `modver run`")
        ref = ref.strip()
        match = _LATEST.match(ref)
        if match:
            back = int(match.group(1) or 0)
            if back >= len(ids):
                raise UnknownRunError(
                    f"{ref} goes back {back} runs but only {len(ids)} are recorded",
                    hint=f"use latest~0 .. latest~{len(ids) - 1}",
                )
            return ids[-1 - back]
        if ref in ids:
            return ref
        matches = [run_id for run_id in ids if run_id.startswith(ref)] if ref else []
        if len(matches) == 1:
            return matches[0]
        if matches:
            shown = ", ".join(matches[:5]) + (", ..." if len(matches) > 5 else "")
            raise UnknownRunError(
                f"run {ref!r} is ambiguous: {len(matches)} runs match ({shown})",
                hint="give more characters of the run id",
            )
        near = suggest(ref, (run_id[: len(ref)] for run_id in ids)) if ref else None
        close = next((run_id for run_id in reversed(ids) if near and run_id.startswith(near)), None)
        raise UnknownRunError(
            f"no run {ref!r}; the latest is {ids[-1]}",
            where=str(self.root),
            hint=(f"did you mean {close!r}? " if close else "")
            + "see `modver runs`; refer to runs by id, unique prefix, latest or latest~N",
        )


def _start_key(record: Mapping[str, Any]) -> tuple[str, str]:
    run_id = str(record.get("run") or "")
    started = record.get("started")
    if not isinstance(started, str):
        started = run_id_time(run_id) or ""
    return (_normalize_iso(started), run_id)


def _normalize_iso(text: str) -> str:
    try:
        return datetime.fromisoformat(text).astimezone(UTC).isoformat(timespec="microseconds")
    except ValueError:
        return text


# -- the runs table ---------------------------------------------------------------------------


def flatten_record(record: Mapping[str, Any]) -> dict[str, Any]:
    """One table row: ``run``, ``status``, ``started``, ``duration``, ``version.<stage>``,
    ``param.<stage>.<name>``, ``metric.<name>`` (plain Python values)."""
    row: dict[str, Any] = {name: record.get(name) for name in BASE_COLUMNS}
    versions, params = _mapping(record.get("versions")), _mapping(record.get("params"))
    order = record.get("order") if isinstance(record.get("order"), list) else []
    stages = [s for s in order if s in versions or s in params]  # the manifest's order, as the run ran
    stages += [s for s in [*versions, *params] if s not in stages]
    for stage in stages:
        if stage in versions:
            row[f"version.{stage}"] = versions[stage]
    for stage in stages:
        for name, value in _mapping(params.get(stage)).items():
            row[f"param.{stage}.{name}"] = value
    for name, value in _mapping(record.get("metrics")).items():
        row[f"metric.{name}"] = value
    return row


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def table_columns(rows: Iterable[Mapping[str, Any]]) -> list[str]:
    """The columns of the runs table: the base columns, then versions and params (stages in the
    manifest's order, as the rows have them), then metrics (sorted)."""
    seen: dict[str, None] = {}
    for row in rows:
        seen.update(dict.fromkeys(row))
    first = {c: i for i, c in enumerate(seen)}
    kind = {"version": 0, "param": 1, "metric": 2}

    def rank(c: str) -> tuple[int, int | str]:
        k = kind.get(c.split(".", 1)[0], 3)
        return (k, c) if k >= 2 else (k, first[c])

    return [*BASE_COLUMNS, *sorted((c for c in seen if c not in BASE_COLUMNS), key=rank)]


def runs_dataframe(records: Iterable[Mapping[str, Any]]) -> pandas.DataFrame:
    """The runs as a DataFrame, one row per record; missing cells are NaN/None, never an error.

    ``started`` becomes a UTC timestamp column; other columns keep the recorded values.
    """
    import pandas as pd

    rows = [flatten_record(record) for record in records]
    columns = table_columns(rows)
    frame = pd.DataFrame.from_records(rows, columns=columns) if rows else pd.DataFrame(columns=columns)
    frame["started"] = pd.to_datetime(frame["started"], utc=True, errors="coerce", format="ISO8601")
    return frame


# -- --where ----------------------------------------------------------------------------------

_COMPARE: dict[type, Callable[[Any, Any], bool]] = {
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
    ast.In: lambda a, b: a in b,
    ast.NotIn: lambda a, b: a not in b,
    ast.Is: operator.is_,
    ast.IsNot: operator.is_not,
}
_WHERE_HINT = (
    "write comparisons of columns with constants joined by and/or/not, e.g. "
    "'metric.accuracy > 0.9 and version.model == \"v3\"'; columns are run, status, started, duration, "
    "version.<stage>, param.<stage>.<name>, metric.<name>"
)


WHERE_MAX_CHARS = 10_000  # a real expression is a line; 10,000 characters hold ~250 run ids in a tuple
WHERE_MAX_DEPTH = 100  # nesting of the syntax tree; real expressions nest fewer than 10 levels


class Where:
    """A compiled ``--where`` expression; call it with a row (see :func:`flatten_record`).

    Expressions longer than :data:`WHERE_MAX_CHARS` or nested deeper than
    :data:`WHERE_MAX_DEPTH` are refused with a :class:`ModverError`.
    """

    def __init__(self, expression: str):
        self.expression = expression
        if len(expression) > WHERE_MAX_CHARS:
            raise self._error(f"it is {len(expression)} characters long, more than the {WHERE_MAX_CHARS} allowed")
        try:
            tree = ast.parse(expression.strip(), mode="eval")
        except SyntaxError as exc:
            raise self._error(str(exc.msg)) from exc
        except (RecursionError, MemoryError) as exc:  # the parser's own stack is exhausted
            raise self._error(f"it is nested more than {WHERE_MAX_DEPTH} levels deep") from exc
        if _depth(tree.body) > WHERE_MAX_DEPTH:
            raise self._error(f"it is nested more than {WHERE_MAX_DEPTH} levels deep")
        self.columns: set[str] = set()
        self.aliases: dict[str, str] = {}  # a name as written -> its full column name
        self._check(tree.body)
        self._tree = tree.body

    def __call__(self, row: Mapping[str, Any]) -> bool:
        return bool(self._eval(self._tree, row))

    # validation: the whole tree once, so a bad expression fails before any row is seen
    def _check(self, node: ast.AST) -> None:
        if isinstance(node, ast.BoolOp):
            for value in node.values:
                self._check(value)
        elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
            self._check(node.operand)
        elif isinstance(node, ast.Compare):
            for op in node.ops:
                if type(op) not in _COMPARE:  # pragma: no cover - every ast.cmpop is listed
                    raise self._error(f"operator {type(op).__name__} is not supported")
            for operand in (node.left, *node.comparators):
                self._check(operand)
        elif _constant(node) is not _NOT_CONSTANT:
            pass
        elif isinstance(node, (ast.Tuple, ast.List)):
            for element in node.elts:
                if _constant(element) is _NOT_CONSTANT:
                    raise self._error("lists in --where may hold constants only")
        else:
            column = _column_name(node)
            if column is None:
                raise self._error(f"{ast.unparse(node)!r} is not a column, a constant or a comparison")
            self.columns.add(column)

    def _error(self, detail: str) -> ModverError:
        shown = self.expression if len(self.expression) <= 80 else self.expression[:77] + "..."
        return ModverError(f"invalid --where expression {shown!r}: {detail}", hint=_WHERE_HINT)

    def _eval(self, node: ast.AST, row: Mapping[str, Any]) -> Any:
        if isinstance(node, ast.BoolOp):
            if isinstance(node.op, ast.And):
                return all(self._eval(value, row) for value in node.values)
            return any(self._eval(value, row) for value in node.values)
        if isinstance(node, ast.UnaryOp):
            return not self._eval(node.operand, row)
        if isinstance(node, ast.Compare):
            left = self._eval(node.left, row)
            for op, comparator in zip(node.ops, node.comparators):
                right = self._eval(comparator, row)
                if not _compare(op, left, right):
                    return False
                left = right
            return True
        value = _constant(node)
        if value is not _NOT_CONSTANT:
            return value
        if isinstance(node, (ast.Tuple, ast.List)):
            return tuple(_constant(element) for element in node.elts)
        name = _column_name(node) or ""
        value = row.get(self.aliases.get(name, name))
        return None if isinstance(value, float) and math.isnan(value) else value


_NOT_CONSTANT = object()


def _depth(tree: ast.AST) -> int:
    """How deep the syntax tree nests (without recursion: it may be deeper than Python's stack)."""
    deepest, todo = 0, [(tree, 1)]
    while todo:
        node, depth = todo.pop()
        deepest = max(deepest, depth)
        todo.extend((child, depth + 1) for child in ast.iter_child_nodes(node))
    return deepest


def _constant(node: ast.AST) -> Any:
    """The value of a literal (numbers, strings, True/False/None, negative numbers)."""
    if isinstance(node, ast.Constant) and not isinstance(node.value, bytes | type(Ellipsis)):
        return node.value
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        inner = _constant(node.operand)
        if isinstance(inner, (int, float)) and not isinstance(inner, bool):
            return -inner if isinstance(node.op, ast.USub) else inner
    return _NOT_CONSTANT


def _column_name(node: ast.AST) -> str | None:
    """``metric.acc`` → "metric.acc"; ``version["my-stage"]`` → "version.my-stage"."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        base = _column_name(node.value)
        return None if base is None else f"{base}.{node.attr}"
    if isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Constant) and isinstance(node.slice.value, str):
        base = _column_name(node.value)
        return None if base is None else f"{base}.{node.slice.value}"
    return None


def _compare(op: ast.cmpop, left: Any, right: Any) -> bool:
    """SQL-like: a missing value (None) only satisfies ==/is None and !=; mismatched types are False."""
    if isinstance(op, (ast.Is, ast.IsNot, ast.Eq, ast.NotEq)):
        return _COMPARE[type(op)](left, right)
    if left is None or right is None:
        return False
    try:
        return bool(_COMPARE[type(op)](left, right))
    except TypeError:
        return False


def resolve_column(name: str, columns: Iterable[str], option: str = "--where") -> str:
    """The column ``name`` stands for: itself, or the one column it ends (``accuracy`` for
    ``metric.accuracy``, ``model`` for ``version.model``, ``model.C`` for ``param.model.C``),
    as the runs table's headers show them. Unknown and ambiguous names raise :class:`ModverError`.
    """
    columns = list(columns)
    if name in columns:
        return name
    matches = [c for c in columns if c.endswith("." + name)]
    if len(matches) == 1:
        return matches[0]
    if matches:
        raise ModverError(
            f"column {name!r} in {option} is ambiguous: {', '.join(matches)}", hint="write one of them in full"
        )
    close = suggest(name, columns + [c.split(".")[-1] for c in columns])
    raise ModverError(
        f"unknown column {name!r} in {option}" + (f" (did you mean {close!r}?)" if close else ""),
        hint="columns of the recorded runs: " + ", ".join(columns),
    )


def sort_records(records: Iterable[Mapping[str, Any]], sort: str) -> list[Mapping[str, Any]]:
    """The records ordered by the column ``sort`` names (``-column``: descending, see
    :func:`resolve_column`); records without a value (or NaN) come last, in their order.

    Numbers order by value (ints and floats together), then strings, then other values (lists,
    mappings, booleans) by their JSON text: any mix of values sorts, none raises.
    """
    name, reverse = (sort[1:], True) if sort.startswith("-") else (sort, False)
    flat = [(flatten_record(r), r) for r in records]
    if not flat:
        return []
    column = resolve_column(name, table_columns(f for f, _ in flat), "--sort")
    present = [(f[column], r) for f, r in flat if not _missing(f.get(column))]
    present.sort(key=lambda vr: _sort_key(vr[0]), reverse=reverse)
    return [r for _, r in present] + [r for f, r in flat if _missing(f.get(column))]


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _sort_key(value: Any) -> tuple[int, float, str]:
    import json

    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return (0, value, "")
    if isinstance(value, str):
        return (1, 0, value)
    return (2, 0, json.dumps(value, sort_keys=True, default=str))


def filter_records(records: Iterable[Mapping[str, Any]], expression: str) -> list[Mapping[str, Any]]:
    """The records whose row satisfies ``expression``.

    A column that no record has is reported (a typo would otherwise silently match nothing).
    """
    where = Where(expression)
    records = list(records)
    rows = [flatten_record(record) for record in records]
    if rows:
        known = table_columns(rows)
        where.aliases = {name: resolve_column(name, known) for name in sorted(where.columns)}
    return [record for record, row in zip(records, rows) if where(row)]
