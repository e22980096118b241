"""Sharing: modver push then pull of ~500 versions x 10 stages and 200 runs with 2 GB of cached
outputs, to a bare git remote and a storage folder, against git and cp doing the same in the same run.

    python benchmarks/bench_share.py [--commits 440] [--runs 200] [--size-mb 2048]

``MODVER_BENCH_SHARE_MB`` scales the outputs down for a quick look (e.g. 256). Baselines, timed
in the same run on the same data: ``git push`` of the same refs (``refs/modver/*``) to a fresh
bare repository, ``git fetch`` of them in a fresh clone, and ``cp -r`` of the same bytes (the
run records and the cached outputs) — once for a push, once more for ``pull --outputs``. A second
push with nothing new is compared with ``python -c pass``.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import ENV, MODVER, ROOT, timed
from bench_index import build_repo

sys.path.insert(0, str(ROOT))


def git(cwd: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=cwd, check=True, env=ENV, capture_output=True)


def settled(cmd: list[str], cwd: Path) -> float:
    """Wall time of ``cmd`` and of writing what it wrote to disk (``sync``), started once earlier
    writes are on disk (a ``sync`` not timed): what a step costs, not how much the page cache hides."""
    subprocess.run(["sync"], check=True)
    start = time.perf_counter()
    subprocess.run(cmd, cwd=cwd, check=True, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    subprocess.run(["sync"], check=True)
    return time.perf_counter() - start


def make_runs(project: Path, runs: int, total_mb: int) -> int:
    """``runs`` succeeded run records, each naming one cached output of ``total_mb / runs`` MB."""
    from modver.record import RunRecord, RunStatus, StageRecord, StageStatus
    from modver.store.cache import OutputCache
    from modver.store.layout import Store
    from modver.store.runstore import RunStore, new_run_id, now_iso

    store = Store(project)
    cache, records = OutputCache(store.outputs), RunStore(store.runs)
    size = total_mb * 1024 * 1024 // runs
    for i in range(runs):
        key = f"mv1:{i:064x}"
        cache.put(key, os.urandom(size), {"stage": "s0", "version": "v1"})
        stage = StageRecord(StageStatus.SUCCEEDED, key, fingerprint="mv1:" + "ab" * 32, version="v1")
        started = now_iso()
        record = RunRecord(
            new_run_id(), RunStatus.SUCCEEDED, started, started, 0.1, socket.gethostname(), 1, user="bench",
            stages={"s0": stage}, params={"s0": {"i": i}}, metrics={"score": i / runs},
        )  # fmt: skip
        records.create(record)
    return size * runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--commits", type=int, default=440)  # about 500 versions over 10 stages
    parser.add_argument("--stages", type=int, default=10)
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--size-mb", type=int, default=int(os.environ.get("MODVER_BENCH_SHARE_MB", "2048")))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=os.environ.get("MODVER_BENCH_TMP")) as tmp_text:
        tmp = Path(tmp_text)
        alice = tmp / "alice"
        t = time.perf_counter()
        build_repo(alice, args.commits, args.stages)
        subprocess.run([*MODVER, "index"], cwd=alice, check=True, env=ENV, stdout=subprocess.DEVNULL)
        (alice / "modver.toml").write_text('storage = "../shared"\n')
        git(alice, "add", "modver.toml")
        git(alice, "commit", "-q", "-m", "storage")
        nbytes = make_runs(alice, args.runs, args.size_mb)
        for name in ("remote.git", "remote2.git", "baseline.git"):
            git(tmp, "init", "-q", "--bare", "-b", "main", name)
        for name in ("shared", "shared2", "copy", "copy2", "back", "back2", "warm-up"):
            (tmp / name).mkdir()
        git(alice, "remote", "add", "origin", "../remote.git")
        for remote in ("origin", "../remote2.git", "../baseline.git"):
            git(alice, "push", "-q", remote, "main")
        out = subprocess.run([*MODVER, "log", "--json"], cwd=alice, env=ENV, capture_output=True, text=True, check=True)
        versions = out.stdout.count('"fingerprint"')
        print(f"built {versions} versions x {args.stages} stages, {args.runs} runs, {nbytes / 1e9:.2f} GB of outputs "
              f"in {time.perf_counter() - t:.1f}s")  # fmt: skip
        for name, remote in (("bob", "remote.git"), ("carol", "remote.git"), ("dave", "remote2.git")):
            git(tmp, "clone", "-q", remote, name)
        (tmp / "dave" / "modver.toml").write_text('storage = "../shared2"\n')
        git(tmp, "clone", "-q", "baseline.git", "erin")

        py = timed([sys.executable, "-c", "pass"], tmp, repeat=10)
        # baselines: the same refs through git, the same bytes through cp -r. Each step is timed until
        # its writes are on disk (see settled), and each copy of the outputs twice, in the order A B B A
        # (on this machine the position of a big copy changes its time): each figure is the mean of two.
        git_push = settled(["git", "push", "-q", "../baseline.git", "refs/modver/*:refs/modver/*"], alice)
        git_fetch = settled(["git", "fetch", "-q", "origin", "refs/modver/*:refs/modver/*"], tmp / "erin")
        sources = [str(alice / ".modver" / "runs"), str(alice / ".modver" / "cache" / "outputs")]
        settled(["cp", "-r", *sources, str(tmp / "warm-up")], tmp)  # not counted: the first big write of a
        # run is absorbed by the virtual disk's cache, here about 4x faster than any later one
        cp_a = settled(["cp", "-r", *sources, str(tmp / "copy")], tmp)
        push_a = settled([*MODVER, "push"], alice)
        (alice / "modver.toml").write_text('storage = "../shared2"\n')
        push_b = settled([*MODVER, "push", "../remote2.git"], alice)
        cp_b = settled(["cp", "-r", *sources, str(tmp / "copy2")], tmp)
        (alice / "modver.toml").write_text('storage = "../shared"\n')
        pull = settled([*MODVER, "pull"], tmp / "bob")
        back = [str(tmp / "copy" / "runs"), str(tmp / "copy" / "outputs")]
        cp_back_a = settled(["cp", "-r", *back, str(tmp / "back")], tmp)
        pull_outputs_a = settled([*MODVER, "pull", "--outputs"], tmp / "carol")
        pull_outputs_b = settled([*MODVER, "pull", "--outputs"], tmp / "dave")
        cp_back_b = settled(["cp", "-r", *back, str(tmp / "back2")], tmp)
        again = timed([*MODVER, "push"], alice, repeat=5)
        pulled_again = timed([*MODVER, "pull"], tmp / "bob", repeat=5)

    cp, push = (cp_a + cp_b) / 2, (push_a + push_b) / 2
    cp_back, pull_outputs = (cp_back_a + cp_back_b) / 2, (pull_outputs_a + pull_outputs_b) / 2
    print(f"(each step that moves the outputs, first and second position: cp {cp_a:.2f}/{cp_b:.2f} s, push {push_a:.2f}/{push_b:.2f} s, "
          f"cp back {cp_back_a:.2f}/{cp_back_b:.2f} s, pull --outputs {pull_outputs_a:.2f}/{pull_outputs_b:.2f} s)")  # fmt: skip
    base = git_push + git_fetch + cp
    print(f"python -c pass                          {py * 1000:9.1f} ms")
    print(f"git push refs/modver/* (fresh bare)     {git_push * 1000:9.1f} ms")
    print(f"git fetch refs/modver/* (fresh clone)   {git_fetch * 1000:9.1f} ms")
    print(
        f"cp -r runs + outputs ({nbytes / 1e9:.2f} GB)          {cp * 1000:9.1f} ms   (again, back: {cp_back * 1000:.1f} ms)"
    )
    print(f"modver push (versions, runs, outputs)   {push * 1000:9.1f} ms")
    print(f"modver pull (versions, runs)            {pull * 1000:9.1f} ms")
    print(
        f"push + pull                             {(push + pull) * 1000:9.1f} ms  = {(push + pull) / base:5.2f}x "
        "git push + git fetch + cp -r (target <= 1.5x)"
    )
    print(
        f"modver pull --outputs (fresh clone)     {pull_outputs * 1000:9.1f} ms  = "
        f"{pull_outputs / (git_fetch + cp_back):5.2f}x git fetch + cp -r (the copy back)"
    )
    print(
        f"modver push, nothing new              {again * 1000:9.1f} ms  = {again / py:5.1f}x python -c pass (target <= 10x)"
    )
    print(
        f"modver pull, nothing new              {pulled_again * 1000:9.1f} ms  = {pulled_again / py:5.1f}x python -c pass"
    )


if __name__ == "__main__":
    main()
