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


# ---- the celery backend: claims of named photos, deaths counted as attempts, what the daemon sends ----

def _queued(engine, count: int) -> tuple[list[int], list[int]]:
    """``count`` photos, a queued job each: (photo ids, job ids)."""
    photos = _photos(engine, count)
    with session_scope(engine) as session:
        return photos, [queue.enqueue(session, p).job_id for p in photos]


def _job(engine, job_id: int) -> Job:
    with session_scope(engine) as session:  # committed, not rolled back: the row stays readable
        return session.get_one(Job, job_id)


def test_a_message_claims_only_its_photos_never_tried_and_a_single_photo_takes_a_tried_one(engine):
    photos, jobs = _queued(engine, 4)
    t0 = utcnow()
    with session_scope(engine) as session:  # photo 1 is tried, its worker dies: due again after its lease
        assert [c.job_id for c in queue.claim(session, "w0", 8, now=t0, photo_ids=[photos[1]])] == [jobs[1]]
    later = t0 + queue.LEASE + dt.timedelta(seconds=1)
    with session_scope(engine) as session:
        batch = queue.claim(session, "w1", 8, now=later, photo_ids=photos[:3], fresh_only=True)
        assert [(c.job_id, c.photo_id, c.attempt) for c in batch] == [(jobs[0], photos[0], 1), (jobs[2], photos[2], 1)]
        (alone,) = queue.claim(session, "w2", 1, now=later, photo_ids=[photos[1]])
        assert (alone.job_id, alone.attempt) == (jobs[1], 2)
        assert queue.claim(session, "w3", 8, now=later, photo_ids=photos[:3]) == []  # all held now
    assert _job(engine, jobs[3]).state == "queued"  # not named: left for its own message


def test_give_up_dead_fails_only_jobs_whose_worker_died_at_each_of_max_attempts(engine):
    photos, (capped, under, alive) = _queued(engine, 3)
    t0 = utcnow()
    t1 = t0 + queue.LEASE + dt.timedelta(seconds=1)
    with session_scope(engine) as session:
        queue.claim(session, "w", 8, now=t0)  # attempt 1 of each; their worker dies
        queue.claim(session, "w", 1, now=t1, photo_ids=[photos[0]])  # attempt 2, dies too
        queue.claim(session, "w", 1, now=t1, photo_ids=[photos[2]], lease=queue.LEASE * 10)  # attempt 2, alive
    t2 = t1 + queue.LEASE + dt.timedelta(seconds=1)
    with session_scope(engine) as session:
        assert queue.give_up_dead(session, 2, now=t2, photo_ids=[photos[1], photos[2]]) == []
        assert queue.give_up_dead(session, 2, now=t2) == [queue.Claimed(capped, photos[0], 2)]
        assert queue.give_up_dead(session, 2, now=t2) == []  # failed once
    row = _job(engine, capped)
    assert (row.state, row.finished_at, row.claimed_by, row.claimed_until) == ("failed", t2, None, None)
    assert row.last_error is not None and "during each of its 2 attempts" in row.last_error
    assert (_job(engine, under).state, _job(engine, under).attempts) == ("running", 1)  # retried later
    assert (_job(engine, alive).state, _job(engine, alive).last_error) == ("running", None)


RESEND = dt.timedelta(seconds=600)


def _due(engine, now: dt.datetime, broker_since: dt.datetime | None = None, idle: bool = False) -> list[int]:
    with session_scope(engine, read_only=True) as session:
        return [j.job_id for j in queue.due_to_send(session, now, RESEND, broker_since, idle)]


def _sent(engine, job_ids: list[int], at: dt.datetime | None) -> None:
    with session_scope(engine) as session:
        queue.mark_sent(session, job_ids, at)


