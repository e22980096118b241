"""Running a script stage in a workspace of its own (docs/scripts.md).

A workspace is a folder under ``.modver/work/`` made for one execution:

- the version's files at their project paths (from the git history, never the working tree);
- the stage's deps at their paths, as read-only copies: an upstream stage's out comes from that
  stage's cache entry, any other dep (and a ``data.`` input) from the project folder;
- the params file, with the run's values of the keys the stage lists;
- an empty ``.git`` and ``.dvc`` of its own, and ``GIT_CEILING_DIRECTORIES`` at its parent, so a
  tool the script calls (``git``, dvclive's ``dvc exp save``, a hook) finds the workspace, never
  the user's repository.

The script runs as ``python FILE ARGS... --name=value...`` with the workspace as its working
directory; what it prints goes to the stage's log files. After it exits 0 every declared out
must exist; the outs are moved into the stage's cache entry (``outs/<path>``, each file with its
checksum, like any cached output), metrics files are read into metric events and plots files
into step series. The workspace is removed afterwards, whatever happened.
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import stat
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import IO, Any, TextIO

from modver import _encoding, errors, serialize
from modver.store.layout import Store
from modver.store.retention import workspace_lock

__all__ = ["OUTS_DIR", "Workspace", "out_hashes", "params_argv", "read_metrics", "read_plots", "tree_hash"]

OUTS_DIR = "outs"  # the outs' folder inside a cache entry
_MAX_METRICS_BYTES = 16 << 20
_GIT_VARS = ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_OBJECT_DIRECTORY", "GIT_COMMON_DIR",
             "GIT_ALTERNATE_OBJECT_DIRECTORIES", "GIT_NAMESPACE", "GIT_PREFIX")  # fmt: skip


def params_argv(params: Mapping[str, Any]) -> list[str]:
    """``--name=value`` for dict-form params, values as Python writes literals: ``True``/``False``,
    ``None``, numbers by ``repr``, lists and dicts as literals, strings bare."""
    argv = []
    for name, value in params.items():
        text = value if isinstance(value, str) else repr(value)
        argv.append(f"--{name}={text}")
    return argv


class Workspace:
    """One execution's folder (see the module docstring)."""

    def __init__(self, store: Store, stage: str):
        self.root = store.path / "work" / f"{stage}-{uuid.uuid4().hex[:12]}"
        self.store = store
        self._lock: int | None = None

    @property
    def lock_path(self) -> Path:
        """The workspace's liveness lock: held (flock) while its stage runs, by modver and the
        script (which inherits it), so ``gc`` removes only workspaces nobody holds."""
        return workspace_lock(self.root)

    def make(self, files: Mapping[str, bytes]) -> None:
        """The folder with ``files`` (the version's) at their paths and the fences for tools;
        its lock is taken before the folder exists (a folder without a held lock is dead)."""
        import fcntl

        self.root.parent.mkdir(parents=True, exist_ok=True)
        self._lock = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        fcntl.flock(self._lock, fcntl.LOCK_EX)
        self.root.mkdir()
        for rel, data in files.items():
            target = self.root / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
        git = self.root / ".git"
        for sub in ("objects/info", "objects/pack", "refs/heads", "refs/tags"):
            (git / sub).mkdir(parents=True, exist_ok=True)
        (git / "HEAD").write_text("ref: refs/heads/main\n")
        (git / "config").write_text("[core]\n\trepositoryformatversion = 0\n\tbare = false\n")
        (self.root / ".dvc").mkdir(exist_ok=True)
        (self.root / ".dvc" / "config").write_text("[core]\n    no_scm = true\n    analytics = false\n")

    def write(self, rel: str, text: str) -> None:
        target = self.root / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.exists():
            target.unlink()
        target.write_text(text, encoding="utf-8")

    def place(self, rel: str, source: Path) -> None:
        """A read-only copy of ``source`` (a file or folder) at ``rel``; a file the version's
        files already put there stays (the version's copy of its own code wins), a folder is
        merged."""
        target = self.root / rel
        if target.exists() and not (target.is_dir() and source.is_dir()):
            return
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():

            def copy_new(src: str, dst: str) -> object:
                return dst if os.path.lexists(dst) else shutil.copy2(src, dst)

            shutil.copytree(source, target, symlinks=False, dirs_exist_ok=True, copy_function=copy_new)
        else:
            shutil.copy2(source, target)
        _read_only(target)

    def env(self) -> dict[str, str]:
        """The script's environment: the caller's, fenced off the user's repository."""
        env = {k: v for k, v in os.environ.items() if k not in _GIT_VARS}
        env["GIT_CEILING_DIRECTORIES"] = str(self.root.parent)
        env["DVC_NO_ANALYTICS"] = "1"
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(self.root), env.get("PYTHONPATH", "")]))
        env["MODVER_METRICS_FILE"] = str(self.root / ".modver-metrics.jsonl")
        return env

    def run(self, argv: list[str], logs: tuple[str, str] | None, echo: TextIO | None) -> tuple[int, str]:
        """Run ``python ARGV`` in the workspace; its exit status and the end of its stderr."""
        out = open(logs[0], "ab") if logs else None  # noqa: SIM115 - closed below
        err = open(logs[1], "ab") if logs else None  # noqa: SIM115
        tail = io.BytesIO()
        try:
            proc = subprocess.Popen(
                [sys.executable, *argv], cwd=self.root, env=self.env(),
                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                pass_fds=() if self._lock is None else (self._lock,),
            )  # fmt: skip
            pumps = [
                threading.Thread(target=_pump, args=(proc.stdout, out, echo, None), daemon=True),
                threading.Thread(target=_pump, args=(proc.stderr, err, echo, tail), daemon=True),
            ]
            for pump in pumps:
                pump.start()
            try:
                status = proc.wait()
            except BaseException:
                proc.kill()
                proc.wait()
                raise
            for pump in pumps:
                pump.join()
        finally:
            for handle in (out, err):
                if handle is not None:
                    handle.close()
        return status, tail.getvalue()[-2000:].decode("utf-8", "replace")

    def logged_metrics(self, stage: str) -> list[dict[str, Any]]:
        """The events ``modver.log_metrics`` wrote from inside the script."""
        path = self.root / ".modver-metrics.jsonl"
        events = []
        if path.is_file():
            for line in path.read_text(encoding="utf-8").splitlines():
                try:
                    event = json.loads(line)
                except ValueError:
                    continue
                if isinstance(event, dict) and isinstance(event.get("name"), str):
                    events.append({**event, "stage": stage})
        return events

    def remove(self) -> None:
        if self.root.exists():
            for folder, dirs, _files in os.walk(self.root):
                for name in dirs:
                    try:
                        os.chmod(os.path.join(folder, name), 0o755)
                    except OSError:
                        pass
            shutil.rmtree(self.root, ignore_errors=True)
        if self._lock is not None:
            self.lock_path.unlink(missing_ok=True)
            os.close(self._lock)
            self._lock = None


