"""Jobs in the database: enqueue, claim under a lease, heartbeat, finish, fail with backoff.

A job is leased, not taken: ``claim`` marks it running with ``claimed_until``
and the worker renews the lease while it works. A worker that dies stops
renewing; once its lease has run out the job is claimable again and runs
once more. Rows stay until the job has finished (huey's SQLite queue deletes
a job before running it, so a crash loses it). Every function runs in the
caller's transaction, which on SQLite begins IMMEDIATE: two workers never
claim the same job. On PostgreSQL, ``FOR UPDATE SKIP LOCKED`` does the same.

With the celery backend the same rows are the truth and a broker message only
says "look at these photos": ``due_to_send`` picks what the daemon must send
(or send again: a message lost, a worker dead), a worker claims the jobs of
the photos it is handed, and a message handed twice finds nothing left to
claim the second time. A worker killed by a photo leaves its job running
until its lease runs out; each such death counts as an attempt, and
``give_up_dead`` fails the job once it has had its ``max_attempts``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Collection
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.orm import Session

from ..store.db import rows_changed
from ..store.tables import Job, utcnow

LEASE = dt.timedelta(seconds=120)
MAX_ATTEMPTS = 5
BACKOFF = dt.timedelta(seconds=30)  # doubled after each failed attempt, at most MAX_BACKOFF
MAX_BACKOFF = dt.timedelta(hours=1)


@dataclass(frozen=True)
class Claimed:
    """A job a worker holds: ids only, never open rows."""

    job_id: int
    photo_id: int
    attempt: int  # 1 for the first run


@dataclass(frozen=True)
class ToSend:
    """A job the daemon must send to the broker: a fresh one may share a message, a retried one travels alone."""

    job_id: int
    photo_id: int
    attempts: int  # how many times it was claimed already


@dataclass(frozen=True)
class Queued:
    job_id: int
    new: bool  # False: such a job was already waiting or running


def enqueue(session: Session, photo_id: int) -> Queued:
    """Queue the photo's publishing unless a job for it is already waiting or running."""
    waiting = session.scalar(sa.select(Job.id).where(Job.photo_id == photo_id, Job.state.in_(("queued", "running"))))
    if waiting is not None:
        return Queued(waiting, new=False)
    job = Job(photo_id=photo_id, state="queued")
    session.add(job)
    session.flush()
    return Queued(job.id, new=True)


def _due(now: dt.datetime) -> sa.ColumnElement[bool]:
    """Queued jobs past their backoff, and running ones whose lease ran out (their worker died)."""
    return sa.or_(
        sa.and_(Job.state == "queued", sa.or_(Job.not_before.is_(None), Job.not_before <= now)),
        _dead(now),
    )


def _dead(now: dt.datetime) -> sa.ColumnElement[bool]:
    return sa.and_(Job.state == "running", Job.claimed_until < now)


def claim(session: Session, worker: str, limit: int, now: dt.datetime | None = None,
          lease: dt.timedelta = LEASE, photo_ids: Collection[int] | None = None,
          fresh_only: bool = False) -> list[Claimed]:
    """Lease up to ``limit`` jobs that are due, oldest first: any, or those of ``photo_ids`` (what a broker
    message names). ``fresh_only``: never tried before (a photo tried before runs in a batch of its own)."""
    now = now or utcnow()
    query = sa.select(Job).where(_due(now))
    if photo_ids is not None:
        query = query.where(Job.photo_id.in_(photo_ids))
    if fresh_only:
        query = query.where(Job.attempts == 0)
    rows = session.scalars(query.order_by(Job.id).limit(limit).with_for_update(skip_locked=True)).all()
    for job in rows:
        job.state, job.claimed_by = "running", worker
        job.claimed_until, job.heartbeat_at = now + lease, now
        job.attempts += 1
    session.flush()
    return [Claimed(j.id, j.photo_id, j.attempts) for j in rows]


def give_up_dead(session: Session, max_attempts: int = MAX_ATTEMPTS, now: dt.datetime | None = None,
                 photo_ids: Collection[int] | None = None) -> list[Claimed]:
    """Fail the jobs whose worker died (lease run out) during each of their ``max_attempts`` attempts: a photo
    that kills its worker (out of memory, a crash in a native library) must not kill the next one too.
    Returns them, so that their photos are failed as well."""
    now = now or utcnow()
    query = sa.select(Job).where(_dead(now), Job.attempts >= max_attempts)
    if photo_ids is not None:
        query = query.where(Job.photo_id.in_(photo_ids))
    given_up = []
    for job in session.scalars(query.with_for_update(skip_locked=True)):
        job.state, job.finished_at = "failed", now
        job.claimed_by = job.claimed_until = None
        job.last_error = (f"its worker stopped during each of its {job.attempts} attempts "
                          "(killed, out of memory, or past the batch time limit)")
        given_up.append(Claimed(job.id, job.photo_id, job.attempts))
    return given_up


