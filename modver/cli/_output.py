"""How the command line shows things: rich tables and highlighted code on a terminal, plain
aligned text elsewhere, JSON, the pager, and the renderings of versions, runs and diffs.

Part of the command line (:mod:`modver.cli` is the other part): the only modules that import rich.
Everything here takes the façade's models and prints them; nothing computes.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from modver.engine.diff import ManifestDiff, StageDiff
    from modver.engine.runtable import ViewColumn
    from modver.record import RunRecord
    from modver.results import RunDiff, ShownRun, ShownVersion
    from modver.store.sweepstore import Best, SweepPoint
    from modver.sweep.driver import Progress
    from modver.sweep.graph import Graph

_state: dict[str, Any] = {"paged": None, "no_pager": False}


def console(stderr: bool = False) -> Any:  # rich.console.Console
    """The console to print to (inside :func:`paged`, the pager's)."""
    if not stderr and _state["paged"] is not None:
        return _state["paged"]
    from rich.console import Console

    return Console(stderr=stderr, highlight=False, soft_wrap=not sys.stdout.isatty())


def is_terminal() -> bool:
    return sys.stdout.isatty()


def print_json(value: Any) -> None:
    sys.stdout.write(json.dumps(value, indent=2, sort_keys=False, default=str) + "\n")


def fail(message: str, hint: str | None) -> None:
    """The one error line (and a dim hint) on stderr."""
    from rich.markup import escape

    err = console(stderr=True)
    err.print(f"[bold red]Error:[/] {escape(message)}")
    if hint:
        err.print(f"[dim]{escape(hint)}[/]")


@contextlib.contextmanager
def paged(no_pager: bool = False) -> Iterator[None]:
    """On a terminal, send what the block prints through the pager, as git does: ``$PAGER`` (less
    by default, with ``LESS=FRX``: it quits at once when the text fits one screen); never with
    ``--no-pager``, an empty ``PAGER``, or when stdout is not a terminal."""
    if not is_terminal() or not sys.stdin.isatty() or no_pager or os.environ.get("PAGER") == "":
        yield
        return
    os.environ.setdefault("LESS", "FRX")
    pager_console = console()
    _state["paged"] = pager_console
    try:
        with pager_console.pager(styles=True):
            yield
    finally:
        _state["paged"] = None


# -- tables that fit -----------------------------------------------------------------------
#
# Every table is a list of Columns fitted to the width of the terminal (COLUMNS when stdout is
# no terminal, else the terminal's width, else 80: see width_limit): text columns are cut (with "…") down to their
# min_width, then whole columns are dropped, the highest priority number first (rightmost
# first among equals; priority 0 is never dropped), and a line says which were hidden and how
# to see them. Numbers and ids ("number", "id" kinds) are never cut.

GAP = 2  # spaces between columns


@dataclass(frozen=True, eq=False)
class Column:
    """One column of a table: its header and cells as shown, how it may be fitted."""

    header: str
    cells: Sequence[str]
    priority: int = 0  # 0: never dropped; a higher number is dropped first
    kind: str = "text"  # "text" may be cut to min_width; "number" (right-aligned) and "id" never
    min_width: int = 12


@dataclass(frozen=True)
class Fitted:
    """Columns that fit: each with its width; those hidden to fit."""

    columns: list[Column]
    widths: list[int]
    hidden: list[Column]


def fit(columns: Sequence[Column], width: int | None) -> Fitted:
    """The columns that fit in ``width`` characters (None: all, at their natural width)."""
    shown = list(columns)
    natural = {id(c): max([len(c.header), *(len(v) for v in c.cells)]) for c in columns}

    def least(c: Column) -> int:
        return min(natural[id(c)], max(c.min_width, len(c.header))) if c.kind == "text" else natural[id(c)]

    def total(cols: Sequence[Column], size: Callable[[Column], int]) -> int:
        return sum(size(c) for c in cols) + GAP * max(len(cols) - 1, 0)

    hidden: list[Column] = []
    while width is not None and total(shown, least) > width:
        droppable = [c for c in shown if c.priority > 0]
        if not droppable:
            break
        drop = max(reversed(droppable), key=lambda c: c.priority)  # the rightmost of the highest
        shown.remove(drop)
        hidden.append(drop)
    widths = [natural[id(c)] for c in shown]
    excess = total(shown, lambda c: natural[id(c)]) - width if width is not None else 0
    while excess > 0:  # cut the widest text column that can still give, one character at a time
        cuttable = [i for i, c in enumerate(shown) if c.kind == "text" and widths[i] > least(c)]
        if not cuttable:
            break
        i = max(cuttable, key=lambda i: widths[i])
        widths[i] -= 1
        excess -= 1
    return Fitted(shown, widths, [c for c in columns if c in hidden])


DEFAULT_WIDTH = 80  # piped output with no terminal anywhere and no COLUMNS


def width_limit() -> int:
    """How wide tables may be: the terminal's width; when stdout is no terminal (``| head``,
    ``| less``), COLUMNS, else the width of the terminal the command runs in (stderr's, or the
    controlling terminal's), else 80."""
    if is_terminal():
        return int(console().width)
    try:
        columns = int(os.environ.get("COLUMNS", "0"))
    except ValueError:
        columns = 0
    if columns > 0:
        return columns
    try:
        return os.get_terminal_size(sys.stderr.fileno()).columns
    except (OSError, ValueError, AttributeError):
        pass
    try:
        fd = os.open("/dev/tty", os.O_RDONLY | os.O_NOCTTY)
    except OSError:
        return DEFAULT_WIDTH
    try:
        return os.get_terminal_size(fd).columns
    except OSError:
        return DEFAULT_WIDTH
    finally:
        os.close(fd)


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: max(width - 1, 0)] + "…"


