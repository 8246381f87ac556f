"""End to end in a real browser: Debian's headless Chromium, driven through chromedriver, against
the panel served by waitress beside a real daemon publishing a temporary library of real photos.

Skipped only where /usr/bin/chromedriver is missing and CI is not set; under CI a missing
browser fails the test (``.ci/run`` installs chromium and chromium-driver).
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from anon_plugin.admin import create_app
from anon_plugin.admin.server import PanelServer
from anon_plugin.config import load_settings
from anon_plugin.daemon.service import Service
from anon_plugin.store.db import session_scope
from anon_plugin.store.tables import AuditEntry

CHROMEDRIVER = Path("/usr/bin/chromedriver")
CHROMIUM = Path("/usr/bin/chromium")
FLAGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
         "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run",
         "--window-size=1400,1000")
PUBLISHED = 180.0  # seconds for a photo to be published (the default policy, verified, on 2 CPU cores)

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMEDRIVER.exists() and not os.environ.get("CI"),
                       reason="no /usr/bin/chromedriver (apt-get install chromium chromium-driver); "
                              "under CI this test runs and fails instead"),
]


@pytest.fixture
def browser(tmp_path: Path) -> Iterator:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service as DriverService

    options = webdriver.ChromeOptions()
    for flag in FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path / 'chromium-profile'}")  # fresh: no state from a past run
    options.binary_location = str(CHROMIUM)
    driver = webdriver.Chrome(service=DriverService(str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(120)
    yield driver
    driver.quit()


@pytest.fixture
def live(tmp_path: Path, wild_photos: list[Path], migrated: Path, environ) -> Iterator[tuple[str, Path, Path, Service]]:
    """The panel on a free loopback port, the daemon beside it, a library with one album of one photo."""
    album = tmp_path / "library" / "family"
    album.mkdir(parents=True)
    (tmp_path / "public").mkdir()
    shutil.copy(wild_photos[0], album / "a.jpg")
    settings = load_settings(None, environ=environ())
    shutil.copyfile(migrated, settings.data_dir / migrated.name)
    service = Service(settings)
    app = create_app(settings, service=service)
    service.start()
    server = PanelServer(app, "127.0.0.1", 0).start()
    try:
        yield server.url, album, tmp_path / "public" / "family", service
    finally:
        server.close()
        service.stop()
        service.engine.dispose()


def _loaded(driver, element_id: str, timeout: float = 120.0) -> int:
    """The image's natural width once the browser has decoded it (fails at the deadline)."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    image = WebDriverWait(driver, timeout).until(lambda d: d.find_element(By.ID, element_id))
    return WebDriverWait(driver, timeout, poll_frequency=0.25).until(
        lambda d: d.execute_script("return arguments[0].complete && arguments[0].naturalWidth", image))


def _follow(driver, element, timeout: float = 120.0) -> None:
    """Click a link or a submit button and wait until the browser has left the page it was on: a click
    returns before a form's POST is answered, and reading the next page too soon reads the old one."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    page = driver.find_element(By.TAG_NAME, "html")
    element.click()
    WebDriverWait(driver, timeout).until(expected_conditions.staleness_of(page))


def _flash(driver) -> str:
    """The page's flash message; a page without one fails with what the page said instead."""
    from selenium.webdriver.common.by import By

    found = driver.find_elements(By.CSS_SELECTOR, ".flash")
    assert found, f"no message on {driver.current_url}: {driver.find_element(By.TAG_NAME, 'body').text[:500]!r}"
    return found[0].text


def _published(driver, url: str) -> int:
    from selenium.webdriver.common.by import By

    driver.get(url)
    return int(driver.find_element(By.ID, "published").text)


def _wait_published(driver, url: str, at_least: int) -> None:
    deadline = time.monotonic() + PUBLISHED
    while (count := _published(driver, url)) < at_least:
        assert time.monotonic() < deadline, f"{url}: {count} published after {PUBLISHED} s, want {at_least}"
        time.sleep(1.0)


def test_share_preview_publish_trace_and_unshare_in_a_real_browser(browser, live, wild_photos, auth_factory):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    base, album, public, service = live
    driver = browser

    # 1. A stranger is sent to sign in, then back where they were going.
    driver.get(base + "/albums")
    assert "/sign-in?next=/albums" in driver.current_url
    driver.find_element(By.NAME, "username").send_keys("admin")
    driver.find_element(By.NAME, "password").send_keys(auth_factory.password)
    _follow(driver, driver.find_element(By.ID, "submit"))
    assert driver.current_url == base + "/albums"

    # 2. Share the album: its progress page shows what is queued and what is published.
    row = driver.find_element(By.CSS_SELECTOR, 'tr[data-album="family"]')
    assert row.find_elements(By.TAG_NAME, "td")[1].text == "no"
    _follow(driver, row.find_element(By.XPATH, ".//button[text()='Share']"))
    assert "1 photo(s) queued" in _flash(driver)
    album_url = driver.current_url
    assert driver.find_element(By.ID, "queued").text in ("0", "1")
    _wait_published(driver, album_url, 1)
    assert (public / "a.jpg").is_file()

    # 3. The policy editor: strength large, previewed on the album's photo before saving.
    _follow(driver, driver.find_element(By.LINK_TEXT, "Policy…"))
    Select(driver.find_element(By.ID, "strength")).select_by_value("large")
    _follow(driver, driver.find_element(By.ID, "preview"))
    assert _loaded(driver, "preview-image") == 1024
    assert "strength=large" in driver.find_element(By.ID, "preview-image").get_attribute("src")
    _follow(driver, driver.find_element(By.ID, "save"))
    assert "Saved as policy version 2" in _flash(driver)
    assert driver.find_elements(By.XPATH, "//button[text()='Republish the album now']")

    # 4. A photo dropped into the album folder is published while the panel watches.
    shutil.copy(wild_photos[1], album / "new.jpg")
    _wait_published(driver, album_url, 2)
    assert (public / "new.jpg").is_file()

    # 5. Its provenance record: the original beside the public copy, under policy version 2.
    driver.get(base + "/provenance?name=new.jpg")
    _follow(driver, driver.find_element(By.LINK_TEXT, "new.jpg"))
    assert _loaded(driver, "original") > 0 and _loaded(driver, "public") > 0
    assert "version 2: generate, large" in driver.find_element(By.CSS_SELECTOR, "section.output").text

    # 6. Unshare, confirmed on its own page that says how many copies go; they go.
    driver.get(album_url)
    _follow(driver, driver.find_element(By.LINK_TEXT, "Unshare…"))
    assert "2 public copies will be removed" in driver.find_element(By.ID, "unshare-count").text
    assert (public / "a.jpg").is_file()
    _follow(driver, driver.find_element(By.ID, "confirm-unshare"))
    assert "2 public copies removed" in _flash(driver)
    assert not (public / "a.jpg").exists() and not (public / "new.jpg").exists()

    # 7. The audit log has it all, by name.
    with session_scope(service.engine, read_only=True) as session:
        done = [(e.user_name, e.action) for e in session.scalars(sa.select(AuditEntry).order_by(AuditEntry.id))]
    assert [a for a in done if a[0] == "admin"] == [("admin", "sign-in"), ("admin", "share"),
                                                   ("admin", "policy change"), ("admin", "unshare")]
