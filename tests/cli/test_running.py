"""End-to-end: `modver run`, the cache, run records, reproduce, load — through the real CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import RUN_PIPELINE, mv, mv_json


def run(root: Path, *args: str, code: int = 0) -> dict:
    return json.loads(mv(root, "run", "--json", *args, code=code).stdout)


def test_run_then_everything_cached(run_project):
    p = run_project
    first = run(p.root)
    assert first["status"] == "succeeded"
    assert first["cached"] == {"prep": False, "other": False, "train": False}
    assert first["metrics"]["mean"] == pytest.approx((3 + 6 + 9) * 2 / 3)
    assert [e["step"] for e in first["metric_series"]["loss"]] == [0, 1, 2]
    assert first["versions"] == {"prep": "v1", "other": "v1", "train": "v1"}
    assert first["git"]["commit"] == p.git("rev-parse", "HEAD") and first["git"]["dirty"] is False
    # the run's snapshots are of committed code: their origin is that commit
    assert {v["origin"] for v in mv_json(p.root, "log", "train")} == {first["git"]["commit"]}
    assert first["python"] and "dulwich" in {k.lower() for k in first["packages"]}
    second = run(p.root)
    assert second["cached"] == {"prep": True, "other": True, "train": True}
    assert second["metrics"] == first["metrics"]  # replayed from the cache
    stdout = (p.root / ".modver" / "runs" / first["run"] / "other.stdout").read_text()
    assert "other says hello" in stdout
    assert sorted(first["order"]) == ["other", "prep", "train"] and first["order"].index("prep") < first["order"].index(
        "train"
    )
    shown = mv(p.root, "show", first["run"]).stdout.splitlines()
    rows = [line.split()[0] for line in shown[1:] if line.split()[2:3] == ["succeeded"]]
    assert rows == first["order"]  # `show RUN` lists stages in the order they ran


def test_cache_miss_reasons(run_project):
    p = run_project
    run(p.root)

    def reasons(*args: str) -> dict[str, str]:
        out = mv(p.root, "run", "--explain", *args).stdout
        return {line.split("@")[0][2:]: line for line in out.splitlines() if line.startswith("- ") and " — " in line}

    r = reasons("--set", "prep.scale=3")
    assert "param scale 2 -> 3" in r["prep"]
    assert "output of prep changed" in r["train"]
    assert "cached" in r["other"]
    p.write("data/raw.txt", "4 5 6\n")
    r = reasons()
    assert "data/raw.txt changed" in r["prep"]
    p.write("pipe/model.py", RUN_PIPELINE["pipe/model.py"].replace("x * self.mean", "x + self.mean"))
    r = reasons()
    assert "new version v2 of train" in r["train"] and "cached" in r["prep"]
    r = reasons("--force", "prep")
    assert "forced" in r["prep"]
    # formatting only: same version, served from the cache
    p.write("pipe/model.py", p.read("pipe/model.py").replace("    def predict", "    # predict\n    def predict"))
    assert "cached" in reasons()["train"]


def test_two_versions_of_one_helper_in_one_run(run_project):
    p = run_project
    mv(p.root, "index")
    mv(p.root, "pin", "prep@latest")  # v2: the first commit's prep was different
    p.write("pipe/util.py", p.read("pipe/util.py").replace("FACTOR = 3", "FACTOR = 5"))
    record = run(p.root)
    assert record["versions"]["prep"] == "v2" and record["versions"]["other"] == "v2"
    prep = mv_json(p.root, "show", record["run"])  # the record itself
    assert prep["stages"]["prep"]["status"] == "succeeded"
    code = "import modver; print(modver.load('prep'), modver.load('other'))"
    out = subprocess.run([sys.executable, "-c", code], cwd=p.root, capture_output=True, text=True, check=True)
    assert out.stdout.split("\n")[0] == "[6, 12, 18] 5"  # helper at FACTOR=3 for prep, FACTOR=5 for other


@pytest.mark.parametrize("method", ["spawn", "forkserver"])
def test_a_stage_can_use_worker_processes(run_project, method):
    # spawn is the default on macOS, forkserver on Linux from Python 3.14: the workers import the
    # stage's own functions by module name, so the version's package must import there too
    p = run_project
    p.write(
        "pipe/train.py",
        "import multiprocessing\n\nfrom pipe.model import Model\n\n\ndef square(x):\n    return Model(x * x)\n\n\n"
        f"def train(data):\n    with multiprocessing.get_context({method!r}).Pool(2) as pool:\n"
        "        return sum(m.mean for m in pool.map(square, data))\n",
    )
    done = subprocess.run(
        [sys.executable, "-m", "modver", "run", "--json"], cwd=p.root, capture_output=True, text=True, timeout=180
    )
    assert done.returncode == 0, done.stderr
    code = "import modver; print(modver.load('train'))"
    out = subprocess.run([sys.executable, "-c", code], cwd=p.root, capture_output=True, text=True, check=True)
    assert int(out.stdout) == sum((v * 3 * 2) ** 2 for v in (1, 2, 3))


def test_modules_a_stage_imports_without_using_them_are_stored_with_its_version(run_project):
    p = run_project
    p.write("pipe/paths.py", "ROOT = '/data'\n")
    p.write("pipe/settings.py", "from pipe.paths import ROOT\n\nDEBUG = ROOT + '/debug'\n")
    p.write(
        "pipe/other.py",
        "from pipe import settings  # imported, never used by other()\n"
        + RUN_PIPELINE["pipe/other.py"].replace("helper(x)", "helper(x) + 1"),
    )
    p.commit("other imports the settings")
    mv(p.root, "index")
    shown = mv_json(p.root, "show", "other@latest")
    assert shown["imports"] == ["pipe/paths.py", "pipe/settings.py"] and "pipe/settings.py" not in shown["files"]
    mv(p.root, "pin", "other@latest")
    p.git("rm", "-q", "pipe/paths.py", "pipe/settings.py", "pipe/other.py")
    p.commit("the settings are gone")
    assert run(p.root)["status"] == "succeeded"  # the version imports them from the store


def test_a_stage_finds_files_next_to_its_code(run_project):
    p = run_project
    p.write("pipe/weights.txt", "7\n")
    p.write(
        "pipe/train.py",
        "from pathlib import Path\n\nWEIGHTS = Path(__file__).parent / 'weights.txt'\n"
        "print('weights in', WEIGHTS.name)\n\n\ndef train(data):\n    print('training')\n"
        "    return int(WEIGHTS.read_text()) * len(data)\n",
    )
    record = run(p.root)
    assert record["status"] == "succeeded"
    log = (p.root / ".modver" / "runs" / record["run"] / "train.stdout").read_text()
    assert log == "weights in weights.txt\ntraining\n"  # what its import printed, then its call
    code = "import modver; print(modver.load('train'))"
    out = subprocess.run([sys.executable, "-c", code], cwd=p.root, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "21"


def test_a_pinned_version_whose_deps_file_changed_says_so(run_project):
    p = run_project
    p.write("pipe/table.txt", "1\n")
    p.write(
        "manifest.yaml",
        p.read("manifest.yaml").replace("    params: {x: 1}", "    params: {x: 1}\n    deps: [pipe/table.txt]"),
    )
    p.commit("other depends on a table")
    mv(p.root, "index")
    mv(p.root, "pin", "other@latest")
    assert run(p.root)["stages"]["other"]["notes"] == []
    p.write("pipe/table.txt", "2\n")
    out = mv(p.root, "run").stdout
    assert "note: deps file pipe/table.txt is not v" in out and "reads the project's file" in out
    assert "pipe/table.txt" in mv_json(p.root, "runs")[-1]["stages"]["other"]["notes"][0]


def test_failing_stage_is_recorded_and_cached_stages_kept(run_project):
    p = run_project
    good = run(p.root)
    p.write("pipe/train.py", "def train(data):\n    x = 1\n    raise ValueError('bad data')\n")
    result = mv(p.root, "run", code=1)
    assert "stage train failed" in result.stderr and "ValueError: bad data" in result.stderr
    assert "pipe/train.py:3" in result.stderr
    assert "Traceback" not in result.stderr
    records = mv_json(p.root, "runs")
    assert records[-1]["status"] == "failed"
    assert records[-1]["error"]["stage"] == "train" and "ValueError" in records[-1]["error"]["traceback"]
    import modver
    from modver.errors import RunError

    # "latest" is the newest run with an output of the stage; the failed run itself has none
    assert modver.load("train", path=p.root).mean == good["metrics"]["mean"]
    with pytest.raises(RunError, match="it failed"):
        modver.load("train", run=records[-1]["run"], path=p.root)
    p.write("pipe/train.py", RUN_PIPELINE["pipe/train.py"])
    again = run(p.root)
    assert again["cached"]["prep"] is True and again["cached"]["other"] is True


def test_bad_run_inputs_are_clear_errors(run_project):
    p = run_project
    for args, needle in (
        (["--set", "nope.x=1"], "unknown stage 'nope'"),
        (["--set", "prep.bogus=1"], "bogus"),
        (["--set", "prep"], "stage.param=value"),
        (["--force", "nope"], "nope"),
    ):
        result = mv(p.root, "run", *args, code=1)
        assert needle in result.stderr and "Traceback" not in result.stderr
    # errors found before the first stage starts (a mistyped option or param) record no run
    assert mv_json(p.root, "runs") == []
    # a param the last stage does not take fails before the stages upstream of it run
    result = mv(p.root, "run", "--set", "train.bogus=1", code=1)
    assert "train" in result.stderr and "bogus" in result.stderr
    assert mv_json(p.root, "runs") == []  # no stage ran, nothing recorded
    (p.root / "data" / "raw.txt").unlink()
    result = mv(p.root, "run", code=1)
    assert "data/raw.txt" in result.stderr
    assert mv_json(p.root, "runs") == []
    p.write("data/raw.txt", "1 2 3\n")
    p.write("pipe/train.py", "def train(data):\n    return lambda: 1\n")
    result = mv(p.root, "run", code=1)
    assert "cannot be saved" in result.stderr
    assert mv_json(p.root, "runs")[-1]["status"] == "failed"


def test_interrupted_run_leaves_a_record(run_project):
    p = run_project
    p.write("pipe/train.py", "import os, signal\n\n\ndef train(data):\n    os.kill(os.getpid(), signal.SIGINT)\n")
    done = subprocess.run([sys.executable, "-m", "modver", "run"], cwd=p.root, capture_output=True, text=True)
    assert done.returncode == 130, done.stderr
    records = mv_json(p.root, "runs")
    assert records[-1]["status"] == "interrupted"
    assert records[-1]["stages"]["prep"]["status"] == "succeeded"


def test_reproduce_and_load_after_code_is_gone(run_project):
    p = run_project
    original = run(p.root)
    # the code disappears from the working tree and from every branch
    p.git("rm", "-q", "-r", "pipe")
    p.commit("remove the pipeline")
    p.git("checkout", "-q", "--orphan", "other")
    p.git("branch", "-D", "main")
    reproduced = json.loads(mv(p.root, "reproduce", original["run"], "--json").stdout)
    assert reproduced["status"] == "succeeded"
    assert reproduced["reproduces"] == original["run"]
    assert reproduced["cached"] == {"prep": False, "other": False, "train": False}
    assert all(c["match"] for c in reproduced["comparison"].values())
    code = "import modver; m = modver.load('train'); print(type(m).__module__, m.predict(2))"
    out = subprocess.run([sys.executable, "-c", code], cwd=p.root, capture_output=True, text=True, check=True)
    module, value = out.stdout.split()
    assert module.startswith("_modver_") and float(value) == pytest.approx(2 * original["metrics"]["mean"])


def test_runs_table_where_sort_csv_and_dataframe(run_project):
    p = run_project
    run(p.root)
    run(p.root, "--set", "prep.scale=5")
    rows = mv_json(p.root, "runs", "--where", "param.prep.scale == 5")
    assert len(rows) == 1 and rows[0]["params"]["prep"]["scale"] == 5
    rows = mv_json(p.root, "runs", "--sort", "-metric.mean")
    assert rows[0]["metrics"]["mean"] > rows[1]["metrics"]["mean"]
    assert mv_json(p.root, "runs", "--where", "scale == 5", "--sort", "-mean") == rows[:1]  # header names
    assert "unknown column 'nope' in --sort" in mv(p.root, "runs", "--sort", "nope", code=1).stderr
    csv = mv(p.root, "runs", "--csv").stdout.splitlines()
    assert csv[0].startswith("run,status,started,duration") and len(csv) == 3
    assert "metric.mean" in csv[0] and "param.prep.scale" in csv[0]
    result = mv(p.root, "runs", "--where", "__import__('os')", code=1)
    assert "Error:" in result.stderr
    diff = mv_json(p.root, "diff", rows[0]["run"], rows[1]["run"])
    keys = {d["key"] for d in diff["differences"]}
    assert "param.prep.scale" in keys and "metric.mean" in keys

    import modver

    frame = modver.runs(p.root)
    assert list(frame.columns[:4]) == ["run", "status", "started", "duration"]
    assert {"version.prep", "param.prep.scale", "metric.mean", "metric.loss"} <= set(frame.columns)
    assert len(frame) == 2


def test_concurrent_runs_lose_nothing(run_project):
    p = run_project
    env = {**os.environ, "NO_COLOR": "1"}
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "modver", "run", "--set", f"prep.scale={i % 2 + 1}"],
            cwd=p.root,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for i in range(4)
    ]
    for proc in procs:
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err.decode()
    records = mv_json(p.root, "runs")
    assert len(records) == 4 and {r["status"] for r in records} == {"succeeded"}
    assert len({r["run"] for r in records}) == 4
    from modver.store.cache import OutputCache

    cache = OutputCache(p.root / ".modver" / "cache" / "outputs")
    entries = list(cache.entries())
    assert entries and all(cache.verify(e.key) for e in entries)
    # one version per stage despite four processes snapshotting... nothing: the tree is committed
    assert [v["version"] for v in mv_json(p.root, "log", "prep")] == ["v1"]


def test_whole_module_stage_runs_as_main_with_params(run_project):
    p = run_project
    p.write(
        "scripts/train.py",
        """\
