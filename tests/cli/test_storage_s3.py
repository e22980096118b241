"""Storage on S3 for real: moto's standalone S3 server on a loopback port, spoken to by the real
s3fs client through modver push / pull (storage = "s3://bucket/path", [storage_options])."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cli.test_storage import Team, outputs_of
from tests.helpers import mv, mv_json

pytest.importorskip("s3fs", reason="S3 storage needs s3fs: pip install 'modver[s3]'")
pytest.importorskip("moto.server", reason="the S3 tests need moto's server: pip install 'moto[server]'")

CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def s3_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """moto's S3 server in a subprocess on 127.0.0.1; stopped by the pid it started."""
    port = _free_port()
    log = tmp_path_factory.mktemp("moto") / "server.log"
    with open(log, "wb") as out:
        server = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)], stdout=out, stderr=out
        )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"moto's server did not start: {log.read_text()}")
                time.sleep(0.1)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Test credentials; no ~/.aws files, no instance-metadata lookups."""
    for name, value in CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))


def make_bucket(endpoint: str) -> str:
    import s3fs

    name = f"team-{uuid.uuid4().hex[:12]}"
    fs = s3fs.S3FileSystem(endpoint_url=endpoint, key="testing", secret="testing")
    fs.mkdir(name)
    return name


def s3_team(tmp_path: Path, endpoint: str, bucket: str) -> Team:
    team = Team(tmp_path, f"s3://{bucket}/modver")
    team.alice.write(
        "modver.toml", f'storage = "s3://{bucket}/modver"\n\n[storage_options]\nendpoint_url = "{endpoint}"\n'
    )
    team.alice.commit("storage on S3")
    team.alice.git("push", "-q", "origin", "main")
    return team


def test_runs_and_outputs_through_s3(tmp_path, s3_endpoint, aws):
    bucket = make_bucket(s3_endpoint)
    team = s3_team(tmp_path, s3_endpoint, bucket)
    run = mv_json(team.alice.root, "run")
    assert "sent 1 run record and 3 cached outputs" in mv(team.alice.root, "push").stdout
    assert "sent 0 run records and 0 cached outputs" in mv(team.alice.root, "push").stdout
    bob = team.clone("bob")
    assert f"Storage s3://{bucket}/modver: brought 1 run record" in mv(bob.root, "pull").stdout
    assert [r["run"] for r in mv_json(bob.root, "runs")] == [run["run"]]
    again = mv_json(bob.root, "run")  # served from alice's outputs, fetched from S3 on demand
    assert all(again["cached"].values())
    assert outputs_of(bob.root) == outputs_of(team.alice.root)


def test_a_damaged_object_in_s3_is_never_served(tmp_path, s3_endpoint, aws):
    import s3fs

    bucket = make_bucket(s3_endpoint)
    team = s3_team(tmp_path, s3_endpoint, bucket)
    run = mv_json(team.alice.root, "run")
    mv(team.alice.root, "push")
    key = run["stages"]["train"]["cache_key"].split(":")[-1]
    fs = s3fs.S3FileSystem(endpoint_url=s3_endpoint, key="testing", secret="testing")
    path = f"{bucket}/modver/outputs/{key}/object"
    data = bytearray(fs.cat_file(path))
    data[-1] ^= 0xFF
    fs.pipe_file(path, bytes(data))
    bob = team.clone("bob")
    mv(bob.root, "pull")
    out = mv(bob.root, "pull", "--outputs", code=1)
    assert f"damaged, not used: outputs/{key}" in out.stderr
    assert key not in outputs_of(bob.root)
    assert mv_json(bob.root, "run")["cached"]["train"] is False  # computed here, never the damaged bytes


def test_missing_credentials_are_one_clear_error(tmp_path, s3_endpoint, aws, monkeypatch):
    bucket = make_bucket(s3_endpoint)
    team = s3_team(tmp_path, s3_endpoint, bucket)
    mv(team.alice.root, "run")
    for name in CREDENTIALS:
        if name != "AWS_DEFAULT_REGION":
            monkeypatch.delenv(name)
    out = mv(team.alice.root, "push", code=1)
    assert "credentials" in out.stderr.lower() and "AWS_ACCESS_KEY_ID" in out.stderr
    assert "Traceback" not in out.stderr and "internal error" not in out.stderr


def test_a_bucket_with_a_typo_is_one_clear_error(tmp_path, s3_endpoint, aws):
    bucket = make_bucket(s3_endpoint)
    team = s3_team(tmp_path, s3_endpoint, bucket + "x")
    mv(team.alice.root, "run")
    out = mv(team.alice.root, "push", code=1)
    assert f"the storage's bucket '{bucket}x' does not exist" in out.stderr and "modver.toml" in out.stderr


def test_an_unreachable_endpoint_is_one_clear_error(tmp_path, aws, monkeypatch):
    team = s3_team(tmp_path, f"http://127.0.0.1:{_free_port()}", "nobody")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")  # botocore's retries would only make it slower
    out = mv(team.alice.root, "pull", code=1)
    assert "cannot reach the storage s3://nobody/modver" in out.stderr
    assert "Traceback" not in out.stderr and "internal error" not in out.stderr
