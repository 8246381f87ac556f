"""The jobs page: depth, running, failed with reasons; retry (POST, audited)."""

from __future__ import annotations

import re

import sqlalchemy as sa

from anon_plugin import albums
from anon_plugin.jobs import queue
from anon_plugin.store.tables import AuditEntry, Job, Photo


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
