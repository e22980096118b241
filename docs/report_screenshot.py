"""Regenerate docs/report.png: the report of the digits example in headless Chromium.

    python docs/report_screenshot.py

Builds the example with `modver demo --keep` in a temporary folder, runs a small grid over
model.C and augment.noise, writes `modver report` and takes a screenshot of it with Playwright
driving Debian's chromium (/usr/bin/chromium).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
MODVER = [sys.executable, "-m", "modver"]


def main() -> None:
    from playwright.sync_api import sync_playwright

    env = {**os.environ, "NO_COLOR": "1"}
    with tempfile.TemporaryDirectory() as tmp:
        project = Path(tmp) / "digits"
        subprocess.run([*MODVER, "demo", "--keep", str(project)], check=True, env=env, stdout=subprocess.DEVNULL)
        for c in ("0.1", "1.0", "10.0"):
            for noise in ("0.05", "0.2"):
                sets = ["--set", f"model.C={c}", "--set", f"augment.noise={noise}"]
                subprocess.run([*MODVER, "run", *sets], cwd=project, check=True, env=env, stdout=subprocess.DEVNULL)
        out = project / "report.html"
        subprocess.run([*MODVER, "report", "-o", str(out)], cwd=project, check=True, env=env)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"])
            try:
                page = browser.new_page(viewport={"width": 1200, "height": 900})
                page.goto(out.as_uri(), wait_until="load")
                page.select_option("#param-metric", "metric.accuracy")
                page.screenshot(path=str(HERE / "report.png"), full_page=True)
            finally:
                browser.close()
    print(f"wrote {HERE / 'report.png'}")


if __name__ == "__main__":
    main()