def fitted_table(
    columns: Sequence[Column], *, title: str | None = None, show_hint: str = "see them with --json or a wider terminal"
) -> None:
    """Print ``columns`` fitted to :func:`width_limit`, then the line naming hidden columns.

    ``show_hint`` says how to see hidden columns (e.g. ``"show them with --columns ..."``).
    """
    width = width_limit()
    if columns and columns[0].cells:  # a column with no value in any row says nothing: never shown
        columns = [c for c in columns if c.priority == 0 or any(c.cells)]
    out = fit(columns, width)
    rows = len(out.columns[0].cells) if out.columns else 0
    note = hidden_line(out.hidden, show_hint) if out.hidden else ""
    if note and width is not None:
        import textwrap

        note = "\n".join(textwrap.wrap(note, width, break_on_hyphens=False))

    def line(values: Sequence[str]) -> str:
        parts = [v.rjust(w) if c.kind == "number" else v.ljust(w) for c, v, w in zip(out.columns, values, out.widths)]
        return (" " * GAP).join(parts).rstrip()

    header = line([_cut(c.header, w) for c, w in zip(out.columns, out.widths)])
    body = [line([_cut(c.cells[r], w) for c, w in zip(out.columns, out.widths)]) for r in range(rows)]
    if is_terminal():
        from rich.markup import escape

        shown = console()
        if title:
            shown.print(f"[bold]{escape(title)}[/]")
        shown.print(f"[bold]{escape(header)}[/]")
        for text in body:
            shown.print(escape(text), no_wrap=True, overflow="ignore", crop=False)
        if note:
            shown.print(f"[dim]{escape(note)}[/]")
        return
    if title:
        print(title)
    print(header)
    for text in body:
        print(text)
    if note:
        print(note)


def hidden_line(hidden: Sequence[Column], show_hint: str) -> str:
    """``(3 columns hidden to fit: started, duration, prep.scale; show them with ...)``."""
    names = ", ".join(c.header for c in hidden)
    return f"({len(hidden)} column{'s' if len(hidden) != 1 else ''} hidden to fit: {names}; {show_hint})"


def table(
    columns: Sequence[str],
    rows: Sequence[Sequence[Any]],
    title: str | None = None,
    *,
    priorities: Sequence[int] = (),
    kinds: Sequence[str] = (),
) -> None:
    """A table of ``rows`` under the headers ``columns``, fitted to the terminal (:func:`fit`);
    ``priorities`` and ``kinds`` per column as :class:`Column` has them (default 0, "text")."""
    cells = [["" if v is None else str(v) for v in row] for row in rows]
    fitted_table(
        [
            Column(
                header,
                [row[i] for row in cells],
                priorities[i] if i < len(priorities) else 0,
                kinds[i] if i < len(kinds) else "text",
            )
            for i, header in enumerate(columns)
        ],
        title=title,
    )


