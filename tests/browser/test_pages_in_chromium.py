"""Every page in headless Chromium, as an analyst and as an admin, against the live ASGI server.

A page fails when: the browser logs a JavaScript error (console SEVERE), a Plotly chart div did not
render (no .plot-container / svg inside a [data-figure]), anything is requested from (or referenced
on) another host, the HTTP status is not the expected one (an analyst on an admin page gets the
friendly 403), or the page is over budget (HTML size, height). Screenshots go to var/screenshots/.
"""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import urlsplit

import pytest
from selenium.webdriver.common.by import By

from .conftest import PASSWORD, SCREENSHOTS
from .pages import Page, discover

# Budgets a page must stay under. The old Models page (73,000 px, every metric dict dumped) would fail.
MAX_HTML_BYTES = 1_500_000
MAX_PAGE_HEIGHT_PX = 12_000
CHART_WAIT_S = 8.0
SCREENSHOT_MAX_HEIGHT_PX = 4_000

LOCAL_HOSTS = {"127.0.0.1", "localhost", ""}

# Resources, network and DOM references, reported by the page itself.
_PAGE_FACTS = """
const nav = performance.getEntriesByType("navigation")[0] || {};
const resources = performance.getEntriesByType("resource").map(e => e.name);
const refs = [];
document.querySelectorAll("script[src], link[href], img[src], iframe[src], source[src], video[src], audio[src]")
  .forEach(el => refs.push(el.src || el.href));
const charts = [...document.querySelectorAll("[data-figure]")].map(el => ({
  id: el.dataset.figure,
  rendered: !!el.querySelector(".plot-container, svg.main-svg"),
}));
return {
  status: nav.responseStatus || 0,
  html_bytes: new Blob([document.documentElement.outerHTML]).size,
  height: Math.max(document.body ? document.body.scrollHeight : 0, document.documentElement.scrollHeight),
  urls: resources.concat(refs),
  charts: charts,
};
"""


def _login(browser, base: str, username: str) -> None:
    browser.get(f"{base}/accounts/login/")
    browser.delete_all_cookies()  # a fresh session per role
    browser.get(f"{base}/accounts/login/")
    browser.find_element(By.NAME, "username").send_keys(username)
    browser.find_element(By.NAME, "password").send_keys(PASSWORD)
    browser.find_element(By.CSS_SELECTOR, "form button[type=submit], form input[type=submit]").click()
    deadline = time.monotonic() + 10
    while "/accounts/login/" in browser.current_url and time.monotonic() < deadline:
        time.sleep(0.05)
    assert "/accounts/login/" not in browser.current_url, f"{username} could not log in"
    browser.get_log("browser")  # drop the login page's entries


def _facts(browser) -> dict[str, Any]:
    deadline = time.monotonic() + CHART_WAIT_S
    facts = browser.execute_script(_PAGE_FACTS)
    while any(not c["rendered"] for c in facts["charts"]) and time.monotonic() < deadline:
        time.sleep(0.1)
        facts = browser.execute_script(_PAGE_FACTS)
    return facts


def _screenshot(browser, name: str, height: int) -> None:
    browser.set_window_size(1400, max(900, min(height, SCREENSHOT_MAX_HEIGHT_PX)))
    browser.save_screenshot(str(SCREENSHOTS / f"{name}.png"))
    browser.set_window_size(1400, 900)


def _problems(page: Page, expected_status: int, facts: dict[str, Any], console: list[dict[str, Any]]) -> list[str]:
    problems = []
    if facts["status"] != expected_status:
        problems.append(f"HTTP {facts['status']}, expected {expected_status}")
    for entry in console:
        if entry["level"] != "SEVERE":
            continue
        # the browser reports the document's own expected 403/404 as a failed load; nothing else may fail
        if expected_status != 200 and f"status of {expected_status}" in entry["message"]:
            continue
        problems.append(f"console: {entry['message'][:300]}")
    for chart in facts["charts"]:
        if not chart["rendered"]:
            problems.append(f"chart {chart['id']} did not render")
    for url in facts["urls"]:
        parts = urlsplit(url)
        if parts.scheme in ("data", "blob", "about", "javascript"):
            continue
        if parts.hostname not in LOCAL_HOSTS:
            problems.append(f"external request/reference: {url[:200]}")
    if facts["html_bytes"] > MAX_HTML_BYTES:
        problems.append(f"HTML {facts['html_bytes']:,} bytes > {MAX_HTML_BYTES:,}")
    if facts["height"] > MAX_PAGE_HEIGHT_PX:
        problems.append(f"page {facts['height']:,} px tall > {MAX_PAGE_HEIGHT_PX:,}")
    return problems


@pytest.mark.django_db(transaction=False)
@pytest.mark.parametrize("role", ["analyst", "admin"])
def test_every_page_renders_cleanly(role: str, portal_data, live_url: str, browser) -> None:
    _login(browser, live_url, f"browser-{role}")
    pages = discover(portal_data)
    assert len(pages) >= 20, [p.slug for p in pages]
    report: dict[str, list[str]] = {}
    sizes = []
    for page in pages:
        expected = 403 if page.admin_only and role == "analyst" else page.expected_status
        browser.get(live_url + page.path)
        facts = _facts(browser)
        console = browser.get_log("browser")
        problems = _problems(page, expected, facts, console)
        _screenshot(browser, f"{role}-{page.slug}", facts["height"])
        sizes.append((page.slug, facts["status"], facts["html_bytes"], facts["height"], len(facts["charts"])))
        if problems:
            report[page.path] = problems
    print(f"\n{role}: {len(pages)} pages")
    for slug, status, html, height, charts in sizes:
        print(f"  {slug:24s} {status} {html:>9,} B {height:>6,} px {charts} charts")
    assert not report, report
