"""Running a script stage's task: its workspace made, its script run, its outs cached.

:func:`run_script` is what :func:`modver.engine.executor.run_task` does for a task whose stage
is a script (``task.script`` set): see :mod:`modver.engine.workspace` for the workspace. The
cache entry's object is ``{"outs": {path: hash}}``; the outs themselves are files of the entry
(``outs/<path>``), checksummed and verified like every cached file.
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from modver import errors
from modver.engine.workspace import OUTS_DIR, Workspace, out_hashes, params_argv, read_metrics, read_plots
from modver.record import ErrorInfo, StageStatus

if TYPE_CHECKING:  # pragma: no cover
    from modver.engine.executor import StageTask

__all__ = ["ScriptResult", "run_script", "version_files"]


@dataclass(frozen=True)
class ScriptResult:
    """What running a script task gave (the executor makes its TaskResult of it)."""

    status: StageStatus
    duration: float | None = None
    timings: Mapping[str, float] = field(default_factory=dict)
    metrics: tuple[dict[str, Any], ...] = ()
    error: ErrorInfo | None = None
    message: str | None = None
    hint: str | None = None
    outs: Mapping[str, str] = field(default_factory=dict)


def version_files(root: Path, commit: str) -> dict[str, bytes]:
    """A version's files, read from the git history of the project at ``root``."""
    from modver._git import GitRepo
    from modver.store.history import History

    with GitRepo.discover(root) as repo:
        return History(repo).files_at(commit)


def _argv(task: StageTask) -> list[str]:
    assert task.script is not None
    entry = task.entry.partition(":")[0]
    data = [f"--{kw}={rel}" for kw, rel in _data_rel(task).items()]
    dict_params = {k: v for k, v in task.params.items() if k not in _file_keys(task)}
    return [entry, *task.script.args, *data, *params_argv(dict_params)]


def _file_keys(task: StageTask) -> set[str]:
    assert task.script is not None
    return set(task.script.file_keys)


def _data_rel(task: StageTask) -> dict[str, str]:
    root = task.store.root
    out = {}
    assert task.script is not None
    for kw, path in task.data.items():
        if kw in task.script.deps:
            continue  # a dep is placed at its path, not named on the command line
        try:
            out[kw] = Path(path).relative_to(root).as_posix()
        except ValueError:
            out[kw] = path
    return out


def _fail(task: StageTask, message: str, hint: str | None, started: float, timings: Mapping[str, float],
          exc: BaseException | None = None, where: str | None = None) -> ScriptResult:  # fmt: skip
    error = ErrorInfo(type(exc).__name__ if exc else "StageFailedError", message, task.stage, where,
                      traceback.format_exc() if exc else None)  # fmt: skip
    duration = round(time.perf_counter() - started, 6)
    return ScriptResult(StageStatus.FAILED, duration, dict(timings), (), error, message, hint)


def run_script(task: StageTask, echo: TextIO | None) -> ScriptResult:
    """Run script task ``task`` in a fresh workspace and cache its outs (see the module docstring)."""
    script = task.script
    assert script is not None
    store = task.store
    cache = store.output_cache()
    timings: dict[str, float] = {}
    started = time.perf_counter()
    ws = Workspace(store, task.stage)
    try:
        t0 = time.perf_counter()
        try:
            ws.make(version_files(store.root, task.commit))
            if script.params_text is not None:
                ws.write(script.params_file, script.params_text)
            for dep in script.deps:
                upstream = script.upstream.get(dep)
                if upstream is not None:
                    source = cache.path(task.inputs[dep]) / OUTS_DIR / dep
                else:
                    source = store.root / dep
                if not source.exists():
                    return _fail(task, f"stage {task.stage}: dep {dep} is missing", "run again", started, timings)
                ws.place(dep, source)
            for rel in _data_rel(task).values():
                ws.place(rel, store.root / rel)
        except OSError as exc:
            message = f"stage {task.stage}: cannot make its workspace {ws.root}: {exc.strerror or exc}"
            return _fail(task, message, "check free disk space under .modver", started, timings, exc)
        timings["workspace"] = round(time.perf_counter() - t0, 6)
        t0 = time.perf_counter()
        status, tail = ws.run(_argv(task), task.logs, echo)
        timings["call"] = round(time.perf_counter() - t0, 6)
        duration = round(time.perf_counter() - started, 6)
        events: list[dict[str, Any]] = ws.logged_metrics(task.stage)
        if status != 0:
            last = tail.strip().splitlines()[-1] if tail.strip() else ""
            message = f"stage {task.stage} failed: {task.entry} exited with status {status}" + (
                f": {last}" if last else ""
            )
            hint = f"its output: `modver show {task.run}`" if task.run else None
            error = ErrorInfo("StageFailedError", message, task.stage, None, tail or None)
            return ScriptResult(StageStatus.FAILED, duration, timings, tuple(events), error, message, hint)
        missing = [out for out in script.outs if not (ws.root / out).exists()]
        if missing:
            message = f"stage {task.stage}: {task.entry} exited 0 but did not write its out {missing[0]}"
            hint = "write every path listed under `outs:` (relative to the project root), or fix the list"
            return _fail(task, message, hint, started, timings, where=missing[0])
        try:
            events += read_metrics(ws.root, script.metrics, task.stage)
            events += read_plots(ws.root, script.plots, task.stage)
        except errors.ModverError as exc:
            return _fail(task, str(exc), exc.hint, started, timings, exc)
        t0 = time.perf_counter()
        hashes = out_hashes(ws.root, script.outs)
        meta = {
            "stage": task.stage, "version": task.label, "duration": duration, "metrics": events,
            "stdout": None, "stderr": None, "run": task.run, "key_parts": dict(task.key_parts), "outs": hashes,
        }  # fmt: skip
        try:
            cache.put(task.key, {"outs": hashes}, meta, trees={f"{OUTS_DIR}/{o}": ws.root / o for o in script.outs})
        except (errors.StoreError, errors.CacheError) as exc:
            return _fail(task, f"stage {task.stage}: its outs cannot be cached: {exc}", exc.hint, started, timings)
        timings["save"] = round(time.perf_counter() - t0, 6)
        return ScriptResult(StageStatus.SUCCEEDED, duration, timings, tuple(events), outs=hashes)
    finally:
        ws.remove()
