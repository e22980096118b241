"""Running a graph of stage tasks on Dask: every core here, any Dask cluster, or batch jobs.

:func:`run_graph` takes stage tasks keyed by cache key (a task depends on the tasks whose keys
are its inputs) and runs each on a Dask worker as soon as its inputs are ready:

- the executor (:class:`ExecutorSpec`): by default a local cluster of ``jobs`` worker processes
  (one thread each); ``scheduler`` connects to a running Dask cluster; ``cluster`` starts workers
  as batch jobs through dask-jobqueue (Slurm, PBS, SGE, LSF) with the manifest's ``options``. A
  batch system that refuses the jobs (``sbatch`` failing: no controller) is an error at once,
  with its own message; a cluster that starts no worker within ``start_timeout`` is an error;
- before the first task, every worker must see the same store: a token file written in this
  run's folder under the store's ``tmp/`` is read back by each worker
  (:class:`~modver.errors.ClusterError` names the worker that cannot); a worker that joins later
  checks it before each task. The folder is named ``.tmp-cluster-HOST-PID-...``: the next run
  on this host removes the folder of a driver that died, ``modver gc`` any old one;
- **the driver submits a task when its inputs have succeeded** (Dask holds no dependencies: no
  result waits in a worker's memory, where a dying worker would lose it). A worker runs
  :func:`modver.engine.executor.run_task`, which loads the task's inputs from the store and saves its
  output there; the small :class:`~modver.engine.executor.TaskResult` goes back through the run's
  folder, and the worker says "started" and "finished" on **one** channel (a Dask event topic),
  so the driver hears of each task in causal order. The driver (this process) is the only one
  that reports, through ``on_event``;
- **a crash** (``os._exit``, a segfault, the kernel's OOM killer, ``scancel``) kills the worker
  process running the task: Dask starts a new worker (a local one through its nanny, a batch job
  by :class:`_JobWatch`) and the task runs again, reported as "retried". A task that was running
  in :data:`CRASHES` worker processes that died fails, with the exit status of the last one
  (a nanny reports it); the tasks that needed it are skipped, and no other task is blamed: a
  task Dask gave up on (``KilledWorker``) that was not itself running in the dead processes is
  submitted again;
- ``fail_fast`` cancels everything left at the first failure; Ctrl-C cancels the futures and
  shuts the cluster down, so no worker process outlives the driver. Local workers are started
  with SIGINT blocked: a Ctrl-C at the terminal (SIGINT to the whole process group) reaches the
  driver alone, which stops them; Dask's own log lines go to ``.modver/logs/cluster/dask.log``
  (on the terminal too with ``--debug``).

:func:`detach` submits the sweep's driver itself as a batch job.

This is the only module that imports dask, distributed and dask_jobqueue, and only inside
functions: importing it loads no Dask.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import pickle
import queue
import re
import secrets
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from modver import _fs, errors
from modver.engine.executor import StageTask, TaskResult, run_task
from modver.record import ErrorInfo, StageStatus
from modver.store.layout import Store

if TYPE_CHECKING:
    from distributed import Client, Future

__all__ = [
    "JOBQUEUE", "ClusterConfig", "ExecutorSpec", "Feed", "GraphControl", "Session", "TaskEvent", "check_address",
    "detach", "run_graph",
]  # fmt: skip

# cluster kind -> dask-jobqueue's cluster class
JOBQUEUE = {"slurm": "SLURMCluster", "pbs": "PBSCluster", "sge": "SGECluster", "lsf": "LSFCluster"}
KINDS = (*JOBQUEUE, "local")
# what a batch worker gets unless the manifest's options say otherwise: one core, one process
JOB_DEFAULTS: dict[str, Any] = {"cores": 1, "processes": 1, "memory": "1GB"}
LOGGERS = ("distributed", "dask_jobqueue", "dask", "tornado", "asyncio")
# no dashboard; its HTTP server (health, metrics) on any free port, not 8787: one user's sweep must
# not warn that another's holds it
QUIET_SCHEDULER = {"dashboard_address": ":0"}
# worker processes a task may kill before it fails: one death may be bad luck (a node lost, a job
# cancelled, another process's memory), the second is the task's
CRASHES = 2
# a scheduler this module starts never gives up on a task itself (run_graph decides, by CRASHES)
SCHEDULER_PATIENCE = {"allowed_failures": 1000}
# how often a task Dask gave up on without its own crash is submitted again
RESUBMITS = 3
# seconds to wait for the first worker: a batch queue may take its time; a running scheduler not
START_TIMEOUT = {"batch": 600.0, "scheduler": 30.0}
EXIT_TOPIC = "modver-worker-exit"  # a nanny's event: its worker process exited, with its status
_ADDRESS = re.compile(r"^(?:(tcp|tls|ws|wss)://)?(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_][A-Za-z0-9_.-]*):(\d{1,5})$")


def check_address(text: str, where: str = "--scheduler") -> str:
    """``text`` if it is a Dask scheduler's address (``tcp://HOST:PORT``; ``tls://``, ``ws://``,
    ``wss://`` or no scheme too), else :class:`~modver.errors.UsageError` naming ``where``."""
    shown = text if len(text) <= 80 else text[:77] + "..."
    match = _ADDRESS.match(text.strip())
    if match is None or not 0 < int(match.group(3)) < 65536:
        why = (
            "that is the dashboard's address, not the scheduler's; " if text.startswith(("http://", "https://")) else ""
        )
        raise errors.UsageError(
            f"{where} {shown!r} is not a Dask scheduler address",
            hint=f"{why}give tcp://HOST:PORT (the address `dask scheduler` prints; its port is 8786 by default)",
        )
    return text.strip()


