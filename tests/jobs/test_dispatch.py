"""The daemon's side of the celery backend against a real redis-server: what is sent, in which messages, what is
sent again (a Redis restart, a dead worker), what waits (the broker down), and Redis's state as the panel shows it.

Each test starts its own redis-server (/usr/bin/redis-server) on a free port, with a password, and stops it after.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import logging
import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from redis_server import PASSWORD, REDIS, RedisServer, free_port

from anon_plugin.config import QueueSettings
from anon_plugin.jobs import broker, queue
from anon_plugin.jobs.dispatch import Dispatcher, messages
from anon_plugin.store import queries
from anon_plugin.store.db import session_scope
from anon_plugin.store.tables import Job, Photo, utcnow



def waiting(server: RedisServer) -> list[list[int]]:
    """The photo ids of each message waiting in ``broker.QUEUE``, oldest first (kombu pushes on the left):
    each is a JSON envelope whose body, base64, is Celery's JSON [args, kwargs, embed]."""
    with server.client() as client:
        raw = client.lrange(broker.QUEUE, 0, -1)
    photo_ids = []
    for item in reversed(raw):
        envelope = json.loads(item)
        assert envelope["headers"]["task"] == broker.TASK
        assert envelope["properties"]["body_encoding"] == "base64"
        assert envelope["content-type"] == "application/json"
        args, kwargs, _embed = json.loads(base64.b64decode(envelope["body"]))
        assert kwargs == {} and len(args) == 1
        photo_ids.append(args[0])
    return photo_ids


@pytest.fixture
def server(redis_server: RedisServer) -> RedisServer:
    """A redis-server without persistence, as a Debian package runs it with ``save ""``."""
    return redis_server


