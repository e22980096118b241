"""Running one stage: a small, picklable task in, a cache entry and the stage's record part out.

A :class:`StageTask` says everything a stage run needs — the stage, its version's fingerprint,
the git commit that stores its files and the entry they run under, the keys of its inputs'
cached outputs, its data paths and params, and the project's store (:func:`task_for` makes the
task of a planned stage). It needs neither the façade nor the manifest: :func:`run_task` runs it
in this process or any other one that sees the project folder (a worker started with ``spawn``,
a Dask worker, a batch job):

1. the version is materialized from the git history (once; then reused) and its entry imported;
2. the inputs are loaded from the cache (verified) unless the caller hands them over in memory;
3. the stage is called with its inputs and params, its stdout/stderr appended to its log files
   and the metrics it logs collected;
4. its output is saved in the cache under the task's key (one atomic rename).

The result (:class:`TaskResult`) holds the stage's status, time per phase (materialize, import,
load, call, save), metrics, and — when it failed — the error, ready for the run record.
"""

from __future__ import annotations

import contextlib
import inspect
import io
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from modver import _fs, errors
from modver.names import did_you_mean
from modver.record import ErrorInfo, StageStatus
from modver.store.layout import Store

if TYPE_CHECKING:  # pragma: no cover
    from modver.engine.planner import StagePlan
    from modver.engine.scriptplan import ScriptFiles

__all__ = ["Prepared", "StageTask", "TaskResult", "call_problem", "capture_into", "prepare", "run_task", "task_for"]


@dataclass(frozen=True)
class StageTask:
    """One stage to run (see the module docstring). Plain data: it pickles."""

    store: Store  # the project's store (``store.root``: the project folder)
    stage: str
    fingerprint: str
    commit: str  # the history commit that stores the version's files
    entry: str  # the entry its version stored ("path.py:func")
    key: str  # the cache key its output is saved under
    label: str = ""  # "v3", for the cache entry
    inputs: Mapping[str, str] = field(default_factory=dict)  # kwarg -> an upstream stage's cache key
    upstream: Mapping[str, str] = field(default_factory=dict)  # kwarg -> that upstream stage's name
    data: Mapping[str, str] = field(default_factory=dict)  # kwarg -> absolute path of a data input
    params: Mapping[str, Any] = field(default_factory=dict)
    logs: tuple[str, str] | None = None  # stdout, stderr log files (appended)
    run: str | None = None  # the run it belongs to (kept with the cache entry)
    key_parts: Mapping[str, Any] = field(default_factory=dict)  # kept with the cache entry
    script: ScriptFiles | None = None  # a script stage: its files (run in a workspace)

    @property
    def is_module(self) -> bool:
        """Whether the entry is a whole module (``train.py``), run as ``__main__``."""
        return ":" not in self.entry


def task_for(store: Store, p: StagePlan, run_id: str | None) -> StageTask:
    """The :class:`StageTask` of planned stage ``p`` (its version registered:
    ``p.version``); what it prints is logged under run ``run_id`` (None: not logged)."""
    assert p.version is not None, "a run registers every stage's version while planning"
    runs = store.run_store()
    logs = (
        (str(runs.log_path(run_id, p.name, "stdout")), str(runs.log_path(run_id, p.name, "stderr")))
        if run_id is not None
        else None
    )
    inputs = {kw: i.key for kw, i in p.key_parts.inputs.items() if i.key is not None}
    upstream = {kw: i.stage for kw, i in p.key_parts.inputs.items() if i.stage is not None}
    data = {kw: str(store.root / i.data) for kw, i in p.key_parts.inputs.items() if i.data is not None}
    data.update(p.data_paths)  # restored bytes of a data input (``blame`` reverting data)
    return StageTask(
        store=store,
        stage=p.name,
        fingerprint=p.version.fingerprint,
        commit=p.version.commit,
        entry=p.entry,
        key=p.key,
        label=p.label,
        inputs=inputs,
        upstream=upstream,
        data=data,
        params=dict(p.spec.params),
        logs=logs,
        run=run_id,
        key_parts=p.key_parts.to_json(),
        script=p.files,
    )


@dataclass(frozen=True)
class TaskResult:
    """What running a :class:`StageTask` gave."""

    status: StageStatus  # SUCCEEDED or FAILED
    duration: float | None = None  # seconds of the call
    timings: Mapping[str, float] = field(default_factory=dict)
    metrics: tuple[dict[str, Any], ...] = ()  # the metric events the stage logged
    error: ErrorInfo | None = None
    message: str | None = None  # the one-line error for the user, when it failed
    hint: str | None = None
    output: Any = field(default=None, compare=False, repr=False)  # in-process callers only
    outs: Mapping[str, str] = field(default_factory=dict)  # a script stage's out path -> its content hash


