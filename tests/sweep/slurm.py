"""A real single-node Slurm cluster for the tests, from Debian's slurm-wlm and munge packages.

:func:`start_slurm` writes everything into one temporary folder — a munge key and a munged with
its own socket (a system munged, if any, is left alone), a slurm.conf with free non-default
ports, ``SlurmUser=root``, no cgroups (``proctrack/linuxproc``, ``task/none``), ``cons_tres``
with ``CR_Core`` and one node ``$(hostname -s)`` with 2 CPUs and 4000 MB in one default
partition — starts munged, slurmctld and slurmd in the foreground and waits until ``sinfo``
says the node is idle (about a second). :meth:`Slurm.stop` cancels every job, waits for the
queue to empty and stops the three daemons by the pids it started. .ci/run installs the
packages when they are missing; elsewhere the tests that need Slurm skip, saying so.

Fixtures (import them into the test module that uses them): ``slurm_cluster``, one cluster for
the session; ``slurm``, that cluster with ``SLURM_CONF`` set for one test, which must leave no job.
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

DAEMONS = ("munged", "slurmctld", "slurmd", "sinfo", "sbatch", "squeue", "scancel")
MISSING = "needs Debian's slurm-wlm and munge (`apt-get install slurm-wlm munge`; .ci/run installs them)"


def missing() -> str | None:
    """Why Slurm cannot run here, or None."""
    absent = [name for name in DAEMONS if shutil.which(name) is None]
    if absent:
        return f"{MISSING}: {', '.join(absent)} not found"
    if os.geteuid() != 0:
        return "a test Slurm cluster runs its daemons as root (SlurmUser=root)"
    return None


@dataclass
class Slurm:
    """A running test cluster: its folder, ``SLURM_CONF`` and the daemons started for it."""

    folder: Path
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def conf(self) -> Path:
        return self.folder / "slurm.conf"

    @property
    def env(self) -> dict[str, str]:
        """The environment of a Slurm client (sbatch, squeue, modver --cluster slurm)."""
        return {**os.environ, "SLURM_CONF": str(self.conf)}

    def run(self, *argv: str) -> str:
        """A Slurm command's output."""
        return subprocess.run(argv, env=self.env, capture_output=True, text=True, check=True, timeout=60).stdout

    def jobs(self) -> list[dict[str, str]]:
        """The jobs in the queue: id, name, state."""
        lines = self.run("squeue", "-h", "-o", "%i|%j|%T").split()
        return [dict(zip(("id", "name", "state"), line.split("|"))) for line in lines]

    def wait_until_idle(self, timeout: float = 60) -> None:
        """Until no job is left in the queue."""
        deadline = time.monotonic() + timeout
        while self.jobs():
            if time.monotonic() > deadline:
                raise AssertionError(f"Slurm jobs left after {timeout} s: {self.jobs()}")
            time.sleep(0.2)

    def log(self) -> str:
        return "\n".join(
            f"--- {p.name}\n{p.read_text(errors='replace')[-3000:]}" for p in sorted(self.folder.glob("*.log"))
        )

    def stop(self) -> None:
        """Cancel every job, then stop the daemons by their pids (slurmd, slurmctld, munged)."""
        try:
            if self.processes and all(p.poll() is None for p in self.processes):
                subprocess.run(["scancel", "--full", "--user", "root"], env=self.env, capture_output=True, timeout=30)
                self.wait_until_idle(30)
        finally:
            for process in reversed(self.processes):
                if process.poll() is None:
                    process.terminate()
                    try:
                        process.wait(15)
                    except subprocess.TimeoutExpired:
                        process.kill()
                        process.wait()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _slurm_conf(folder: Path, host: str) -> str:
    return f"""\
ClusterName=modvertest
SlurmctldHost={host}
SlurmUser=root
SlurmdUser=root
SlurmctldPort={_free_port()}
SlurmdPort={_free_port()}
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={folder}/munge/munge.socket
StateSaveLocation={folder}/state
SlurmdSpoolDir={folder}/spool
SlurmctldPidFile={folder}/slurmctld.pid
SlurmdPidFile={folder}/slurmd.pid
SlurmctldLogFile={folder}/slurmctld.log
SlurmdLogFile={folder}/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
MpiDefault=none
ReturnToService=2
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=1
KillWait=2
NodeName={host} CPUs=2 RealMemory=4000 State=UNKNOWN
PartitionName=main Nodes={host} Default=YES MaxTime=INFINITE State=UP
"""


def start_slurm(folder: Path, timeout: float = 30) -> Slurm:
    """Start a single-node cluster in ``folder`` (see the module docstring); running when it returns."""
    folder.mkdir(parents=True, exist_ok=True)
    folder.chmod(0o755)
    for sub in ("munge", "state", "spool"):
        (folder / sub).mkdir(mode=0o700)
    key = folder / "munge" / "munge.key"
    key.write_bytes(secrets.token_bytes(1024))
    key.chmod(0o400)
    host = socket.gethostname().split(".")[0]
    (folder / "slurm.conf").write_text(_slurm_conf(folder, host), encoding="utf-8")
    slurm = Slurm(folder)
    munge = folder / "munge"
    commands = [
        ["munged", "--force", "--foreground", f"--socket={munge}/munge.socket", f"--key-file={key}",
         f"--pid-file={munge}/munged.pid", f"--log-file={folder}/munged.log", f"--seed-file={munge}/munged.seed"],
        ["slurmctld", "-D", "-f", str(slurm.conf)],
        ["slurmd", "-D", "-f", str(slurm.conf)],
    ]  # fmt: skip
    try:
        for argv in commands:
            slurm.processes.append(
                subprocess.Popen(argv, env=slurm.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            )
            if argv[0] == "munged":
                _wait_for(lambda: (munge / "munge.socket").exists(), timeout, slurm, "munged's socket")
        _wait_for(lambda: _node_state(slurm) == "idle", timeout, slurm, "the node to be idle in sinfo")
    except BaseException:
        slurm.stop()
        raise
    return slurm


def _node_state(slurm: Slurm) -> str:
    done = subprocess.run(["sinfo", "-h", "-o", "%t"], env=slurm.env, capture_output=True, text=True, timeout=10)
    return done.stdout.strip()


def _wait_for(ready, timeout: float, slurm: Slurm, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not ready():
        dead = [p.args[0] for p in slurm.processes if p.poll() is not None]
        if dead or time.monotonic() > deadline:
            raise RuntimeError(f"Slurm did not start: waited for {what}; exited: {dead}\n{slurm.log()}")
        time.sleep(0.1)


@pytest.fixture(scope="session")
def slurm_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Slurm]:
    """One Slurm cluster for the whole session, stopped at its end by the pids it started."""
    why = missing()
    if why is not None:
        pytest.skip(why)
    cluster = start_slurm(tmp_path_factory.mktemp("slurm"))
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def slurm(slurm_cluster: Slurm, monkeypatch: pytest.MonkeyPatch) -> Iterator[Slurm]:
    """The session's Slurm cluster, ``SLURM_CONF`` set for this test; no job is left at its end."""
    monkeypatch.setenv("SLURM_CONF", str(slurm_cluster.conf))
    yield slurm_cluster
    leftover = slurm_cluster.jobs()
    if leftover:
        slurm_cluster.run("scancel", "--user", "root")
        slurm_cluster.wait_until_idle()
    assert not leftover, f"the test left Slurm jobs behind: {leftover}"
