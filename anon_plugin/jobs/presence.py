"""Workers say they are alive: a row of ``workers`` each, its heartbeat renewed while it runs.

The daemon's worker threads (the local backend) and the ``anon-plugin
worker`` processes (celery) alike, so that the panel's jobs and health pages
list every worker with its host, device, last heartbeat and what it has done.
A worker whose heartbeat is older than ``STALE`` is shown as gone: its
process died without saying so.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import threading
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from ..store.db import session_scope
from ..store.tables import WorkerRow, utcnow

log = logging.getLogger("anon_plugin.worker")
BEAT = 10.0  # seconds between heartbeats
STALE = dt.timedelta(seconds=3 * BEAT)  # no heartbeat for this long: the worker is gone


class Presence:
    """``with Presence(...)``: the worker's row made (or started again) on entry, its heartbeat renewed on a
    thread, ``stopped_at`` set on exit. ``done(photos)`` counts a batch."""

    def __init__(self, engine: Engine, name: str, device: str, backend: str, beat: float = BEAT):
        self.engine, self.name, self.device, self.backend, self.beat = engine, name, device, backend, beat
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name=f"{name}-presence")
        self._registered = False

    def __enter__(self) -> Presence:
        self._registered = self._register()
        self._thread.start()
        return self

    def _register(self) -> bool:
        """The worker's row, made or started again; False when the store cannot be written now (the heartbeat
        thread tries again: a worker never stops for its row)."""
        now = utcnow()
        try:
            with session_scope(self.engine) as session:
                row = session.get(WorkerRow, self.name) or WorkerRow(name=self.name)
                row.host, row.pid, row.device = self.name.split(":")[0], os.getpid(), self.device
                row.backend, row.started_at, row.heartbeat_at = self.backend, now, now
                row.stopped_at, row.batches, row.photos = None, 0, 0
                session.add(row)
        except Exception:
            log.warning("%s: could not record itself as a worker; trying again", self.name, exc_info=True)
            return False
        return True

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        try:
            with session_scope(self.engine) as session:
                session.execute(sa.update(WorkerRow).where(WorkerRow.name == self.name)
                                .values(stopped_at=utcnow(), heartbeat_at=utcnow()))
        except Exception:  # the store is down: the heartbeat goes stale and the panel says so
            log.warning("%s: could not record its stop", self.name, exc_info=True)

    def _run(self) -> None:
        while not self._stop.wait(self.beat):
            if not self._registered:
                self._registered = self._register()
                continue
            try:
                with session_scope(self.engine) as session:
                    session.execute(sa.update(WorkerRow).where(WorkerRow.name == self.name)
                                    .values(heartbeat_at=utcnow()))
            except Exception:
                log.warning("%s: could not renew its heartbeat", self.name, exc_info=True)

    def done(self, photos: int) -> None:
        """A batch of ``photos`` handled (published, held back, failed or found unchanged)."""
        try:
            with session_scope(self.engine) as session:
                session.execute(sa.update(WorkerRow).where(WorkerRow.name == self.name)
                                .values(batches=WorkerRow.batches + 1, photos=WorkerRow.photos + photos,
                                        heartbeat_at=utcnow()))
        except Exception:
            log.warning("%s: could not count its batch", self.name, exc_info=True)


@dataclass(frozen=True)
class WorkerState:
    """A worker as the panel shows it."""

    name: str
    host: str
    pid: int
    device: str
    backend: str
    started_at: dt.datetime
    heartbeat_at: dt.datetime
    stopped_at: dt.datetime | None
    batches: int
    photos: int
    state: str  # "running", "stopped" (said so), "gone" (heartbeat stale)


def workers(session: Session, now: dt.datetime | None = None, stale: dt.timedelta = STALE) -> list[WorkerState]:
    """Every worker known, running ones first, then by name."""
    now = now or utcnow()
    states = []
    for row in session.scalars(sa.select(WorkerRow).order_by(WorkerRow.name)):
        state = "stopped" if row.stopped_at else "gone" if now - row.heartbeat_at > stale else "running"
        states.append(WorkerState(row.name, row.host, row.pid, row.device, row.backend, row.started_at,
                                  row.heartbeat_at, row.stopped_at, row.batches, row.photos, state))
    return sorted(states, key=lambda w: (w.state != "running", w.name))
