"""Helpers of the executor tests: a project whose stages say when and where they ran, planned
into stage tasks keyed by cache key, and the processes a driver leaves behind."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from modver.engine.executor import StageTask, task_for
from modver.engine.planner import Pipeline, plan
from modver.project import Project
from tests.helpers import GitProject

# first -> second; boom -> after_boom; victim (dies once when told to); crash (always dies); every
# stage says where it ran
GRAPH_PIPELINE = {
    "manifest.yaml": """\
stages:
  first:
    entry: pipe/stages.py:first
    params: {wait: 0.3}
  second:
    entry: pipe/stages.py:second
    inputs: {data: first}
  boom:
    entry: pipe/stages.py:boom
    params: {fail: false}
  after_boom:
    entry: pipe/stages.py:after
    inputs: {data: boom}
  victim:
    entry: pipe/stages.py:victim
    params: {marker: ""}
  crash:
    entry: pipe/stages.py:crash
""",
    "pipe/__init__.py": "",
    "pipe/stages.py": """\
import os
import time


def where():
    return {"pid": os.getpid(), "job": os.environ.get("SLURM_JOB_ID")}


def first(wait):
    start = time.time()
    time.sleep(wait)
    return {"start": start, "end": time.time(), **where()}


def second(data):
    return {"start": time.time(), "upstream_end": data["end"], **where()}


def boom(fail):
    if fail:
        raise RuntimeError("boom was told to fail")
    return where()


def after(data):
    return {"after": data, **where()}


def crash():
    os.kill(os.getpid(), 9)  # its worker dies, every time


def victim(marker):
    # the first attempt writes its pid (and Slurm job) to the marker and waits to be killed; the next one runs
    if marker and not os.path.exists(marker):
        with open(marker + ".tmp", "w") as f:
            f.write(f"{os.getpid()} {os.environ.get('SLURM_JOB_ID', '')}")
        os.replace(marker + ".tmp", marker)
        time.sleep(60)
    return where()
""",
}


def graph_project(project: GitProject) -> GitProject:
    """``project`` with the graph pipeline committed."""
    for path, text in GRAPH_PIPELINE.items():
        project.write(path, text)
    project.write(".gitignore", ".modver/\n")
    project.commit("graph pipeline")
    return project


def graph_tasks(root: Path, sets: Sequence[str] = (), stages: Sequence[str] | None = None) -> dict[str, StageTask]:
    """The pipeline's stages (or only ``stages``) as tasks keyed by cache key, versions registered."""
    with Project(root) as project:
        pipeline = Pipeline.from_manifest(project.manifest(), project.root, sets)
        plans = plan(project.registry, project.store, pipeline, register=True)
        tasks = [task_for(project.store, p, None) for p in plans]
    return {t.key: t for t in tasks if stages is None or t.stage in stages}


def by_stage(tasks: dict[str, StageTask]) -> dict[str, str]:
    """stage name -> cache key."""
    return {t.stage: key for key, t in tasks.items()}


def descendants(pid: int) -> list[tuple[int, str]]:
    """The live processes below ``pid`` (pid, command line), from /proc."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if fields[0] != "Z":
                children.setdefault(int(fields[1]), []).append(int(entry.name))
    found, todo = [], list(children.get(pid, []))
    while todo:
        child = todo.pop()
        found.append((child, _cmdline(child)))
        todo.extend(children.get(child, []))
    return found


def in_session(sid: int) -> list[tuple[int, str]]:
    """The live processes of session ``sid`` (a driver started with ``start_new_session``)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if fields[0] != "Z" and int(fields[3]) == sid:  # state, ppid, pgrp, session
                found.append((int(entry.name), _cmdline(int(entry.name))))
    return found


def _cmdline(pid: int) -> str:
    try:
        return (Path("/proc") / str(pid) / "cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
    except OSError:
        return "?"
