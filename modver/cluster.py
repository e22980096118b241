"""Running a graph of stage tasks on Dask: every core here, any Dask cluster, or batch jobs.

:func:`run_graph` takes stage tasks keyed by cache key (a task depends on the tasks whose keys
are its inputs) and runs each on a Dask worker as soon as its inputs are ready:

- the executor (:class:`ExecutorSpec`): by default a local cluster of ``jobs`` worker processes
  (one thread each); ``scheduler`` connects to a running Dask cluster; ``cluster`` starts workers
  as batch jobs through dask-jobqueue (Slurm, PBS, SGE, LSF) with the manifest's ``options``;
- before the first task, every worker must see the same store: a random token file is written
  under the store's ``tmp/`` and read back by each worker (:class:`~modver.errors.ClusterError`
  names the worker that cannot); a worker that joins later checks it before each task;
- a worker runs :func:`modver.executor.run_task`, which loads the task's inputs from the store and
  saves its output there: only the small :class:`~modver.executor.TaskResult` goes back through
  the scheduler. The driver (this process) is the only one that reports, through ``on_event``;
- a task whose upstream failed is skipped; ``fail_fast`` cancels everything left at the first
  failure; a worker that dies mid-task is replaced (a local worker by its nanny, a batch job that
  ended — ``scancel``, walltime — by a new job submitted here) and the task runs again (the
  scheduler's allowed failures); Ctrl-C cancels the futures and shuts the cluster down, so no
  worker process outlives the driver.

:func:`detach` submits the sweep's driver itself as a batch job.

This is the only module that imports dask, distributed and dask_jobqueue, and only inside
functions: importing it loads no Dask.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import secrets
import shlex
import socket
import subprocess
import sys
import time
import traceback
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from modver import errors
from modver.executor import StageTask, TaskResult, run_task
from modver.record import ErrorInfo, StageStatus

if TYPE_CHECKING:
    from distributed import Client, Future

__all__ = ["JOBQUEUE", "ClusterConfig", "ExecutorSpec", "TaskEvent", "detach", "run_graph"]

# cluster kind -> dask-jobqueue's cluster class
JOBQUEUE = {"slurm": "SLURMCluster", "pbs": "PBSCluster", "sge": "SGECluster", "lsf": "LSFCluster"}
KINDS = (*JOBQUEUE, "local")
# what a batch worker gets unless the manifest's options say otherwise: one core, one process
JOB_DEFAULTS: dict[str, Any] = {"cores": 1, "processes": 1, "memory": "1GB"}
LOGGERS = ("distributed", "dask_jobqueue", "dask")
# no dashboard; its HTTP server (health, metrics) on any free port, not 8787: one user's sweep must
# not warn that another's holds it
QUIET_SCHEDULER = {"dashboard_address": ":0"}


@dataclass(frozen=True)
class ClusterConfig:
    """The manifest's ``cluster:`` section: ``kind`` (slurm, pbs, sge, lsf, local or a
    ``tcp://HOST:PORT`` scheduler), at most ``jobs`` workers, ``options`` for dask-jobqueue."""

    kind: str = "local"
    jobs: int | None = None
    options: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_json(cls, data: Any, where: str = "cluster") -> ClusterConfig:
        """The section as the manifest holds it, checked: a clear error names the bad key."""
        if not isinstance(data, Mapping):
            raise errors.ManifestError("the cluster: section must be a mapping", where=where, hint=_CLUSTER_HINT)
        unknown = sorted(set(data) - {"kind", "jobs", "options"})
        if unknown:
            raise errors.ManifestError(
                f"unknown key {unknown[0]!r} in the cluster: section", where=where, hint=_CLUSTER_HINT
            )
        kind = data.get("kind", "local")
        if not isinstance(kind, str) or not (kind in KINDS or kind.startswith("tcp://")):
            raise errors.ManifestError(
                f"cluster kind {kind!r} is not one of {', '.join(KINDS)} or tcp://HOST:PORT", where=where
            )
        jobs = data.get("jobs")
        if jobs is not None and (isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1):
            raise errors.ManifestError(f"cluster jobs must be a whole number >= 1, not {jobs!r}", where=where)
        options = data.get("options", {})
        if not isinstance(options, Mapping):
            raise errors.ManifestError("cluster options must be a mapping", where=where, hint=_CLUSTER_HINT)
        return cls(kind, jobs, dict(options))


