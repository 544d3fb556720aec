"""The HTML report in a real browser: Debian's headless Chromium, driven over the DevTools
protocol (tests/chromium.py). The page must render with no console error and no network
request, show failures without a click, draw a conversation when a scenario is opened,
keep markup as text, and stay quick with 1,000 scenarios."""

from __future__ import annotations

from pathlib import Path

import pytest
from chromium import Browser, find_chromium
from conftest import Project
from test_report import HTML, PASSWORD, XSS, showcase
from test_report_unit import big_document

from behave_aitest.report import render
from behave_aitest.model.fakellm import FakeOpenAI

CHROMIUM = find_chromium()
pytestmark = pytest.mark.skipif(
    CHROMIUM is None,
    reason="no Chromium: the report's browser tests need Debian's chromium package (apt-get install -y chromium)",
)


@pytest.fixture
def browser() -> Browser:
    assert CHROMIUM is not None
    with Browser(CHROMIUM) as opened:
        yield opened


def visible(browser: Browser, selector: str) -> int:
    return int(browser.js(f"Array.from(document.querySelectorAll({selector!r})).filter(e => e.offsetParent !== null).length"))


def test_report_renders_and_opens_a_conversation(project: Project, fake_llm: FakeOpenAI, browser: Browser, tmp_path: Path) -> None:
    showcase(project, fake_llm)
    result = project.run("-f", HTML, "-o", "reports/aitest.html", env={"SHOWCASE_PASSWORD": PASSWORD})
    assert result.returncode == 1, result.output
    browser.open(project.root / "reports" / "aitest.html")
    assert browser.js("document.documentElement.dataset.ready") == "1", "the script ran to the end"
    assert browser.js("document.getElementById('count').textContent") == "6 of 6 scenarios"

    # Failures are visible without a click, the conversations are not drawn yet.
    assert visible(browser, ".failure") == 2
    assert browser.js("document.querySelectorAll('.turn').length") == 0
    assert "Then the agent called tool \"transfer\"" in browser.js("document.querySelector('.failure').innerText")

    # Opening the markup scenario draws its conversation, with the markup as text.
    browser.js("document.querySelector('article[data-ref=\"1.0\"] .scn-head').click()")
    assert visible(browser, "article[data-ref='1.0'] .turn") == 1
    users = browser.js("Array.from(document.querySelectorAll('article[data-ref=\"1.0\"] .msg.user .bubble')).map(e => e.textContent)")
    assert users == [f"Echo this: {XSS}"]
    assert browser.js("document.querySelector('article[data-ref=\"1.0\"] .tool-head strong').textContent") == "echo"
    assert browser.js("document.querySelectorAll('img, iframe, object').length") == 0
    assert XSS in browser.js("document.body.innerText")

    # Filters and search.
    browser.js("document.querySelector('[data-filter=failed]').click()")
    assert browser.js("document.getElementById('count').textContent") == "2 of 6 scenarios"
    assert visible(browser, "article.scn") == 2
    browser.js("document.querySelector('[data-filter=all]').click()")
    browser.js("var s = document.getElementById('f-search'); s.value = 'paris'; s.dispatchEvent(new Event('input'))")
    browser.js("new Promise(r => setTimeout(r, 400))")
    assert browser.js("document.getElementById('count').textContent") == "2 of 6 scenarios", "the first and the last turn of the session mention Paris"

    # The matrix links to a scenario and opens it.
    browser.js("document.querySelector('#matrix a.cell').click()")
    assert visible(browser, "article.open .turn") >= 1

    browser.screenshot(tmp_path / "report.png", full_page=True)
    png = (tmp_path / "report.png").read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 20_000
    assert browser.errors() == []
    assert [u for u in browser.requests() if not u.startswith(("file:", "data:"))] == []


def test_a_thousand_scenarios_stay_responsive(browser: Browser, tmp_path: Path) -> None:
    page = tmp_path / "big.html"
    page.write_text(render.html(big_document(1000)), encoding="utf-8")
    browser.open(page)
    ready = browser.js("performance.now()")
    assert browser.js("document.getElementById('count').textContent") == "1000 of 1000 scenarios"
    filter_ms = browser.js("(() => { const t = performance.now(); document.querySelector('[data-filter=failed]').click(); return performance.now() - t })()")
    assert browser.js("document.getElementById('count').textContent") == "100 of 1000 scenarios"
    open_ms = browser.js("(() => { const t = performance.now(); document.getElementById('expand-failed').click(); return performance.now() - t })()")
    assert browser.js("document.querySelectorAll('.turn').length") == 200
    search_ms = browser.js(
        "(() => { const s = document.getElementById('f-search'); document.querySelector('[data-filter=all]').click();"
        " s.value = 'follow-up 42'; const t = performance.now(); s.dispatchEvent(new Event('input'));"
        " return new Promise(r => setTimeout(() => r(performance.now() - t - 150), 200)) })()"
    )
    assert browser.js("document.getElementById('count').textContent") == "10 of 1000 scenarios"
    print(f"1000 scenarios, {page.stat().st_size / 1e6:.1f} MB: loaded in {ready:.0f} ms, filter {filter_ms:.0f} ms, "
          f"open 100 failed {open_ms:.0f} ms, search {search_ms:.0f} ms")
    assert ready < 8000 and filter_ms < 1000 and open_ms < 3000
    assert browser.errors() == []