def _seconds(value: Any, where: str) -> float:
    """A timeout of the cluster: section: seconds, or a duration (``90s``, ``10m``, ``2h``)."""
    from modver.store.retention import parse_duration

    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value) and value > 0:
        return float(value)
    if isinstance(value, str):
        with contextlib.suppress(errors.UsageError):
            seconds = parse_duration(value)
            if seconds > 0:
                return seconds
    raise errors.ManifestError(
        f"cluster start_timeout must be a positive number of seconds or a duration, not {value!r}",
        where=where,
        hint="e.g. start_timeout: 30m (how long to wait for the first worker)",
    )


@dataclass(frozen=True)
class ClusterConfig:
    """The manifest's ``cluster:`` section: ``kind`` (slurm, pbs, sge, lsf, local or a
    ``tcp://HOST:PORT`` scheduler), at most ``jobs`` workers, ``options`` for dask-jobqueue,
    ``start_timeout`` (seconds) to wait for the first worker (default: 10 minutes for batch
    jobs, 30 s for a running scheduler)."""

    kind: str = "local"
    jobs: int | None = None
    options: Mapping[str, Any] = field(default_factory=dict)
    start_timeout: float | None = None

    @classmethod
    def from_json(cls, data: Any, where: str = "cluster") -> ClusterConfig:
        """The section as the manifest holds it, checked: a clear error names the bad key."""
        if not isinstance(data, Mapping):
            raise errors.ManifestError("the cluster: section must be a mapping", where=where, hint=_CLUSTER_HINT)
        unknown = sorted(set(data) - {"kind", "jobs", "options", "start_timeout"})
        if unknown:
            raise errors.ManifestError(
                f"unknown key {unknown[0]!r} in the cluster: section", where=where, hint=_CLUSTER_HINT
            )
        kind = data.get("kind", "local")
        if not isinstance(kind, str) or not (kind in KINDS or kind.startswith("tcp://")):
            raise errors.ManifestError(
                f"cluster kind {kind!r} is not one of {', '.join(KINDS)} or tcp://HOST:PORT", where=where
            )
        if kind.startswith("tcp://"):
            try:
                check_address(kind, "cluster kind")
            except errors.UsageError as exc:
                raise errors.ManifestError(str(exc), where=where, hint=exc.hint) from None
        jobs = data.get("jobs")
        if jobs is not None and (isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1):
            raise errors.ManifestError(f"cluster jobs must be a whole number >= 1, not {jobs!r}", where=where)
        options = data.get("options", {})
        if not isinstance(options, Mapping):
            raise errors.ManifestError("cluster options must be a mapping", where=where, hint=_CLUSTER_HINT)
        timeout = data.get("start_timeout")
        return cls(kind, jobs, dict(options), None if timeout is None else _seconds(timeout, where))


_CLUSTER_HINT = (
    "write e.g. cluster: {kind: slurm, jobs: 8, options: {queue: gpu, cores: 4, memory: 16GB}, start_timeout: 30m}"
)


@dataclass(frozen=True)
class ExecutorSpec:
    """Where tasks run: a local cluster of ``jobs`` processes (default: one per core), the Dask
    ``scheduler`` at an address, or batch jobs of ``cluster``. ``debug`` lets Dask's warnings through."""

    jobs: int | None = None
    scheduler: str | None = None
    cluster: ClusterConfig | None = None
    debug: bool = False

    @property
    def workers(self) -> int:
        """How many workers to start (local cluster) or submit (batch jobs)."""
        jobs = self.jobs or (self.cluster.jobs if self.cluster is not None else None) or os.cpu_count() or 1
        if jobs < 1:
            raise errors.UsageError(f"--jobs must be at least 1, not {jobs}", hint="give --jobs N with N >= 1")
        return jobs

    @property
    def kind(self) -> str:
        """The cluster's kind: local, slurm, pbs, sge, lsf or a ``tcp://`` address."""
        return self.cluster.kind if self.cluster is not None else "local"

    @property
    def address(self) -> str | None:
        """The running scheduler to connect to, if any."""
        if self.scheduler is not None:
            return self.scheduler
        return self.kind if self.kind.startswith("tcp://") else None

    @property
    def start_timeout(self) -> float | None:
        """Seconds to wait for the first worker (None: a local cluster, started here)."""
        configured = self.cluster.start_timeout if self.cluster is not None else None
        if self.address is not None:
            return configured or START_TIMEOUT["scheduler"]
        if self.kind in JOBQUEUE:
            return configured or START_TIMEOUT["batch"]
        return None


@dataclass(frozen=True)
class TaskEvent:
    """What happened to a task: ``kind`` is started, done, failed, skipped or retried (its worker
    died and it runs again). ``result`` is set for done, failed and skipped."""

    key: str
    kind: str
    result: TaskResult | None = None
    metric: Mapping[str, Any] | None = None  # kind "metric": an event the running stage logged


class GraphControl:
    """What a caller of :func:`run_graph` may do to its running graph: :meth:`stop` a task (a
    search's pruned trial). Bound by the run; before it (or after) it does nothing."""

    def __init__(self) -> None:
        self._stop: Callable[[str, float], None] | None = None

    def stop(self, key: str, grace: float) -> None:
        """Ask task ``key``'s stage to stop (:func:`modver.should_prune` turns true); after
        ``grace`` seconds, end its worker process. Its result: failed, ``Pruned``, not cached."""
        if self._stop is not None:
            self._stop(key, grace)


Feed = Callable[[], Mapping[str, StageTask]]


