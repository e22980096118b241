"""Metrics a stage logs with ``modver.log_metrics(step=None, **metrics)``.

The runner wraps each stage in :func:`collect_metrics`; every call of :func:`log_metrics` inside
it appends one event per metric to that stage's :class:`MetricsCollector`::

    {"name": "accuracy", "value": 0.93, "step": 3 | None, "stage": "evaluate", "time": 1.7e9}

The events go into the cache entry with the stage's output (so a stage served from the cache
replays the metrics it logged when it ran) and :func:`summarize` turns a run's events into the
record's ``metrics`` (last value per name) and ``metric_series`` (every value with its step).

Which collector receives a call: the one of the innermost :func:`collect_metrics` in the calling
context (a ``contextvars.ContextVar``, so stages run concurrently in threads or tasks keep their
metrics apart); in a thread the stage started itself, which does not inherit the context, the
outermost collector active in the process.

Outside a run (a notebook, a script run by hand) :func:`log_metrics` does not fail and does not
warn: it validates the values exactly as in a run, so a mistake shows up before the first real
run, and keeps the events in a bounded module-level buffer (the last
:data:`UNATTACHED_LIMIT`) that :func:`unattached_metrics` returns. Values must be real numbers
(``int``, ``float``, ``bool`` → 0/1, numpy scalars, 0-d arrays or one-element tensors via
``.item()``); anything else raises :class:`~modver.errors.MetricError`.

Live (a search's trials on Dask workers): inside :func:`live`, every event logged in the calling
context also goes to its ``on_metric`` (the worker passes it to the driver while the stage
runs), and :func:`should_prune` asks its ``pruned`` — whether the search pruned the trial, so a
stage can stop itself cleanly. Outside a search, :func:`should_prune` is False.
"""

from __future__ import annotations

import contextlib
import numbers
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextvars import ContextVar
from typing import Any

from modver.errors import MetricError

UNATTACHED_LIMIT = 10_000


class MetricsCollector:
    """The metric events of one stage, in the order they were logged (thread-safe)."""

    def __init__(self, stage: str):
        self.stage = stage
        self.events: list[dict[str, Any]] = []
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"MetricsCollector({self.stage!r}, {len(self.events)} events)"

    def add(self, name: str, value: float, step: int | None) -> dict[str, Any]:
        """Append one event and return it."""
        event = {"name": name, "value": value, "step": step, "stage": self.stage, "time": time.time()}
        with self._lock:
            self.events.append(event)
        return event

    def last(self) -> dict[str, float]:
        """The last value logged for each name."""
        return summarize(self.events)[0]


_current: ContextVar[MetricsCollector | None] = ContextVar("modver_metrics", default=None)
_process_collectors: list[MetricsCollector] = []  # outermost first; the fallback for bare threads
_process_lock = threading.Lock()
_unattached: deque[dict[str, Any]] = deque(maxlen=UNATTACHED_LIMIT)
_live: ContextVar[tuple[Callable[[dict[str, Any]], None], Callable[[], bool]] | None] = ContextVar(
    "modver_live", default=None
)


@contextlib.contextmanager
def live(on_metric: Callable[[dict[str, Any]], None], pruned: Callable[[], bool]) -> Iterator[None]:
    """For the block: each event logged goes to ``on_metric`` too; :func:`should_prune` asks ``pruned``."""
    token = _live.set((on_metric, pruned))
    try:
        yield
    finally:
        _live.reset(token)


def should_prune() -> bool:
    """Whether the search running this stage's trial pruned it (``sweep --optimize --prune``): a
    stage that checks it can stop early, cleanly; its output is then not cached. False outside
    a search, and in a thread the stage started itself."""
    hooks = _live.get()
    return hooks is not None and bool(hooks[1]())


@contextlib.contextmanager
def collect_metrics(stage: str) -> Iterator[MetricsCollector]:
    """Collect the metrics logged while the block runs, as ``stage``'s."""
    collector = MetricsCollector(stage)
    token = _current.set(collector)
    with _process_lock:
        _process_collectors.append(collector)
    try:
        yield collector
    finally:
        _current.reset(token)
        with _process_lock:
            _process_collectors.remove(collector)