@dataclass
class Prepared:
    """A task's callable, loaded and checked (see :func:`prepare`), and what that cost."""

    call: Callable[..., Any]
    timings: dict[str, float]
    printed: tuple[str, str] = ("", "")  # what importing it printed: stdout, stderr


class _Tee(io.TextIOBase):
    """Write to a log and, optionally, echo to a stream."""

    def __init__(self, log: TextIO, echo: TextIO | None):
        self.log, self.echo = log, echo

    def write(self, text: str) -> int:
        self.log.write(text)
        if self.echo is not None:
            self.echo.write(text)
        return len(text)

    def flush(self) -> None:
        self.log.flush()
        if self.echo is not None:
            self.echo.flush()

    def isatty(self) -> bool:
        return False


# Output is routed per task: while a stage runs, ``sys.stdout``/``sys.stderr`` are routers that
# write to the capture of the calling context (a ContextVar), so stages run at once in threads of
# one process (a Dask worker with --nthreads 2) each write to their own logs. A thread a stage
# started itself does not inherit the context: it writes to the outermost capture open in the
# process (its stage's, when one runs at a time), as modver.metrics does.
_capture_of: ContextVar[tuple[_Tee, _Tee] | None] = ContextVar("modver_capture", default=None)
_open: list[tuple[_Tee, _Tee]] = []  # the captures open in this process, outermost first
_lock = threading.RLock()  # re-entrant: a finalizer may write while this thread holds it
_saved: list[tuple[TextIO, TextIO]] = []  # the streams the routers replaced, while they are in place
# a whole-module stage runs as __main__ with its own sys.argv, which a process has only one of:
# such stages take turns within a process (function stages run beside them)
_SCRIPT_TURN = threading.Lock()


class _Router(io.TextIOBase):
    """``sys.stdout`` (``index`` 0) or ``sys.stderr`` (1) while captures are open: writes go to
    the calling context's capture, else to the outermost one, else to the stream it replaced."""

    def __init__(self, index: int, replaced: TextIO):
        self.index, self.replaced = index, replaced

    def _target(self) -> TextIO | _Tee:
        capture = _capture_of.get()
        if capture is None:
            with _lock:
                capture = _open[0] if _open else None
        return capture[self.index] if capture is not None else self.replaced

    def write(self, text: str) -> int:
        return self._target().write(text)

    def flush(self) -> None:
        self._target().flush()

    def isatty(self) -> bool:
        return False

    def close(self) -> None:
        """Nothing: a router closes nothing (and is not flushed when it is dropped)."""

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return getattr(self.replaced, "encoding", None) or "utf-8"


@contextlib.contextmanager
def capture_into(out: TextIO, err: TextIO, echo: TextIO | None) -> Iterator[None]:
    """Tee what this context writes to stdout/stderr into ``out``/``err`` (and ``echo``) for the
    block; other threads' captures are kept apart (see the routers above), and the streams are
    put back when the last capture of the process closes."""
    tees = (_Tee(out, echo), _Tee(err, echo))
    with _lock:
        if not _open:
            _saved.append((sys.stdout, sys.stderr))
            sys.stdout, sys.stderr = _Router(0, sys.stdout), _Router(1, sys.stderr)
        _open.append(tees)
    token = _capture_of.set(tees)
    try:
        yield
    finally:
        _capture_of.reset(token)
        with _lock:
            _open.remove(tees)
            if not _open:
                stdout, stderr = _saved.pop()
                if isinstance(sys.stdout, _Router):  # not if the stage put a stream of its own there
                    sys.stdout = stdout
                if isinstance(sys.stderr, _Router):
                    sys.stderr = stderr


@contextlib.contextmanager
def _capture(logs: tuple[str, str] | None, echo: TextIO | None) -> Iterator[None]:
    """Tee stdout/stderr into a stage's log files (appended: its import, then its call)."""
    if logs is None:
        with capture_into(io.StringIO(), io.StringIO(), echo):
            yield
        return
    with contextlib.ExitStack() as files:
        with _fs.write_faults("cannot write what the stage prints", logs[0]):
            Path(logs[0]).parent.mkdir(parents=True, exist_ok=True)
            out = files.enter_context(open(logs[0], "a", encoding="utf-8"))
            err = files.enter_context(open(logs[1], "a", encoding="utf-8"))
        with capture_into(out, err, echo):
            yield