import argparse

import modver

parser = argparse.ArgumentParser()
parser.add_argument("--lr", type=float)
parser.add_argument("--raw")
args = parser.parse_args()
if __name__ == "__main__":
    print("training with", args.lr)
    modver.log_metrics(lr_used=args.lr, size=len(open(args.raw).read()))
""",
    )
    p.write(
        "script.yaml",
        "data:\n  raw: data/raw.txt\nstages:\n  script:\n    entry: scripts/train.py\n"
        "    inputs: {raw: data.raw}\n    params: {lr: 0.5}\n",
    )
    record = json.loads(mv(p.root, "run", "script.yaml", "--json").stdout)
    assert record["status"] == "succeeded"
    assert record["metrics"] == {"lr_used": 0.5, "size": 6}
    assert "training with 0.5" in (p.root / ".modver" / "runs" / record["run"] / "script.stdout").read_text()
    again = json.loads(mv(p.root, "run", "script.yaml", "--json", "--set", "script.lr=0.1").stdout)
    assert again["metrics"]["lr_used"] == 0.1 and again["cached"] == {"script": False}
    versions = mv_json(p.root, "log", "script")
    assert [len(v["runs"]) for v in versions] == [2]
    assert versions[0]["runs"][-1]["metrics"]["lr_used"] == 0.1


def test_a_killed_run_reads_as_died_and_the_store_stays_usable(run_project):
    import signal
    import time

    p = run_project
    p.write("pipe/train.py", "import time\n\n\ndef train(data):\n    time.sleep(60)\n")
    proc = subprocess.Popen(
        [sys.executable, "-m", "modver", "run"], cwd=p.root, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        records = mv_json(p.root, "runs")
        if records and records[-1]["stages"].get("train", {}).get("status") == "running":
            break
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    records = mv_json(p.root, "runs")
    assert records[-1]["status"] == "died"
    assert records[-1]["stages"]["prep"]["status"] == "succeeded"
    p.write("pipe/train.py", RUN_PIPELINE["pipe/train.py"])
    again = run(p.root)
    assert again["status"] == "succeeded" and again["cached"]["prep"] is True


def test_running_never_touches_branches_head_index_or_files(run_project):
    p = run_project
    p.write("pipe/train.py", RUN_PIPELINE["pipe/train.py"] + "\n# uncommitted edit\n")
    before = p.state()
    tracked = {f: (p.root / f).read_bytes() for f in p.git("ls-files").splitlines()}
    first = run(p.root)
    run(p.root, "--set", "prep.scale=3", "--force", "train")
    mv(p.root, "reproduce", first["run"])
    mv(p.root, "runs")
    mv(p.root, "show", "latest")
    assert p.state() == before
    assert {f: (p.root / f).read_bytes() for f in tracked} == tracked
    assert not list(p.root.glob("pipe/__pycache__"))  # stages ran from the store, not the tree


@pytest.mark.parametrize("damage", ["truncated", "garbage of the same size"])
def test_an_unreadable_cached_output_is_recomputed(run_project, damage):
    p = run_project
    first = run(p.root)
    key = first["stages"]["prep"]["cache_key"]
    obj = p.root / ".modver" / "cache" / "outputs" / key.split(":")[-1] / "object"
    size = obj.stat().st_size
    obj.write_bytes(b"x" * (size // 2 if damage == "truncated" else size))
    p.write("pipe/model.py", RUN_PIPELINE["pipe/model.py"].replace("x * self.mean", "x + self.mean"))
    again = run(p.root)  # train is new and needs prep's output
    assert again["status"] == "succeeded"
    assert again["cached"] == {"prep": False, "other": True, "train": False}
    assert "recomputed: its cached output is damaged" in again["stages"]["prep"]["reason"]
    assert again["metrics"]["mean"] == first["metrics"]["mean"]
    assert obj.stat().st_size == size
    from modver.store.cache import OutputCache

    assert OutputCache(p.root / ".modver" / "cache" / "outputs").verify(key)  # healed, not kept damaged


def test_damaged_records_and_manifest_cache_lose_nothing(run_project):
    p = run_project
    run(p.root)
    newest = run(p.root, "--set", "prep.scale=3")
    (p.root / ".modver" / "runs" / newest["run"] / "run.json").write_bytes(b"\xff not json")
    for cached in (p.root / ".modver" / "cache" / "manifests").iterdir():
        cached.write_bytes(b"garbage, not a pickle")
    out = mv(p.root, "run", "--explain", "--set", "prep.scale=4").stdout
    assert "param scale 2 -> 4" in out  # explained from the last readable record
    statuses = [r["status"] for r in mv_json(p.root, "runs")]
    assert statuses == ["succeeded", "corrupt", "succeeded"]


def test_output_to_a_closed_pipe_exits_quietly(run_project, tmp_path):
    p = run_project
    # many definitions, each printed by its own write and together far more than a pipe buffer
    # holds: the reader leaves while writes are still to come. (Only the very last write of a
    # process can miss the EPIPE: CPython reports a write cut short by a closing reader as done.)
    body = "".join(f"    x{i} = '{'y' * 100}'\n" for i in range(500))
    helpers = "".join(f"def helper{n}():\n{body}\n\n" for n in range(40))
    calls = "".join(f"    helper{n}()\n" for n in range(40))
    p.write("pipe/train.py", f"{helpers}def train(data):\n{calls}    return 1\n")
    p.commit("a long stage")
    mv(p.root, "index")
    proc = subprocess.Popen(
        [sys.executable, "-m", "modver", "show", "train@latest"],
        cwd=p.root,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    proc.stdout.read(100)
    proc.stdout.close()  # the reader goes away, like `| head`
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 141, err
    assert "internal error" not in err and "Traceback" not in err


# --------------------------------------------------------------------------- bounded input


def test_set_naming_an_input_is_an_error(run_project):
    p = run_project
    result = mv(p.root, "run", "--set", "train.data=5", code=1)
    assert (
        "--set train.data: 'data' is an input of stage train (the output of stage prep), not a param" in result.stderr
    )
    result = mv(p.root, "run", "--set", "prep.raw=other.txt", code=1)
    assert "'raw' is an input of stage prep (data file data.raw)" in result.stderr
    assert "inputs:" in result.stderr and "Traceback" not in result.stderr
    assert mv_json(p.root, "runs") == []  # a mistyped option is not a run


def _alias_bomb(ways: int, depth: int) -> str:
    levels = [f"&a0 [{', '.join(['x'] * ways)}]"]
    levels += [f"&a{i} [{', '.join([f'*a{i - 1}'] * ways)}]" for i in range(1, depth)]
    return "[" + ", ".join(levels) + "]"


def test_an_alias_bomb_is_refused_on_the_command_line_and_in_a_manifest(run_project):
    p = run_project
    first = run(p.root)
    result = mv(p.root, "run", "--set", f"prep.scale={_alias_bomb(9, 5)}", code=1)
    assert "--set prep.scale: too big: the value holds more than 20,000 values" in result.stderr
    result = mv(p.root, "run", "--set", "prep.scale=" + "x" * 100_001, code=1)
    assert "more than 100,000" in result.stderr and len(result.stderr) < 1000
    bomb = p.read("manifest.yaml").replace("params: {scale: 2}", f"params: {{scale: {_alias_bomb(9, 5)}}}")
    p.write("bomb.yaml", bomb)
    result = mv(p.root, "status", "bomb.yaml", code=1)
    assert "bomb.yaml:7:" in result.stderr and "(at param 'scale' of stage 'prep')" in result.stderr
    mv(p.root, "run", "bomb.yaml", code=1)
    assert [r["run"] for r in mv_json(p.root, "runs")] == [first["run"]]  # nothing recorded, nothing lost


DAMAGE = {
    "stages": [],
    "versions": "x",
    "metrics": 5,
    "params": {"a": 3},
    "error": "boom",
}


@pytest.mark.parametrize("field", list(DAMAGE))
def test_a_damaged_record_is_a_clear_error_in_every_command(run_project, field):
    import modver
    from modver.errors import StoreError

    p = run_project
    good = run(p.root)
    bad = run(p.root, "--set", "prep.scale=3")
    path = p.root / ".modver" / "runs" / bad["run"] / "run.json"
    damaged = json.dumps({**json.loads(path.read_text()), field: DAMAGE[field]}).encode()
    path.write_bytes(damaged)

    def refused(*args: str) -> None:
        result = mv(p.root, *args, code=1)
        assert f"damaged run record {path}: {field}" in result.stderr, result.stderr
        assert "move the folder" in result.stderr and "internal error" not in result.stderr

    refused("show", bad["run"])
    refused("diff", good["run"], bad["run"])
    refused("reproduce", bad["run"])
    listed = mv_json(p.root, "runs")
    assert [r["status"] for r in listed] == ["succeeded", "corrupt"]
    assert f"damaged run record {path}" in listed[1]["error"]["message"]
    assert "corrupt" in mv(p.root, "runs").stdout
    assert "corrupt" in mv(p.root, "runs", "--where", "status == 'corrupt'").stdout
    versions = mv_json(p.root, "log", "train")
    assert [r["run"] for r in versions[0]["runs"]] == [good["run"]]  # only readable records count
    assert "internal error" not in mv(p.root, "log").stderr
    with pytest.raises(StoreError, match="damaged run record"):
        modver.load("train", run=bad["run"], path=p.root)
    assert modver.load("train", path=p.root).mean == good["metrics"]["mean"]  # the newest readable output
    assert list(modver.runs(p.root)["status"]) == ["succeeded", "corrupt"]
    again = mv(p.root, "run", "--explain", "--set", "prep.scale=4").stdout  # skips the damaged record
    assert "param scale 2 -> 4" in again
    assert path.read_bytes() == damaged and mv_json(p.root, "show", good["run"])["run"] == good["run"]


def test_records_written_by_real_runs_are_well_formed(run_project):
    from modver.record import check_shape as record_problem

    p = run_project
    first = run(p.root)  # succeeded
    run(p.root)  # every stage cached
    run(p.root, "--force", "train")
    mv(p.root, "reproduce", first["run"])
    mv(p.root, "run", "--set", "train.bogus=1", code=1)  # refused before any stage ran
    p.write("pipe/train.py", "def train(data):\n    raise ValueError('bad data')\n")
    mv(p.root, "run", code=1)  # a stage raised
    p.write("pipe/train.py", "def train(data):\n    return lambda: 1\n")
    mv(p.root, "run", code=1)  # an output that cannot be saved
    p.write("pipe/train.py", "import os, signal\n\n\ndef train(data):\n    os.kill(os.getpid(), signal.SIGINT)\n")
    subprocess.run([sys.executable, "-m", "modver", "run"], cwd=p.root, capture_output=True, check=False)
    records = [json.loads(f.read_text()) for f in sorted((p.root / ".modver" / "runs").glob("*/run.json"))]
    # the refused run recorded nothing: errors before the first stage starts are not runs
    assert {r["status"] for r in records} == {"succeeded", "failed", "interrupted"} and len(records) == 7
    assert any(r.get("reproduces") for r in records) and any(all(r["cached"].values()) for r in records)
    assert [record_problem(r) for r in records] == [None] * 7


def test_runs_sort_by_a_column_of_mixed_values(run_project):
    # found by tests/fuzz: two mappings in a column made `--sort` an internal error, and ints
    # sorted after every float
    p = run_project
    for value, code in (("{a: 1}", 1), ("10", 0), ("{b: 2}", 1), ("0.5", 0)):
        mv(p.root, "run", "--set", f"other.x={value}", code=code)
    order = [r["params"]["other"]["x"] for r in mv_json(p.root, "runs", "--sort", "other.x")]
    assert order == [0.5, 10, {"a": 1}, {"b": 2}]


@pytest.mark.parametrize(
    ("damage", "needle"),
    [
        # found by tests/fuzz: an input naming a stage the record lacks was an internal KeyError
        (
            lambda r: r["manifest"]["content"]["stages"]["train"]["inputs"].update(data="0.0.7"),
            "its manifest does not load: input 'data' of stage 'train' refers to unknown stage '0.0.7'",
        ),
        (
            lambda r: r["manifest"]["content"]["stages"]["prep"]["inputs"].update(raw="train"),
            "its manifest does not load: the inputs of stages form a cycle",
        ),
        (
            lambda r: (r["stages"].pop("prep"), r["fingerprints"].pop("prep")),
            "its manifest and its versions disagree on prep",
        ),
        (lambda r: r["manifest"]["content"]["stages"].pop("other"), "its manifest and its versions disagree on other"),
    ],
)
def test_reproducing_a_record_whose_manifest_is_inconsistent_is_a_clear_error(run_project, damage, needle):
    p = run_project
    first = run(p.root)
    path = p.root / ".modver" / "runs" / first["run"] / "run.json"
    record = json.loads(path.read_text())
    damage(record)
    path.write_text(json.dumps(record))
    result = mv(p.root, "reproduce", first["run"], code=1)
    assert f"damaged run record {path}: {needle}" in result.stderr and "move the folder" in result.stderr
    assert len(mv_json(p.root, "runs")) == 1  # nothing ran, nothing was recorded