_CLUSTER_HINT = "write e.g. cluster: {kind: slurm, jobs: 8, options: {queue: gpu, cores: 4, memory: 16GB}}"


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


@dataclass(frozen=True)
class TaskEvent:
    """What happened to a task: ``kind`` is started, done, failed, skipped or retried (its worker
    died and it runs again). ``result`` is set for done, failed and skipped."""

    key: str
    kind: str
    result: TaskResult | None = None


def run_graph(
    tasks: Mapping[str, StageTask],
    spec: ExecutorSpec,
    *,
    on_event: Callable[[TaskEvent], None],
    fail_fast: bool = False,
    store: Path,
) -> dict[str, TaskResult]:
    """Run ``tasks`` (keyed by cache key) on the executor of ``spec``; every task's result by key
    (see the module docstring). ``on_event`` is called in this thread. Ctrl-C cancels what has not
    finished, shuts the executor down and propagates."""
    if not tasks:
        return {}
    with _quiet(spec.debug), _client(spec, store) as (client, watch):
        check = _check_store(client, store)
        try:
            return _Graph(client, tasks, on_event, fail_fast, str(check), watch).run()
        finally:
            check.unlink(missing_ok=True)


# -- the executor ------------------------------------------------------------------------------


@contextlib.contextmanager
def _quiet(debug: bool) -> Iterator[None]:
    """Distributed's loggers say only errors (warnings too with ``debug``), for the block."""
    import distributed  # noqa: F401 - its loggers exist, with the levels its config gave them

    names = [n for n in logging.root.manager.loggerDict if n.split(".")[0] in LOGGERS]
    saved = {name: logging.getLogger(name).level for name in names}
    for name in names:
        logging.getLogger(name).setLevel(logging.WARNING if debug else logging.ERROR)
    try:
        yield
    finally:
        for name, level in saved.items():
            logging.getLogger(name).setLevel(level)


@contextlib.contextmanager
def _client(spec: ExecutorSpec, store: Path) -> Iterator[tuple[Client, Callable[[], None]]]:
    """A client of the executor of ``spec``, and what to call now and then to keep its workers up
    (:class:`_JobWatch` for batch jobs); the cluster it started is shut down at the end."""
    from distributed import Client

    address = spec.address
    cluster = None
    try:
        if address is not None:
            try:
                client = Client(address, timeout="10s")
            except (OSError, TimeoutError) as exc:
                raise errors.ClusterError(
                    f"cannot reach the Dask scheduler at {address}: {exc}",
                    hint="start it (`dask scheduler`, then `dask worker ADDRESS`) or check the address",
                ) from exc
        else:
            cluster = _start_cluster(spec, store)
            client = Client(cluster)
    except BaseException:
        if cluster is not None:
            cluster.close()
        raise
    try:
        _wait_for_a_worker(client, spec)
        yield client, (_JobWatch(cluster, client, spec.workers) if spec.kind in JOBQUEUE else lambda: None)
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def _start_cluster(spec: ExecutorSpec, store: Path) -> Any:
    kind = spec.kind
    level = logging.WARNING if spec.debug else logging.ERROR
    if kind not in JOBQUEUE:
        from distributed import LocalCluster

        return LocalCluster(
            n_workers=spec.workers,
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
            scheduler_kwargs=QUIET_SCHEDULER,
            silence_logs=level,
        )
    import dask_jobqueue

    assert spec.cluster is not None
    options = {"log_directory": str(store / "logs" / "cluster"), **JOB_DEFAULTS, **spec.cluster.options}
    options["scheduler_options"] = {**QUIET_SCHEDULER, **options.get("scheduler_options", {})}
    try:
        cluster = getattr(dask_jobqueue, JOBQUEUE[kind])(silence_logs=level, dashboard_address=None, **options)
    except (TypeError, ValueError) as exc:
        raise errors.ClusterError(
            f"cannot start a {kind} cluster with options {dict(spec.cluster.options)}: {exc}",
            where="cluster.options",
            hint="the options are dask-jobqueue's: see https://jobqueue.dask.org/en/latest/clusters-api.html",
        ) from exc
    cluster.scale(jobs=spec.workers)
    return cluster


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