def current_collector() -> MetricsCollector | None:
    """The collector :func:`log_metrics` would write to now, or None outside a run."""
    collector = _current.get()
    if collector is None:
        with _process_lock:
            collector = _process_collectors[0] if _process_collectors else None
    return collector


def log_metrics(step: int | None = None, **metrics: Any) -> None:
    """Record numeric metrics for the running stage, e.g. ``log_metrics(step=3, loss=0.2)``.

    ``step`` (an int, optional) places the values on a training curve. Outside a run the
    values are validated and kept in :func:`unattached_metrics`; see the module docstring.
    """
    step = _check_step(step)
    checked = {name: _check_value(name, value) for name, value in metrics.items()}
    collector = current_collector()
    hooks = _live.get()
    for name, value in checked.items():
        if collector is not None:
            event = collector.add(name, value, step)
            if hooks is not None:
                hooks[0](event)
        else:
            _unattached.append({"name": name, "value": value, "step": step, "stage": None, "time": time.time()})
    if collector is None and os.environ.get("MODVER_METRICS_FILE"):  # a script stage, run in its workspace
        _append_to_file(os.environ["MODVER_METRICS_FILE"], checked, step)


def _append_to_file(path: str, checked: Mapping[str, float], step: int | None) -> None:
    """One JSON line per metric, for the run that started this script (modver.engine.workspace)."""
    import json

    lines = "".join(
        json.dumps({"name": name, "value": value, "step": step, "time": time.time()}) + "\n"
        for name, value in checked.items()
    )
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(lines)


def unattached_metrics() -> list[dict[str, Any]]:
    """The events logged outside any run (the most recent :data:`UNATTACHED_LIMIT`)."""
    return list(_unattached)


def clear_unattached() -> None:
    """Forget the events logged outside any run."""
    _unattached.clear()


def summarize(events: Iterable[Mapping[str, Any]]) -> tuple[dict[str, float], dict[str, list[dict[str, Any]]]]:
    """A run record's ``metrics`` (last value per name) and ``metric_series`` from events.

    A name that two stages report, one of them from a metrics file (script stages), is
    qualified with each stage's name (``evaluate.avg_prec``): files of two stages often use the
    same keys, and neither value should hide the other."""
    events = list(events)
    stages_of: dict[str, set[Any]] = {}
    from_file: set[str] = set()
    for event in events:
        stages_of.setdefault(event["name"], set()).add(event.get("stage"))
        if event.get("source") == "file":
            from_file.add(event["name"])
    shared = {name for name in from_file if len(stages_of[name]) > 1}
    last: dict[str, float] = {}
    series: dict[str, list[dict[str, Any]]] = {}
    for event in events:
        name = event["name"]
        if name in shared and event.get("stage"):
            name = f"{event['stage']}.{name}"
        last[name] = event["value"]
        series.setdefault(name, []).append(
            {"step": event.get("step"), "value": event["value"], "stage": event.get("stage")}
        )
    return last, series


def _check_step(step: Any) -> int | None:
    if step is None:
        return None
    if isinstance(step, numbers.Integral) and not isinstance(step, bool):
        return int(step)
    raise MetricError(
        f"log_metrics(step=...) must be an integer, not {type(step).__name__} {step!r}",
        hint="pass the epoch or iteration number, e.g. log_metrics(step=epoch, loss=loss)",
    )


def _check_value(name: str, value: Any) -> int | float:
    original = value
    if not isinstance(value, numbers.Number):
        item = getattr(value, "item", None)
        if callable(item):
            try:
                value = item()
            except (ValueError, RuntimeError, TypeError) as exc:
                raise _not_numeric(name, original, "it holds more than one value") from exc
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        return float(value)
    raise _not_numeric(name, original, "metrics must be real numbers")


def _not_numeric(name: str, value: Any, reason: str) -> MetricError:
    shown = repr(value)
    shown = shown if len(shown) <= 60 else shown[:57] + "..."
    return MetricError(
        f"metric {name!r} is not a number: {type(value).__name__} {shown} ({reason})",
        hint="log numbers, e.g. log_metrics(accuracy=float(acc)); store other results as the stage's output",
    )
