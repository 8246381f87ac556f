"""The work queue: how deep it is, what runs, what failed and why; retrying a failed job. Also who does
the work: the workers (``workers``, their heartbeats) and, with the celery backend, the broker."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from flask import Blueprint, flash, redirect, render_template, url_for
from sqlalchemy.orm import Session
from werkzeug.wrappers import Response

from ...jobs import broker, presence, queue
from ...store import queries
from ...store.tables import utcnow
from ..forms import ActionForm
from ..state import found, panel, reading, user_name, writing

bp = Blueprint("jobs", __name__)
SHOWN = 100
RECENT = dt.timedelta(days=1)  # a worker stopped or gone longer ago than this is history: collapsed, no problem


@dataclass(frozen=True)
class Shown:
    """A worker as a row of the table: its state and how long ago it was last heard from."""

    worker: presence.WorkerState
    ago: str  # "12 s ago"


@dataclass(frozen=True)
class Workers:
    """Every worker known: ``recent`` (running, or heard from within ``RECENT``) shown, ``older`` collapsed.
    A gone worker is a problem only while it is recent: its name holds its pid, so no restart replaces its
    row, and an alarm for a death days ago would never go away."""

    recent: list[Shown]
    older: list[Shown]

    def count(self, state: str) -> int:
        return sum(row.worker.state == state for row in self.recent)


def ago(seconds: float) -> str:
    """How long ago, in the largest unit that still says it in a few digits."""
    s = max(0, round(seconds))
    if s < 120:
        return f"{s} s ago"
    if s < 120 * 60:
        return f"{s // 60} min ago"
    return f"{s // 3600} h ago" if s < 48 * 3600 else f"{s // 86400} d ago"


def workers(session: Session, now: dt.datetime | None = None) -> Workers:
    now = now or utcnow()
    rows = [Shown(w, ago((now - w.heartbeat_at).total_seconds())) for w in presence.workers(session, now)]
    recent = [r for r in rows if r.worker.state == "running" or now - r.worker.heartbeat_at <= RECENT]
    return Workers(recent, [r for r in rows if r not in recent])


def broker_state() -> broker.BrokerState | None:
    """Redis as it answers now, with the celery backend (None with the local one). ``broker.state`` gives up
    after its 2 s socket timeout, so an unreachable broker costs a page 2 s at most, never a hang."""
    settings = panel().settings.queue
    return broker.state(settings.broker_url) if settings.backend == "celery" else None


@bp.route("/jobs")
def index() -> str:
    redis = broker_state()  # before the read transaction: it holds no snapshot while Redis is asked
    with reading() as s:
        return render_template("jobs/index.html", depth=queue.depth(s),
                               running=queries.jobs_in(s, ("running",), SHOWN),
                               failed=queries.jobs_in(s, ("failed",), SHOWN),
                               queued=queries.jobs_in(s, ("queued",), SHOWN), shown=SHOWN, form=ActionForm(),
                               workers=workers(s), backend=panel().settings.queue.backend, broker=redis)


@bp.route("/jobs/<int:job_id>/retry", methods=["POST"])
def retry(job_id: int) -> Response:
    with writing() as s:
        job = found(queries.job_by_id(s, job_id))
        if queue.retry(s, job_id):
            queries.audit(s, user_name(), "retry", f"job {job_id}", {"photo_id": job.photo_id,
                                                                      "last_error": job.last_error})
            flash(f"Job {job_id} queued again.", "ok")
        else:
            flash(f"Job {job_id} is {job.state}, not failed: nothing to retry.", "info")
    return redirect(url_for("jobs.index"))
