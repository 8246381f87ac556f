"""The daemon in-process on real folders: real watchdog, real SQLite, real photos, real models."""

from __future__ import annotations

import os
import shutil
import time

import pytest
import sqlalchemy as sa

from anon_plugin import albums
from anon_plugin.config import load_settings
from anon_plugin.library.ignore import PathFilter
from anon_plugin.library.walk import scan_album
from anon_plugin.daemon.service import Service
from anon_plugin.daemon.watcher import Change
from anon_plugin.store import migrate
from anon_plugin.store.db import session_scope
from anon_plugin.store.tables import Output, Photo

TIMEOUT = 90.0


@pytest.fixture
def daemon(tmp_path, wild_photos):
    library, public = tmp_path / "library", tmp_path / "public"
    (library / "family" / "trip").mkdir(parents=True)
    public.mkdir()
    shutil.copy(wild_photos[0], library / "family" / "a.jpg")
    shutil.copy(wild_photos[3], library / "family" / "trip" / "b.jpg")
    (library / "family" / "fake.jpg").write_text("a text file named .jpg")
    (library / "family" / "._a.jpg").write_bytes(b"\0\5\26\7 macOS resource fork")
    settings = load_settings(None, environ={
        "ANON_DATA_DIR": str(tmp_path / "data"), "ANON_LIBRARY_ROOTS": str(library), "ANON_PUBLIC_ROOT": str(public),
        "ANON_WATCH_STABILITY_DELAY": "0.3", "ANON_INFERENCE_MAX_BATCH": "4", "ANON_INFERENCE_THREADS": "2"})
    migrate.upgrade(settings.database_url)
    service = Service(settings)
    with session_scope(service.engine) as session:
        albums.sync(session, [(library, "family")], share_new=False)
        albums.share(session, albums.find(session, "family"), scan_album(library, "family", PathFilter()), by="t")
    service.start()
    yield library / "family", public / "family", service
    service.stop()
    service.engine.dispose()


def _states(service: Service) -> dict[str, str]:
    with session_scope(service.engine) as session:
        return {p.relative_path: p.state for p in session.scalars(sa.select(Photo))}


def _wait(service: Service, want: dict[str, str]) -> dict[str, str]:
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        states = _states(service)
        if all(states.get(k) == v for k, v in want.items()):
            return states
        time.sleep(0.2)
    raise AssertionError(f"waited {TIMEOUT} s for {want}, have {_states(service)}")


def _outputs(service: Service) -> int:
    with session_scope(service.engine) as session:
        return session.scalar(sa.select(sa.func.count()).select_from(Output))


def test_existing_photos_publish_and_bad_files_fail_while_the_others_publish(daemon):
    album, public, service = daemon
    states = _wait(service, {"a.jpg": "published", "trip/b.jpg": "published", "fake.jpg": "failed"})
    assert "._a.jpg" not in states
    assert (public / "a.jpg").is_file() and (public / "trip" / "b.jpg").is_file()
    assert not (public / "fake.jpg").exists()


def test_new_moved_and_deleted_photos_follow_the_library(daemon, wild_photos):
    album, public, service = daemon
    _wait(service, {"a.jpg": "published", "trip/b.jpg": "published"})
    shutil.copy(wild_photos[5], album / "new.jpg")  # dropped in while running
    _wait(service, {"new.jpg": "published"})
    assert (public / "new.jpg").is_file()
    made = _outputs(service)
    os.rename(album / "new.jpg", album / "renamed.jpg")  # moved: the copy follows, nothing is rendered again
    _wait(service, {"renamed.jpg": "published"})
    assert (public / "renamed.jpg").is_file() and not (public / "new.jpg").exists()
    assert _outputs(service) == made
    (album / "trip" / "b.jpg").unlink()  # deleted: so is its copy
    _wait(service, {"trip/b.jpg": "removed"})
    assert not (public / "trip").exists()


def test_a_photo_the_watcher_never_reported_is_found_by_the_rescan(daemon, wild_photos):
    album, public, service = daemon
    _wait(service, {"a.jpg": "published"})
    service.watcher.stop()
    shutil.copy(wild_photos[9], album / "missed.jpg")
    time.sleep(1.0)
    assert "missed.jpg" not in _states(service)
    service.rescan()
    _wait(service, {"missed.jpg": "published"})
    assert (public / "missed.jpg").is_file()


