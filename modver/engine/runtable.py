"""The runs as one table: rows of ``modver runs`` and ``modver.runs()``, ``--where``, ``--sort``.

:func:`flatten_record` turns a record into a row (columns ``run``, ``status``, ``started``,
``duration``, ``version.<stage>``, ``param.<stage>.<name>``, ``metric.<name>``);
:func:`runs_dataframe` makes the DataFrame; :func:`filter_records` applies a ``--where``
expression such as ``metric.accuracy > 0.9 and version.model == "v3"``: it is parsed with
``ast`` and only comparisons, ``and``/``or``/``not``, constants, tuples/lists of constants and
column names are evaluated (``version["my-stage"]`` reaches names that are no identifiers);
nothing is ever ``eval``-ed.
"""

from __future__ import annotations

import ast
import fnmatch
import math
import operator
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from modver.errors import UsageError
from modver.names import suggest
from modver.record import RunRecord

if TYPE_CHECKING:  # pragma: no cover
    import pandas

__all__ = [
    "BASE_COLUMNS",
    "ViewColumn",
    "Where",
    "cached_cell",
    "filter_records",
    "flatten_record",
    "resolve_column",
    "runs_dataframe",
    "runs_view",
    "short_headers",
    "sort_records",
    "table_columns",
    "unique_prefixes",
]

BASE_COLUMNS = ("run", "status", "started", "duration")


def flatten_record(record: RunRecord) -> dict[str, Any]:
    """One table row: ``run``, ``status``, ``started``, ``duration``, ``version.<stage>``,
    ``param.<stage>.<name>``, ``metric.<name>`` (plain Python values; stages in the order the run
    ran them, params of stages that never planned after them)."""
    row: dict[str, Any] = {"run": record.run, "status": str(record.status), "started": record.started,
                           "duration": record.duration}  # fmt: skip
    stages = [*record.stages, *(s for s in record.params if s not in record.stages)]
    for stage in record.stages:
        row[f"version.{stage}"] = record.stages[stage].version
    for stage in stages:
        for name, value in record.params.get(stage, {}).items():
            row[f"param.{stage}.{name}"] = value
    for name, value in record.metrics.items():
        row[f"metric.{name}"] = value
    return row


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


