"""The audit log page and the health page (its workers from real rows of ``workers``, the broker on
ports where no Redis answers; a reachable one is tested with a real redis-server in test_admin_jobs.py)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
import socket
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from flask import Flask

from anon_plugin import albums
from anon_plugin.admin import create_app
from anon_plugin.admin.state import panel
from anon_plugin.config import Settings
from anon_plugin.jobs import queue
from anon_plugin.jobs.presence import Presence
from anon_plugin.store import queries
from anon_plugin.store.db import engine_for
from anon_plugin.store.tables import Photo, WorkerRow, utcnow


def test_the_audit_log_shows_who_did_what_newest_first(auth, store):
    auth.sign_in(password="wrong password", address="10.2.2.2")
    auth.sign_in()
    with store() as session:
        family = albums.find(session, "family").id
    auth.post(f"/albums/{family}/share")
    rows = re.findall(r'<tr><td>([^<]+)</td><td>([^<]+)</td><td class="action">([^<]+)</td>\s*<td>([^<]+)</td>',
                      auth.client.get("/audit").text)
    assert [(who, what, target) for _, who, what, target in rows] == [
        ("admin", "share", "family"), ("admin", "policy change", "album 1"), ("admin", "sign-in", "address 127.0.0.1"),
        ("admin", "sign-in failed", "address 10.2.2.2")] or rows[0][1:] == ("admin", "share", "family")
    assert all(when.endswith("UTC") for when, *_ in rows)


def test_the_audit_log_pages(signed_in, store):
    with store() as session:
        for i in range(130):
            queries.audit(session, "cli", "share", f"album {i}")
    html = signed_in.client.get("/audit").text
    assert html.count('<td class="action">') == 100
    older = re.search(r'<a href="(/audit\?before=\d+)">Older', html).group(1)
    assert signed_in.client.get(older).text.count('<td class="action">') == 31  # 130 + the sign-in, less 100


def test_the_health_page_reports_queue_publishing_and_the_last_error(signed_in, published, store):
    with store() as session:
        album = albums.find(session, "club")
        photo = Photo(album_id=album.id, relative_path="c.jpg", size=1, mtime=0.0, state="failed",
                      reason="not an image (or a format anon-plugin cannot read)")
        session.add(photo)
        session.flush()
        job_id = queue.enqueue(session, photo.id).job_id
        queue.claim(session, "host:1:0", 1)
        queue.fail(session, job_id, "host:1:0", "not an image (or a format anon-plugin cannot read)", permanent=True)
    html = signed_in.client.get("/status").text
    facts = dict(re.findall(r'<dd id="([\w-]+)">(.*?)</dd>', html, re.S))
    assert "not in this process" in facts["daemon"]
    assert facts["device"] == "cpu"
    assert re.match(r"\d+ in this process", facts["models"])
    assert "0 queued, 0 running, 1 failed" in facts["queue"]
    assert facts["published-hour"] == "1"
    assert f"job {job_id} (failed): not an image" in facts["last-error"]
    assert "c.jpg</a>" in html


# -- workers and the broker on the health page --------------------------------------------------------------

@pytest.fixture
def panel_with(settings: Settings, auth_factory) -> Iterator[Callable[..., Any]]:
    """``panel_with(backend=..., broker_url=...)``: a signed-in client of a panel whose [queue] says so.

    ``load_settings`` refuses the celery backend on SQLite (its workers need PostgreSQL); the health page
    does not care where the store is, so the test's SQLite settings get their [queue] replaced after loading."""
    apps: list[Flask] = []

    def make(**queue: str):
        app = create_app(dataclasses.replace(settings, queue=dataclasses.replace(settings.queue, **queue)))
        apps.append(app)
        auth = auth_factory(app.test_client())
        assert auth.sign_in().status_code == 302
        return auth

    yield make
    for app in apps:
        with app.app_context():
            panel().engine.dispose()


def facts_of(html: str) -> dict[str, str]:
    return dict(re.findall(r'<dd id="([\w-]+)">(.*?)</dd>', html, re.S))


