"""Watching Immich from the daemon: the poller the Service builds from its settings, against the fake Immich
over real HTTP, a real SQLite store; ``albums list`` and ``albums share`` on an Immich album; its panel page."""

from __future__ import annotations

import json
import logging
import os
import re
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from panel_session import PASSWORD, TOKEN, signed_in
import sqlalchemy as sa
from click.testing import CliRunner, Result
from fake import Served

from anon_plugin.config import NOT_SETTINGS, Settings, load_settings
from anon_plugin.connectors.immich.client import ImmichClient, Retry
from anon_plugin.connectors.immich.source import VIDEO, album_address
from anon_plugin.connectors.immich.watch import Poller
from anon_plugin.daemon.service import Service
from anon_plugin.store import migrate
from anon_plugin.store.db import session_scope
from anon_plugin.store.tables import Album, Job, Photo

PHOTO = Path(__file__).resolve().parents[3] / "examples" / "astronaut.png"
INTERVAL = 0.05  # seconds between polls
TIMEOUT = 10.0  # generous: a passing test never waits this long


@pytest.fixture
def env(tmp_path: Path, immich: Served, monkeypatch) -> dict[str, str]:
    """ANON_* settings of a site with an empty library and Immich (its key files private), polled every
    INTERVAL; no ANON_* setting of the caller's environment leaks in."""
    for name in list(os.environ):
        if name.startswith("ANON_") and name not in NOT_SETTINGS:
            monkeypatch.delenv(name)
    keys = {}
    for who, key in (("source", immich.source_key), ("public", immich.public_key)):
        keys[who] = tmp_path / f"{who}.key"
        keys[who].write_text(key + "\n")
        keys[who].chmod(0o600)
    (tmp_path / "library").mkdir()
    (tmp_path / "public").mkdir()
    return {"ANON_DATA_DIR": str(tmp_path / "data"), "ANON_LIBRARY_ROOTS": str(tmp_path / "library"),
            "ANON_PUBLIC_ROOT": str(tmp_path / "public"), "ANON_IMMICH_URL": immich.url,
            "ANON_IMMICH_SOURCE_KEY_FILE": str(keys["source"]), "ANON_IMMICH_PUBLIC_KEY_FILE": str(keys["public"]),
            "ANON_IMMICH_POLL_INTERVAL": str(INTERVAL), "ANON_INFERENCE_THREADS": "1"}


@pytest.fixture
def settings(env: dict[str, str]) -> Settings:
    s = load_settings(None, environ=env)
    migrate.upgrade(s.database_url)
    return s


@pytest.fixture
def service(settings: Settings) -> Iterator[Service]:
    """The daemon as built from the settings, not started (no models, no workers to claim the jobs)."""
    service = Service(settings)
    yield service
    service.stopping.set()
    service.engine.dispose()


@pytest.fixture
def polling(service: Service) -> Iterator[threading.Thread]:
    """The service's Immich poller on its own thread, as ``Service.start`` runs it; the test stops the service."""
    assert service.immich is not None
    thread = threading.Thread(target=service.immich.run, args=(service.stopping,), name="immich")
    thread.start()
    yield thread
    service.stopping.set()
    thread.join(TIMEOUT)


def cli(env: dict[str, str], *args: str) -> Result:
    from anon_plugin.cli import main

    return CliRunner().invoke(main, list(args), env={**env, "ANON_CONFIG": None}, catch_exceptions=False)


