"""Engines and sessions on real SQLite files: the pragmas, foreign keys, BEGIN IMMEDIATE and two writers at once."""

from __future__ import annotations

import datetime as dt
import threading
import time

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError, StatementError

from anon_plugin.errors import StoreError
from anon_plugin.store.db import default_url, engine_for, safe_url, session_scope
from anon_plugin.store.tables import Album, AuditEntry, Photo, PolicyVersion

HOLD_S = 1.0  # how long the first writer keeps the write lock


def test_default_url(tmp_path):
    assert default_url(tmp_path) == f"sqlite:///{tmp_path}/anon_plugin.db"


def test_pragmas_are_set_on_every_new_connection(engine):
    first, second = engine.raw_connection(), engine.raw_connection()  # two pooled connections at once
    try:
        for connection in (first, second):
            pragma = {name: connection.execute(f"PRAGMA {name}").fetchone()[0]
                      for name in ("journal_mode", "foreign_keys", "busy_timeout", "synchronous")}
            assert pragma["journal_mode"] == "wal"
            assert pragma["foreign_keys"] == 1
            assert pragma["busy_timeout"] == 5000
            assert pragma["synchronous"] == 1  # NORMAL
            assert connection.isolation_level is None  # pysqlite leaves BEGIN to the engine
    finally:
        first.close()
        second.close()


def test_a_foreign_key_violation_is_refused(engine):
    with pytest.raises(IntegrityError, match="FOREIGN KEY"):
        with session_scope(engine) as session:
            session.add(Photo(album_id=999, relative_path="a.jpg", sha256="0" * 64, size=1, mtime=0.0))
    with session_scope(engine, read_only=True) as session:
        assert session.scalar(sa.select(sa.func.count()).select_from(Photo)) == 0


def test_an_unknown_state_is_refused(engine):
    with pytest.raises(IntegrityError, match="CHECK"):
        with session_scope(engine) as session:
            album = Album(root="/srv/photos", name="family")
            session.add(album)
            session.flush()
            session.add(Photo(album_id=album.id, relative_path="a.jpg", sha256="0" * 64, size=1, mtime=0.0,
                              state="lost"))


def test_session_scope_commits_or_rolls_back(engine):
    with session_scope(engine) as session:
        session.add(Album(root="/srv/photos", name="family"))
    with pytest.raises(RuntimeError):
        with session_scope(engine) as session:
            session.add(Album(root="/srv/photos", name="holidays"))
            session.flush()
            raise RuntimeError("boom")
    with session_scope(engine, read_only=True) as session:
        assert session.scalars(sa.select(Album.name)).all() == ["family"]


def test_read_only_scope_never_commits(engine):
    with session_scope(engine, read_only=True) as session:
        session.add(Album(root="/srv/photos", name="family"))
        session.flush()
    with session_scope(engine, read_only=True) as session:
        assert session.scalar(sa.select(sa.func.count()).select_from(Album)) == 0


def test_times_are_stored_in_utc_and_read_back_aware(engine):
    paris = dt.datetime(2026, 5, 17, 9, 30, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    with session_scope(engine) as session:
        session.add(AuditEntry(at=paris, action="login", target="user:anna"))
    with session_scope(engine, read_only=True) as session:
        at = session.scalar(sa.select(AuditEntry.at))
    assert at == paris and at.tzinfo is dt.UTC and at.hour == 7
    with pytest.raises(StatementError, match="naive datetime"):
        with session_scope(engine) as session:
            session.add(AuditEntry(at=dt.datetime(2026, 5, 17, 9, 30), action="login", target="user:anna"))


def test_policy_versions_are_immutable(engine):
    with session_scope(engine) as session:
        album = Album(root="/srv/photos", name="family")
        session.add(album)
        session.flush()
        session.add(PolicyVersion(album_id=album.id, version=1, policy={"strength": "medium"}))
    with pytest.raises(StoreError, match="immutable"):
        with session_scope(engine) as session:
            session.scalars(sa.select(PolicyVersion)).one().policy = {"strength": "large"}


def _hold_write_lock(engine, locked: threading.Event) -> None:
    with session_scope(engine) as session:
        session.add(Album(root="/srv/photos", name="first"))
        session.flush()
        locked.set()
        time.sleep(HOLD_S)


def test_a_second_writer_waits_for_the_first_instead_of_failing(sqlite_url, engine):
    """Two connections, two threads: the second BEGIN IMMEDIATE waits (busy_timeout) and then succeeds."""
    locked, errors = threading.Event(), []
    first = threading.Thread(target=_hold_write_lock, args=(engine, locked))
    first.start()
    assert locked.wait(5)
    start = time.perf_counter()
    other = engine_for(sqlite_url)  # a second engine, as the panel's process would have
    try:
        with session_scope(other) as session:
            session.add(Album(root="/srv/photos", name="second"))
    except Exception as exc:  # pragma: no cover - this is the failure being tested for
        errors.append(exc)
    waited = time.perf_counter() - start
    first.join()
    other.dispose()
    assert errors == []
    assert waited >= HOLD_S * 0.5
    with session_scope(engine, read_only=True) as session:
        assert sorted(session.scalars(sa.select(Album.name))) == ["first", "second"]


def test_a_reader_does_not_wait_for_a_writer(engine):
    """read_only scopes begin DEFERRED: with WAL they read the last commit while a writer holds the lock."""
    with session_scope(engine) as session:
        session.add(Album(root="/srv/photos", name="family"))
    locked = threading.Event()
    writer = threading.Thread(target=_hold_write_lock, args=(engine, locked))
    writer.start()
    assert locked.wait(5)
    start = time.perf_counter()
    with session_scope(engine, read_only=True) as session:
        names = session.scalars(sa.select(Album.name)).all()
    waited = time.perf_counter() - start
    writer.join()
    assert names == ["family"]
    assert waited < HOLD_S * 0.5


def test_a_bad_url_is_a_store_error():
    with pytest.raises(StoreError, match="cannot use the database URL"):
        engine_for("nosuchdb://x")


def test_safe_url_hides_the_password():
    assert safe_url("postgresql+psycopg://anna:s3cret@db/anon") == "postgresql+psycopg://anna:***@db/anon"
