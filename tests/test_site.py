"""reports/index.html in headless Chromium (Debian's chromium and chromium-driver, driven by selenium): every link
resolves inside the reports folder, every image loads, the console has no errors, on the index and on every
notebook page it links; a screenshot is saved under the test's temporary folder."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from workbench import paths, site

CHROMIUM, DRIVER = shutil.which("chromium"), shutil.which("chromedriver")


@pytest.fixture(scope="module")
def browser():
    if not (CHROMIUM and DRIVER):
        if os.environ.get("CI"):
            pytest.fail("chromium and chromedriver are missing: `make test` installs them (apt-get install chromium "
                        "chromium-driver)")  # fmt: skip
        pytest.skip("chromium and chromedriver are not installed (`make test` installs them)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--window-size=1280,2000",
    ):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(DRIVER), options=options)
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def index(tmp_path_factory):
    """The page built over a copy of the checkout's reports/ (records left out: the page does not link them)."""
    reports = tmp_path_factory.mktemp("site") / "reports"
    shutil.copytree(paths.root() / "reports", reports, ignore=shutil.ignore_patterns("records", "index.html"))
    previous = os.environ.get("WORKBENCH_REPORTS")
    os.environ["WORKBENCH_REPORTS"] = str(reports)
    try:
        yield site.write_site()
    finally:
        if previous is None:
            os.environ.pop("WORKBENCH_REPORTS")
        else:
            os.environ["WORKBENCH_REPORTS"] = previous


LOAD_IMAGES = """
const done = arguments[arguments.length - 1];
const images = [...document.images];
Promise.all(images.map(i => { i.scrollIntoView(); return i.decode().catch(() => null); }))
  .then(() => done(images.map(i => [i.getAttribute('src'), i.naturalWidth])));
"""
"""Bring every image into view (Chromium defers far-off ones), wait until each has loaded or failed, and return
(src, natural width): a width of 0 is an image that did not load."""


def console_errors(driver) -> list[str]:
    return [entry["message"] for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]


def test_index_links_resolve_images_load_console_is_clean(browser, index: Path):
    reports = index.parent.resolve()
    browser.get(index.as_uri())
    assert "Pruning workbench" in browser.title
    hrefs = browser.execute_script("return [...document.querySelectorAll('a[href]')].map(a => a.getAttribute('href'))")
    assert len(hrefs) > 20, browser.page_source[:3000]
    for href in hrefs:
        if href.startswith("#"):
            assert browser.execute_script("return document.getElementById(arguments[0]) !== null", href[1:]), href
            continue
        assert "://" not in href, f"{href} leaves the folder"
        target = (reports / href).resolve()
        assert target.is_relative_to(reports), f"{href} points outside the reports folder"
        assert target.is_file(), f"{href} does not resolve"
    images = browser.execute_async_script(LOAD_IMAGES)
    assert images, "the page shows no figure"
    assert [src for src, width in images if not width] == []
    assert console_errors(browser) == []
    assert browser.find_elements("css selector", "table"), "no headline table"
    shot = index.parent.parent / "index.png"
    assert browser.save_screenshot(str(shot)) and shot.stat().st_size > 10_000


def test_every_linked_notebook_page_opens_offline_without_console_errors(browser, index: Path):
    browser.get(index.as_uri())
    pages = browser.execute_script(
        "return [...new Set([...document.querySelectorAll('a[href$=\".html\"]')].map(a => a.href))]"
    )
    assert pages
    for page in pages:
        browser.get(page)
        assert browser.find_elements("css selector", ".jp-Cell"), f"{page} shows no notebook cell"
        assert console_errors(browser) == [], page
