"""`modver report`: one self-contained HTML file, checked as a user sees it in headless Chromium
(Debian's chromium, driven by Playwright through executable_path; the browser is started by the
fixture and closed by it)."""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import pytest

from tests.helpers import mv, mv_json

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
pytestmark = pytest.mark.xdist_group("chromium")  # one browser for the module, on one xdist worker


@pytest.fixture(scope="module")
def browser():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("Playwright for Python is not installed (pip install -e '.[test]')")
    if not Path(CHROMIUM).exists():
        pytest.skip("no chromium: install Debian's package (apt-get install chromium; .ci/run does)")
    with sync_playwright() as p:
        args = ["--no-sandbox"] if os.geteuid() == 0 else []
        launched = p.chromium.launch(executable_path=CHROMIUM, args=args)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def report_project(run_project):
    """Five runs: a real 2x2 sweep over prep.scale and other.x, then a run with a new version of
    train. ``p.sweep`` is the sweep's id."""
    p = run_project
    swept = mv_json(p.root, "sweep", "--set", "prep.scale=2,5", "--set", "other.x=1,2", "--jobs", "1")
    p.sweep = swept["sweep"]
    p.write("pipe/train.py", p.read("pipe/train.py").replace("model.mean)", "model.mean * 2)"))
    mv(p.root, "run")
    return p


def open_report(browser, path: Path):
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    problems: list[str] = []
    requests: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(str(e)))
    page.on("request", lambda r: requests.append(r.url))
    page.goto(path.as_uri(), wait_until="load")
    return page, problems, requests


def column(page, header: str) -> list[str]:
    headers = page.locator("#runs-table thead th").all_inner_texts()
    index = [h.strip(" ▲▼") for h in headers].index(header)
    return page.locator(f"#runs-table tbody tr td:nth-child({index + 1})").all_inner_texts()


def drawn_paths(page, selector: str) -> int:
    return page.eval_on_selector_all(f"{selector} svg path", "ps => ps.filter(p => p.getAttribute('d')).length")


def not_blank(page) -> bool:
    """Whether a screenshot of the page has more than a few colours (drawn in a canvas, counted)."""
    import base64

    shot = base64.b64encode(page.screenshot(full_page=True)).decode()
    return page.evaluate(
        """async (data) => {
            const img = new Image(); img.src = "data:image/png;base64," + data; await img.decode();
            const c = document.createElement("canvas"); c.width = img.width; c.height = img.height;
            const g = c.getContext("2d"); g.drawImage(img, 0, 0);
            const px = g.getImageData(0, 0, c.width, c.height).data, seen = new Set();
            for (let i = 0; i < px.length; i += 4 * 97) seen.add(px[i] << 16 | px[i + 1] << 8 | px[i + 2]);
            return seen.size > 20;
        }""",
        shot,
    )


