"""The HTML report in a real browser (headless Chromium from Debian, driven by Playwright).

In CI (`CI=true`) Chromium must be there (`.ci/run` installs it); elsewhere the test skips
when no Chromium is found."""

from __future__ import annotations

from typer.testing import CliRunner

from analyzer.cli import app

ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def test_html_report_in_chromium(tmp_path, chromium):
    from playwright.sync_api import sync_playwright

    evil = "<script>window.__pwned=1</script><img src=x onerror='window.__pwned=2'>"
    log = tmp_path / "auth.log"
    log.write_text(
        "".join(
            f"Nov  3 14:{m:02d}:00 web9 sshd[{100 + m}]: Failed password for invalid user {evil} from 203.0.113.9 port 4{m:04d} ssh2\n"
            for m in range(12)
        )
    )
    report = tmp_path / "report.html"
    res = CliRunner().invoke(
        app, ["analyze", "samples/ticket-bundle/ticket.zip", str(log), "--year", "2025", "-o", str(report)]
    )
    assert res.exit_code == 0, res.output
    errors, requests = [], []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on("request", lambda r: requests.append(r.url))
        page.goto(report.as_uri())
        page.wait_for_load_state("load")
        assert page.evaluate("window.__pwned") is None  # the hostile user name did not run
        headline = page.locator(".headline").first
        assert headline.is_visible() and "platform" in headline.inner_text().lower()
        assert page.locator("article.finding").count() >= 2
        assert page.locator("article.finding h3").first.is_visible()
        assert page.get_by_text(evil).first.is_visible() or evil in page.content().replace("&lt;", "<").replace(
            "&gt;", ">"
        )
        phone = browser.new_page(viewport={"width": 390, "height": 844})
        phone.goto(report.as_uri())
        width = phone.evaluate("document.documentElement.scrollWidth")
        assert width <= 390 + 1, f"the page scrolls sideways on a phone ({width}px)"
        page.screenshot(path=str(tmp_path / "report.png"), full_page=False)
        browser.close()
    assert errors == []
    assert requests == [report.as_uri()]  # nothing but the file itself
    assert (tmp_path / "report.png").stat().st_size > 10_000