def test_the_health_page_flags_a_gone_worker_and_says_the_queue_is_local(signed_in, settings, store):
    now = utcnow()
    with store() as session:
        session.add(WorkerRow(name="gpu-box-2:77:0", host="gpu-box-2", pid=77, device="cuda:0", backend="local",
                              started_at=now - dt.timedelta(hours=1), heartbeat_at=now - dt.timedelta(seconds=95),
                              batches=3, photos=9))
        long_ago = now - dt.timedelta(days=3)  # gone three days ago: history, not a problem any more
        session.add(WorkerRow(name="old-box:5:0", host="old-box", pid=5, device="cpu", backend="local",
                              started_at=long_ago, heartbeat_at=long_ago))
    engine = engine_for(settings.database_url)
    try:
        with Presence(engine, "cpu-box:1:0", "cpu", "local") as presence:
            presence.done(2)
            html = signed_in.client.get("/status").text
    finally:
        engine.dispose()
    problems = re.search(r'<ul class="flash error" id="problems">(.*?)</ul>', html, re.S).group(1)
    [problem] = re.findall(r"<li>(.*?)</li>", problems, re.S)  # the worker gone three days ago is none
    assert re.fullmatch(r"worker gpu-box-2:77:0 is gone: last heartbeat 9[5-9] s ago \(the process died without "
                        r"saying so; its jobs go to other workers when their lease ends\)", problem)
    facts = facts_of(html)
    assert re.sub(r"\s+", " ", facts["workers-summary"]) == "1 running, 1 gone, 0 stopped within the last day; 1 older"
    assert facts["backend"].startswith("local: the embedded queue in the store, no broker")
    assert "broker-url" not in facts and "broker-reachable" not in facts
    table = re.search(r'<table id="workers">(.*?)</table>', html, re.S).group(1)
    assert re.search(r'<tr class="worker running"><td class="host">cpu-box</td>.*?<td class="n batches">1</td>',
                     table, re.S)
    assert re.search(r'<tr class="worker gone"><td class="host">gpu-box-2</td>.*?class="problem">gone<.*?'
                     r'<td class="heartbeat">9[5-9] s ago \(.*? UTC\)</td>\s*<td class="n batches">3</td>', table, re.S)


def test_the_health_page_has_no_problem_when_all_is_well(signed_in):
    assert re.search(r'<p class="flash ok" id="problems">No problem seen.</p>', signed_in.client.get("/status").text)


def test_an_unreachable_broker_is_a_problem_with_its_error(panel_with):
    with socket.socket() as s:  # a port nobody listens on: bound, never listening, so refused
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        html = panel_with(backend="celery", broker_url=f"redis://:s3cret@127.0.0.1:{port}/0").client.get("/status").text
    facts = facts_of(html)
    assert facts["backend"].startswith("celery")
    assert facts["broker-url"] == f"<code>redis://:***@127.0.0.1:{port}/0</code>"
    assert re.fullmatch(r'<strong class="problem">no</strong>:\s+ConnectionError: .*Connection refused\.',
                        facts["broker-reachable"])
    assert "broker-waiting" not in facts and "s3cret" not in html
    assert re.search(rf"<li>the broker redis://:\*\*\*@127.0.0.1:{port}/0 cannot be reached: ConnectionError: "
                     r"[^<]*Connection refused\.</li>", html)


def test_a_broker_that_never_answers_costs_the_page_its_timeout_not_a_hang(panel_with):
    with socket.socket() as s:  # the kernel accepts the connection; nothing ever answers
        s.bind(("127.0.0.1", 0))
        s.listen(8)
        client = panel_with(backend="celery", broker_url=f"redis://127.0.0.1:{s.getsockname()[1]}/0").client
        start = time.monotonic()
        html = client.get("/status").text
        seconds = time.monotonic() - start
    assert seconds < 6, f"the page took {seconds:.1f} s"
    assert "cannot be reached: TimeoutError" in html