def run_graph(
    tasks: Mapping[str, StageTask],
    spec: ExecutorSpec,
    *,
    on_event: Callable[[TaskEvent], None],
    fail_fast: bool = False,
    store: Store,
    feed: Feed | None = None,
    control: GraphControl | None = None,
) -> dict[str, TaskResult]:
    """Run ``tasks`` (keyed by cache key) on the executor of ``spec``; every task's result by key
    (see the module docstring). ``on_event`` is called in this thread. Ctrl-C cancels what has not
    finished, shuts the executor down and propagates.

    ``feed`` (a search's trials) is called in this thread once the executor is up and after each
    event: the tasks it returns join the graph (a task whose inputs are tasks already in it waits
    for them, or is skipped if one failed); the run ends when every task has a result and ``feed``
    returns none. ``control`` lets the caller stop a task while it runs (:class:`GraphControl`);
    a running stage's live metrics come as events of kind ``metric``."""
    if not tasks and feed is None:
        return {}
    with _quiet(spec.debug, store), _client(spec, store) as (client, watch), _run_folder(client, store) as folder:
        graph = _Graph(client, tasks, on_event, fail_fast, folder, watch, feed)
        if control is not None:
            control._stop = graph.stop
        try:
            return graph.run()
        finally:
            if control is not None:
                control._stop = None


class Session:
    """One executor kept for several graphs run one after another (bisect's rounds of probes),
    instead of one started per graph: started at the first graph that has a task, shut down when
    the session ends (Ctrl-C included). :meth:`run_graph` is :func:`run_graph` on it."""

    def __init__(self, spec: ExecutorSpec, store: Store):
        self.spec, self.store = spec, store
        self._stack = contextlib.ExitStack()
        self._held: tuple[Client, Callable[[], None], Path] | None = None

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stack.close()

    def run_graph(
        self, tasks: Mapping[str, StageTask], spec: ExecutorSpec, *, on_event: Callable[[TaskEvent], None],
        fail_fast: bool = False, store: Store,
    ) -> dict[str, TaskResult]:  # fmt: skip
        """:func:`run_graph` on the session's executor (``spec`` and ``store`` are the session's)."""
        if not tasks:
            return {}
        if self._held is None:
            self._stack.enter_context(_quiet(self.spec.debug, self.store))
            client, watch = self._stack.enter_context(_client(self.spec, self.store))
            self._held = (client, watch, self._stack.enter_context(_run_folder(client, self.store)))
        client, watch, folder = self._held
        return _Graph(client, tasks, on_event, fail_fast, folder, watch).run()


# -- the executor ------------------------------------------------------------------------------