@contextlib.contextmanager
def _timed(timings: dict[str, float], phase: str) -> Iterator[None]:
    start = time.perf_counter()
    try:
        yield
    finally:
        timings[phase] = round(timings.get(phase, 0.0) + time.perf_counter() - start, 6)


def _version_files(root: Path, commit: str) -> dict[str, bytes]:
    """A version's files, read from the git history of the project at ``root``."""
    from modver.engine.scriptrun import version_files

    return version_files(root, commit)


def _load_callable(task: StageTask, timings: dict[str, float]) -> Callable[..., Any]:
    from modver.store import materialize

    store = task.store
    with _timed(timings, "materialize"):
        materialize.materialize(
            lambda: _version_files(store.root, task.commit), task.fingerprint, store, entry=task.entry
        )
    with _timed(timings, "import"):
        return materialize.load_entry(store, task.fingerprint, task.entry)


def call_problem(task: StageTask, fn: Callable[..., Any], names: Iterable[str]) -> errors.RunError | None:
    """Why ``fn`` cannot take keyword arguments ``names`` (the stage's inputs and params), or None."""
    names = list(names)
    if task.is_module:
        deps = set(task.script.deps) if task.script is not None else set()
        if set(task.inputs) - deps:
            return errors.RunError(
                f"stage {task.stage} is a whole module ({task.entry}): it takes params and data files, not stage outputs",
                where=task.stage,
                hint="give it data inputs only, or make its entry a function",
            )
        return None
    try:
        inspect.signature(fn).bind(**dict.fromkeys(names))
    except TypeError as exc:
        try:
            parameters = list(inspect.signature(fn).parameters)
        except (TypeError, ValueError):
            parameters = []
        typo = next(
            (did_you_mean(n, parameters) for n in names if did_you_mean(n, parameters) and n not in parameters), ""
        )
        return errors.RunError(
            f"stage {task.stage}: {task.entry} cannot be called with {', '.join(names) or 'no arguments'}: {exc}",
            where=task.stage,
            hint=f"{typo}its parameters are ({', '.join(parameters) or '?'}); fix `inputs:`/`params:` in the manifest or --set",
        )
    except ValueError:  # no signature to check (some builtins): the call itself will tell
        return None
    return None


def _argument_names(task: StageTask) -> list[str]:
    return [*task.inputs, *task.data, *task.params]


def prepare(task: StageTask, echo: TextIO | None = None) -> Prepared | None:
    """Load the task's callable and check that it takes the task's arguments, before any stage
    runs (a mistyped ``--set`` fails now, not after the upstream stages' minutes).

    A stage whose code does not even import is left alone (None): it fails when it runs, with
    its traceback. A callable that refuses the arguments raises :class:`~modver.errors.RunError`.
    """
    if task.script is not None:
        return None  # a script runs in a process of its own: nothing to load here
    timings: dict[str, float] = {}
    out, err = io.StringIO(), io.StringIO()
    try:
        with capture_into(out, err, echo):
            fn = _load_callable(task, timings)
    except Exception:  # noqa: BLE001 - reported, with its traceback, when the stage runs
        return None
    problem = call_problem(task, fn, _argument_names(task))
    if problem is not None:
        raise problem
    return Prepared(fn, timings, (out.getvalue(), err.getvalue()))


def _user_frame(tb: Any) -> str | None:
    """``file:line`` (the project path) of the innermost frame that is the user's materialized code."""
    from modver.store.materialize import version_relative_path

    where = None
    for frame in traceback.extract_tb(tb):
        rel = version_relative_path(frame.filename)
        if rel is not None:
            where = f"{rel}:{frame.lineno}"
    return where