def test_due_to_send_never_sent_jobs_oldest_first_with_their_attempts(engine):
    photos, jobs = _queued(engine, 3)
    now = utcnow()
    with session_scope(engine, read_only=True) as session:
        assert queue.due_to_send(session, now, RESEND, None, False) == [
            queue.ToSend(j, p, 0) for j, p in zip(jobs, photos, strict=True)]
        assert [j.job_id for j in queue.due_to_send(session, now, RESEND, None, False, limit=2)] == jobs[:2]
    _sent(engine, jobs[:2], now)
    assert _due(engine, now) == jobs[2:]


def test_due_to_send_a_running_job_once_its_worker_died_if_not_sent_since_its_claim(engine):
    photos, (job,) = _queued(engine, 1)
    t0 = utcnow()
    _sent(engine, [job], t0)
    with session_scope(engine) as session:
        queue.claim(session, "w", 1, now=t0, photo_ids=photos)
    assert _due(engine, t0 + queue.LEASE - dt.timedelta(seconds=1)) == []  # its worker is alive
    dead = t0 + queue.LEASE + dt.timedelta(seconds=1)
    assert _due(engine, dead) == [job]
    _sent(engine, [job], dead)
    assert _due(engine, dead + dt.timedelta(seconds=1)) == []  # sent again already


def test_due_to_send_what_was_sent_before_the_broker_started(engine):
    _, (job,) = _queued(engine, 1)
    t0 = utcnow()
    _sent(engine, [job], t0)
    now = t0 + dt.timedelta(seconds=5)
    assert _due(engine, now, broker_since=t0 - dt.timedelta(seconds=1)) == []  # the broker holds its message
    assert _due(engine, now, broker_since=t0 + dt.timedelta(seconds=1)) == [job]  # restarted since: lost


def test_due_to_send_again_long_after_only_while_the_broker_is_idle(engine):
    _, (job,) = _queued(engine, 1)
    t0 = utcnow()
    _sent(engine, [job], t0)
    assert _due(engine, t0 + RESEND - dt.timedelta(seconds=1), idle=True) == []  # sent lately
    assert _due(engine, t0 + RESEND + dt.timedelta(seconds=1), idle=True) == [job]  # lost some other way
    assert _due(engine, t0 + 10 * RESEND, idle=False) == []  # still waiting behind other messages


def test_due_to_send_skips_a_job_in_its_backoff(engine):
    photos, (job,) = _queued(engine, 1)
    t0 = utcnow()
    with session_scope(engine) as session:
        queue.claim(session, "w", 1, now=t0, photo_ids=photos)
        assert queue.fail(session, job, "w", "boom", now=t0) == "queued"
    assert _due(engine, t0 + queue.BACKOFF - dt.timedelta(seconds=1), idle=True) == []
    with session_scope(engine, read_only=True) as session:
        assert queue.due_to_send(session, t0 + queue.BACKOFF, RESEND, None, False) == [
            queue.ToSend(job, photos[0], 1)]  # tried once: the dispatcher sends it alone


def test_fail_release_and_retry_clear_sent_at_so_the_job_is_sent_again(engine):
    photos, (failed, released, retried) = _queued(engine, 3)
    t0 = utcnow()
    _sent(engine, [failed, released, retried], t0)
    with session_scope(engine) as session:
        queue.claim(session, "w", 8, now=t0)
        queue.fail(session, failed, "w", "boom", now=t0)
        queue.release(session, [released], "w")
        assert queue.fail(session, retried, "w", "not an image", permanent=True, now=t0) == "failed"
    assert (_job(engine, failed).sent_at, _job(engine, released).sent_at) == (None, None)
    with session_scope(engine) as session:
        assert queue.retry(session, retried)
    assert _job(engine, retried).sent_at is None
    later = t0 + queue.BACKOFF
    assert _due(engine, later) == [failed, released, retried]


def test_mark_sent_none_makes_a_job_due_again(engine):
    _, (job,) = _queued(engine, 1)
    now = utcnow()
    _sent(engine, [job], now)
    assert _job(engine, job).sent_at == now and _due(engine, now) == []
    _sent(engine, [job], None)
    assert _job(engine, job).sent_at is None and _due(engine, now) == [job]