def show_code(code: str, lexer: str) -> None:
    if not is_terminal():
        sys.stdout.write(code if code.endswith("\n") or not code else code + "\n")
        return
    from rich.syntax import Syntax

    if lexer == "diff":  # wrapped here, each piece keeping its line's +/- prefix
        code = wrap_diff(code, int(console().width))
    console().print(Syntax(code, lexer, theme="ansi_dark", background_color="default", word_wrap=True))


def wrap_diff(diff: str, width: int) -> str:
    """``diff`` with lines longer than ``width`` split, every piece starting with the line's
    ``+``, ``-`` or space, so that a continued line still reads as added or removed."""
    out = []
    for line in diff.splitlines():
        mark = line[:1] if line[:1] in ("+", "-", " ") and not line.startswith(("+++", "---")) else ""
        if len(line) <= width or not mark or width < 8:
            out.append(line)
            continue
        body, room = line[1:], width - 1
        out.extend(mark + body[i : i + room] for i in range(0, len(body), room))
    return "\n".join(out) + ("\n" if diff.endswith("\n") else "")


def short(fingerprint: str | None, n: int = 12) -> str:
    return fingerprint.split(":", 1)[-1][:n] if fingerprint else "-"


def date(iso: str | None) -> str:
    return (iso or "")[:19].replace("T", " ")


def num(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "-" if value is None else str(value)


def fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, (dict, list)):
        return json.dumps(value, sort_keys=True)
    return str(value)


def cell(column: str, value: Any) -> str:
    """A value of the runs table as shown."""
    if value is None or value != value:  # None or NaN
        return "-"
    if column == "started":
        return date(str(value))
    if column == "duration":
        return f"{float(value):.2f}s"
    return num(value)


def size(count: int) -> str:
    value = float(count)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{value:.1f} TB"  # pragma: no cover


def timings(phases: Mapping[str, float] | None) -> str:
    """``materialize 0.01s, import 0.30s, call 0.33s, save 0.02s`` (phases that took time)."""
    order = ("materialize", "import", "load", "call", "save")
    return ", ".join(f"{k} {phases[k]:.2f}s" for k in order if phases and k in phases)


def run_timings(parts: Mapping[str, float]) -> str:
    """A run's time outside its stages' work: planning (fingerprints, snapshots) and the rest."""
    names = [("planning", "plan"), ("in stages", "stages"), ("other", "other")]
    return ", ".join(f"{label} {parts[k]:.2f}s" for label, k in names if k in parts)


# -- renderings -------------------------------------------------------------------------------


def shown_version(shown: ShownVersion) -> None:
    """``modver show STAGE@REF``."""
    v, c = shown.version, shown.closure
    print(f"{v.stage}@{v.version}  {v.fingerprint}")
    print(f"entry:   {v.entry}")
    if shown.declared_entry not in (None, v.entry):
        print(f"         (stored under this path; the manifest now declares {shown.declared_entry}: "
              "the version runs from its stored path)")  # fmt: skip
    print(f"origin:  {v.origin or 'working tree snapshot'}")
    if v.committed:
        print(f"committed: {v.committed}  (where `modver index` later found this code)")
    print(f"created: {date(v.created)}")
    if v.message:
        print(f"message: {v.message}")
    if v.tags:
        print(f"tags:    {', '.join(v.tags)}")
    print(f"files:   {', '.join(c.files)}")
    if c.deps:
        print(f"deps:    {', '.join(c.deps)}")
    if c.imports:
        print(f"imports: {', '.join(c.imports)}  (imported on load, not in the fingerprint)")
    if c.unresolved:
        print("not resolved statically (included conservatively):")
        for u in c.unresolved:
            print(f"  {u.path}:{u.line}: {u.reason} -> {u.included}")
        if any(u.included.startswith("nothing") for u in c.unresolved):  # a file or module named at run time
            print(f"to count the files these calls run or import, list them under `{v.stage}:` in the manifest:")
            print(f"    deps: [{', '.join([*c.deps, 'path/to/file.py'])}]")
    print()
    parts = shown.parts
    lines = [str(d.line) if d.line == d.end_line else f"{d.line}-{d.end_line}" for d in parts]
    table(
        ["definition", "kind", "file", "lines"],
        [[d.name, d.kind, d.path, n] for d, n in zip(parts, lines)],
        priorities=[0, 2, 1, 3],
        kinds=["id", "id", "text", "id"],
    )
    for part in parts:
        print()
        print(f"# {part.path}:{part.line}  {part.name}")
        show_code(part.source, "python")