def test_start_loads_the_default_policys_models_before_the_first_photo(tmp_path, monkeypatch):
    from anon_plugin.inference import registry

    loaded = []
    real = registry.load
    monkeypatch.setattr(registry, "load", lambda name, device="cpu": loaded.append(name) or real(name, device))
    (tmp_path / "library").mkdir()
    settings = load_settings(None, environ={
        "ANON_DATA_DIR": str(tmp_path / "data"), "ANON_LIBRARY_ROOTS": str(tmp_path / "library"),
        "ANON_PUBLIC_ROOT": str(tmp_path / "public"), "ANON_INFERENCE_THREADS": "2"})
    migrate.upgrade(settings.database_url)
    service = Service(settings)
    try:
        service.start()
    finally:
        service.stop()
        service.engine.dispose()
    # generate (the generator, SFace), Grad-CAM on SFace, and verification's SFace and FaceNet
    assert set(loaded) == {"yunet", "dlib68", "sface", "generator", "facenet"}


def test_a_rescan_walks_the_folders_with_no_write_transaction_open(daemon, monkeypatch):
    """The walk of a large library, or of a network share, outlasts busy_timeout: while it runs, the
    workers and the panel must still be able to write (here: a second connection that waits 0.1 s at most)."""
    import sqlite3

    import anon_plugin.daemon.service as service_module

    album, public, service = daemon
    _wait(service, {"a.jpg": "published"})
    walk, writes = service_module.scan_album, []

    def walking(*args, **kwargs):
        with sqlite3.connect(service.engine.url.database, timeout=0.1, isolation_level=None) as other:
            try:
                other.execute("BEGIN IMMEDIATE")
                other.execute("ROLLBACK")
                writes.append("written")
            except sqlite3.OperationalError as exc:
                writes.append(str(exc))
        other.close()
        yield from walk(*args, **kwargs)

    monkeypatch.setattr(service_module, "scan_album", walking)
    service.rescan()
    assert writes == ["written"]


def test_a_symbolic_link_in_an_album_does_not_stop_the_rescan_seeing_deletions(daemon):
    album, public, service = daemon
    _wait(service, {"a.jpg": "published", "trip/b.jpg": "published"})
    service.watcher.stop()  # what follows is found by the rescan alone
    os.symlink(album / "a.jpg", album / "link.jpg")
    (album / "trip" / "b.jpg").unlink()
    service.rescan()
    states = _states(service)
    assert states["trip/b.jpg"] == "removed" and "link.jpg" not in states
    assert not (public / "trip" / "b.jpg").exists() and (public / "a.jpg").is_file()


def test_photos_in_a_folder_the_rescan_cannot_read_are_not_taken_for_deleted(daemon, monkeypatch):
    """As root, chmod cannot make a folder unreadable: the walk is made to meet one, as it does a folder
    without permission or on a share that dropped out. Deletions elsewhere in the album are still seen."""
    import anon_plugin.daemon.service as service_module
    from anon_plugin.library.walk import WalkProblem

    album, public, service = daemon
    _wait(service, {"a.jpg": "published", "trip/b.jpg": "published"})
    service.watcher.stop()
    walk = service_module.scan_album

    def trip_unreadable(root, name, path_filter, problems=None, **kwargs):
        problems.append(WalkProblem(root, name, "trip", "cannot read folder: Permission denied"))
        yield from (f for f in walk(root, name, path_filter, **kwargs) if not f.path.startswith("trip/"))

    monkeypatch.setattr(service_module, "scan_album", trip_unreadable)
    (album / "a.jpg").unlink()
    service.rescan()
    states = _states(service)
    assert states["trip/b.jpg"] == "published" and (public / "trip" / "b.jpg").is_file()
    assert states["a.jpg"] == "removed" and not (public / "a.jpg").exists()


def test_a_photo_moved_twice_before_the_first_move_is_handled_keeps_no_copy_under_its_first_name(daemon):
    album, public, service = daemon
    _wait(service, {"a.jpg": "published"})
    service.watcher.stop()  # the events are delivered by hand, in order, after both moves happened
    (album / "a.jpg").rename(album / "b.jpg")
    (album / "b.jpg").rename(album / "c.jpg")
    service.handle(Change("moved", album.parent, "family", "a.jpg", new_path="b.jpg"))
    service.handle(Change("moved", album.parent, "family", "b.jpg", new_path="c.jpg"))
    _wait(service, {"a.jpg": "removed", "c.jpg": "published"})
    assert not (public / "a.jpg").exists() and (public / "c.jpg").is_file()