def _pump(stream: IO[bytes] | None, log: IO[bytes] | None, echo: TextIO | None, tail: io.BytesIO | None) -> None:
    assert stream is not None
    for chunk in iter(lambda: stream.read1(65536), b""):  # type: ignore[attr-defined]
        if log is not None:
            log.write(chunk)
            log.flush()
        if echo is not None:
            echo.write(chunk.decode("utf-8", "replace"))
        if tail is not None:
            tail.write(chunk)
            if tail.tell() > 8192:
                kept = tail.getvalue()[-4096:]
                tail.seek(0)
                tail.truncate()
                tail.write(kept)


def _read_only(path: Path) -> None:
    if path.is_dir():
        for folder, _dirs, files in os.walk(path):
            for name in files:
                _drop_write(Path(folder) / name)
        for folder, dirs, _files in os.walk(path, topdown=False):
            for name in dirs:
                _drop_write(Path(folder) / name)
        _drop_write(path)
    else:
        _drop_write(path)


def _drop_write(path: Path) -> None:
    mode = os.lstat(path).st_mode
    if not stat.S_ISLNK(mode):
        os.chmod(path, stat.S_IMODE(mode) & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))


def _files(path: Path) -> Iterator[tuple[str, Path]]:
    if path.is_dir():
        for file in sorted(p for p in path.rglob("*") if p.is_file()):
            yield file.relative_to(path).as_posix(), file
    elif path.is_file():
        yield "", path


