"""The job queue on a real SQLite database: leases, crashes, backoff, no double claims."""

from __future__ import annotations

import datetime as dt
import threading


from anon_plugin.jobs import queue
from anon_plugin.store import queries
from anon_plugin.store.db import session_scope
from anon_plugin.store.tables import Job, Photo, utcnow


def _photos(engine, count: int) -> list[int]:
    with session_scope(engine) as session:
        album = queries.add_album(session, "/lib", "a").id
        rows = [Photo(album_id=album, relative_path=f"{i}.jpg", sha256="0" * 64, size=1, mtime=0.0)
                for i in range(count)]
        session.add_all(rows)
        session.flush()
        return [r.id for r in rows]


def test_a_photo_is_queued_once(engine):
    (photo,) = _photos(engine, 1)
    with session_scope(engine) as session:
        first = queue.enqueue(session, photo)
        assert first.new and queue.enqueue(session, photo) == queue.Queued(first.job_id, new=False)
        assert queue.depth(session)["queued"] == 1


def test_a_crashed_workers_job_runs_again_after_its_lease(engine):
    (photo,) = _photos(engine, 1)
    with session_scope(engine) as session:
        queue.enqueue(session, photo)
        (held,) = queue.claim(session, "w1", 8)
        assert held.attempt == 1
    with session_scope(engine) as session:
        assert queue.claim(session, "w2", 8) == []  # leased
        later = utcnow() + queue.LEASE + dt.timedelta(seconds=1)
        (again,) = queue.claim(session, "w2", 8, now=later)
        assert again.job_id == held.job_id and again.attempt == 2
    with session_scope(engine) as session:
        assert not queue.finish(session, held.job_id, "w1")  # w1 lost it
        assert queue.finish(session, held.job_id, "w2")
        assert queue.depth(session) == {"queued": 0, "running": 0, "done": 1, "failed": 0}


def test_failures_back_off_then_fail_for_good(engine):
    (photo,) = _photos(engine, 1)
    with session_scope(engine) as session:
        job = queue.enqueue(session, photo).job_id
    when = utcnow()
    for attempt in range(1, queue.MAX_ATTEMPTS + 1):
        with session_scope(engine) as session:
            if attempt > 1:  # not before its backoff has passed
                assert queue.claim(session, "w", 1, now=when - dt.timedelta(seconds=1)) == []
            (held,) = queue.claim(session, "w", 1, now=when)
            assert held.attempt == attempt
            state = queue.fail(session, job, "w", f"boom {attempt}", now=when)
            not_before = session.get(Job, job).not_before
        assert state == ("failed" if attempt == queue.MAX_ATTEMPTS else "queued")
        if state == "queued":
            assert not_before - when == queue.BACKOFF * 2 ** (attempt - 1)
            when = not_before
    with session_scope(engine) as session:
        row = session.get(Job, job)
        assert row.last_error == f"boom {queue.MAX_ATTEMPTS}" and queue.claim(session, "w", 1, now=when) == []
        assert queue.retry(session, job)
        assert [c.job_id for c in queue.claim(session, "w", 1)] == [job]


def test_a_permanent_failure_is_not_retried(engine):
    (photo,) = _photos(engine, 1)
    with session_scope(engine) as session:
        job = queue.enqueue(session, photo).job_id
        queue.claim(session, "w", 1)
        assert queue.fail(session, job, "w", "not an image", permanent=True) == "failed"
        assert queue.claim(session, "w", 1, now=utcnow() + dt.timedelta(days=1)) == []


def test_released_jobs_go_back_without_counting_an_attempt(engine):
    photos = _photos(engine, 3)
    with session_scope(engine) as session:
        for p in photos:
            queue.enqueue(session, p)
        held = queue.claim(session, "w", 8)
        queue.release(session, [h.job_id for h in held], "w")
        again = queue.claim(session, "w", 8)
    assert [h.job_id for h in again] == [h.job_id for h in held] and {h.attempt for h in again} == {1}


def test_two_workers_never_claim_the_same_job(engine):
    photos = _photos(engine, 40)
    with session_scope(engine) as session:
        for p in photos:
            queue.enqueue(session, p)
    claimed: dict[str, list[int]] = {"a": [], "b": []}

    def work(name: str) -> None:
        while True:
            with session_scope(engine) as session:
                got = queue.claim(session, name, 3)
            if not got:
                return
            claimed[name] += [c.job_id for c in got]

    threads = [threading.Thread(target=work, args=(n,)) for n in claimed]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(claimed["a"] + claimed["b"]) == sorted(set(claimed["a"] + claimed["b"]))
    assert len(claimed["a"]) + len(claimed["b"]) == 40


def test_cancel_closes_waiting_jobs_and_keeps_the_rows(engine):
    (photo,) = _photos(engine, 1)
    with session_scope(engine) as session:
        job = queue.enqueue(session, photo).job_id
        assert queue.cancel(session, photo, "album unshared") == 1
        row = session.get(Job, job)
        assert row.state == "done" and row.last_error == "cancelled: album unshared"


def test_jobs_of_a_dead_worker_on_this_host_are_reclaimed_at_once(engine):
    photos = _photos(engine, 3)
    with session_scope(engine) as session:
        for p in photos:
            queue.enqueue(session, p)
        queue.claim(session, "box:111:0", 1)
        queue.claim(session, "box:222:0", 1)
        queue.claim(session, "other:111:0", 1)
        assert queue.reclaim_dead(session, "box", alive=lambda pid: pid == 222) == 1
        # The dead worker's job is due at once (its lease ended), the live ones' are not.
        assert [c.photo_id for c in queue.claim(session, "box:333:0", 5)] == [photos[0]]
