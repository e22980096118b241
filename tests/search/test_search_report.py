"""The report of a search (issue 19, item 6), in a real browser (Debian's chromium, as
tests/report/test_report.py): its trials like any sweep's runs, the optimization history (the
metric by trial and the best so far) and the params-vs-metric view."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.helpers import cli
from tests.report.test_report import browser, drawn_paths, open_report  # noqa: F401 - the fixture
from tests.sweep.pipeline import write_sweep_project

pytestmark = pytest.mark.xdist_group("chromium")  # one browser, on one xdist worker


def test_the_report_shows_a_search_s_history_and_params_against_its_metric(git_project, browser, tmp_path: Path):  # noqa: F811
    root = write_sweep_project(git_project).root
    record = json.loads(cli(root, "sweep", "--optimize", "accuracy", "--trials", "4", "--set",
                            "model.C=uniform(0.5,1.5)", "--sampler", "random", "--seed", "3", "--jobs", "2",
                            "--json").stdout)  # fmt: skip
    out = tmp_path / "report.html"
    cli(root, "report", "-o", str(out), "--sweep", record["sweep"])
    data = json.loads(re.search(r'<script id="data" type="application/json">(.*?)</script>', out.read_text(), re.S)[1])
    assert sorted(data["trials"].values()) == [0, 1, 2, 3] and data["searches"] == {record["sweep"]: False}
    page, problems, _ = open_report(browser, out)
    try:
        page.select_option("#param-metric", "metric.accuracy")
        assert page.locator("#history-chart svg circle").count() == 4  # one dot per trial
        best = page.locator("#history-chart path.best-so-far").get_attribute("d") or ""
        ys = [float(y) for y in re.findall(r"[ML][\d.]+ ([\d.]+)", best)]
        assert len(ys) == 4 and ys == sorted(ys, reverse=True)  # the best so far only climbs (y grows down)
        assert drawn_paths(page, "#param-chart") == 1  # accuracy over model.C
        assert problems == []
    finally:
        page.close()