def wait_for(what: Callable[[], object], timeout: float = TIMEOUT) -> object:
    """``what()`` once it is truthy, within ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if found := what():
            return found
        time.sleep(INTERVAL / 2)
    raise AssertionError(f"waited {timeout} s")


def album_row(service: Service, external_id: str) -> tuple[int, bool] | None:
    with session_scope(service.engine, read_only=True) as session:
        album = session.scalar(sa.select(Album).where(Album.external_id == external_id))
        return (album.id, album.shared) if album is not None else None


def pending_with_jobs(service: Service) -> dict[str, str]:
    """Every photo that is pending with a queued job: its job state by asset id."""
    with session_scope(service.engine, read_only=True) as session:
        return dict(session.execute(sa.select(Photo.relative_path, Job.state).join(Job, Job.photo_id == Photo.id)
                                    .where(Photo.state == "pending")).all())


def test_the_daemon_polls_a_shared_immich_album_and_queues_its_new_asset(immich: Served, service: Service,
                                                                         polling: threading.Thread):
    from anon_plugin import albums
    from anon_plugin.library.ignore import PathFilter

    first = immich.fake.add_asset(immich.owner, PHOTO.read_bytes(), name="IMG_1.png")
    album = immich.fake.add_album(immich.owner, "Holidays", [first])
    album_id, shared = wait_for(lambda: album_row(service, album.id))  # type: ignore[misc]
    assert not shared and pending_with_jobs(service) == {}  # new albums are not shared
    assert albums.share_album(service.engine, album_id, PathFilter(), by="test") == 0  # the next poll reads it
    assert wait_for(lambda: pending_with_jobs(service)) == {first.id: "queued"}
    second = immich.fake.add_asset(immich.owner, b"another photo", name="IMG_2.jpg")
    immich.fake.add_to_album(album, second)
    assert wait_for(lambda: len(pending_with_jobs(service)) == 2 and pending_with_jobs(service)) == {
        first.id: "queued", second.id: "queued"}
    health = service.immich.health() if service.immich else None
    assert health is not None and health.last_success is not None and health.last_error is None
    service.stop(timeout=TIMEOUT)  # the daemon's own shutdown: the poller ends within a poll
    polling.join(TIMEOUT)
    assert not polling.is_alive()
    calls = len(immich.fake.calls)
    time.sleep(INTERVAL * 4)
    assert len(immich.fake.calls) == calls  # no poll after the stop


def test_a_refused_key_is_logged_in_one_line_and_polling_resumes(immich: Served, service: Service,
                                                                 polling: threading.Thread, caplog, monkeypatch):
    monkeypatch.setattr(logging.getLogger("anon_plugin"), "propagate", True)  # the CLI's setup turns it off
    caplog.set_level(logging.INFO, "anon_plugin")
    assert service.immich is not None
    wait_for(lambda: service.immich and service.immich.health().last_success)
    owner_key = immich.fake.keys.pop(immich.source_key)  # revoked in Immich: 401
    errors = wait_for(lambda: [r for r in caplog.records if r.levelno == logging.ERROR])
    line = errors[0].getMessage()  # type: ignore[index]
    assert "\n" not in line and "401" in line and "album.read" in line and immich.source_key not in line
    assert service.immich.health().last_error is not None
    immich.fake.keys[immich.source_key] = owner_key  # given back: the next poll succeeds
    album = immich.fake.add_album(immich.owner, "Back again")
    wait_for(lambda: album_row(service, album.id))
    health = service.immich.health()
    assert health.last_success is not None and health.last_error_at is not None
    assert health.last_success > health.last_error_at
    assert polling.is_alive()  # the daemon never died of it
    assert all(immich.source_key not in r.getMessage() for r in caplog.records)


def test_an_unavailable_server_is_retried_then_logged_and_the_next_poll_reads_it(immich: Served, settings: Settings,
                                                                                 service: Service, caplog,
                                                                                 monkeypatch):
    monkeypatch.setattr(logging.getLogger("anon_plugin"), "propagate", True)
    fast = Retry(attempts=2, first_delay=0.001, factor=2.0, max_delay=0.01)
    poller = Poller(ImmichClient(immich.url, immich.source_key, name="source", retry=fast), service.engine,
                    INTERVAL, force_every=3)
    album = immich.fake.add_album(immich.owner, "Trip")
    immich.fake.fail_next = [503, 503]  # both attempts of the first poll
    assert poller.poll_once() is None
    assert "503 through 2 attempts" in (poller.health().last_error or "")
    polled = poller.poll_once()
    assert polled is not None and polled.added == ["Trip"] and album_row(service, album.id) is not None
    assert [r.levelname for r in caplog.records if r.name == "anon_plugin.immich"][:1] == ["ERROR"]
    poller.client.close()


def test_albums_list_shows_an_immich_album_its_source_and_its_video_not_published(immich: Served,
                                                                                  env: dict[str, str],
                                                                                  service: Service):
    assert service.immich is not None
    photo = immich.fake.add_asset(immich.owner, PHOTO.read_bytes())
    video = immich.fake.add_asset(immich.owner, b"a video", name="clip.mp4", type="VIDEO")
    album = immich.fake.add_album(immich.owner, "Match", [photo, video])
    service.immich.poll_once()
    calls = len(immich.fake.calls)
    shared = cli(env, "albums", "share", "Match")
    assert shared.exit_code == 0, shared.stderr
    assert shared.stderr == "anon-plugin: album Match shared; 0 photo(s) queued\n"  # no walk: the poll reads it
    assert len(immich.fake.calls) == calls  # nor a call to Immich
    service.immich.poll_once()
    listed = json.loads(cli(env, "albums", "list", "--json").stdout)
    assert listed == [{"name": "Match", "root": album_address(immich.url, album.id), "shared": True,
                       "policy_version": 1, "photos": 1, "published": 0, "failed": 0, "held": 0, "pending": 1,
                       "missing": False, "source": "immich", "not_published": [{"path": video.id, "reason": VIDEO}]}]
    text = cli(env, "albums", "list").stdout.splitlines()
    assert text[0].split()[:3] == ["album", "source", "shared"]
    assert text[1].split()[:3] == ["Match", "immich", "yes"]
    assert text[1].endswith("(1 file(s) not published: --json lists them with the reason)")
    unshared = cli(env, "albums", "unshare", "Match", "--yes")
    assert unshared.stderr == "anon-plugin: album Match unshared; 0 public copies removed\n"
    assert json.loads(cli(env, "albums", "list", "--json").stdout)[0]["not_published"] == []  # not shared


def test_the_panel_shows_the_immich_album_its_link_its_video_and_the_polling(immich: Served, settings: Settings,
                                                                             service: Service):
    from anon_plugin.admin import accounts, create_app

    assert service.immich is not None
    photo = immich.fake.add_asset(immich.owner, PHOTO.read_bytes())
    video = immich.fake.add_asset(immich.owner, b"a video", name="clip.mp4", type="VIDEO")
    album = immich.fake.add_album(immich.owner, "Match", [photo, video])
    service.immich.poll_once()
    with session_scope(service.engine) as session:
        accounts.add(session, "admin", PASSWORD)
    app = create_app(settings, service=service)
    client = signed_in(app.test_client())
    album_id, _ = album_row(service, album.id)  # type: ignore[misc]
    index = client.get("/albums").text
    row = re.search(r'<tr data-album="Match">(.*?)</tr>', index, re.S)
    assert row is not None and f'<a href="{album_address(immich.url, album.id)}" rel="noreferrer">Immich</a>' in \
        row.group(1) and "Share" in row.group(1)
    token = TOKEN.search(index)
    assert token is not None
    shared = client.post(f"/albums/{album_id}/share", data={"csrf_token": token.group(1)}, follow_redirects=True)
    assert "Match is shared: 0 photo(s) queued for publishing." in shared.text
    service.immich.poll_once()
    page = client.get(f"/albums/{album_id}").text
    assert f'id="immich-link" href="{album_address(immich.url, album.id)}"' in page
    section = re.search(r'<section class="card" id="not-published">(.*?)</section>', page, re.S)
    assert section is not None and "Not published (1)" in section.group(1)
    assert re.findall(r"<tr><td>(.*?)</td><td>(.*?)</td></tr>", section.group(1)) == [(video.id, VIDEO)]
    assert photo.id in page  # its photo, pending
    status = client.get("/status").text
    assert re.search(r'<dd id="immich">last success:\s+\d', status) and "last error: none" in status