def shown_run(shown: ShownRun) -> None:
    """``modver show RUN``."""
    record = shown.record
    print(f"run {record.run}  {record.status}")
    print(f"started:  {date(record.started)}   duration: {record.duration or 0:.2f}s")
    print(f"git:      {(record.git_commit or '(no commit)')[:12]}{' (dirty)' if record.git_dirty else ''}")
    print(f"manifest: {record.manifest_path}")
    if record.reproduces:
        print(f"reproduces: {record.reproduces}")
    table(
        ["stage", "version", "status", "duration", "where the time went", "params"],
        [
            [
                name,
                stage.version,
                str(stage.status),
                f"{stage.duration:.2f}s" if stage.duration is not None else "-",
                timings(stage.timings) or "-",
                fmt(dict(record.params.get(name, {}))),
            ]
            for name, stage in record.stages.items()
        ],
        priorities=[0, 0, 1, 2, 4, 3],
        kinds=["id", "id", "id", "number", "text", "text"],
    )
    if any(stage.reason for stage in record.stages.values()):  # whole, never cut to fit: it is the why
        print("why each stage ran or came from the cache:")
        width = max(len(name) for name in record.stages)
        for name, stage in record.stages.items():
            if stage.reason:
                print(f"  {name:<{width}}  {stage.reason}")
    if record.timings is not None:
        print(f"time:     {run_timings(record.timings)}")
    for name, value in record.metrics.items():
        print(f"  {name} = {num(value)}")
    if record.error is not None:
        e = record.error
        print(f"error in stage {e.stage}: {e.type}: {e.message}")
        if e.traceback:
            print(e.traceback.rstrip())
    for stage_name, streams in shown.logs.items():
        for stream, text in streams.items():
            if text:
                print(f"--- {stage_name} {stream} ---")
                print(text.rstrip())


def runs_table(view: Sequence[ViewColumn]) -> None:
    """``modver runs``: the columns of :func:`modver.engine.runtable.runs_view`, fitted."""
    columns = []
    for c in view:
        numbers = all((isinstance(v, (int, float)) and not isinstance(v, bool)) or v is None for v in c.values)
        kind = "number" if numbers and c.name not in ("run", "started") else "text"
        if c.name in ("run", "status", "cached", "started") or c.name.startswith("version."):
            kind = "id"
        columns.append(Column(c.header, [cell(c.name, v) for v in c.values], c.priority, kind))
    names = ",".join(c.name for c in view if c.priority == 0) or "run"
    fitted_table(columns, show_hint=f"show them with --columns {names},NAME,... (names or globs) or a wider terminal")


def run_summary(record: RunRecord) -> None:
    """The line a run or a reproduction ends with, and its metrics."""
    cached = record.cached
    served = f" ({sum(cached.values())}/{len(cached)} from cache)" if cached else ""  # fits 80 columns
    print(f"run {record.run}: {record.status} in {record.duration or 0:.2f}s{served}")
    for name, value in record.metrics.items():
        print(f"  {name} = {num(value)}")


def dvc_conversion(conversion: Any, state: str, root: Path) -> None:
    """``modver init --from-dvc``: what converted, what did not (with dvc.yaml's lines)."""
    where = conversion.source
    done = {
        "written": "Wrote",
        "replaced": "Replaced",
        "unchanged": "Already there, unchanged:",
    }[state]
    stages = ", ".join(conversion.stages)
    print(f"{done} {root / 'manifest.yaml'}: {len(conversion.stages)} stages from {where} ({stages})")
    titles = {
        "skipped": "Not converted:",
        "ignored": "Ignored (converted without it):",
        "info": "Notes:",
    }
    for kind, title in titles.items():
        notes = [n for n in conversion.notes if n.kind == kind]
        if notes:
            print(title)
            for note in notes:
                print(f"  {note.render(where)}")
    print(f"{where}, dvc.lock, params files and .dvc/ are unchanged; next: `modver index` or `modver run`")


def stage_diffs(diffs: Sequence[StageDiff]) -> None:
    """``modver diff`` of stages: per stage its status, per changed definition the diff."""
    for d in diffs:
        print(f"{d.stage}: {d.status}  ({d.a} -> {d.b})")
        for c in d.changes:
            print(f"  {c.kind} {c.name}: {c.status}")
            if c.diff and d.status != "unchanged":
                show_code(c.diff, "diff")


