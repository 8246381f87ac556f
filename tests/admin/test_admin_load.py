"""The panel and the daemon on one SQLite database at once: a real Service publishes a batch of
real photos while a client thread reads pages and saves policy changes in a loop. No request
may fail, nothing may report "database is locked", and no policy change may be lost."""

from __future__ import annotations

import logging
import re
import shutil
import threading
import time

import sqlalchemy as sa

from anon_plugin import albums, policies
from anon_plugin.admin import create_app
from anon_plugin.library.ignore import PathFilter
from anon_plugin.library.walk import scan_album
from anon_plugin.daemon.service import Service
from anon_plugin.store import queries
from anon_plugin.store.db import session_scope
from anon_plugin.store.tables import AuditEntry, Job, Photo

PHOTOS = 6
DEADLINE = 150.0


def _fast_policy() -> policies.Policy:
    """blur, and no verification pass where this version has one: the test is about the store."""
    wanted = {"method": "blur", "verify": False}
    return policies.DEFAULT.with_changes(**{k: v for k, v in wanted.items() if k in policies.FIELDS})


class Client(threading.Thread):
    """Signs in, then reads the albums list, an album page and a provenance search, and saves a
    policy change every third round, until told to stop."""

    def __init__(self, app, auth_factory, album_id: int):
        super().__init__(name="panel-client", daemon=True)
        self.auth = auth_factory(app.test_client())
        self.album_id = album_id
        self.stop = threading.Event()
        self.statuses: list[tuple[str, int]] = []
        self.locked: list[str] = []
        self.saved = 0
        self.error: BaseException | None = None

    def _check(self, what: str, response) -> None:
        self.statuses.append((what, response.status_code))
        if "locked" in response.get_data(as_text=True):
            self.locked.append(what)

    def run(self) -> None:
        try:
            assert self.auth.sign_in().status_code == 302
            strengths = policies.STRENGTHS
            rounds = 0
            while not self.stop.is_set():
                self._check("albums", self.auth.client.get("/albums"))
                self._check("album", self.auth.client.get(f"/albums/{self.album_id}"))
                self._check("search", self.auth.client.get("/provenance?name=.jpg"))
                if rounds % 3 == 0:
                    url = f"/albums/{self.album_id}/policy"
                    page = self.auth.client.get(url)
                    self._check("editor", page)
                    form = {"csrf_token": self.auth.token_of(page.text), "method": "blur",
                            "strength": strengths[rounds // 3 % 3], "threshold": "", "recognizer": "sface",
                            "metadata": "strip-identifying", "on_face_failure": "cover", "output_format": "same",
                            "jpeg_quality": str(80 + rounds % 10), "after_publish_timeout": "60",
                            "enabled": "y", "save": "Save"}
                    self._check("save", self.auth.client.post(url, data=form, follow_redirects=True))
                    self.saved += 1
                rounds += 1
        except BaseException as exc:  # reported by the test, not lost in the thread
            self.error = exc


def test_panel_and_daemon_share_the_database_without_locks_or_lost_writes(settings, library, wild_photos,
                                                                           auth_factory, caplog):
    album_dir = library / "family"
    for i, photo in enumerate(wild_photos[6:6 + PHOTOS - 2]):
        shutil.copy(photo, album_dir / f"more{i}.jpg")
    service = Service(settings)
    with session_scope(service.engine) as session:
        albums.sync(session, [(library, "family"), (library, "club")], share_new=False)
        album = albums.find(session, "family")
        policies.save(session, album.id, _fast_policy(), by="test")
        albums.share(session, album, scan_album(library, "family", PathFilter()), by="test")
        album_id = album.id
    app = create_app(settings, service=service)
    client = Client(app, auth_factory, album_id)
    with caplog.at_level(logging.WARNING, logger="anon_plugin"):
        service.start()
        client.start()
        try:
            deadline = time.monotonic() + DEADLINE
            while time.monotonic() < deadline:
                with session_scope(service.engine, read_only=True) as session:
                    states = [p.state for p in session.scalars(sa.select(Photo).where(Photo.album_id == album_id))]
                if len(states) == PHOTOS and all(s in ("published", "failed", "held") for s in states):
                    break
                time.sleep(0.3)
            time.sleep(1.0)  # a few more rounds with the queue empty
        finally:
            client.stop.set()
            client.join(60)
            service.stop()
    assert client.error is None, repr(client.error)
    assert states == ["published"] * PHOTOS, states
    assert client.saved >= 2 and len(client.statuses) >= 10
    assert {status for _, status in client.statuses} == {200}, [s for s in client.statuses if s[1] != 200]
    assert not client.locked
    assert not re.search("locked", caplog.text, re.I), caplog.text
    with session_scope(service.engine, read_only=True) as session:
        versions = [v.version for v in queries.policy_versions(session, album_id)]
        changes = session.scalar(sa.select(sa.func.count()).select_from(AuditEntry).where(
            AuditEntry.action == "policy change", AuditEntry.user_name == "admin"))
        errors = list(session.scalars(sa.select(Job.last_error).where(Job.last_error.is_not(None))))
    assert len(versions) == 1 + client.saved  # the test's own, then every change the client saved
    assert versions == list(range(1, len(versions) + 1))
    assert changes == client.saved
    assert not [e for e in errors if "locked" in e]
    service.engine.dispose()
