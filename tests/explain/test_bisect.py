"""``modver bisect METRIC --good RUN --bad RUN``: the first version past the threshold, by
binary search on the sweep engine; failing probes skipped; exit 1 when that leaves it ambiguous."""

from __future__ import annotations

import math

from tests.explain._project import make_project
from tests.helpers import mv, mv_json

BROKEN = "OFFSET = 0\n\n\ndef shift(x):\n    raise RuntimeError('broken helper')\n"


def _history(g, regress_at: int, n: int = 8, broken: tuple[int, ...] = ()) -> list[str]:
    """After the start (model v1, ``OFFSET = 0``), ``n - 1`` commits, each a new version of model
    (v2..vn): ``OFFSET`` tiny before version ``regress_at``, large from it on (score 10 -> 100+);
    versions in ``broken`` raise."""
    commits = []
    for number in range(2, n + 1):
        offset = f"{100 + number}" if number >= regress_at else f"0.00{number}"
        text = f"OFFSET = {offset}\n\n\ndef shift(x):\n    return x + OFFSET\n"
        g.write("pipe/util.py", BROKEN.replace("OFFSET = 0", f"OFFSET = {offset}") if number in broken else text)
        commits.append(g.commit(f"model v{number}"))
    mv(g.root, "index")
    return commits


def test_bisect_finds_a_planted_regression_in_log2_probes(tmp_path):
    g = make_project(tmp_path)
    _history(g, regress_at=6)
    log = mv_json(g.root, "log", "model")
    assert [v["version"] for v in log] == [f"v{i}" for i in range(1, 9)]
    good = mv_json(g.root, "run", "--pin", "model@v1")
    bad = mv_json(g.root, "run")
    assert bad["versions"]["model"] == "v8" and good["metrics"]["score"] < 11 < bad["metrics"]["score"]
    state = g.state()
    result = mv_json(g.root, "bisect", "score", "--good", good["run"], "--bad", bad["run"], "--stage", "model",
                     "--jobs", "1")  # fmt: skip
    assert result["found"] and result["first_bad"] == "model@v6" and result["last_good"] == "model@v5"
    assert len(result["probes"]) <= math.ceil(math.log2(8)) and result["monotonic"]
    assert result["threshold"] == (good["metrics"]["score"] + bad["metrics"]["score"]) / 2
    (change,) = result["changes"]
    assert change["stage"] == "model" and "OFFSET" in change["summary"]
    assert change["command"] == "modver diff model@v5 model@v6"
    records = {r["run"]: r for r in mv_json(g.root, "runs")}
    for probe in result["probes"]:
        assert records[probe["run"]]["bisect"] == result["bisect"]
    assert g.state() == state
    out = mv(g.root, "bisect", "score", "--good", good["run"], "--bad", bad["run"], "--stage", "model").stdout
    assert "first bad: model@v6 (last good: model@v5)" in out and "modver diff model@v5 model@v6" in out
    assert "0 stage executions" in out  # every probe came from the cache this time


def test_bisect_over_commits_and_k_ary(tmp_path):
    g = make_project(tmp_path)
    start = g.git("rev-parse", "HEAD")
    commits = _history(g, regress_at=6)
    g.git("checkout", "-q", start)
    good = mv_json(g.root, "run")
    g.git("checkout", "-q", "main")
    bad = mv_json(g.root, "run")
    result = mv_json(g.root, "bisect", "score", "--good", good["run"], "--bad", bad["run"], "--jobs", "2")
    assert result["found"] and result["first_bad"].startswith(commits[4][:10])
    assert result["first_bad"].endswith("model v6") and len(result["steps"]) == 8
    assert [c["stage"] for c in result["changes"]] == ["model"]
    assert len(result["probes"]) <= 4  # 2 at once: 3 + 5, then 4


def test_a_failing_probe_is_skipped(tmp_path):
    g = make_project(tmp_path)
    _history(g, regress_at=6, broken=(7,))
    good = mv_json(g.root, "run", "--pin", "model@v1")
    bad = mv_json(g.root, "run")
    result = mv_json(g.root, "bisect", "score", "--good", good["run"], "--bad", bad["run"], "--stage", "model")
    skips = [p for p in result["probes"] if p["verdict"] == "skip"]
    assert [p["label"] for p in skips] == ["model@v7"] and "broken helper" in skips[0]["why"]
    assert result["found"] and result["first_bad"] == "model@v6"


def test_skips_next_to_the_crossing_leave_it_ambiguous(tmp_path):
    g = make_project(tmp_path)
    _history(g, regress_at=7, broken=(6,))
    good = mv_json(g.root, "run", "--pin", "model@v1")
    bad = mv_json(g.root, "run")
    done = mv(g.root, "bisect", "score", "--good", good["run"], "--bad", bad["run"], "--stage", "model", code=1)
    assert "ambiguous" in done.stdout and "model@v6, model@v7" in done.stdout


def test_bisect_mistakes(tmp_path):
    g = make_project(tmp_path)
    _history(g, regress_at=3, n=3)
    good = mv_json(g.root, "run", "--pin", "model@v1")
    bad = mv_json(g.root, "run")
    out = mv(g.root, "bisect", "score", "--good", good["run"], "--bad", bad["run"], "--stage", "prep", code=1)
    assert "same version of prep" in out.stderr
    out = mv(g.root, "bisect", "score", "--good", bad["run"], "--bad", good["run"], "--lower-is-better", code=1)
    assert "threshold" in out.stderr


def test_a_non_monotonic_history_is_said(tmp_path):
    g = make_project(tmp_path)
    for number in range(2, 9):  # bad at v3, v4, good again at v5, v6, bad from v7
        offset = f"{100 + number}" if number in (3, 4, 7, 8) else f"0.00{number}"
        g.write("pipe/util.py", f"OFFSET = {offset}\n\n\ndef shift(x):\n    return x + OFFSET\n")
        g.commit(f"model v{number}")
    mv(g.root, "index")
    good = mv_json(g.root, "run", "--pin", "model@v1")
    bad = mv_json(g.root, "run")
    result = mv_json(g.root, "bisect", "score", "--good", good["run"], "--bad", bad["run"], "--stage", "model",
                     "--jobs", "2")  # fmt: skip
    assert result["found"] and result["first_bad"] == "model@v3"
    assert not result["monotonic"] and any("non-monotonic" in n and "model@v6" in n for n in result["notes"])


def test_bisect_a_script_stage_whose_helper_regressed(tmp_path):
    from tests.explain.test_blame import SCRIPT
    from tests.helpers import GitProject

    (tmp_path / "s").mkdir()
    g = GitProject(tmp_path / "s")
    for path, text in SCRIPT.items():
        g.write(path, text)
    g.commit("v1")
    for number in range(2, 6):  # the helper regresses at train's v4
        extra = 5 if number >= 4 else number / 100
        g.write("lib.py", f"def loss(lr):\n    return 1.0 / lr + {extra}\n")
        g.commit(f"v{number}")
    mv(g.root, "init")
    mv(g.root, "index")
    good = mv_json(g.root, "run", "--pin", "train@v1")
    bad = mv_json(g.root, "run")
    result = mv_json(g.root, "bisect", "loss", "--good", good["run"], "--bad", bad["run"], "--stage", "train")
    assert result["found"] and result["first_bad"] == "train@v4" and not result["higher_is_better"]
    assert len(result["probes"]) <= math.ceil(math.log2(5))
    assert "function loss changed" in result["changes"][0]["summary"]