def runs_dataframe(records: Iterable[RunRecord]) -> pandas.DataFrame:
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
    :data:`WHERE_MAX_DEPTH` are refused with a :class:`~modver.errors.UsageError`.
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

    def _error(self, detail: str) -> UsageError:
        shown = self.expression if len(self.expression) <= 80 else self.expression[:77] + "..."
        return UsageError(f"invalid --where expression {shown!r}: {detail}", hint=_WHERE_HINT)

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
    as the runs table's headers show them. Unknown and ambiguous names raise :class:`~modver.errors.UsageError`.
    """
    columns = list(columns)
    if name in columns:
        return name
    matches = [c for c in columns if c.endswith("." + name)]
    if len(matches) == 1:
        return matches[0]
    if matches:
        raise UsageError(
            f"column {name!r} in {option} is ambiguous: {', '.join(matches)}", hint="write one of them in full"
        )
    close = suggest(name, columns + [c.split(".")[-1] for c in columns])
    raise UsageError(
        f"unknown column {name!r} in {option}" + (f" (did you mean {close!r}?)" if close else ""),
        hint="columns of the recorded runs: " + ", ".join(columns),
    )


def sort_records(records: Iterable[RunRecord], sort: str) -> list[RunRecord]:
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


def filter_records(records: Iterable[RunRecord], expression: str) -> list[RunRecord]:
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


# -- the runs table as shown ------------------------------------------------------------------


@dataclass(frozen=True)
class ViewColumn:
    """A column of ``modver runs``: its full name, its header, its values, and its priority
    (0: never hidden; a higher number is hidden first when the table does not fit)."""

    name: str
    header: str
    values: tuple[Any, ...]
    priority: int


RUN_ID_MIN = 15  # yyyymmdd-HHMMSS: a prefix that still reads as the start time


def unique_prefixes(ids: Sequence[str], among: Iterable[str], minimum: int = RUN_ID_MIN) -> dict[str, str]:
    """The shortest prefix of each of ``ids`` that no other id in ``among`` shares (at least
    ``minimum`` characters), one length for all so that they line up."""
    everyone = sorted(set(among) | set(ids))
    position = {run_id: i for i, run_id in enumerate(everyone)}

    def common(a: str, b: str) -> int:
        n = 0
        while n < min(len(a), len(b)) and a[n] == b[n]:
            n += 1
        return n

    length = minimum
    for run_id in ids:
        i = position[run_id]
        for j in (i - 1, i + 1):
            if 0 <= j < len(everyone):
                length = max(length, common(run_id, everyone[j]) + 1)
    return {run_id: run_id[:length] for run_id in ids}


def short_headers(columns: Iterable[str]) -> dict[str, str]:
    """How the runs table heads each column: ``version.model`` → ``model``, ``param.model.C``
    → ``model.C``, ``metric.accuracy`` → ``accuracy``; a column whose short header another
    column shares keeps its full name."""
    columns = list(columns)
    short = {c: c.split(".", 1)[1] if c.startswith(("version.", "param.", "metric.")) else c for c in columns}
    taken: dict[str, int] = {}
    for header in short.values():
        taken[header] = taken.get(header, 0) + 1
    return {c: h if taken[h] == 1 else c for c, h in short.items()}


def runs_view(
    records: Sequence[RunRecord], ids: Iterable[str] = (), select: Sequence[str] | None = None
) -> list[ViewColumn]:
    """The columns of ``modver runs``: run ids cut to unique prefixes (among ``ids``, every
    recorded run), who ran it (``by``: user@host, when runs come from several), status, whether the
    run came from the cache, versions, the params that vary
    across runs, metrics, time. ``select`` names columns (full names, headers or globs of
    either) to show instead, in its order; an unknown name raises UsageError."""
    rows = [flatten_record(r) for r in records]
    names = table_columns(rows)
    prefixes = unique_prefixes([r.run for r in records], ids)
    values = {c: tuple(row.get(c) for row in rows) for c in names}
    values["run"] = tuple(prefixes[r.run] for r in records)
    values["cached"] = tuple(cached_cell(r) for r in records)
    names.insert(names.index("status") + 1, "cached")
    by = tuple(f"{r.user or '?'}@{r.host or '?'}" for r in records)  # a team's runs (modver pull): who and where
    if len(set(by)) > 1:
        values["by"] = by
        names.insert(1, "by")
    headers = short_headers(names)

    def varies(c: str) -> bool:
        return len({repr(v) for v in values[c]}) > 1

    if select is not None:
        return _selected(names, headers, values, select, varies)
    # what is dropped first to fit (higher first): what tells these runs apart stays longest
    base = {"run": 0, "by": 3, "status": 2, "cached": 4, "started": 5, "duration": 7}
    out = []
    params = []
    for c in names:
        if c in base:
            priority = base[c]
        elif c.startswith("metric."):
            priority = 1
        elif c.startswith("version."):
            priority = 3 if varies(c) else 6
        elif varies(c):
            params.append(ViewColumn(c, headers[c], values[c], 2))
            continue
        else:
            continue  # a param with one value in every run says nothing about the difference
        out.append(ViewColumn(c, headers[c], values[c], priority))
    # the varying params right after the run's identity, so the rows read apart
    at = next((i for i, v in enumerate(out) if v.name.startswith(("version.", "metric."))), len(out))
    return [*out[:at], *params, *out[at:]]


def _selected(
    names: list[str],
    headers: Mapping[str, str],
    values: Mapping[str, tuple[Any, ...]],
    select: Sequence[str],
    varies: Callable[[str], bool],
) -> list[ViewColumn]:
    """The columns ``--columns`` asks for, in its order; never hidden to fit, except the columns
    a glob matched whose value is one and the same in every row: those come after the glob's
    varying matches and are the first hidden."""
    chosen: list[ViewColumn] = []
    taken: set[str] = set()
    for pattern in select:
        matched = [c for c in _select(names, headers, [pattern]) if c not in taken]
        taken.update(matched)
        glob = any(ch in pattern for ch in "*?[")
        constant = {c for c in matched if glob and c != "run" and not varies(c)}
        for c in sorted(matched, key=lambda c: c in constant):  # stable: the glob's order otherwise
            chosen.append(ViewColumn(c, headers[c], values[c], 8 if c in constant else 0))
    return chosen


def cached_cell(record: RunRecord) -> str:
    """``all`` for a run whose every stage came from the cache, ``2/4`` for some, else empty."""
    cached = list(record.cached.values())
    if not cached or not any(cached):
        return ""
    return "all" if all(cached) else f"{sum(cached)}/{len(cached)}"


def _select(names: list[str], headers: Mapping[str, str], patterns: Sequence[str]) -> list[str]:
    chosen: list[str] = []
    for pattern in patterns:
        matched = [c for c in names if fnmatch.fnmatchcase(c, pattern) or fnmatch.fnmatchcase(headers[c], pattern)]
        if not matched:
            close = suggest(pattern, [*names, *headers.values()])
            raise UsageError(
                f"no column matches {pattern!r} in --columns" + (f" (did you mean {close!r}?)" if close else ""),
                hint="columns of these runs: " + ", ".join(headers[c] for c in names),
            )
        chosen += [c for c in matched if c not in chosen]
    return chosen
