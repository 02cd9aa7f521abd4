"""Regenerate docs/report.png (the demo report's top) and docs/timeline.png (its timeline)
in headless Chromium (needs `chromium`).

python docs/screenshot.py
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    chromium = shutil.which("chromium") or sys.exit("no chromium on PATH")
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "report.html"
        subprocess.run(
            [
                sys.executable,
                "-m",
                "analyzer",
                "analyze",
                "samples/ticket-bundle/ticket.zip",
                "--year",
                "2025",
                "-o",
                str(report),
            ],
            check=True,
            cwd=ROOT,
        )
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium, args=["--headless", "--no-sandbox", "--disable-gpu"])
            page = browser.new_page(viewport={"width": 1100, "height": 1400})
            page.goto(report.as_uri())
            page.screenshot(path=str(ROOT / "docs" / "report.png"))
            page.locator("section.timelines").screenshot(path=str(ROOT / "docs" / "timeline.png"))
            browser.close()
    print(ROOT / "docs" / "report.png", ROOT / "docs" / "timeline.png")


if __name__ == "__main__":
    main()
