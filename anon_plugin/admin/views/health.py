"""Health: ``/health`` and ``/healthz`` answer "ok" to anyone (the container's HEALTHCHECK asks
``/health``) and say nothing else; ``/status`` is the signed-in page with the details, its problems
(a worker gone, the broker unreachable) listed first.

``/health`` stays a liveness answer about this process: a broker or worker elsewhere that is down is
a problem the page names, not a reason for Docker to restart the daemon, which would not mend it."""

from __future__ import annotations

import datetime as dt
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING

import flask
from flask import Blueprint, render_template
from werkzeug.wrappers import Response

from ...jobs import queue
from ...jobs.broker import BrokerState
from ...store import queries
from ...store.tables import utcnow
from ..state import panel, reading
from ..workers import Workers, broker_state, workers

if TYPE_CHECKING:
    from ...connectors.immich.watch import PollHealth

bp = Blueprint("health", __name__)


@dataclass(frozen=True)
class Daemon:
    """The daemon as this process sees it."""

    here: bool  # runs in this process (anon-plugin serve)
    running: bool
    workers: int
    device: str
    immich: PollHealth | None = None  # polling Immich, when the daemon does


def models_loaded() -> int:
    """How many models this process has built (its workers' and the previews'); 0 before inference
    ever ran (the registry is not imported here, so the panel alone never loads torch)."""
    registry = sys.modules.get("anon_plugin.inference.registry")
    return registry.loaded_count() if registry is not None else 0


def _daemon() -> Daemon:
    p = panel()
    if p.service is None:
        return Daemon(False, False, 0, p.device)
    poller = p.service.immich
    return Daemon(True, not p.service.stopping.is_set(), len(p.service.workers), p.service.device,
                  poller.health() if poller is not None else None)


def problems(shown: Workers, broker: BrokerState | None) -> list[str]:
    """What needs someone, one line each: workers that died without saying so (within the last day) and an
    unreachable broker (nothing sent reaches a worker, and the daemon cannot send)."""
    found = [f"worker {row.worker.name} is gone: last heartbeat {row.ago} (the process died without "
             "saying so; its jobs go to other workers when their lease ends)"
             for row in shown.recent if row.worker.state == "gone"]
    if broker is not None and not broker.reachable:
        found.append(f"the broker {broker.url} cannot be reached: {broker.error}")
    return found


@bp.route("/health")
@bp.route("/healthz")
def liveness() -> Response:
    return flask.Response("ok\n", mimetype="text/plain")


@bp.route("/status")
def status() -> str:
    redis = broker_state()  # before the read transaction: it holds no snapshot while Redis is asked
    with reading() as s:
        shown = workers(s)
        return render_template("health/status.html", daemon=_daemon(), models=models_loaded(),
                               workers=shown, backend=panel().settings.queue.backend, broker=redis,
                               problems=problems(shown, redis),
                               depth=queue.depth(s),
                               published=queries.published_since(s, utcnow() - dt.timedelta(hours=1)),
                               job=queries.last_job_error(s), photo=queries.last_photo_problem(s))
