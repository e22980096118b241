"""The report's explaining parts, checked as a user sees them in headless Chromium (Debian's
chromium through Playwright, as tests/report/test_report.py): two runs compared side by side
(versions, params, metrics, each changed stage's diff summary and command, why each stage of B
ran), and a bisect's probes drawn on a line with the first bad version marked."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.explain._project import make_project
from tests.explain.test_bisect import _history
from tests.helpers import mv, mv_json
from tests.report.test_report import browser, open_report  # noqa: F401  (the module's browser fixture)

pytestmark = pytest.mark.xdist_group("chromium")  # one browser for the module, on one xdist worker


def test_compare_two_runs_and_a_bisect_line_in_the_report(tmp_path: Path, browser):  # noqa: F811
    g = make_project(tmp_path)
    _history(g, regress_at=6)  # model v1..v8, the score jumps from v6 on
    good = mv_json(g.root, "run", "--pin", "model@v1")
    bad = mv_json(g.root, "run", "--set", "model.C=2")
    found = mv_json(g.root, "bisect", "score", "--good", good["run"], "--bad", bad["run"], "--stage", "model",
                    "--jobs", "1")  # fmt: skip
    kept = json.loads((g.root / ".modver" / "explain" / "bisects" / f"{found['bisect']}.json").read_text())
    assert kept == found and kept["good_value"] == good["metrics"]["score"]
    out = tmp_path / "report.html"
    mv(g.root, "report", "-o", str(out))
    page, problems, requests = open_report(browser, out)
    try:
        assert all(url.startswith(("file:", "data:", "about:")) for url in requests), requests
        page.select_option("#compare-a", good["run"])
        page.select_option("#compare-b", bad["run"])
        changed = {
            row.get_attribute("data-name"): row.locator("td").all_inner_texts()[2:]
            for row in page.locator("#compare-table tr.changed").all()
        }
        score_a, score_b = (f"{v:.4g}" for v in (good["metrics"]["score"], bad["metrics"]["score"]))
        assert changed == {
            "version model": ["v1", "v8"],
            "param model.C": ["1", "2"],
            "metric score": [score_a, score_b],
        }
        assert page.locator("#compare-table tr:not(.changed)[data-name='version prep'] td").all_inner_texts()[2:] == [
            "v1", "v1"]  # fmt: skip
        (change,) = page.locator("#compare-changes li").all_inner_texts()
        assert (
            change.startswith("model v1 → v8: assignment OFFSET changed") and "modver diff model@v1 model@v8" in change
        )
        page.locator("#compare-changes li a").click()  # to model@v8's diff, opened
        page.wait_for_function("document.getElementById('diff-model-v8').open")
        reasons = dict(t.split(": ", 1) for t in page.locator("#compare-reasons li").all_inner_texts())
        assert reasons["model"].startswith(
            "new version v8 of model (was v1): assignment OFFSET changed; param C 1 -> 2"
        )
        assert reasons["prep"] == "the same version, params and inputs ran before"

        page.select_option("#compare-a", bad["run"])  # a run with itself: nothing differs
        assert page.locator("#compare-table tr.changed").count() == 0
        assert page.locator("#compare-changes li").inner_text().startswith("none")

        chart = page.locator("#bisects svg.bisect-line")
        assert chart.count() == 1
        probes = chart.locator("circle.probe")
        assert probes.count() == len(found["probes"]) + 2  # the good run, each probe, the bad run
        assert chart.locator("circle.probe-bad").count() >= 2 and chart.locator("circle.probe-good").count() >= 2
        assert chart.locator("line.first-bad title").text_content() == "first bad: model@v6"
        first_x = float(chart.locator("line.first-bad").get_attribute("x1"))
        bad_probe = next(p for p in found["probes"] if p["label"] == "model@v6")
        xs = {c.locator("title").text_content().split(":")[0]: float(c.get_attribute("cx")) for c in probes.all()}
        assert xs[bad_probe["label"]] == first_x  # the mark is at the first bad probe
        assert xs["model@v1"] < first_x < xs["model@v8"]
        assert "first bad: model@v6" in page.locator("#bisects").inner_text()
        assert problems == []
    finally:
        page.close()
