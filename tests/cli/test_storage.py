"""Run records and cached outputs through the project's storage (a folder here; S3 in test_storage_s3.py)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import PIPELINE, RUN_PIPELINE, GitProject, mv, mv_json


class Team:
    """A bare remote, a storage folder named in the committed modver.toml, and clones."""

    def __init__(self, tmp_path: Path, storage: str = "../shared"):
        self.tmp = tmp_path
        self.remote = tmp_path / "remote.git"
        self.storage = tmp_path / "shared"
        self.storage.mkdir()
        subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(self.remote)], check=True)
        (tmp_path / "alice").mkdir()
        alice = GitProject(tmp_path / "alice")
        for path, text in {**PIPELINE, **RUN_PIPELINE}.items():
            alice.write(path, text)
        alice.write(".gitignore", ".modver/\n")
        alice.write("modver.toml", f'storage = "{storage}"\n')
        alice.commit("pipeline and storage")
        alice.git("remote", "add", "origin", str(self.remote))
        alice.git("push", "-q", "origin", "main")
        self.alice = alice

    def clone(self, name: str) -> GitProject:
        target = self.tmp / name
        subprocess.run(["git", "clone", "-q", str(self.remote), str(target)], check=True)
        project = GitProject.__new__(GitProject)
        project.root = target
        return project


@pytest.fixture
def team(tmp_path: Path) -> Team:
    return Team(tmp_path)


def outputs_of(root: Path) -> set[str]:
    folder = root / ".modver" / "cache" / "outputs"
    return {p.name for p in folder.iterdir() if not p.name.startswith(".")} if folder.is_dir() else set()


def test_records_travel_and_outputs_come_when_a_run_needs_them(team):
    run = mv_json(team.alice.root, "run")
    assert run["user"] and run["host"]
    pushed = mv(team.alice.root, "push").stdout
    assert "sent 1 run record and 3 cached outputs" in pushed
    assert (team.storage / "runs" / f"{run['run']}.json").is_file()
    assert len(list((team.storage / "outputs").glob("*.json"))) == 3
    assert "sent 0 run records and 0 cached outputs" in mv(team.alice.root, "push").stdout  # only what is missing

    bob = team.clone("bob")
    pulled = mv(bob.root, "pull").stdout
    assert "brought 1 run record and 0 cached outputs" in pulled  # outputs: not by default
    assert [r["run"] for r in mv_json(bob.root, "runs")] == [run["run"]]
    assert outputs_of(bob.root) == set()

    again = mv_json(bob.root, "run")  # alice computed these: fetched from storage on demand, not rerun
    assert again["cached"] == {"prep": True, "other": True, "train": True}
    assert outputs_of(bob.root) == outputs_of(team.alice.root)
    assert "by" not in mv(bob.root, "runs").stdout.splitlines()[0].split()  # one person's runs so far
    mv(bob.root, "push")
    mv(team.alice.root, "pull")
    assert [r["run"] for r in mv_json(team.alice.root, "runs")] == [run["run"], again["run"]]


def test_a_teammates_run_loads_and_reproduces(team):
    run = mv_json(team.alice.root, "run")
    mv(team.alice.root, "push")
    bob = team.clone("bob")
    mv(bob.root, "pull")
    code = f"import modver; print(modver.load('train', run={run['run']!r}).mean)"
    done = subprocess.run([sys.executable, "-c", code], cwd=bob.root, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str(run["metrics"]["mean"])
    again = mv_json(bob.root, "reproduce", run["run"])
    assert again["reproduces"] == run["run"]
    assert all(c["match"] for c in again["comparison"].values())


def test_pull_outputs_and_dry_runs(team):
    mv(team.alice.root, "run")
    would = mv(team.alice.root, "push", "--dry-run").stdout
    assert "would send 1 run record and 3 cached outputs" in would
    assert not (team.storage / "runs").exists()
    mv(team.alice.root, "push")
    bob = team.clone("bob")
    mv(bob.root, "pull")
    planned = mv_json(bob.root, "pull", "--outputs", "--dry-run")["storage"]
    assert len(planned["outputs"]) == 3 and planned["bytes"] > 0 and planned["dry_run"]
    assert outputs_of(bob.root) == set()
    brought = mv_json(bob.root, "pull", "--outputs")["storage"]
    assert sorted(brought["outputs"]) == sorted(planned["outputs"]) and brought["bytes"] == planned["bytes"]
    assert outputs_of(bob.root) == outputs_of(team.alice.root)


def test_both_clones_end_with_the_same_log_and_runs(team):
    mv(team.alice.root, "index")
    mv(team.alice.root, "run")
    mv(team.alice.root, "push")
    bob = team.clone("bob")
    mv(bob.root, "pull")
    bob.write("pipe/train.py", RUN_PIPELINE["pipe/train.py"].replace("for step in range(3)", "for step in range(4)"))
    mv(bob.root, "run", "--set", "prep.scale=3")
    team.alice.write("pipe/train.py", RUN_PIPELINE["pipe/train.py"].replace("1.0 /", "2.0 /"))
    mv(team.alice.root, "run")
    mv(team.alice.root, "push")
    assert "is now v3" in mv(bob.root, "pull").stdout
    mv(bob.root, "push")
    mv(team.alice.root, "pull")
    assert mv_json(team.alice.root, "log") == mv_json(bob.root, "log")
    runs_a = [(r["run"], r["versions"], r["user"]) for r in mv_json(team.alice.root, "runs")]
    assert runs_a == [(r["run"], r["versions"], r["user"]) for r in mv_json(bob.root, "runs")]
    assert len(runs_a) == 3


def test_a_damaged_object_in_storage_is_never_served(team):
    run = mv_json(team.alice.root, "run")
    mv(team.alice.root, "push")
    key = run["stages"]["train"]["cache_key"].split(":")[-1]
    damaged = team.storage / "outputs" / key / "object"
    data = bytearray(damaged.read_bytes())
    data[len(data) // 2] ^= 0xFF  # same size, one flipped byte
    damaged.write_bytes(bytes(data))
    bob = team.clone("bob")
    mv(bob.root, "pull")
    again = mv(bob.root, "run")
    assert "damaged" in again.stderr
    record = mv_json(bob.root, "runs")[-1]
    assert record["cached"] == {"prep": True, "other": True, "train": False}  # computed here instead
    assert not (team.storage / "outputs" / f"{key}.json").exists()  # its index went: the item reads as missing
    mv(team.alice.root, "push")  # alice has it: sent again
    assert (team.storage / "outputs" / f"{key}.json").is_file()
    charlie = team.clone("charlie")
    mv(charlie.root, "pull")
    assert mv_json(charlie.root, "run")["cached"]["train"] is True


def test_a_damaged_record_in_storage_is_reported_by_pull(team):
    run = mv_json(team.alice.root, "run")
    mv(team.alice.root, "push")
    target = team.storage / "runs" / run["run"] / "run.json"
    target.write_text(target.read_text().replace('"succeeded"', '"succeedex"'))
    bob = team.clone("bob")
    out = mv(bob.root, "pull", code=1)
    assert f"damaged, not used: runs/{run['run']}" in out.stderr
    assert mv_json(bob.root, "runs") == []


@pytest.mark.parametrize(
    ("storage", "message"),
    [
        ("../sharedd", "the storage folder"),
        ("s4://bucket/modver", "cannot open the storage s4://bucket/modver"),
    ],
)
def test_a_storage_url_with_a_typo_is_one_clear_error(tmp_path, storage, message):
    team = Team(tmp_path, storage)
    mv(team.alice.root, "run")
    out = mv(team.alice.root, "push", code=1)
    assert message in out.stderr and "modver.toml" in out.stderr
    assert "Traceback" not in out.stderr


def test_a_broken_modver_toml_is_one_clear_error(team):
    team.alice.write("modver.toml", "storage = \n")
    out = mv(team.alice.root, "push", code=1)
    assert "cannot read modver.toml" in out.stderr


def test_push_order_git_first(team):
    """Records go to storage only after the git push succeeded: never records naming unpublished numbers."""
    mv(team.alice.root, "index")
    mv(team.alice.root, "push")
    bob = team.clone("bob")
    mv(bob.root, "pull")
    team.alice.write("pipe/train.py", RUN_PIPELINE["pipe/train.py"] + "\n\nX = 1\n")
    team.alice.write("pipe/model.py", RUN_PIPELINE["pipe/model.py"].replace("x * self.mean", "x + self.mean"))
    mv(team.alice.root, "snapshot")
    mv(team.alice.root, "push")
    mv(bob.root, "run")
    mv(bob.root, "push", code=1)
    assert not (team.storage / "runs").exists() or not list((team.storage / "runs").glob("*.json"))


def test_runs_say_who_ran_them_after_a_pull(team, monkeypatch):
    monkeypatch.setenv("LOGNAME", "alice")
    monkeypatch.setenv("USER", "alice")
    mv(team.alice.root, "run")
    mv(team.alice.root, "push")
    bob = team.clone("bob")
    mv(bob.root, "pull")
    monkeypatch.setenv("LOGNAME", "bob")
    monkeypatch.setenv("USER", "bob")
    mv(bob.root, "run", "--set", "prep.scale=5")
    assert [r["user"] for r in mv_json(bob.root, "runs")] == ["alice", "bob"]
    lines = mv(bob.root, "runs").stdout.splitlines()
    assert lines[0].split()[:2] == ["run", "by"]
    assert "alice@" in lines[1] and "bob@" in lines[2]


# -- durable writes, damaged indexes, items the storage refuses ----------------------------------


def test_push_and_pull_put_every_file_on_disk_before_naming_it(team, monkeypatch):
    """A crash of either machine never leaves an index naming a torn file, nor a torn file in
    a published folder of the clone."""
    from tests._syncspy import SyncSpy

    mv(team.alice.root, "run")
    spy = SyncSpy(monkeypatch)
    mv(team.alice.root, "push")
    shared = team.storage.resolve()
    renamed = {dst: (i, src) for i, (kind, src, dst) in enumerate(spy.events) if kind == "rename"}
    synced = [(i, path) for i, (kind, path, _) in enumerate(spy.events) if kind == "fsync"]
    files = [p for p in shared.rglob("*") if p.is_file()]
    assert len(files) > 10
    for path in files:  # each file was written to a temporary name, fsynced, then renamed
        index, tmp = renamed[str(path)]
        assert any(i < index and p == tmp for i, p in synced), path
    for item in [p for p in files if p.suffix == ".json" and p.parent.name in ("runs", "outputs")]:
        folder = item.with_suffix("")
        named, _ = renamed[str(item)]
        last_file = max(renamed[str(p)][0] for p in folder.rglob("*") if p.is_file())
        assert any(last_file < i < named and p == str(folder) for i, p in synced), item  # the renames, too

    bob = team.clone("bob")
    spy.events.clear()
    mv(bob.root, "pull", "--outputs")
    for parent in (bob.root / ".modver" / "runs", bob.root / ".modver" / "cache" / "outputs"):
        published = spy.published(parent)
        assert published
        for index, tmp, final in published:
            written = {p.relative_to(final).as_posix() for p in final.rglob("*")} | {"."}
            assert written <= spy.synced_before(index, tmp), final


def test_a_clones_stamps_never_travel(team):
    run = mv_json(team.alice.root, "run")
    mv(team.alice.root, "push")
    key = run["stages"]["train"]["cache_key"].split(":")[-1]
    assert (team.alice.root / ".modver" / "cache" / "outputs" / key / "stamp.json").is_file()
    assert not (team.storage / "outputs" / key / "stamp.json").exists()
    assert "stamp.json" not in (team.storage / "outputs" / f"{key}.json").read_text()


def test_damaged_indexes_in_storage_never_block_a_pull(team):
    """Truncated JSON, an index listing "." or "", an item named "." or "..": each is skipped and
    named (its index removed, as for any damaged item); every other item comes."""
    first = mv_json(team.alice.root, "run")
    second = mv_json(team.alice.root, "run", "--set", "prep.scale=5")
    third = mv_json(team.alice.root, "run", "--set", "prep.scale=7")
    mv(team.alice.root, "push")
    runs = team.storage / "runs"
    index = runs / f"{first['run']}.json"
    index.write_bytes(index.read_bytes()[:-20])  # truncated
    listing = json.loads((runs / f"{second['run']}.json").read_text())
    listing["files"]["."] = listing["files"]["run.json"]
    (runs / f"{second['run']}.json").write_text(json.dumps(listing))
    outputs = team.storage / "outputs"
    [out_index, *_] = sorted(outputs.glob("*.json"))
    out_listing = json.loads(out_index.read_text())
    out_listing["files"][""] = out_listing["files"]["object"]
    out_index.write_text(json.dumps(out_listing))
    for name in ("..json", "...json", ".json"):  # items named ".", "..", ""
        (runs / name).write_text(json.dumps({"format": 1, "files": {}}))
        (outputs / name).write_text(json.dumps({"format": 1, "files": {}}))

    bob = team.clone("bob")
    out = mv(bob.root, "pull", "--outputs", code=1)
    assert f"damaged, not used: runs/{first['run']}" in out.stderr
    assert f"damaged, not used: runs/{second['run']}" in out.stderr
    assert f"damaged, not used: outputs/{out_index.stem}" in out.stderr
    assert "brought 1 run record and" in out.stdout  # neither "." nor ".." counted
    assert [r["run"] for r in mv_json(bob.root, "runs")] == [third["run"]]
    for gone in (index, runs / f"{second['run']}.json", out_index):
        assert not gone.exists()  # removed: the next push of a clone that has it sends it again
    assert (runs / "..json").exists() and (runs / ".json").exists()  # not items: left alone
    assert not (bob.root / ".modver" / "runs" / "..").is_symlink()
    mv(team.alice.root, "push")
    assert "brought 2 run records" in mv(bob.root, "pull").stdout
    assert len(mv_json(bob.root, "runs")) == 3


def test_an_item_the_storage_refuses_does_not_block_the_others(team):
    """One run whose folder in the storage is blocked fails alone; the next push finishes it."""
    first = mv_json(team.alice.root, "run")
    second = mv_json(team.alice.root, "run", "--set", "prep.scale=5")
    (team.storage / "runs").mkdir()
    (team.storage / "runs" / first["run"]).write_text("in the way")
    out = mv(team.alice.root, "push", code=1)
    assert f"not sent (the next push tries again): runs/{first['run']}" in out.stderr
    assert "sent 1 run record and 5 cached outputs" in out.stdout
    assert (team.storage / "runs" / f"{second['run']}.json").is_file()
    (team.storage / "runs" / first["run"]).unlink()
    again = mv(team.alice.root, "push")
    assert "Nothing new to push to origin." in again.stdout
    assert "sent 1 run record and 0 cached outputs" in again.stdout
    assert (team.storage / "runs" / f"{first['run']}.json").is_file()


def test_a_push_whose_storage_part_failed_is_finished_by_the_next(team):
    """The refs went out, the storage did not answer: the next push finds the refs up to date and
    still sends what the storage lacks (decided by the storage's own indexes)."""
    run = mv_json(team.alice.root, "run")
    team.storage.rename(team.tmp / "away")
    out = mv(team.alice.root, "push", code=1)
    assert "the storage folder" in out.stderr
    assert team.remote.joinpath("refs", "modver").is_dir()  # git first: the refs are published
    (team.tmp / "away").rename(team.storage)
    again = mv(team.alice.root, "push")
    assert "Nothing new to push to origin." in again.stdout
    assert "sent 1 run record and 3 cached outputs" in again.stdout
    assert (team.storage / "runs" / f"{run['run']}.json").is_file()
