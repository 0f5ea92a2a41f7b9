"""The status page at `/` in a real browser: headless Chromium (Debian's
chromium and chromium-driver), driven by Selenium, loads the page of the
running server, checks its DOM and saves a screenshot to
target/test-logs/status-page*.png.

Without the browser the test is skipped, saying how to install it, unless
STRATA_REQUIRE_BROWSER=1 (scripts/test.sh, CI), where it fails instead."""

import os
import shutil
import struct
import tempfile
import time

import pytest

from conftest import REPO_ROOT

CHROMIUM = os.environ.get("STRATA_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("STRATA_CHROMEDRIVER", "/usr/bin/chromedriver")


@pytest.fixture
def browser():
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not shutil.which(p)]
    if missing:
        why = (f"no {' or '.join(missing)}: install Debian's chromium and chromium-driver "
               "(scripts/test-python.sh --setup-only does, as root)")
        if os.environ.get("STRATA_REQUIRE_BROWSER") == "1":
            pytest.fail(why)
        pytest.skip(why)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    profile = tempfile.mkdtemp(prefix="strata-chromium-")
    # The flags of a closed network: no background connections to Google.
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", "--window-size=1280,1600",
                 f"--user-data-dir={profile}"):
        opts.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=opts)
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def _screenshot(driver, name: str) -> None:
    out = REPO_ROOT / "target" / "test-logs" / name
    out.parent.mkdir(parents=True, exist_ok=True)
    assert driver.save_screenshot(str(out)), "the browser took no screenshot"
    data = out.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "the screenshot is not a PNG"
    width, height = struct.unpack(">II", data[16:24])
    assert width >= 800 and height >= 600, (width, height)


def test_status_page_in_headless_chromium(server, browser, make_table, data_table_of):
    from google.cloud.bigtable.data import SetCell
    from selenium.webdriver.common.by import By

    if not server.http:
        pytest.skip("the server under test was not started by this suite (no HTTP address)")
    legacy = make_table(families={"cf": None}, splits=[b"<m>"])
    table = data_table_of(legacy)
    for row in (b"a", b"<m>", b"z"):
        table.mutate_row(row, [SetCell("cf", b"q", b"v")])

    browser.get(f"http://{server.http[0]}/")
    assert browser.title.startswith("Strata "), browser.title
    assert browser.find_element(By.ID, "phase").text == "serving"
    # Self-contained: no scripts, no external assets.
    for tag, attr in (("script", "src"), ("link", "href"), ("img", "src")):
        assert browser.find_elements(By.TAG_NAME, tag) == [], f"the page has a <{tag}>"
    # A row key is text, never markup.
    assert browser.find_elements(By.TAG_NAME, "m") == []
    rpcs = browser.find_element(By.ID, "rpcs").text
    assert "google.bigtable.v2.Bigtable/MutateRow" in rpcs, rpcs

    # The engine: the one database's, or the sum of a cluster server's
    # tablets.
    engine = browser.find_element(By.ID, "engine").text
    assert "memtables" in engine and "commit log" in engine, engine
    if not browser.find_elements(By.ID, "servers"):
        # One process: its tables and their tablets.
        tables = browser.find_element(By.ID, "tables").text
        assert legacy.table_id in tables, tables
        section = browser.find_element(By.ID, f"t-{legacy.name}")
        tablets = section.find_element(By.XPATH, "following-sibling::table[1]")
        rows = tablets.find_elements(By.TAG_NAME, "tr")[1:]
        assert len(rows) == 2, tablets.text
        cells = [[td.text for td in r.find_elements(By.TAG_NAME, "td")] for r in rows]
        assert (cells[0][1], cells[0][2]) == ("(start)", "<m>"), cells
        assert (cells[1][1], cells[1][2]) == ("<m>", "(end)"), cells
        # The link from the table list leads to its tablets.
        browser.find_element(By.LINK_TEXT, legacy.name).click()
        assert browser.current_url.endswith(f"#t-{legacy.name}"), browser.current_url
        _screenshot(browser, "status-page.png")
    else:
        # A cluster server: the servers and the tablet map.
        servers = browser.find_element(By.ID, "servers")
        listed = servers.find_elements(By.TAG_NAME, "tr")[1:]
        assert len(listed) == len(server.http), servers.text
        me = browser.find_element(By.ID, "me").text
        assert me in servers.text, (me, servers.text)
        # Who is master, as etcd says (the view asks every 2 s).
        deadline = time.monotonic() + 20
        while browser.find_element(By.ID, "master").text == "(none known)":
            assert time.monotonic() < deadline, "no master on the status page"
            time.sleep(0.5)
            browser.refresh()
            servers = browser.find_element(By.ID, "servers")
        assert browser.find_element(By.ID, "master").text in servers.text, servers.text
        section = browser.find_element(By.ID, f"t-{legacy.name}")
        tablets = section.find_element(By.XPATH, "following-sibling::table[1]")
        rows = tablets.find_elements(By.TAG_NAME, "tr")[1:]
        assert len(rows) == 2, tablets.text
        assert all("serving" in r.text for r in rows), tablets.text
        _screenshot(browser, "status-page-cluster.png")
