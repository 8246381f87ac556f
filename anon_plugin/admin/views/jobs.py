"""The work queue: how deep it is, what runs, what failed and why; retrying a failed job. Also who does
the work: the workers and, with the celery backend, the broker (``admin/workers.py``)."""

from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, url_for
from werkzeug.wrappers import Response

from ...jobs import queue
from ...store import queries
from ..forms import ActionForm
from ..state import found, panel, reading, user_name, writing
from ..workers import broker_state, workers

bp = Blueprint("jobs", __name__)
SHOWN = 100


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