def tree_hash(path: Path) -> str | None:
    """The content hash of a file or folder (its files' relative paths and checksums), or None
    when nothing is there."""
    if not path.exists():
        return None
    listing = [[rel, serialize.checksum_file(file)] for rel, file in _files(path)]
    return _encoding.digest_value(["modver-out/1", path.is_dir(), listing])


def out_hashes(root: Path, outs: tuple[str, ...]) -> dict[str, str]:
    """Each out's :func:`tree_hash` under ``root``."""
    return {out: tree_hash(root / out) or "" for out in outs}


def _numeric_leaves(value: Any, prefix: str = "") -> Iterator[tuple[str, float]]:
    if isinstance(value, bool):
        return
    if isinstance(value, int | float):
        yield prefix, value
    elif isinstance(value, Mapping):
        for key, item in value.items():
            yield from _numeric_leaves(item, f"{prefix}.{key}" if prefix else str(key))


def _load(path: Path, what: str) -> Any:
    if path.stat().st_size > _MAX_METRICS_BYTES:
        raise errors.RunError(f"{what} {path.name} is larger than {_MAX_METRICS_BYTES >> 20} MiB")
    text = path.read_text(encoding="utf-8")
    if path.suffix in (".yaml", ".yml"):
        from modver.manifest._params import read_params

        return read_params(path, what)[1]
    try:
        return json.loads(text)
    except ValueError as exc:
        raise errors.RunError(f"{what} is not valid JSON: {exc}", where=str(path)) from exc


def read_metrics(root: Path, rels: tuple[str, ...], stage: str) -> list[dict[str, Any]]:
    """Metric events of a stage's metrics files (numeric leaves, nested keys joined with '.')."""
    events = []
    for rel in rels:
        path = root / rel
        if not path.is_file():
            raise errors.RunError(
                f"stage {stage}: metrics file {rel} was not written",
                where=rel,
                hint="the script must write every file listed under `metrics:`",
            )
        for name, value in _numeric_leaves(_load(path, f"stage {stage}: metrics file {rel}")):
            events.append({"name": name, "value": value, "step": None, "stage": stage, "source": "file"})
    return events


_STEP_COLUMNS = ("step", "epoch", "iter", "iteration")


def read_plots(root: Path, rels: tuple[str, ...], stage: str) -> list[dict[str, Any]]:
    """Step series of a stage's plots files: csv/tsv columns, or JSON lists of records."""
    events = []
    for rel in rels:
        path = root / rel
        if not path.is_file():
            continue  # a plots file that is not there is shown as no curve
        if path.suffix in (".csv", ".tsv"):
            text = path.read_text(encoding="utf-8")
            rows: Any = list(csv.DictReader(io.StringIO(text), delimiter="\t" if path.suffix == ".tsv" else ","))
        else:
            rows = _load(path, f"stage {stage}: plots file {rel}")
            if isinstance(rows, Mapping) and len(rows) == 1:
                rows = next(iter(rows.values()))
        if not isinstance(rows, list):
            continue
        for i, row in enumerate(rows):
            if not isinstance(row, Mapping):
                continue
            step_col = next((c for c in _STEP_COLUMNS if c in row), None)
            step = _number(row[step_col]) if step_col else i
            for col, raw in row.items():
                value = _number(raw)
                if col != step_col and value is not None:
                    step_int = int(step) if step is not None else i
                    events.append({"name": str(col), "value": value, "step": step_int, "stage": stage})
    return events


def _number(raw: Any) -> float | None:
    if isinstance(raw, bool):
        return None
    if isinstance(raw, int | float):
        return raw
    try:
        number = float(raw)
    except (TypeError, ValueError):
        return None
    return int(number) if number.is_integer() and "." not in str(raw) else number