def _wait_for_a_worker(client: Client, spec: ExecutorSpec) -> None:
    """A batch queue may take its time (no limit); a running scheduler without workers has 30 s."""
    try:
        client.wait_for_workers(1, timeout=30 if spec.address is not None else None)
    except TimeoutError as exc:
        raise errors.ClusterError(
            f"the Dask scheduler at {spec.address} has no workers",
            hint="start workers on machines that see the project folder: `dask worker ADDRESS`",
        ) from exc


def _read_token(path: str) -> tuple[str, str | None]:  # runs on each worker
    try:
        return socket.gethostname(), Path(path).read_text(encoding="utf-8")
    except OSError:
        return socket.gethostname(), None


def _check_store(client: Client, store: Path) -> Path:
    """Every worker reads back a token written under ``store``; the token file (kept until the end)."""
    token = secrets.token_hex(16)
    folder = store / "tmp"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"worker-check-{token}"
    path.write_text(token, encoding="utf-8")
    seen = client.run(_read_token, str(path))
    for worker, (host, got) in sorted(seen.items()):
        if got != token:
            path.unlink(missing_ok=True)
            raise errors.ClusterError(_store_unseen(worker, host, store), hint=_SHARED_HINT)
    return path


def _store_unseen(worker: str, host: str, store: Path | str) -> str:
    return f"Dask worker {worker} (on {host}) does not see the store {store}"


_SHARED_HINT = "workers need the project folder on a shared file system, at the same path as here"


# -- the graph -----------------------------------------------------------------------------------


def _run_on_worker(task: StageTask, check: str, topic: str, *upstream: TaskResult | None) -> TaskResult | None:
    """The task on a Dask worker: None (skipped) if an upstream task did not succeed."""
    from distributed import get_worker

    if any(u is None or u.status is not StageStatus.SUCCEEDED for u in upstream):
        return None
    worker = get_worker()
    if not os.path.exists(check):  # a worker that joined after the check, elsewhere
        message = _store_unseen(worker.address, socket.gethostname(), task.store)
        return TaskResult(
            StageStatus.FAILED, error=ErrorInfo("ClusterError", message), message=message, hint=_SHARED_HINT
        )
    worker.log_event(topic, {"key": task.key})
    return run_task(task)


