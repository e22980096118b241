"""Why each stage reran, said where the user looks: ``run --explain`` as it runs, ``show RUN``
afterwards (each stage's reason whole, under its table), and the run record's ``reason`` — a
new version with the one-line summary of its semantic diff, a param, a data input, ``--force``,
a damaged cache entry."""

from __future__ import annotations

from modver.store.cache import key_hex
from tests.explain._project import make_project, set_offset
from tests.helpers import mv, mv_json


def _said(out: str, stage: str) -> str:
    """What ``run --explain`` said of ``stage`` when it started or came from the cache."""
    return next(line for line in out.splitlines() if line.startswith(f"- {stage}@") and " — " in line)


def _why(shown: str) -> dict[str, str]:
    """``show RUN``'s lines under ``why each stage ran or came from the cache:``."""
    lines = shown.split("why each stage ran or came from the cache:\n", 1)[1].splitlines()
    rows = [line.strip().split(None, 1) for line in lines if line.startswith("  ") and " = " not in line]
    return {name: text for name, text in rows}  # (metrics, `  score = 27`, are not stages)


def test_run_explain_show_and_record_name_why_each_stage_ran(tmp_path):
    g = make_project(tmp_path)
    mv(g.root, "run")
    set_offset(g, 5, "model: offset 5")
    g.write("data/raw.txt", "1 2 3 5\n")
    out = mv(g.root, "run", "--explain", "--set", "model.C=2", "--force", "evaluate").stdout
    model = "new version v2 of model (was v1): assignment OFFSET changed; param C 1 -> 2; input data: output of prep changed"
    assert _said(out, "prep") == "- prep@v1: running — data/raw.txt changed"
    assert _said(out, "model") == f"- model@v2: running — {model}"
    assert _said(out, "evaluate") == "- evaluate@v1: running — forced with --force"
    run = mv_json(g.root, "runs")[-1]["run"]
    record = mv_json(g.root, "show", run)
    assert record["stages"]["model"]["reason"] == model  # recorded, the summary with it
    why = _why(mv(g.root, "show", run).stdout)  # 80 columns: every reason whole all the same
    assert why == {"prep": "data/raw.txt changed", "model": model, "evaluate": "forced with --force"}

    entry = g.root / ".modver" / "cache" / "outputs" / key_hex(record["stages"]["model"]["cache_key"]) / "object"
    entry.write_bytes(entry.read_bytes() + b"damage")
    out = mv(g.root, "run", "--explain", "--set", "model.C=2").stdout
    assert _said(out, "prep") == "- prep@v1: cached — the same version, params and inputs ran before"
    assert "model@v2: running — recomputed: its cached output is damaged" in _said(out, "model")
    why = _why(mv(g.root, "show", "latest").stdout)
    assert why["model"].startswith("recomputed: its cached output is damaged (")
    assert why["prep"] == "the same version, params and inputs ran before"


def test_a_version_older_than_the_last_run_is_said_with_its_summary(tmp_path):
    g = make_project(tmp_path)
    set_offset(g, 5, "model: offset 5")
    mv(g.root, "index")
    mv(g.root, "run")
    g.write("pipe/model.py", g.read("pipe/model.py").replace("sum(data) * C", "sum(data) * C + 1"))
    out = mv(g.root, "run", "--explain").stdout
    assert _said(out, "model") == ("- model@v3: running — new version v3 of model (was v2): function model changed")
    out = mv(g.root, "run", "--explain", "--pin", "model@v1").stdout
    assert _said(out, "model") == (
        "- model@v1: running — version v1 of model (was v3): function model changed, assignment OFFSET changed"
    )