def due_to_send(session: Session, now: dt.datetime, resend_after: dt.timedelta, broker_since: dt.datetime | None,
                broker_idle: bool, limit: int = 1000) -> list[ToSend]:
    """The due jobs the broker must be told of (the celery backend), oldest first: never sent; running when
    their worker died, not sent since; sent before the broker last started (``broker_since``: a Redis restart
    without persistence loses its messages); sent ``resend_after`` ago or more while the broker holds no
    message (``broker_idle``: lost some other way). Sending one twice is harmless: the second finds nothing
    to claim."""
    again = [Job.sent_at.is_(None), sa.and_(Job.state == "running", Job.sent_at < Job.claimed_until)]
    if broker_since is not None:
        again.append(Job.sent_at < broker_since)
    if broker_idle:
        again.append(Job.sent_at < now - resend_after)
    rows = session.execute(sa.select(Job.id, Job.photo_id, Job.attempts).where(_due(now), sa.or_(*again))
                           .order_by(Job.id).limit(limit)).tuples().all()
    return [ToSend(*row) for row in rows]


def mark_sent(session: Session, job_ids: list[int], at: dt.datetime | None) -> None:
    """Note when the jobs were sent to the broker (None: not sent after all, due again)."""
    session.execute(sa.update(Job).where(Job.id.in_(job_ids)).values(sent_at=at))


def heartbeat(session: Session, worker: str, job_ids: list[int], lease: dt.timedelta = LEASE) -> int:
    """Renew the worker's leases; returns how many it still holds."""
    now = utcnow()
    return rows_changed(session, sa.update(Job)
                        .where(Job.id.in_(job_ids), Job.claimed_by == worker, Job.state == "running")
                        .values(claimed_until=now + lease, heartbeat_at=now))


def _held(session: Session, job_id: int, worker: str) -> Job | None:
    job = session.get(Job, job_id)
    return job if job is not None and job.state == "running" and job.claimed_by == worker else None


def finish(session: Session, job_id: int, worker: str) -> bool:
    """Mark the job done; False when the worker no longer holds it (its lease ran out and another took it)."""
    job = _held(session, job_id, worker)
    if job is None:
        return False
    job.state, job.finished_at = "done", utcnow()
    job.claimed_by = job.claimed_until = None
    job.last_error = None
    return True


def fail(session: Session, job_id: int, worker: str, error: str, permanent: bool = False,
         now: dt.datetime | None = None, max_attempts: int = MAX_ATTEMPTS) -> str:
    """Record a failed attempt: retried after a backoff (sent to the broker again then), or failed for good
    when ``permanent`` (retrying cannot help) or after ``max_attempts``. Returns the job's new state."""
    job, now = _held(session, job_id, worker), now or utcnow()
    if job is None:
        return "lost"
    job.last_error = error
    job.claimed_by = job.claimed_until = None
    if permanent or job.attempts >= max_attempts:
        job.state, job.finished_at = "failed", now
    else:
        job.state, job.sent_at = "queued", None
        job.not_before = now + min(BACKOFF * 2 ** (job.attempts - 1), MAX_BACKOFF)
    return job.state


def release(session: Session, job_ids: list[int], worker: str) -> None:
    """Give jobs back untouched (shutting down): queued again, the attempt not counted."""
    for job_id in job_ids:
        job = _held(session, job_id, worker)
        if job is not None:
            job.state, job.claimed_by, job.claimed_until, job.sent_at = "queued", None, None, None
            job.attempts = max(0, job.attempts - 1)


def reclaim_dead(session: Session, host: str, alive: Callable[[int], bool], now: dt.datetime | None = None) -> int:
    """End now the leases of the jobs held by workers of this host whose process is gone (a daemon killed and
    restarted), instead of waiting for them to run out: the jobs are due at once, and a job whose worker died
    during each of its attempts is given up (``give_up_dead``) like any other. Worker names are
    ``host:pid:index``. Returns how many jobs were reclaimed."""
    now = now or utcnow()
    reclaimed = 0
    for job in session.scalars(sa.select(Job).where(Job.state == "running", Job.claimed_by.startswith(f"{host}:"))):
        assert job.claimed_by is not None, "the query matched its claimed_by"
        pid = job.claimed_by.split(":")[1]
        if pid.isdigit() and not alive(int(pid)):
            job.claimed_until = now - dt.timedelta(microseconds=1)
            reclaimed += 1
    return reclaimed


def retry(session: Session, job_id: int) -> bool:
    """Queue a failed job again now, its attempts reset (the admin's retry)."""
    job = session.get(Job, job_id)
    if job is None or job.state != "failed":
        return False
    job.state, job.attempts, job.not_before, job.finished_at, job.sent_at = "queued", 0, None, None, None
    return True


def cancel(session: Session, photo_id: int, reason: str) -> int:
    """Close the photo's waiting jobs (its album was unshared, it was deleted); the rows stay. Returns how many."""
    return rows_changed(session, sa.update(Job).where(Job.photo_id == photo_id, Job.state == "queued")
                        .values(state="done", finished_at=utcnow(), last_error=f"cancelled: {reason}"))


def depth(session: Session) -> dict[str, int]:
    """How many jobs are in each state."""
    counts = dict(session.execute(sa.select(Job.state, sa.func.count()).group_by(Job.state)).tuples().all())
    return {state: counts.get(state, 0) for state in ("queued", "running", "done", "failed")}