class _Graph:
    """One run of a graph of tasks: submitted at once, settled as they finish, in this thread."""

    def __init__(
        self,
        client: Client,
        tasks: Mapping[str, StageTask],
        on_event: Callable[[TaskEvent], None],
        fail_fast: bool,
        check: str,
        watch: Callable[[], None],
    ):
        self.client, self.tasks, self.on_event, self.fail_fast, self.check = client, tasks, on_event, fail_fast, check
        self.watch = watch
        self.topic = f"modver-{secrets.token_hex(8)}"
        # from the client's threads: ("started", key) from a worker, ("settled", future)
        self.news: queue.SimpleQueue[tuple[str, Any]] = queue.SimpleQueue()
        self.running: set[str] = set()
        self.results: dict[str, TaskResult] = {}
        self.failed = False  # whether a task has failed
        self.futures: dict[str, Future[Any]] = {}

    def upstream(self, key: str) -> list[str]:
        return [k for k in self.tasks[key].inputs.values() if k in self.tasks]

    def run(self) -> dict[str, TaskResult]:
        self.client.subscribe_topic(self.topic, lambda event: self.news.put(("started", event[1]["key"])))
        try:
            for key in self.tasks:
                self._submit(key)
            while len(self.results) < len(self.tasks):
                self.watch()
                try:
                    what, item = self.news.get(timeout=0.5)
                except queue.Empty:
                    continue
                if what == "started":
                    self._started(item)
                else:
                    self._settle(item.key[1], item)
                if self.fail_fast and self.failed:
                    self._cancel_the_rest()
        except BaseException:  # Ctrl-C: nothing more runs
            self.client.cancel(list(self.futures.values()), force=True)
            raise
        finally:
            self.client.unsubscribe_topic(self.topic)
        return self.results

    def _submit(self, key: str) -> Future[Any]:
        if key not in self.futures:  # upstream first: a task's arguments are its upstream futures
            deps = [self._submit(k) for k in self.upstream(key)]
            task = self.tasks[key]
            future = self.client.submit(  # in submission order (points in order), not Dask's own graph order
                _run_on_worker, task, self.check, self.topic, *deps, key=(f"{task.stage}-{self.topic}", key),
                pure=False, priority=-len(self.futures),
            )  # fmt: skip
            future.add_done_callback(lambda f: self.news.put(("settled", f)))
            self.futures[key] = future
        return self.futures[key]

    def _cancel_the_rest(self) -> None:
        rest = [key for key in self.tasks if key not in self.results]
        self.client.cancel([self.futures[key] for key in rest], force=True)
        for key in rest:
            self._report(key, _skipped("cancelled: another task failed (--fail-fast)"))

    def _started(self, key: str) -> None:
        if key in self.results:  # reported late: it has finished already
            return
        self.on_event(TaskEvent(key, "retried" if key in self.running else "started"))
        self.running.add(key)

    def _settle(self, key: str, future: Future[Any]) -> None:
        if future.status == "finished":
            result = future.result()
            if result is None:
                failed = [self.tasks[k].stage for k in self.upstream(key) if not self._succeeded(k)]
                result = _skipped(f"an upstream stage did not succeed: {', '.join(failed)}")
        elif future.status == "cancelled":
            result = _skipped("cancelled")
        else:  # an error of the wrapper itself, or a worker that died too many times running it
            exc = future.exception()
            if any(not self._succeeded(k) for k in self.upstream(key)):
                result = _skipped("an upstream stage did not succeed")
            else:
                result = _crashed(self.tasks[key], exc)
        if result.status is not StageStatus.SKIPPED and key not in self.running:
            self.running.add(key)
            self.on_event(TaskEvent(key, "started"))
        self._report(key, result)

    def _succeeded(self, key: str) -> bool:
        return key in self.results and self.results[key].status is StageStatus.SUCCEEDED

    def _report(self, key: str, result: TaskResult) -> None:
        if key in self.results:
            return
        self.results[key] = result
        self.failed = self.failed or result.status is StageStatus.FAILED
        self.running.discard(key)
        kinds = {StageStatus.SUCCEEDED: "done", StageStatus.SKIPPED: "skipped"}
        self.on_event(TaskEvent(key, kinds.get(result.status, "failed"), result))


def _skipped(why: str) -> TaskResult:
    return TaskResult(StageStatus.SKIPPED, message=why)


def _crashed(task: StageTask, exc: BaseException | None) -> TaskResult:
    """The result of a task whose Dask future erred (a KilledWorker: its workers kept dying)."""
    name = type(exc).__name__ if exc is not None else "Error"
    if name == "KilledWorker":
        message = f"stage {task.stage}: the Dask workers running it died, again and again: {exc}"
        hint = "a stage that uses more memory than a worker has kills it: give workers more memory, or fewer jobs"
    else:
        message = f"stage {task.stage} failed on its Dask worker: {name}: {exc}"
        hint = None
    text = "".join(traceback.format_exception(exc)) if exc is not None else None
    return TaskResult(
        StageStatus.FAILED, error=ErrorInfo(name, str(exc), task.stage, None, text), message=message, hint=hint
    )


# -- the driver as a batch job ---------------------------------------------------------------------


def detach(argv: list[str], spec: ExecutorSpec, root: Path) -> str:
    """Submit ``modver ARGV`` (run in ``root``) as a Slurm batch job; the job's id.

    The job runs the sweep's driver, which submits its workers as jobs of their own; its output
    goes to ``.modver/logs/cluster/driver-<job>.out``.
    """
    if spec.kind != "slurm":
        raise errors.ClusterError(
            f"--detach submits the driver to Slurm; the cluster here is {spec.kind}",
            hint="use --cluster slurm (or cluster: {kind: slurm} in the manifest)",
        )
    logs = root / ".modver" / "logs" / "cluster"
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
