"""The jobs page: depth, running, failed with reasons; retry (POST, audited); the workers (real rows of
``workers``) and the broker (a real redis-server started here)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from redis_server import PASSWORD, RedisServer
import sqlalchemy as sa
from flask import Flask

from anon_plugin import albums
from anon_plugin.admin import create_app
from anon_plugin.admin.state import Panel, panel
from anon_plugin.config import Settings
from anon_plugin.jobs import broker, queue
from anon_plugin.jobs.presence import Presence
from anon_plugin.store.db import engine_for
from anon_plugin.store.tables import AuditEntry, Job, Photo, WorkerRow, utcnow



def _failed_job(store) -> int:
    with store() as session:
        album = albums.find(session, "club")
        photo = Photo(album_id=album.id, relative_path="c.jpg", size=1, mtime=0.0)
        session.add(photo)
        session.flush()
        job_id = queue.enqueue(session, photo.id).job_id
        queue.claim(session, "host:1:0", 1)
        queue.fail(session, job_id, "host:1:0", "truncated or corrupt image (broken data stream)", permanent=True)
        queue.enqueue(session, photo.id)  # and one waiting
        return job_id


def test_the_page_shows_depth_and_failures_with_their_reasons(signed_in, store):
    _failed_job(store)
    html = signed_in.client.get("/jobs").text
    assert re.search(r'<dd id="depth-failed">1</dd>', html) and re.search(r'<dd id="depth-queued">1</dd>', html)
    failed = re.search(r'<table id="failed">(.*?)</table>', html, re.S).group(1)
    assert "truncated or corrupt image (broken data stream)" in failed and "c.jpg" in failed and "Retry" in failed


def test_retry_queues_the_job_again_and_is_audited(signed_in, store):
    job_id = _failed_job(store)
    response = signed_in.post(f"/jobs/{job_id}/retry", page="/jobs", follow_redirects=True)
    assert response.status_code == 200 and f"Job {job_id} queued again" in response.text
    with store() as session:
        job = session.get(Job, job_id)
        entry = session.scalar(sa.select(AuditEntry).where(AuditEntry.action == "retry"))
    assert (job.state, job.attempts) == ("queued", 0)
    assert (entry.user_name, entry.target) == ("admin", f"job {job_id}")
    assert entry.detail["last_error"].startswith("truncated")
    again = signed_in.post(f"/jobs/{job_id}/retry", page="/jobs", follow_redirects=True)
    assert "is queued, not failed: nothing to retry" in again.text


# -- the workers and the broker ---------------------------------------------------------------------------

@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    """A real redis-server's URL, with its password (as deploy/ runs it), without persistence."""
    return redis_server.url


@pytest.fixture
def celery_panel(settings: Settings, auth_factory) -> Iterator[Callable[[str], Any]]:
    """``celery_panel(broker_url)``: a signed-in client of a panel whose settings name the celery backend.

    ``load_settings`` refuses the celery backend on SQLite (its workers need PostgreSQL); the pages do not
    care where the store is, so the test's SQLite settings get their [queue] replaced after loading."""
    engines = []

    def make(broker_url: str):
        queue_settings = dataclasses.replace(settings.queue, backend="celery", broker_url=broker_url)
        app = create_app(dataclasses.replace(settings, queue=queue_settings))
        engines.append(panel_of(app).engine)
        auth = auth_factory(app.test_client())
        assert auth.sign_in().status_code == 302
        return auth

    yield make
    for engine in engines:
        engine.dispose()


def panel_of(app: Flask) -> Panel:
    with app.app_context():
        return panel()


@contextmanager
def workers_at_work(settings: Settings, store) -> Iterator[None]:
    """While the block runs: a worker running (a real Presence, 2 batches, 7 photos), one gone 5 minutes ago
    (its heartbeat stale, never stopped), one stopped two days ago (collapsed)."""
    now = utcnow()
    with store() as session:
        session.add(WorkerRow(name="gpu-box-2:77:0", host="gpu-box-2", pid=77, device="cuda:0", backend="celery",
                              started_at=now - dt.timedelta(hours=3), heartbeat_at=now - dt.timedelta(minutes=5),
                              batches=12, photos=40))
        old = now - dt.timedelta(days=2)
        session.add(WorkerRow(name="old-box:9:0", host="old-box", pid=9, device="cpu", backend="local",
                              started_at=old, heartbeat_at=old, stopped_at=old, batches=1, photos=1))
    engine = engine_for(settings.database_url)
    try:
        with Presence(engine, "gpu-box-1:4242:0", "cuda:1", "celery") as presence:
            presence.done(3)
            presence.done(4)
            yield
    finally:
        engine.dispose()


def worker_rows(html: str) -> dict[str, str]:
    """The main workers table's rows by host."""
    table = re.search(r'<table id="workers">(.*?)</table>', html, re.S).group(1)
    return dict(re.findall(r'<tr class="worker \w+"><td class="host">([^<]+)</td>(.*?)</tr>', table, re.S))


def test_the_jobs_page_lists_the_workers_with_their_heartbeats_and_flags_a_gone_one(signed_in, settings, store):
    with workers_at_work(settings, store):
        html = signed_in.client.get("/jobs").text
    rows = worker_rows(html)
    assert set(rows) == {"gpu-box-1", "gpu-box-2"}  # the one stopped two days ago is collapsed
    running, gone = rows["gpu-box-1"], rows["gpu-box-2"]
    assert '<td class="device">cuda:1</td>' in running and '<td class="state">running</td>' in running
    assert re.search(r'<td class="heartbeat">\d+ s ago \(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC\)</td>', running)
    assert '<td class="n batches">2</td><td class="n photos">7</td>' in running
    assert 'class="problem">gone</strong>' in gone and '<td class="heartbeat">5 min ago' in gone
    assert '<td class="n batches">12</td><td class="n photos">40</td>' in gone
    assert '<tr class="worker gone">' in html and "1 running, 1 gone" in html
    older = re.search(r'<details id="older-workers">(.*?)</details>', html, re.S).group(1)
    assert "1 worker(s) stopped or gone more than a day ago" in older and "old-box" in older
    assert "local: the embedded queue in the store, no broker" in html and 'id="broker-url"' not in html


def test_the_jobs_page_shows_a_reachable_broker_and_its_waiting_messages(celery_panel, redis_url, settings):
    queue_settings = dataclasses.replace(settings.queue, backend="celery", broker_url=redis_url)
    broker.send(broker.make_app(queue_settings), [1])
    client = celery_panel(redis_url).client
    facts = dict(re.findall(r'<dd id="(broker-[\w-]+|backend)">(.*?)</dd>', client.get("/jobs").text, re.S))
    assert facts["backend"].startswith("celery")
    assert PASSWORD not in facts["broker-url"] and "***@127.0.0.1" in facts["broker-url"]
    assert facts["broker-reachable"] == "yes"
    assert re.fullmatch(r"\d+\.\d+\.\d+", facts["broker-version"])
    assert facts["broker-since"].endswith("UTC")
    assert (facts["broker-waiting"], facts["broker-unacked"]) == ("1", "0")
    assert "append-only file off: a Redis restart loses the waiting messages" in facts["broker-persistence"]