@pytest.fixture
def daemon_log(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """The dispatcher's records, whatever an earlier test did to the ``anon_plugin`` logger's propagation."""
    logger = logging.getLogger("anon_plugin.daemon")
    saved = logger.level, logger.propagate
    logger.addHandler(caplog.handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False  # each record once, not again through the root logger
    yield caplog
    logger.removeHandler(caplog.handler)
    logger.setLevel(saved[0])
    logger.propagate = saved[1]


class Site:
    """A store with photos queued, and a dispatcher sending them to ``server``."""

    def __init__(self, engine, server: RedisServer, max_batch: int = 2, max_attempts: int = 5):
        self.engine = engine
        self.settings = QueueSettings(backend="celery", broker_url=server.url, max_attempts=max_attempts)
        self.app = broker.make_app(self.settings)
        self.dispatcher = Dispatcher(engine, self.settings, max_batch, app=self.app)

    def photos(self, count: int) -> list[int]:
        """``count`` photos, a queued job each, in order."""
        with session_scope(self.engine) as session:
            album = queries.add_album(session, "/lib", f"a{utcnow().timestamp()}").id
            rows = [Photo(album_id=album, relative_path=f"{i}.jpg", sha256="0" * 64, size=1, mtime=0.0)
                    for i in range(count)]
            session.add_all(rows)
            session.flush()
            for row in rows:
                queue.enqueue(session, row.id)
            return [r.id for r in rows]

    def jobs(self) -> dict[int, Job]:
        """Each photo's job, by photo id."""
        with session_scope(self.engine) as session:
            return {j.photo_id: j for j in session.query(Job)}

    def photo(self, photo_id: int) -> Photo:
        with session_scope(self.engine) as session:
            return session.get_one(Photo, photo_id)

    def worker_died(self, photo_ids: list[int], times: int = 1) -> None:
        """The jobs of these photos claimed ``times`` times, their worker dying each time: leases run out."""
        when = utcnow() - (times + 1) * queue.LEASE
        for _ in range(times):
            with session_scope(self.engine) as session:
                assert len(queue.claim(session, "gone:1:0", len(photo_ids), now=when, photo_ids=photo_ids)) == len(
                    photo_ids)
            when += queue.LEASE + dt.timedelta(seconds=1)


@pytest.fixture
def site(engine, server: RedisServer) -> Iterator[Site]:
    made = Site(engine, server)
    yield made
    made.app.close()


def _sent(photo_ids: list[int], attempts: list[int]) -> list[queue.ToSend]:
    return [queue.ToSend(100 + p, p, a) for p, a in zip(photo_ids, attempts, strict=True)]


# ---- messages: how due jobs are batched ----

def test_fresh_jobs_go_in_batches_of_max_batch_in_order_and_tried_ones_alone():
    jobs = _sent([1, 2, 3, 4, 5, 6, 7], [0, 1, 0, 0, 2, 0, 0])
    batches = messages(jobs, 2)
    assert [[j.photo_id for j in m] for m in batches] == [[1, 3], [4, 6], [7], [2], [5]]
    assert [[j.photo_id for j in m] for m in messages(jobs, 8)] == [[1, 3, 4, 6, 7], [2], [5]]
    assert messages([], 8) == []


# ---- the dispatcher against a real Redis ----

def test_due_jobs_are_sent_once_and_the_messages_wait_in_redis(site: Site, server: RedisServer):
    server.settled()
    photos = site.photos(6)
    site.worker_died([photos[2]])  # tried once: travels alone, after the fresh ones
    before = utcnow()
    assert site.dispatcher.dispatch_once() == 6
    assert waiting(server) == [[photos[0], photos[1]], [photos[3], photos[4]], [photos[5]], [photos[2]]]
    jobs = site.jobs()
    assert all(j.sent_at is not None and before <= j.sent_at <= utcnow() for j in jobs.values())
    assert site.dispatcher.dispatch_once() == 0  # all sent, the messages still wait: nothing new
    assert len(waiting(server)) == 4
    assert broker.state(server.url).waiting == 4


def test_what_a_redis_restart_without_persistence_lost_is_sent_again(site: Site, server: RedisServer):
    photos = site.photos(3)
    assert site.dispatcher.dispatch_once() == 3
    assert waiting(server) == [photos[:2], photos[2:]]
    server.stop()
    server.start()  # at once: a message sent a moment before the restart is lost too
    assert waiting(server) == []
    assert site.dispatcher.dispatch_once() == 3
    assert waiting(server) == [photos[:2], photos[2:]]


def test_while_the_broker_is_down_the_jobs_wait_in_the_store_and_go_when_it_is_back(
        site: Site, server: RedisServer, daemon_log: pytest.LogCaptureFixture):
    photos = site.photos(3)
    server.stop()
    assert site.dispatcher.dispatch_once() == 0
    assert site.dispatcher.dispatch_once() == 0
    assert all(j.sent_at is None for j in site.jobs().values())
    down = [r for r in daemon_log.records if r.levelno == logging.WARNING]
    assert len(down) == 1, [r.getMessage() for r in down]  # said once per outage
    assert "cannot be reached" in down[0].getMessage() and PASSWORD not in down[0].getMessage()
    server.start()
    assert site.dispatcher.dispatch_once() == 3
    assert waiting(server) == [photos[:2], photos[2:]]
    assert all(j.sent_at is not None for j in site.jobs().values())
    assert any("is back" in r.getMessage() for r in daemon_log.records)


def test_a_photo_whose_worker_died_at_each_attempt_is_failed_and_not_sent(engine, server: RedisServer):
    site = Site(engine, server, max_attempts=2)
    try:
        killer, once = site.photos(2)
        site.worker_died([killer], times=2)
        site.worker_died([once])
        assert site.dispatcher.dispatch_once() == 1
        assert waiting(server) == [[once]]  # died once: tried again, alone
        photo, job = site.photo(killer), site.jobs()[killer]
        assert (job.state, job.sent_at) == ("failed", None)
        assert photo.state == "failed" and photo.reason == job.last_error
        assert photo.reason is not None and "during each of its 2 attempts" in photo.reason
    finally:
        site.app.close()


# ---- broker.state: Redis as the daemon and the panel see it ----

def _version() -> str:
    found = re.search(r"v=(\S+)", subprocess.run([str(REDIS), "--version"], capture_output=True,
                                                 text=True, check=True).stdout)
    assert found is not None
    return found.group(1)


def test_state_of_a_running_redis(site: Site, server: RedisServer):
    state = broker.state(server.url)
    assert state.reachable and state.error is None
    assert state.version == _version()
    assert state.started_at is not None
    assert server.started <= state.started_at <= server.ready + dt.timedelta(seconds=3)  # never before it started
    assert (state.waiting, state.unacked, state.append_only) == (0, 0, False)
    broker.send(site.app, [7, 8])
    assert broker.state(server.url).waiting == 1


def test_state_says_whether_redis_keeps_an_append_only_file(tmp_path: Path):
    server = RedisServer(tmp_path / "aof", append_only=True)
    server.start()
    try:
        assert broker.state(server.url).append_only is True
    finally:
        server.stop()


def test_state_of_a_closed_port_is_unreachable_in_one_line():
    url = f"redis://:{PASSWORD}@127.0.0.1:{free_port()}/0"
    started = time.monotonic()
    state = broker.state(url)
    assert time.monotonic() - started < 3
    assert not state.reachable and state.version is None and state.started_at is None
    assert state.error is not None and state.error.startswith("ConnectionError: ") and "\n" not in state.error


def test_the_brokers_password_is_hidden(server: RedisServer):
    state = broker.state(server.url)
    assert state.url == f"redis://:***@127.0.0.1:{server.port}/0" and PASSWORD not in repr(state)
    down = broker.state(f"redis://:{PASSWORD}@127.0.0.1:{free_port()}/0")
    assert PASSWORD not in repr(down)
    wrong = broker.state(f"redis://:wrong-{PASSWORD}@127.0.0.1:{server.port}/0")
    assert not wrong.reachable and wrong.error is not None and PASSWORD not in repr(wrong)
