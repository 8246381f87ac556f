"""Workers' rows on a real SQLite store: registered, beating, counting batches, stopped; running, stopped or gone."""

from __future__ import annotations

import datetime as dt
import logging
import os
import sqlite3
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from anon_plugin.jobs.presence import STALE, Presence, WorkerState, workers
from anon_plugin.store import db, migrate
from anon_plugin.store.db import engine_for, session_scope
from anon_plugin.store.tables import WorkerRow, utcnow

NAME = "box:4242:0"


def _until(what: str, ready: Callable[[], bool], timeout: float = 10.0) -> None:
    end = time.monotonic() + timeout
    while not ready():
        if time.monotonic() > end:
            pytest.fail(f"{what}: not within {timeout} s")
        time.sleep(0.02)


def _row(engine, name: str = NAME) -> WorkerRow | None:
    """The worker's row, read without the write lock (another writer may hold it)."""
    with session_scope(engine, read_only=True) as session:
        row = session.get(WorkerRow, name)
        if row is not None:
            session.expunge(row)  # kept readable past the scope's rollback
        return row


def _states(engine, now: dt.datetime | None = None) -> list[WorkerState]:
    with session_scope(engine, read_only=True) as session:
        return workers(session, now=now)


def test_a_worker_registers_beats_counts_its_batches_and_says_when_it_stops(engine):
    before = utcnow()
    with Presence(engine, NAME, "cuda:1", "celery", beat=0.05) as presence:
        row = _row(engine)
        assert row is not None and (row.host, row.pid, row.device, row.backend) == ("box", os.getpid(), "cuda:1",
                                                                                      "celery")
        assert before <= row.started_at == row.heartbeat_at and row.stopped_at is None
        first = row.heartbeat_at
        _until("a heartbeat", lambda: _row(engine).heartbeat_at > first)
        presence.done(3)
        presence.done(2)
        (state,) = _states(engine)
        assert (state.name, state.state, state.batches, state.photos) == (NAME, "running", 2, 5)
    row = _row(engine)
    assert row is not None and row.stopped_at is not None and row.stopped_at >= first
    (state,) = _states(engine)
    assert state.state == "stopped" and (state.batches, state.photos) == (2, 5)


def test_a_worker_started_again_under_its_name_starts_afresh(engine):
    with Presence(engine, NAME, "cpu", "local", beat=10) as presence:
        presence.done(4)
    with Presence(engine, NAME, "cuda:0", "celery", beat=10):
        (state,) = _states(engine)
        assert (state.state, state.device, state.backend, state.batches, state.photos, state.stopped_at) == (
            "running", "cuda:0", "celery", 0, 0, None)


def test_workers_are_running_stopped_or_gone_running_first(engine):
    now = utcnow()
    with session_scope(engine) as session:
        for name, beat, stopped in [("a:1:0", now - STALE - dt.timedelta(seconds=1), None),
                                    ("b:1:0", now, now), ("c:1:0", now - STALE + dt.timedelta(seconds=1), None),
                                    ("d:1:0", now, None)]:
            session.add(WorkerRow(name=name, host=name[0], pid=1, device="cpu", backend="celery", started_at=beat,
                                  heartbeat_at=beat, stopped_at=stopped))
    assert [(w.name, w.state) for w in _states(engine, now)] == [
        ("c:1:0", "running"), ("d:1:0", "running"), ("a:1:0", "gone"), ("b:1:0", "stopped")]
    later = now + STALE + dt.timedelta(seconds=2)
    assert [(w.name, w.state) for w in _states(engine, later)] == [
        ("a:1:0", "gone"), ("b:1:0", "stopped"), ("c:1:0", "gone"), ("d:1:0", "gone")]
    with session_scope(engine, read_only=True) as session:
        assert [w.state for w in workers(session, now=later, stale=STALE * 10)] == [
            "running", "running", "running", "stopped"]


@pytest.fixture
def quick_busy_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    """A writer gives up on a taken lock after 0.2 s instead of 5, so the test does not wait for it."""
    monkeypatch.setattr(db, "BUSY_TIMEOUT_MS", 200)


@pytest.fixture
def locked_store(tmp_path: Path, quick_busy_timeout: None) -> Iterator[tuple[object, sqlite3.Connection]]:
    """A store (engine) and another writer's connection that holds its write lock until it commits."""
    url = db.default_url(tmp_path / "locked")
    (tmp_path / "locked").mkdir()
    migrate.upgrade(url)
    engine = engine_for(url)
    other = sqlite3.connect(url.removeprefix("sqlite:///"), isolation_level=None)
    yield engine, other
    other.close()
    engine.dispose()


@pytest.fixture
def worker_log(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """The workers' records, whatever an earlier test did to the ``anon_plugin`` logger's propagation."""
    logger = logging.getLogger("anon_plugin.worker")
    saved = logger.level, logger.propagate
    logger.addHandler(caplog.handler)
    logger.setLevel(logging.WARNING)
    logger.propagate = False
    yield caplog
    logger.removeHandler(caplog.handler)
    logger.setLevel(saved[0])
    logger.propagate = saved[1]


def test_a_worker_registers_later_when_the_store_is_locked_at_its_start(locked_store, worker_log):
    engine, other = locked_store
    other.execute("BEGIN IMMEDIATE")
    with Presence(engine, NAME, "cpu", "celery", beat=0.05):  # does not raise
        assert any(r.getMessage() == f"{NAME}: could not record itself as a worker; trying again"
                   for r in worker_log.records)
        assert _row(engine) is None
        other.execute("COMMIT")
        _until("registered once the lock is free", lambda: _row(engine) is not None)
        (state,) = _states(engine)
        assert state.state == "running"
    (state,) = _states(engine)
    assert state.state == "stopped"