def manifest_diff(result: ManifestDiff) -> None:
    if not result.rows:
        print(f"{result.a} and {result.b} declare the same pipeline")
        return
    table(["section", "key", result.a, result.b], [[s, k, fmt(va), fmt(vb)] for s, k, va, vb in result.rows])


def run_diff(result: RunDiff) -> None:
    if not result.rows:
        print(f"runs {result.a} and {result.b} differ in nothing but their ids and times")
        return
    from modver.engine.runtable import unique_prefixes

    ids = unique_prefixes([result.a, result.b], [result.a, result.b])  # short headers leave the keys whole
    rows = [[k, *_told_apart(va, vb)] for k, va, vb in result.rows]
    table(["key", ids[result.a], ids[result.b]], rows, kinds=["id", "text", "text"])


def _told_apart(a: Any, b: Any) -> tuple[str, str]:
    """Two values as shown side by side: floats with the fewest significant digits (4 at least)
    that tell them apart, not 16 decimals; anything else as :func:`fmt` writes it."""
    if not all(isinstance(v, float) for v in (a, b)) or a == b:
        return num(a) if isinstance(a, float) else fmt(a), num(b) if isinstance(b, float) else fmt(b)
    for digits in range(4, 18):
        shown = f"{a:.{digits}g}", f"{b:.{digits}g}"
        if shown[0] != shown[1]:
            return shown
    return repr(a), repr(b)  # pragma: no cover - distinct floats differ at 17 digits


# -- sweeps (issue 9) ------------------------------------------------------------------------------


def point_params(params: Mapping[str, Any]) -> str:
    """``model.C=0.1 augment.noise=0`` (a sweep point's params)."""
    return " ".join(f"{target}={fmt(value)}" for target, value in params.items())


def sweep_plan(graph: Graph) -> None:
    """What ``sweep --dry-run`` prints: per point, what each stage would do; the totals."""
    counts = graph.counts()
    stages = [p.name for p in graph.points[0].plans] if graph.points else []
    rows = [[str(pt.index), point_params(pt.params), *(pt.disposition(s) for s in stages)] for pt in graph.points]
    table(["point", "params", *stages], rows)
    print(
        f"{len(graph.points)} points, {counts['total']} stages: {counts['executions']} stage executions, "
        f"{counts['shared']} shared, {counts['cached']} cached (dry run: nothing executed or recorded)"
    )


def _progress_text(p: Progress, best: Best | None, unit: str = "point") -> str:
    """The live status line: what is done (running and failed only when any), tasks, the best."""
    text = f"{unit}s {p.done}/{p.points} done"
    text += (f", {p.running} running" if p.running else "") + (f", {p.failed} failed" if p.failed else "")
    text += f" | tasks {p.tasks_done}/{p.tasks}, {p.cache_hits} from cache"
    if best is not None:
        text += f" | best {best.metric} " + (f"{num(p.best[1])} ({unit} {p.best[0]})" if p.best else "-")
    if p.live:  # a search's running trials: the last value of the metric each logged
        text += " | live " + ", ".join(
            f"t{trial} {num(value)}" + (f"@{step}" if step is not None else "")
            for trial, (step, value) in p.live.items()
        )
    return text


def _point_name(point: SweepPoint) -> str:
    """``point 3``, or ``trial 3`` for a search's trial."""
    return f"point {point.index}" if point.trial is None else f"trial {point.trial}"


@contextlib.contextmanager
def sweep_progress(
    best: Best | None, *, quiet: bool = False, unit: str = "point"
) -> Iterator[Callable[[Progress], None]]:
    """A sweep's progress: a live line on a terminal, one plain line per finished point otherwise
    (on stderr with ``quiet``: ``--json`` keeps stdout for the record)."""
    say = (lambda text: print(text, file=sys.stderr)) if quiet else print
    if not is_terminal() or quiet:

        def plain(p: Progress) -> None:
            for point in p.finished:
                detail = f" ({point.error})" if point.error else ""
                say(
                    f"{_point_name(point)} ({point_params(point.params)}): {point.status}{detail}  [{p.done}/{p.points}]"
                )

        yield plain
        return
    from rich.live import Live
    from rich.text import Text

    with Live(Text("planning the sweep"), console=console(), refresh_per_second=8, transient=True) as live:

        def update(p: Progress) -> None:
            for point in p.finished:
                live.console.print(f"{_point_name(point)} ({point_params(point.params)}): {point.status}")
            live.update(Text(_cut(_progress_text(p, best, unit), live.console.width - 1)))

        yield update