def run_task(
    task: StageTask,
    *,
    prepared: Prepared | None = None,
    loaded: Mapping[str, Any] | None = None,
    echo: TextIO | None = None,
    keep_output: bool = False,
) -> TaskResult:
    """Run ``task`` (see the module docstring) and save its output.

    ``prepared``: its callable, loaded and checked already; ``loaded``: outputs already in memory,
    by cache key (the others are loaded from the cache). A stage that raises, or whose output
    cannot be saved, gives a FAILED result; Ctrl-C propagates. ``keep_output`` puts the output in
    the result, for a caller in this process that passes it on.
    """
    from modver.metrics import collect_metrics, should_prune
    from modver.store.materialize import make_importable

    if task.script is not None:
        from modver.engine.scriptrun import run_script

        done = run_script(task, echo)
        return TaskResult(done.status, done.duration, done.timings, done.metrics, done.error, done.message, done.hint,
                          outs=done.outs)  # fmt: skip
    timings = dict(prepared.timings) if prepared is not None else {}
    store = task.store
    cache = store.output_cache()
    started = time.perf_counter()
    metrics: tuple[dict[str, Any], ...] = ()
    try:
        fn = prepared.call if prepared is not None else _load_callable(task, timings)
        if prepared is None:
            problem = call_problem(task, fn, _argument_names(task))
            if problem is not None:
                raise problem
        kwargs: dict[str, Any] = dict(task.data)
        for kw, key in task.inputs.items():
            if loaded is not None and key in loaded:
                kwargs[kw] = loaded[key]
            else:
                make_importable(store)
                with _timed(timings, "load"):
                    kwargs[kw] = cache.load(key)
        kwargs.update(task.params)
        turn = _SCRIPT_TURN if task.is_module else contextlib.nullcontext()
        with turn:
            started = time.perf_counter()
            with collect_metrics(task.stage) as collector, _capture(task.logs, echo):
                try:
                    with _timed(timings, "call"):
                        output = fn(**kwargs)
                finally:
                    metrics = tuple(collector.events)
    except errors.ModverError as exc:  # a bad param, a whole-module stage that exited 1, an unreadable input
        return _failed(task, exc, started, timings, metrics, str(exc), exc.hint, exc.where)
    except Exception as exc:  # noqa: BLE001 - the stage's own error: recorded with its traceback
        if should_prune():  # it stopped itself by raising, its trial pruned
            error = ErrorInfo("Pruned", f"the search pruned its trial; the stage stopped: {exc}", task.stage)
            return TaskResult(StageStatus.FAILED, None, dict(timings), metrics, error, f"stage {task.stage}: pruned")
        where = _user_frame(exc.__traceback__)
        message = f"stage {task.stage} failed: {type(exc).__name__}: {exc}" + (f" (at {where})" if where else "")
        hint = f"full traceback: `modver show {task.run}` or rerun with --debug" if task.run else None
        return _failed(task, exc, started, timings, metrics, message, hint, where)
    duration = round(time.perf_counter() - started, 6)
    if should_prune():  # the stage stopped itself for a search that pruned its trial: not an output to keep
        error = ErrorInfo("Pruned", "the search pruned its trial; the stage stopped early", task.stage)
        return TaskResult(StageStatus.FAILED, duration, timings, metrics, error, f"stage {task.stage}: pruned")
    meta = {
        "stage": task.stage,
        "version": task.label,
        "duration": duration,
        "metrics": list(metrics),
        "stdout": Path(task.logs[0]) if task.logs else None,
        "stderr": Path(task.logs[1]) if task.logs else None,
        "run": task.run,
        "key_parts": dict(task.key_parts),
    }
    try:
        with _timed(timings, "save"):
            cache.put(task.key, output, meta)
    except errors.StoreError as exc:  # a write the file system refused (a full disk): nothing published
        error = ErrorInfo(type(exc).__name__, str(exc), task.stage)
        return TaskResult(StageStatus.FAILED, duration, timings, metrics, error, f"stage {task.stage}: {exc}", exc.hint)
    except errors.CacheError as exc:
        error = ErrorInfo(type(exc).__name__, str(exc), task.stage)
        return TaskResult(
            StageStatus.FAILED, duration, timings, metrics, error,
            f"stage {task.stage}: its output cannot be saved: {exc}",
            "return picklable objects (numpy arrays, DataFrames, dicts, fitted models)",
        )  # fmt: skip
    return TaskResult(StageStatus.SUCCEEDED, duration, timings, metrics, output=output if keep_output else None)


def _failed(
    task: StageTask,
    exc: BaseException,
    started: float,
    timings: Mapping[str, float],
    metrics: tuple[dict[str, Any], ...],
    message: str,
    hint: str | None,
    where: str | None,
) -> TaskResult:
    error = ErrorInfo(type(exc).__name__, str(exc), task.stage, where, traceback.format_exc())
    duration = round(time.perf_counter() - started, 6)
    return TaskResult(StageStatus.FAILED, duration, dict(timings), metrics, error, message, hint)
