"""Response times of the admin panel's pages with a store of synthetic records.

    python benchmarks/admin_response.py [--records 1000] [--requests 50]

Fills a fresh SQLite store through the tables (no inference, no photo
files): ``--records`` photos over 4 albums, each with a published output, two
faces and a failed job for one photo in 50, plus an audit line per record.
Then serves the panel with waitress on a loopback port, signs in, and times
``--requests`` requests per page over HTTP (after 5 warm-up requests);
prints the median and the 90th percentile per page. Only a machine otherwise
idle gives figures worth reporting.
"""

from __future__ import annotations

import argparse
import http.cookiejar
import re
import statistics
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path

from anon_plugin import albums, policies
from anon_plugin.admin import accounts, create_app
from anon_plugin.admin.server import PanelServer
from anon_plugin.config import load_settings
from anon_plugin.store import migrate, queries
from anon_plugin.store.db import engine_for, session_scope
from anon_plugin.store.tables import Face, Job, Output, Photo

ALBUMS = ("family", "football", "school", "travel")
PASSWORD = "benchmark password"


def fill(settings, records: int) -> int:
    """The synthetic store; returns the id of the photo in the middle (the record page timed)."""
    engine = engine_for(settings.database_url)
    with session_scope(engine) as session:
        albums.sync(session, [(settings.library_roots[0], name) for name in ALBUMS], share_new=True)
        accounts.add(session, "admin", PASSWORD)
        ids = {}
        for name in ALBUMS:
            album = albums.find(session, name)
            version, _ = policies.current(session, album.id)
            ids[name] = album.id, queries.policy_version_id(session, album.id, version)
        photos = []
        for i in range(records):
            album_id, _ = ids[ALBUMS[i % len(ALBUMS)]]
            photos.append(Photo(album_id=album_id, relative_path=f"{2020 + i % 5}/IMG_{i:05d}.jpg", size=3_000_000,
                                mtime=1.7e9 + i, sha256=f"{i:064x}", state="published"))
        session.add_all(photos)
        session.flush()
        outputs = []
        for i, photo in enumerate(photos):
            _, version_id = ids[ALBUMS[i % len(ALBUMS)]]
            album_name = ALBUMS[i % len(ALBUMS)]
            outputs.append(Output(photo_id=photo.id, source_sha256=photo.sha256,
                                  public_path=f"{settings.public_root}/{album_name}/{photo.relative_path}",
                                  public_sha256=f"{i + records:064x}", policy_version_id=version_id,
                                  engine_version="bench", model_sha256s={"yunet": "0" * 64}, device="cpu",
                                  seconds=1.5, removed_tags=["GPSInfo", "BodySerialNumber", "MakerNote"], notes=[],
                                  status="published"))
        session.add_all(outputs)
        session.flush()
        session.add_all(Face(output_id=o.id, index=k, box=[10.0 + k, 20.0, 110.0, 140.0], score=0.95, threshold=0.4,
                             mask_area=0.5, method="generate", seed=k, similarity=None, covered=False, error=None)
                        for o in outputs for k in range(2))
        session.add_all(Job(photo_id=p.id, kind="publish", state="failed", attempts=5,
                            last_error="truncated or corrupt image") for p in photos[::50])
        for photo in photos:
            queries.audit(session, "admin", "share", f"photo {photo.id}")
        middle = photos[len(photos) // 2].id
    engine.dispose()
    return middle


class Browser:
    """Cookies and CSRF tokens, as a browser keeps them."""

    def __init__(self, base: str):
        self.base = base
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))

    def get(self, path: str) -> str:
        with self.opener.open(self.base + path, timeout=30) as response:
            assert response.status == 200, (path, response.status)
            return response.read().decode()

    def sign_in(self) -> None:
        token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', self.get("/sign-in")).group(1)
        body = urllib.parse.urlencode({"username": "admin", "password": PASSWORD, "csrf_token": token}).encode()
        with self.opener.open(self.base + "/sign-in", body, timeout=30) as response:
            assert response.url.endswith("/albums"), response.url


def timed(browser: Browser, path: str, requests: int) -> list[float]:
    for _ in range(5):
        browser.get(path)
    times = []
    for _ in range(requests):
        start = time.perf_counter()
        browser.get(path)
        times.append((time.perf_counter() - start) * 1000)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=1000)
    parser.add_argument("--requests", type=int, default=50)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        for name in ALBUMS:
            (root / "library" / name).mkdir(parents=True)
        settings = load_settings(None, environ={"ANON_DATA_DIR": str(root / "data"),
                                                "ANON_LIBRARY_ROOTS": str(root / "library"),
                                                "ANON_PUBLIC_ROOT": str(root / "public")})
        migrate.upgrade(settings.database_url)
        middle = fill(settings, args.records)
        pages = {"albums list": "/albums", f"provenance record (photo {middle})": f"/provenance/{middle}",
                 "provenance search (name)": "/provenance?name=IMG_004", "jobs": "/jobs", "audit log": "/audit",
                 "health": "/status"}
        app = create_app(settings)
        with PanelServer(app, "127.0.0.1", 0) as server:
            browser = Browser(server.url)
            browser.sign_in()
            print(f"{args.records} records, {args.requests} requests per page over HTTP (waitress, 4 threads)\n")
            print(f"{'page':36} {'median ms':>10} {'p90 ms':>8}")
            for label, path in pages.items():
                times = sorted(timed(browser, path, args.requests))
                print(f"{label:36} {statistics.median(times):10.1f} {times[int(0.9 * len(times)) - 1]:8.1f}")
        app.extensions["anon_plugin"].engine.dispose()


if __name__ == "__main__":
    main()
