"""Screenshots of the admin panel's main pages for the README and docs/admin.md.

    python benchmarks/admin_screenshots.py [--out docs/img]

Builds a temporary library from the bundled public-domain example photo
ONLY (``examples/astronaut.png``: NASA portrait of Eileen Collins; never a
CelebA or other test face), runs the daemon and the panel (waitress) on it,
and drives Debian's headless Chromium through /usr/bin/chromedriver: sign
in, share the album, wait for its copies, open the policy editor with the
preview at strength large, a provenance record and the health page.
Writes admin-albums.png, admin-policy.png, admin-provenance.png and
admin-health.png.
"""

from __future__ import annotations

import argparse
import io
import shutil
import tempfile
import time
from pathlib import Path

import piexif
from PIL import Image
from selenium import webdriver
from selenium.webdriver.chrome.service import Service as DriverService
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select, WebDriverWait

from anon_plugin.admin import accounts, create_app
from anon_plugin.admin.server import PanelServer
from anon_plugin.config import load_settings
from anon_plugin.daemon.service import Service
from anon_plugin.resources import shipped_dir
from anon_plugin.store import migrate
from anon_plugin.store.db import session_scope

FLAGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
         "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run",
         "--hide-scrollbars")
PASSWORD = "screenshot password"
REPO = Path(__file__).resolve().parents[1]


def library(root: Path) -> Path:
    """family/astronaut.png and family/2024/astronaut.jpg (the same portrait as a phone JPEG with GPS,
    a serial number and an owner), and an empty album, landscapes."""
    examples = shipped_dir("examples", "astronaut.png")
    album = root / "library" / "family"
    (album / "2024").mkdir(parents=True)
    (root / "library" / "landscapes").mkdir()
    shutil.copyfile(examples / "astronaut.png", album / "astronaut.png")
    exif = piexif.dump({
        "0th": {piexif.ImageIFD.Make: b"Canon", piexif.ImageIFD.Model: b"EOS 5D", piexif.ImageIFD.Artist: b"Jane Doe"},
        "Exif": {piexif.ExifIFD.DateTimeOriginal: b"2024:06:01 10:00:00", piexif.ExifIFD.BodySerialNumber: b"0123456"},
        "GPS": {piexif.GPSIFD.GPSLatitudeRef: b"N", piexif.GPSIFD.GPSLatitude: ((48, 1), (51, 1), (2964, 100))},
    })
    buffer = io.BytesIO()
    Image.open(examples / "astronaut.png").convert("RGB").save(buffer, "JPEG", quality=92, exif=exif)
    (album / "2024" / "astronaut.jpg").write_bytes(buffer.getvalue())
    return root / "library"


def driver(profile: Path) -> webdriver.Chrome:
    options = webdriver.ChromeOptions()
    for flag in FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={profile}")
    options.binary_location = "/usr/bin/chromium"
    chrome = webdriver.Chrome(service=DriverService("/usr/bin/chromedriver"), options=options)
    chrome.set_window_size(1280, 900)
    return chrome


def shoot(chrome: webdriver.Chrome, path: Path) -> None:
    """The whole page: the window is made as tall as the page first."""
    height, frame = chrome.execute_script(
        "return [document.documentElement.scrollHeight, window.outerHeight - window.innerHeight]")
    chrome.set_window_size(1280, min(max(height + frame, 600), 2400))
    chrome.save_screenshot(str(path))
    chrome.set_window_size(1280, 900)
    print(f"wrote {path}")


def loaded(chrome: webdriver.Chrome, element_id: str) -> None:
    image = WebDriverWait(chrome, 300).until(lambda d: d.find_element(By.ID, element_id))
    WebDriverWait(chrome, 300, 0.25).until(
        lambda d: d.execute_script("return arguments[0].complete && arguments[0].naturalWidth", image))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "img")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        library(root)
        settings = load_settings(None, environ={
            "ANON_DATA_DIR": str(root / "data"), "ANON_LIBRARY_ROOTS": str(root / "library"),
            "ANON_PUBLIC_ROOT": str(root / "public"), "ANON_WATCH_STABILITY_DELAY": "0.5"})
        migrate.upgrade(settings.database_url)
        service = Service(settings)
        with session_scope(service.engine) as session:
            accounts.add(session, "admin", PASSWORD)
        app = create_app(settings, service=service)
        service.start()
        chrome = driver(root / "profile")
        try:
            with PanelServer(app, "127.0.0.1", 0) as server:
                chrome.get(server.url + "/sign-in")
                chrome.find_element(By.NAME, "username").send_keys("admin")
                chrome.find_element(By.NAME, "password").send_keys(PASSWORD)
                chrome.find_element(By.ID, "submit").click()
                row = chrome.find_element(By.CSS_SELECTOR, 'tr[data-album="family"]')
                row.find_element(By.XPATH, ".//button[text()='Share']").click()
                album_url = chrome.current_url
                deadline = time.monotonic() + 600
                while int(chrome.find_element(By.ID, "published").text) < 2:
                    assert time.monotonic() < deadline, "the copies were not published in 10 minutes"
                    time.sleep(1)
                    chrome.get(album_url)
                chrome.get(server.url + "/albums")
                shoot(chrome, args.out / "admin-albums.png")

                chrome.get(album_url)
                chrome.find_element(By.LINK_TEXT, "Policy…").click()
                Select(chrome.find_element(By.ID, "strength")).select_by_value("large")
                Select(chrome.find_element(By.ID, "photo")).select_by_visible_text("2024/astronaut.jpg")
                chrome.find_element(By.ID, "preview").click()
                loaded(chrome, "preview-image")
                shoot(chrome, args.out / "admin-policy.png")

                chrome.get(server.url + "/provenance?name=astronaut.jpg")
                chrome.find_element(By.LINK_TEXT, "2024/astronaut.jpg").click()
                loaded(chrome, "original")
                loaded(chrome, "public")
                shoot(chrome, args.out / "admin-provenance.png")

                chrome.get(server.url + "/status")
                shoot(chrome, args.out / "admin-health.png")
        finally:
            chrome.quit()
            service.stop()
            service.engine.dispose()


if __name__ == "__main__":
    main()