def test_the_report_in_a_browser(report_project, browser, tmp_path: Path):
    p = report_project
    out = tmp_path / "report.html"
    result = mv_json(p.root, "report", "-o", str(out))
    records = mv_json(p.root, "runs")
    assert result["path"] == str(out) and result["runs"] == len(records) == 5
    page, problems, requests = open_report(browser, out)
    try:
        assert all(url.startswith(("file:", "data:", "about:")) for url in requests), requests  # nothing fetched
        rows = page.locator("#runs-table tbody tr")
        assert rows.count() == 5
        assert page.locator("#count").inner_text() == "5 of 5 runs"

        page.locator("#runs-table thead th", has_text="mean").click()  # a metric sorts best first
        means = [float(v) for v in column(page, "mean")]
        assert means == sorted(means, reverse=True) and means[0] > means[-1]
        page.locator("#runs-table thead th", has_text="mean").click()
        assert [float(v) for v in column(page, "mean")] == sorted(means)

        best = {r.split("\t")[0]: r.split("\t") for r in page.locator("#best-table tbody tr").all_inner_texts()}
        assert set(best) == {"mean", "loss"} and float(best["mean"][1]) == max(means)
        assert "train" in page.locator("#best-table thead").inner_text()  # the versions that differ
        page.select_option("#colour-by", "version.train")
        versions = page.locator("#version-table tbody tr").all_inner_texts()
        assert [v.split("\t")[:2] for v in versions] == [["v1", "4"], ["v2", "1"]]
        assert drawn_paths(page, "#metric-charts") >= 2  # mean and loss, a path per version colour
        assert page.locator("#metric-charts svg").count() == 2
        assert drawn_paths(page, "#curve-chart") == 5  # loss, logged at 3 steps by every run
        assert page.locator("#param-chart svg rect").count() == 4  # the sweep's 2 x 2 heat map
        page.select_option("#param-y", "")
        assert drawn_paths(page, "#param-chart") == 1  # a line over one param
        assert page.locator("#timeline svg circle").count() == 4  # prep, other, train@v1, train@v2

        page.locator('#timeline a[href="#diff-train-v2"]').click()
        diff = page.locator("#diff-train-v2")
        page.wait_for_function("document.getElementById('diff-train-v2').open")  # on hashchange
        assert "train: changed" in diff.inner_text() and diff.locator("pre.diff .add").count() >= 1

        page.fill("#filter", "scale=5")
        assert rows.count() == 2 and page.locator("#count").inner_text() == "2 of 5 runs"
        assert drawn_paths(page, "#curve-chart") == 2  # the charts follow the filter
        page.fill("#filter", "")
        assert not_blank(page)
        assert problems == []
    finally:
        page.close()


def test_report_where_sweep_and_errors(report_project, tmp_path: Path):
    p = report_project
    out = tmp_path / "sub" / "r.html"
    assert mv_json(p.root, "report", "-o", str(out), "--sweep", p.sweep)["runs"] == 4
    data = json.loads(re.search(r'<script id="data" type="application/json">(.*?)</script>', out.read_text()).group(1))
    assert data["sweeps"] == {p.sweep: [0, 1, 2, 3]} and data["sweep"] == p.sweep
    assert {c["header"] for c in data["columns"]} >= {"run", "prep.scale", "other.x", "mean", "loss", "sweep"}
    assert mv_json(p.root, "report", "-o", str(out), "--where", "scale == 5")["runs"] == 2
    error = mv(p.root, "report", "--sweep", "sw2", code=1).stderr
    assert "sw2" in error and p.sweep in error  # the unknown sweep, and the one there is
    default = mv(p.root, "report").stdout
    assert "Wrote" in default and (p.root / ".modver" / "report.html").is_file()
    assert "<script src" not in out.read_text() and "https://" not in out.read_text()  # self-contained


def test_text_from_the_project_cannot_break_out_of_the_page(run_project, tmp_path: Path, browser):
    p = run_project
    p.write(
        "pipe/other.py", p.read("pipe/other.py").replace("hello", "</script><script>alert(1)</script> <!--DIFFS-->")
    )
    mv(p.root, "snapshot", "--message", "</script><b>x</b> /*DATA*/")
    mv(p.root, "run", "--set", "other.x='</script><!--TITLE-->'")
    out = tmp_path / "r.html"
    mv(p.root, "report", "-o", str(out))
    page, problems, _ = open_report(browser, out)
    try:
        assert page.locator("#runs-table tbody tr").count() == 1 and problems == []
        assert "</script><!--TITLE-->" in column(page, "other.x")[0]
        assert page.locator("#diffs b", has_text="x").count() == 0  # the message is text, not markup
    finally:
        page.close()


def test_open_hands_the_file_to_the_users_browser(run_project, tmp_path: Path):
    import sys

    from tests.helpers import cli

    mv(run_project.root, "run")
    seen = tmp_path / "opened.txt"
    browser = f"{sys.executable} -c \"import sys; open({str(seen)!r}, 'w').write(sys.argv[1])\" %s"
    cli(run_project.root, "report", "-o", str(tmp_path / "r.html"), "--open", env={"BROWSER": browser})
    assert seen.read_text() == (tmp_path / "r.html").as_uri()
