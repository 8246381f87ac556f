"""The workers and the broker as the panel shows them, on the jobs page and the health page alike."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy.orm import Session

from ..jobs import broker, presence
from ..store.tables import utcnow
from .state import panel

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