class _LogFile(logging.Handler):
    """Dask's log lines, appended to a file opened at the first one (no line, no file)."""

    def __init__(self, path: Path):
        super().__init__(logging.INFO)
        self.path = path
        self.setFormatter(logging.Formatter("%(asctime)s %(process)d %(name)s %(levelname)s: %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.path, "a", encoding="utf-8") as log:
                log.write(self.format(record) + "\n")
        except OSError:
            pass  # a log line that cannot be written is not worth failing the sweep over


@contextlib.contextmanager
def _quiet(debug: bool, store: Store) -> Iterator[None]:
    """Dask's, dask-jobqueue's, tornado's and asyncio's log lines (warnings and worse) go to
    ``.modver/logs/cluster/dask.log`` for the block — not to the terminal, unless ``debug``."""
    import distributed  # noqa: F401 - its loggers exist, with the handlers its config gave them

    to_file = _LogFile(store.cluster_logs / "dask.log")
    names = [n for n in logging.root.manager.loggerDict if n.split(".")[0] in LOGGERS]
    saved_levels = {name: logging.getLogger(name).level for name in names}
    saved = {}
    for name in LOGGERS:
        logger = logging.getLogger(name)
        saved[name] = (list(logger.handlers), logger.propagate)
        logger.handlers = [to_file, *(logger.handlers if debug else [])]
        logger.propagate = False
    for name in names:
        logging.getLogger(name).setLevel(logging.WARNING)
    try:
        yield
    finally:
        for name, (handlers, propagate) in saved.items():
            logger = logging.getLogger(name)
            logger.handlers, logger.propagate = handlers, propagate
        for name, level in saved_levels.items():
            logging.getLogger(name).setLevel(level)


@contextlib.contextmanager
def _signals_deferred(*signals: signal.Signals, spawn: bool = False) -> Iterator[None]:
    """``signals`` (SIGINT, SIGTERM) held back for the block — noted, and raised again once it
    ends — so that a cluster is never left half started or half closed. With ``spawn``, SIGINT
    is also blocked in every thread started in the block, for good: the cluster's event loop,
    which starts the local worker processes, so they begin with SIGINT blocked and a Ctrl-C at
    the terminal (SIGINT to the whole process group) reaches the driver alone, which stops them."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[int] = []
    previous = {s: signal.signal(s, lambda signum, frame: received.append(signum)) for s in signals}
    old_mask = None
    if spawn and hasattr(signal, "pthread_sigmask"):
        from multiprocessing import resource_tracker

        # started now, or the cluster's loop would start it, and starting it unblocks SIGINT in
        # the thread that does (Python's resource_tracker.ensure_running)
        resource_tracker.ensure_running()
        old_mask = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        if old_mask is not None:
            signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)
        for s, handler in previous.items():
            if handler is not None:  # None: not set from Python, and not ours to restore
                signal.signal(s, handler)
        if received:
            signal.raise_signal(received[0])


@contextlib.contextmanager
def _client(spec: ExecutorSpec, store: Store) -> Iterator[tuple[Client, Callable[[], None]]]:
    """A client of the executor of ``spec``, and what to call now and then to keep its workers up
    (:class:`_JobWatch` for batch jobs); the cluster it started is shut down at the end."""
    from distributed import Client

    address = spec.address
    cluster = None
    client = None
    refused: queue.SimpleQueue[str] = queue.SimpleQueue()  # batch jobs the queue refused: its message
    try:
        if address is not None:
            try:
                with _signals_deferred(signal.SIGINT, signal.SIGTERM):
                    client = Client(address, timeout="10s")
            except (OSError, TimeoutError, ValueError) as exc:
                raise errors.ClusterError(
                    f"cannot reach the Dask scheduler at {address}: {exc}",
                    hint="start it (`dask scheduler`, then `dask worker ADDRESS`) or check the address",
                ) from exc
        else:
            with _signals_deferred(signal.SIGINT, signal.SIGTERM, spawn=True):
                cluster = _start_cluster(spec, store, refused)
                client = Client(cluster)
        _wait_for_a_worker(client, spec, refused)
        yield client, (_JobWatch(cluster, client, spec.workers) if spec.kind in JOBQUEUE else lambda: None)
    finally:
        with _signals_deferred(signal.SIGINT, signal.SIGTERM):  # a second Ctrl-C waits for this
            _close(client, cluster)


def _close(client: Client | None, cluster: Any) -> None:
    """Close the client, and shut down the cluster started here (its workers, its batch jobs)."""
    for what in (client, cluster):
        if what is not None:
            try:
                what.close()
            except Exception:  # a cluster half started (a refused batch job) still goes
                logging.getLogger("distributed").warning("closing %s failed", what, exc_info=True)


def _start_cluster(spec: ExecutorSpec, store: Store, refused: queue.SimpleQueue[str]) -> Any:
    kind = spec.kind
    # the worker processes log only what is fatal (their stderr is this terminal)
    level = logging.WARNING if spec.debug else logging.CRITICAL
    if kind not in JOBQUEUE:
        from distributed import LocalCluster

        return LocalCluster(
            n_workers=spec.workers,
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
            scheduler_kwargs={**QUIET_SCHEDULER, **SCHEDULER_PATIENCE},
            silence_logs=level,
        )
    import dask_jobqueue

    assert spec.cluster is not None
    cls = getattr(dask_jobqueue, JOBQUEUE[kind])
    options = {"log_directory": str(store.cluster_logs), **JOB_DEFAULTS, **spec.cluster.options}
    options["scheduler_options"] = {**QUIET_SCHEDULER, **SCHEDULER_PATIENCE, **options.get("scheduler_options", {})}
    try:
        cluster = cls(silence_logs=level, dashboard_address=None, job_cls=_reporting_job(cls.job_cls, refused),
                      **options)  # fmt: skip
    except (TypeError, ValueError) as exc:
        raise errors.ClusterError(
            f"cannot start a {kind} cluster with options {dict(spec.cluster.options)}: {exc}",
            where="cluster.options",
            hint="the options are dask-jobqueue's: see https://jobqueue.dask.org/en/latest/clusters-api.html",
        ) from exc
    cluster.scale(jobs=spec.workers)
    return cluster


def _reporting_job(base: Any, refused: queue.SimpleQueue[str]) -> Any:
    """dask-jobqueue's job class ``base``, telling ``refused`` what the batch system said when it
    refused to submit a job (``sbatch: error: ... Unable to contact slurm controller``)."""

    class ReportingJob(base):  # type: ignore[misc]
        async def start(self) -> None:
            try:
                await super().start()
            except Exception as exc:
                refused.put(_submit_error(exc))
                raise

    return ReportingJob


def _submit_error(exc: BaseException) -> str:
    """The batch command's own message in dask-jobqueue's error (its stderr), else the error."""
    text = str(exc)
    stderr = text.split("stderr:", 1)[1].strip() if "stderr:" in text else ""
    return stderr or f"{type(exc).__name__}: {text.strip()}"


class _JobWatch:
    """Replaces the batch jobs of a dask-jobqueue cluster that ended under it (``scancel``, the
    walltime, a node lost): dask-jobqueue keeps such a job in its plan, so nothing else would."""

    def __init__(self, cluster: Any, client: Client, jobs: int, every: float = 2.0):
        self.cluster, self.client, self.jobs, self.every = cluster, client, jobs, every
        self.seen: set[str] = set()  # jobs whose worker has connected
        self.last = 0.0

    def __call__(self) -> None:
        if time.monotonic() - self.last < self.every:
            return
        self.last = time.monotonic()
        names = {str(w.get("name")) for w in self.client.scheduler_info(n_workers=-1)["workers"].values()}
        lost = []
        for job in list(self.cluster.worker_spec):
            if any(n == job or n.startswith(f"{job}-") for n in names):
                self.seen.add(job)
            elif job in self.seen:
                lost.append(job)
        if lost:
            self.seen.difference_update(lost)
            self.cluster.loop.add_callback(self._replace, lost)

    def _replace(self, lost: list[str]) -> None:  # on the cluster's event loop
        for job in lost:  # forgotten (its job is gone already), so that a new job takes its place
            self.cluster.worker_spec.pop(job, None)
            self.cluster.workers.pop(job, None)
        self.cluster.scale(jobs=self.jobs)


def _wait_for_a_worker(client: Client, spec: ExecutorSpec, refused: queue.SimpleQueue[str]) -> None:
    """Until a worker has joined: a batch system that refuses the jobs fails at once, with its
    message; no worker within ``spec.start_timeout`` is an error too."""
    timeout = spec.start_timeout
    deadline = None if timeout is None else time.monotonic() + timeout
    while not client.scheduler_info(n_workers=-1)["workers"]:
        if not refused.empty():
            raise errors.ClusterError(
                f"the {spec.kind} batch system refused the worker jobs: {refused.get()}",
                hint="check that jobs can be submitted from here (`sbatch --wrap true` for Slurm: SLURM_CONF, the "
                "controller), and the cluster: options",
            )
        if deadline is not None and time.monotonic() > deadline:
            what = f"the Dask scheduler at {spec.address} has" if spec.address else f"the {spec.kind} cluster started"
            hint = (
                "start workers on machines that see the project folder: `dask worker ADDRESS`"
                if spec.address
                else "its jobs may wait in the queue (see squeue/qstat); wait longer with cluster: {start_timeout: 2h}, "
                "or check the jobs' logs in .modver/logs/cluster"
            )
            raise errors.ClusterError(f"{what} no workers after {timeout:g} s", hint=hint)
        time.sleep(0.1)


# -- the run's folder: the store check, and the tasks' results ---------------------------------

_CHECK = "check"  # the token file in the run's folder
_PID_TOKEN = re.compile(r"^([0-9a-f]+)-[0-9a-f]{8}$")  # what follows the host in its name


def _read_token(path: str) -> tuple[str, str | None]:  # runs on each worker
    try:
        return socket.gethostname(), Path(path).read_text(encoding="utf-8")
    except OSError:
        return socket.gethostname(), None


@contextlib.contextmanager
def _run_folder(client: Client, store: Store) -> Iterator[Path]:
    """This run's folder under the store's ``tmp/`` (removed at the end); every worker reads back
    the token written in it, or :class:`~modver.errors.ClusterError` names the one that cannot.
    Folders of drivers on this host that died are removed first."""
    tmp = store.tmp
    _remove_dead_folders(tmp)
    with _fs.write_faults("cannot make the folder through which the workers return results", str(tmp)):
        folder = _fs.make_temp_dir(tmp, f"cluster-{socket.gethostname()}")
    try:
        token = secrets.token_hex(16)
        with _fs.write_faults("cannot write the token by which the workers check the store", str(folder)):
            (folder / _CHECK).write_text(token, encoding="utf-8")
        seen = client.run(_read_token, str(folder / _CHECK))
        for worker, (host, got) in sorted(seen.items()):
            if got != token:
                raise errors.ClusterError(_store_unseen(worker, host, store), hint=_SHARED_HINT)
        yield folder
    finally:
        _fs.remove_tree(folder)


def _remove_dead_folders(tmp: Path) -> None:
    """Remove the run folders of drivers on this host whose process is gone (and the token files
    ``worker-check-*`` that earlier modver drivers left, once an hour old)."""
    prefix = f"{_fs.TEMP_PREFIX}cluster-{socket.gethostname()}-"
    if not tmp.is_dir():
        return
    for child in tmp.iterdir():
        if child.name.startswith("worker-check-"):
            with contextlib.suppress(OSError):
                if time.time() - child.lstat().st_mtime > 3600:
                    child.unlink()
            continue
        rest = _PID_TOKEN.match(child.name[len(prefix) :]) if child.name.startswith(prefix) else None
        if rest is None:
            continue
        try:
            os.kill(int(rest.group(1), 16), 0)
        except ProcessLookupError:
            _fs.remove_tree(child)
        except PermissionError:  # another user's live process
            continue


def _store_unseen(worker: str, host: str, store: Store) -> str:
    return f"Dask worker {worker} (on {host}) does not see the store {store.path}"


_SHARED_HINT = "workers need the project folder on a shared file system, at the same path as here"


# -- on the workers ------------------------------------------------------------------------------


def _run_on_worker(task: StageTask, folder: str, index: int, topic: str) -> None:
    """The task on a Dask worker: say "started" on the run's ``topic``, run it, write its result
    in the run's ``folder`` (as ``INDEX.result``) and say "finished". A worker that joined after
    the check and does not see the store fails the task without running it (its result in the
    event: it cannot write it where the driver reads)."""
    from distributed import get_worker

    worker = get_worker()

    def say(kind: str, **more: Any) -> None:
        worker.log_event(topic, {"key": task.key, "kind": kind, "worker": worker.address, **more})

    run = Path(folder)
    if not (run / _CHECK).exists():
        message = _store_unseen(worker.address, socket.gethostname(), task.store)
        result = TaskResult(
            StageStatus.FAILED, error=ErrorInfo("ClusterError", message), message=message, hint=_SHARED_HINT
        )
        say("finished", inline=pickle.dumps(result))
        return
    say("started", pid=os.getpid(), host=socket.gethostname())
    from modver.metrics import live

    def pruned() -> bool:
        return (run / f"{index}.prune").exists()

    def send(event: Mapping[str, Any]) -> None:  # best effort: the record gets every value anyway
        try:
            say("metric", event={k: _plain(v) for k, v in event.items()})
        except Exception:  # noqa: BLE001 - a live value that cannot travel never fails the stage
            pass

    with live(send, pruned):
        result = run_task(task)
    name = f"{index}.result"
    tmp = run / f"{_fs.TEMP_PREFIX}{index}-{secrets.token_hex(4)}"
    try:  # not _fs.write_bytes_atomic: a folder the driver removed (it stopped) must not come back
        tmp.write_bytes(pickle.dumps(result))
        os.replace(tmp, run / name)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    say("finished", file=name)


def _plain(value: Any) -> Any:
    """A value Dask's event stream can carry (msgpack): numpy scalars become Python numbers."""
    if value is None or isinstance(value, (str, bool, int, float)):
        return value
    try:
        return float(value)
    except (TypeError, ValueError):
        return str(value)


def _exit_reporter() -> Any:
    """A nanny plugin that says on :data:`EXIT_TOPIC` how each worker process of its nanny ended
    (``{"worker": ADDRESS, "exitcode": N}``, negative: killed by signal -N) when it ends badly."""
    from distributed.diagnostics.plugin import NannyPlugin

    class ExitReporter(NannyPlugin):
        name = "modver-exit-reporter"
        idempotent = False

        def setup(self, nanny: Any) -> None:
            original = type(nanny)._on_worker_exit_sync.__get__(nanny)

            def on_exit(exitcode: int) -> None:
                if exitcode:
                    with contextlib.suppress(Exception):
                        nanny.log_event(EXIT_TOPIC, {"worker": nanny.worker_address, "exitcode": exitcode})
                original(exitcode)

            nanny._on_worker_exit_sync = on_exit  # what the nanny gives each worker process it starts
            if getattr(nanny, "process", None) is not None:
                nanny.process.on_exit = on_exit  # and the one running now

        def teardown(self, nanny: Any) -> None:
            nanny.__dict__.pop("_on_worker_exit_sync", None)
            if getattr(nanny, "process", None) is not None:
                nanny.process.on_exit = nanny._on_worker_exit_sync

    return ExitReporter()


# -- the graph -----------------------------------------------------------------------------------


class _Graph:
    """One run of a graph of tasks, settled in this thread (see the module docstring): a task is
    submitted when its inputs have succeeded, and heard of through the run's event topic."""

    def __init__(
        self,
        client: Client,
        tasks: Mapping[str, StageTask],
        on_event: Callable[[TaskEvent], None],
        fail_fast: bool,
        folder: Path,
        watch: Callable[[], None],
        feed: Feed | None = None,
    ):
        self.client, self.tasks, self.on_event, self.fail_fast = client, dict(tasks), on_event, fail_fast
        self.folder, self.watch, self.feed = folder, watch, feed
        self.topic = f"modver-{secrets.token_hex(8)}"
        self.index: dict[str, int] = {}
        self.downstream: dict[str, list[str]] = {}
        self._index(list(tasks))
        # from the client's threads: ("event", message) of a worker, ("exit", message) of a
        # nanny, ("future", future) settled
        self.news: queue.SimpleQueue[tuple[str, Any]] = queue.SimpleQueue()
        self.results: dict[str, TaskResult] = {}
        self.futures: dict[str, Future[Any]] = {}  # the current submission of each task
        self.owner: dict[Any, str] = {}  # a submission's Dask key -> its task
        self.submitted: dict[str, int] = {}  # how many times each task was submitted
        self.cancelled: set[Any] = set()  # Dask keys cancelled here
        self.attempts: dict[str, list[str]] = {}  # the workers each task started on, in order
        self.running: dict[str, set[str]] = {}  # worker -> the tasks running on it
        self.crashed: dict[str, list[str]] = {}  # task -> the workers that died while running it
        self.exits: dict[str, int] = {}  # worker -> how its process ended (its nanny says)
        self.dying: dict[str, float] = {}  # task failed by its crashes -> until when to wait for exit statuses
        self.failed = False  # whether a task has failed
        self.processes: dict[str, tuple[str, int]] = {}  # task -> (host, pid) of its running stage
        self.stopping: dict[str, float] = {}  # task asked to stop -> when to end its process

    def _index(self, keys: list[str]) -> None:
        for key in keys:
            self.index[key] = len(self.index)
            for up in self.upstream(key):
                self.downstream.setdefault(up, []).append(key)

    def upstream(self, key: str) -> list[str]:
        return list(dict.fromkeys(k for k in self.tasks[key].inputs.values() if k in self.tasks))

    def _fed(self) -> bool:
        """Ask ``feed`` for more tasks and submit those that are ready; whether it gave any."""
        if self.feed is None or (self.fail_fast and self.failed):
            return False
        more = {k: t for k, t in self.feed().items() if k not in self.tasks}
        if more:
            self.tasks.update(more)
            self._index(list(more))
            for key in more:
                self._ready(key)
        return bool(more)

    def run(self) -> dict[str, TaskResult]:
        self.client.subscribe_topic(self.topic, lambda event: self.news.put(("event", event[1])))
        self.client.subscribe_topic(EXIT_TOPIC, lambda event: self.news.put(("exit", event[1])))
        try:
            with contextlib.suppress(Exception):  # no nanny (or an old one): crashes are counted all the same
                self.client.register_plugin(_exit_reporter())
            for key in self.tasks:
                if not self.upstream(key):
                    self._submit(key)
            while self._fed() or len(self.results) < len(self.tasks):
                self.watch()
                self._fail_the_dying()
                self._end_the_stopped()
                try:
                    what, item = self.news.get(timeout=0.25)
                except queue.Empty:
                    continue
                if what == "event":
                    self._heard(item)
                elif what == "exit":
                    self._exited(item)
                else:
                    self._settled(item)
                if self.fail_fast and self.failed:
                    self._cancel_the_rest()
        except BaseException:  # Ctrl-C: nothing more runs
            self.client.cancel([f for k, f in self.futures.items() if k not in self.results], force=True)
            raise
        finally:
            for topic in (self.topic, EXIT_TOPIC):
                with contextlib.suppress(Exception):
                    self.client.unsubscribe_topic(topic)
        return self.results

    def _submit(self, key: str) -> None:
        task = self.tasks[key]
        n = self.submitted[key] = self.submitted.get(key, 0) + 1
        future = self.client.submit(  # in task order (points in order), not Dask's own
            _run_on_worker, task, str(self.folder), self.index[key], self.topic,
            key=(f"{task.stage}-{self.topic}", key, n), pure=False, priority=-self.index[key],
        )  # fmt: skip
        self.owner[future.key] = key
        self.futures[key] = future
        future.add_done_callback(lambda f: self.news.put(("future", f)))

    def _heard(self, message: Any) -> None:
        """A worker's event: a task started (again: its last worker died) or finished."""
        if not isinstance(message, dict) or message.get("key") not in self.tasks:
            return
        key, worker = str(message["key"]), str(message.get("worker"))
        if key in self.results:
            return
        if message.get("kind") == "metric":
            if isinstance(message.get("event"), dict):
                self.on_event(TaskEvent(key, "metric", metric=message["event"]))
            return
        if message.get("kind") == "started":
            if key in self.dying:  # an attempt that began before it was cancelled
                return
            if isinstance(message.get("pid"), int):
                self.processes[key] = (str(message.get("host")), message["pid"])
            tried = self.attempts.setdefault(key, [])
            if tried and key in self.running.get(tried[-1], ()):  # its last worker died, no nanny said so (yet)
                self._crash(key, tried[-1])
                if key in self.dying or key in self.results:
                    return
            self.on_event(TaskEvent(key, "retried" if tried else "started"))
            tried.append(worker)
            self.running.setdefault(worker, set()).add(key)
        elif message.get("kind") == "finished":
            self.running.get(worker, set()).discard(key)
            self._report(key, self._result(key, message))

    def _result(self, key: str, message: dict[str, Any]) -> TaskResult:
        inline, name = message.get("inline"), message.get("file")
        try:
            if isinstance(inline, bytes):
                data = inline
            elif isinstance(name, str) and re.fullmatch(r"\d+\.result", name):
                path = self.folder / name
                data = path.read_bytes()
                with contextlib.suppress(OSError):  # read: a file left goes with the run's folder
                    path.unlink()
            else:
                raise OSError(f"a malformed event: {sorted(message)}")
            result = pickle.loads(data)
            if not isinstance(result, TaskResult):
                raise TypeError(f"not a task's result: {type(result).__name__}")
            return result
        except (OSError, pickle.UnpicklingError, TypeError, EOFError, AttributeError) as exc:
            return _lost(self.tasks[key], f"its result cannot be read: {exc}")

    def _exited(self, message: Any) -> None:
        """A nanny's event: its worker process ended, badly; the tasks running there crashed."""
        if not isinstance(message, dict) or not isinstance(message.get("worker"), str):
            return
        worker, code = message["worker"], message.get("exitcode")
        if isinstance(code, int):
            self.exits[worker] = code
        for key in sorted(self.running.pop(worker, set())):
            if key not in self.results:
                self._crash(key, worker)

    def stop(self, key: str, grace: float) -> None:
        """Ask ``key``'s stage to stop (its ``INDEX.prune`` file: :func:`modver.should_prune`); its
        process is ended after ``grace`` seconds if it still runs (:meth:`_end_the_stopped`)."""
        if key in self.results or key in self.stopping or key not in self.tasks:
            return
        with contextlib.suppress(OSError):  # the stage is ended all the same, after its grace
            (self.folder / f"{self.index[key]}.prune").write_bytes(b"")
        self.stopping[key] = time.monotonic() + grace

    def _end_the_stopped(self) -> None:
        """A stopped task's stage still running after its grace: its worker process is ended (a
        nanny or a batch job replaces it); its result is "Pruned" (:meth:`_crash`)."""
        for key, deadline in list(self.stopping.items()):
            if key in self.results:
                del self.stopping[key]
            elif time.monotonic() > deadline:
                self.stopping[key] = math.inf
                host, pid = self.processes.get(key, ("", 0))
                if host == socket.gethostname() and pid:
                    with contextlib.suppress(OSError):
                        os.kill(pid, signal.SIGKILL)
                else:  # a worker elsewhere: its nanny restarts it
                    workers = self.attempts.get(key, [])[-1:]
                    threading.Thread(target=self.client.restart_workers, args=(workers,), daemon=True).start()

    def _crash(self, key: str, worker: str) -> None:
        """``worker`` died running ``key``: after :data:`CRASHES` such deaths the task fails (once
        the exit statuses are in, or after a few seconds) and is not run again; a task that was
        asked to stop is pruned at once."""
        if key in self.stopping:
            self.running.get(worker, set()).discard(key)
            future = self.futures.get(key)
            if future is not None:
                self.cancelled.add(future.key)
                self.client.cancel([future], force=True)
            error = ErrorInfo(
                "Pruned", "the search pruned its trial; its worker process was ended", self.tasks[key].stage
            )
            self._report(
                key, TaskResult(StageStatus.FAILED, error=error, message=f"stage {self.tasks[key].stage}: pruned")
            )
            return
        self.running.get(worker, set()).discard(key)
        crashed = self.crashed.setdefault(key, [])
        if worker in crashed:
            return
        crashed.append(worker)
        if len(crashed) >= CRASHES and key not in self.dying:
            self.dying[key] = time.monotonic() + 5.0
            future = self.futures.get(key)
            if future is not None:
                self.cancelled.add(future.key)
                self.client.cancel([future], force=True)

    def _fail_the_dying(self) -> None:
        for key, deadline in list(self.dying.items()):
            workers = self.crashed[key]
            if all(w in self.exits for w in workers) or time.monotonic() > deadline:
                del self.dying[key]
                self._report(key, _crashed(self.tasks[key], [self.exits.get(w) for w in workers]))

    def _settled(self, future: Future[Any]) -> None:
        """A submission ended in Dask: normally its "finished" event came first (one stream from
        the worker, in order). Dask giving up on a task that did not crash its workers itself
        (``KilledWorker``: it waited on workers that died), or a result lost, submits it again."""
        key = self.owner.get(future.key)
        if key is None or key in self.results or key in self.dying or self.futures.get(key) is not future:
            return
        if future.status == "cancelled":
            if future.key not in self.cancelled:
                self._report(key, _skipped("cancelled"))
        elif future.status == "finished":
            self._again(key, "its result was lost")
        elif future.status == "error":
            exc = future.exception()
            if type(exc).__name__ == "KilledWorker":
                self._again(key, "Dask gave up on it: the workers it was given died")
            else:
                self._report(key, _failed_on_worker(self.tasks[key], exc))

    def _again(self, key: str, why: str) -> None:
        if self.submitted.get(key, 0) > RESUBMITS:
            self._report(key, _lost(self.tasks[key], f"{why}, {self.submitted[key]} times"))
        else:
            self._submit(key)

    def _cancel_the_rest(self) -> None:
        rest = [key for key in self.tasks if key not in self.results]
        for key in rest:
            if key in self.futures:
                self.cancelled.add(self.futures[key].key)
        self.client.cancel([self.futures[key] for key in rest if key in self.futures], force=True)
        for key in rest:
            self._report(key, _skipped("cancelled: another task failed (--fail-fast)"), cascade=False)

    def _report(self, key: str, result: TaskResult, *, cascade: bool = True) -> None:
        if key in self.results:
            return
        self.results[key] = result
        self.failed = self.failed or result.status is StageStatus.FAILED
        self.dying.pop(key, None)
        future = self.futures.pop(key, None)
        if future is not None:
            future.release()  # nothing of it is needed: Dask forgets it
        if result.status is not StageStatus.SKIPPED and not self.attempts.get(key):
            self.on_event(TaskEvent(key, "started"))  # it failed before it could say so
        kinds = {StageStatus.SUCCEEDED: "done", StageStatus.SKIPPED: "skipped"}
        self.on_event(TaskEvent(key, kinds.get(result.status, "failed"), result))
        for down in self.downstream.get(key, []) if cascade else []:
            self._ready(down)

    def _ready(self, key: str) -> None:
        """Submit ``key`` once all its inputs succeeded; skip it once one did not."""
        ups = self.upstream(key)
        if key in self.results or key in self.futures or any(u not in self.results for u in ups):
            return
        failed = [self.tasks[u].stage for u in ups if self.results[u].status is not StageStatus.SUCCEEDED]
        if failed:
            self._report(key, _skipped(f"an upstream stage did not succeed: {', '.join(failed)}"))
        else:
            self._submit(key)


def _skipped(why: str) -> TaskResult:
    return TaskResult(StageStatus.SKIPPED, message=why)


def _death(code: int | None) -> str:
    """How a worker process ended, in words."""
    if code is None:
        return "died"
    if code > 0:
        return f"exited with status {code}"
    try:
        name = signal.Signals(-code).name
    except ValueError:
        name = "an unknown signal"
    return f"was killed by signal {-code} ({name})"


def _crashed(task: StageTask, codes: list[int | None]) -> TaskResult:
    """The result of a task whose worker process died under it, :data:`CRASHES` times."""
    code = next((c for c in reversed(codes) if c is not None), None)
    how = _death(code)
    times = "twice" if len(codes) == 2 else f"{len(codes)} times"
    message = f"stage {task.stage}: the Dask worker process running it {how} ({times}; it is not run again)"
    if code == -signal.SIGKILL:
        hint = "the kernel's out-of-memory killer sends SIGKILL: give workers more memory, or run fewer jobs"
    elif code is not None and code < 0:
        hint = "a crash in native code (a C extension, a library): see the stage's stderr, `modver show RUN`"
    else:
        hint = "the stage's code ended its process (os._exit, a library that exits); see `modver show RUN`"
    error = ErrorInfo("WorkerDied", f"the worker process running it {how}", task.stage)
    return TaskResult(StageStatus.FAILED, error=error, message=message, hint=hint)


def _lost(task: StageTask, why: str) -> TaskResult:
    message = f"stage {task.stage}: {why}"
    return TaskResult(StageStatus.FAILED, error=ErrorInfo("ClusterError", why, task.stage), message=message)


def _failed_on_worker(task: StageTask, exc: BaseException | None) -> TaskResult:
    """The result of a task whose Dask future erred outside the stage (the worker's own error)."""
    name = type(exc).__name__ if exc is not None else "Error"
    message = f"stage {task.stage} failed on its Dask worker: {name}: {exc}"
    text = "".join(traceback.format_exception(exc)) if exc is not None else None
    return TaskResult(
        StageStatus.FAILED, error=ErrorInfo(name, str(exc), task.stage, None, text), message=message, hint=None
    )


# -- the driver as a batch job ---------------------------------------------------------------------


def detach(argv: list[str], spec: ExecutorSpec, store: Store) -> str:
    """Submit ``modver ARGV`` (run in the project's root) as a Slurm batch job; the job's id.

    The job runs the sweep's driver, which submits its workers as jobs of their own; its output
    goes to ``.modver/logs/cluster/driver-<job>.out``.
    """
    if spec.kind != "slurm":
        raise errors.ClusterError(
            f"--detach submits the driver to Slurm; the cluster here is {spec.kind}",
            hint="use --cluster slurm (or cluster: {kind: slurm} in the manifest)",
        )
    root, logs = store.root, store.cluster_logs
    logs.mkdir(parents=True, exist_ok=True)
    options = spec.cluster.options if spec.cluster is not None else {}
    lines = [
        "#!/bin/sh",
        "#SBATCH --job-name=modver-sweep",
        f"#SBATCH --output={logs}/driver-%j.out",
        "#SBATCH --ntasks=1",
    ]
    for option, flag in (("queue", "partition"), ("account", "account")):  # not walltime: it is the workers'
        if options.get(option):
            lines.append(f"#SBATCH --{flag}={options[option]}")
    lines.append(f"cd {shlex.quote(str(root))} && exec {shlex.join([sys.executable, '-m', 'modver', *argv])}")
    try:
        done = subprocess.run(
            ["sbatch", "--parsable"], input="\n".join(lines) + "\n", capture_output=True, text=True, cwd=root
        )
    except OSError as exc:
        raise errors.ClusterError(
            f"cannot run sbatch: {exc}", hint="run it where Slurm's commands are installed"
        ) from exc
    if done.returncode != 0:
        raise errors.ClusterError(f"sbatch refused the sweep's driver job: {done.stderr.strip()}", hint=None)
    return done.stdout.strip().split(";")[0]
