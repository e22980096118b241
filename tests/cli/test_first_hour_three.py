"""What a newcomer met in the first hour (issue 21), third part: a sweep's closing table with its
metrics and best point, ``modver sweeps`` naming each sweep's best, a resumed sweep printing its
params as given, lines that fit 80 columns. Each through the real CLI on a real git repository."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.cli._first_hour import FILES, piped
from tests.helpers import GitProject, cli


def test_a_sweep_ends_with_its_metrics_per_point_and_the_best_marked(first_hour: GitProject) -> None:
    out = piped(first_hour.root, "sweep", "--set", "model.C=0.5,2,8", "--set", "augment.copies=1,2", "-j", "1",
                "--best", "accuracy")  # fmt: skip
    lines = out.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("point  "))
    assert lines[header].split()[:5] == ["point", "model.C", "augment.copies", "status", "accuracy"], out
    rows = {line.split()[0]: line.split() for line in lines[header + 1 : header + 7]}
    assert rows["5"][:5] == ["5", "8", "2", "succeeded", "0.16*"], out  # C=8 with 2 copies: the best, marked
    assert rows["0"][4] == "0.005", out
    assert sum("*" in line for line in lines[header + 1 : header + 7]) == 1, out
    assert max(len(line) for line in lines) <= 80, out
    plain = piped(first_hour.root, "sweep", "--set", "model.C=0.5,3", "-j", "1")  # no objective: every metric
    assert "accuracy" in plain and "loss" in plain and "--best accuracy" in plain, plain


def test_modver_sweeps_names_the_best_of_each_sweep(first_hour: GitProject) -> None:
    cli(first_hour.root, "sweep", "--set", "model.C=0.5,2,8", "-j", "1")
    out = piped(first_hour.root, "sweeps", "--best", "min:loss")
    assert "best loss" in out and "0.1111 (point 2)" in out, out  # 1/(8+1): point 2
    grid = piped(first_hour.root, "sweeps")
    assert "best" in grid.splitlines()[0] and "sweeps --best METRIC" in grid, grid


def test_a_resumed_sweep_prints_params_in_the_order_given(first_hour: GitProject) -> None:
    args = ("sweep", "--set", "model.C=0.5,8", "--set", "augment.copies=2,1", "-j", "1")
    first = piped(first_hour.root, *args, code=1, env={"FAIL_BIG_C": "1"})
    assert "(model.C=8 augment.copies=2): failed" in first, first
    sweep = json.loads(cli(first_hour.root, "sweeps", "--json").stdout)[0]["sweep"]
    resumed = piped(first_hour.root, "sweep", "--resume", sweep, "-j", "1")
    assert "point 2 (model.C=8 augment.copies=2): succeeded" in resumed, resumed
    lines = resumed.splitlines()
    assert next(line for line in lines if line.startswith("point  ")).split()[:3] == [
        "point", "model.C", "augment.copies"
    ], resumed  # fmt: skip


def _on_a_terminal(root: Path, *args: str, columns: int = 80) -> str:
    """``modver ARGS`` on a pseudo-terminal ``columns`` wide: what the user saw, escapes removed."""
    import pty
    import re

    leader, follower = pty.openpty()
    env = {**os.environ, "COLUMNS": str(columns), "TERM": "xterm"}
    env.pop("NO_COLOR", None)
    driver = subprocess.Popen([sys.executable, "-m", "modver", *args], cwd=root, stdin=follower, stdout=follower,
                              stderr=follower, env=env)  # fmt: skip
    os.close(follower)
    chunks = []
    while True:
        try:
            data = os.read(leader, 65536)
        except OSError:  # the terminal closed: the command exited
            break
        if not data:
            break
        chunks.append(data)
    os.close(leader)
    assert driver.wait(timeout=120) == 0
    shown = b"".join(chunks).decode("utf-8", "replace")
    return re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", shown)


def test_the_live_status_line_and_the_summary_fit_80_columns_on_one_line(first_hour: GitProject) -> None:
    shown = _on_a_terminal(first_hour.root, "sweep", "--set", "model.C=0.5,2,8", "--set", "augment.copies=1,2",
                           "-j", "1", "--best", "accuracy")  # fmt: skip
    lines = [line for chunk in shown.split("\n") for line in chunk.split("\r") if line.strip()]
    status = [line for line in lines if "tasks " in line]
    assert status, shown
    for line in status:  # one line each: done, tasks and the best together, never wrapped
        assert len(line.rstrip()) <= 80 and "done" in line and "best accuracy" in line, shown
    assert max(len(line.rstrip()) for line in lines) <= 80, shown


def test_diff_of_two_runs_keeps_keys_whole_and_rounds_numbers(git_project: GitProject) -> None:
    git_project.write("manifest.yaml", "stages:\n  model:\n    entry: pipe/model.py:model\n    params: {C: 1.0}\n")
    git_project.write("pipe/__init__.py", "")
    git_project.write(
        "pipe/model.py",
        "import modver\n\n\ndef model(C):\n    modver.log_metrics(validation_accuracy=C / 3)\n    return C\n",
    )
    git_project.write(".gitignore", ".modver/\n")
    git_project.commit("pipeline")
    a = json.loads(cli(git_project.root, "run", "--json").stdout)["run"]
    b = json.loads(cli(git_project.root, "run", "--set", "model.C=2", "--json").stdout)["run"]
    out = piped(git_project.root, "diff", a, b)
    assert "metric.validation_accuracy" in out, out  # the key whole
    assert "0.3333" in out and "0.6667" in out and "0.33333333" not in out, out  # rounded, still told apart
    assert max(len(line) for line in out.splitlines()) <= 80, out


def test_log_shows_a_merged_pull_request_by_its_title_and_drops_empty_columns(first_hour: GitProject) -> None:
    root = first_hour.root
    first_hour.git("checkout", "-q", "-b", "dropout")
    first_hour.write("NOTES.md", "dropout\n")
    first_hour.commit("notes")
    first_hour.git("checkout", "-q", "main")
    first_hour.git("merge", "-q", "--no-ff", "--no-commit", "dropout")
    first_hour.write("pipe/model.py", FILES["pipe/model.py"].replace("return C", "return C * 0.9"))
    first_hour.git("add", "-A")
    first_hour.git("commit", "-q", "-m", "Merge pull request #12 from x/dropout", "-m", "Add dropout to the model")
    cli(root, "index")
    out = piped(root, "log", "model")
    assert "Add dropout to the model (#12)" in out, out  # whole: no run took its room
    assert "Merge pull request" not in out and "runs" not in out.splitlines()[0], out


def test_a_wrapped_diff_line_keeps_its_prefix_on_a_terminal(first_hour: GitProject) -> None:
    cli(first_hour.root, "index")
    long = "    note = '" + "b" * 150 + "'\n"
    first_hour.write("pipe/model.py", FILES["pipe/model.py"].replace("    return C\n", long + "    return C\n"))
    shown = _on_a_terminal(first_hour.root, "diff", "model@v1", "model@working")
    pieces = [line for line in shown.replace("\r", "").split("\n") if "bbbb" in line]
    assert len(pieces) >= 2 and "".join(p.lstrip("+").strip() for p in pieces).count("b") == 150, shown
    assert all(p.startswith("+") for p in pieces), shown  # every piece of the added line reads as added
