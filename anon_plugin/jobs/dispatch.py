"""The daemon's side of the celery backend: each due job sent to the broker, and sent again when lost.

The watcher and the rescans only queue jobs in the store (as with the local
backend); the dispatcher, a thread of the daemon, then sends them: fresh
jobs in messages of up to ``max_batch`` photo ids, a job tried before in a
message of its own (a photo that killed its worker must not take a batch
down with it again). The same loop is the reconciler: what a Redis restart
lost, what a dead worker held, what was failed for a retry is sent again
(``queue.due_to_send`` says which), and jobs whose worker died during each
of their attempts are failed (``queue.give_up_dead``). A message sent twice
is harmless: the second finds nothing left to claim.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from typing import TYPE_CHECKING

from sqlalchemy.engine import Engine

from ..store.db import safe_url, session_scope
from ..store.tables import utcnow
from . import broker, queue
from .worker import fail_dead_jobs

if TYPE_CHECKING:
    from celery import Celery

    from ..config import QueueSettings

log = logging.getLogger("anon_plugin.daemon")
TICK = 1.0  # seconds between looks at the store when nothing wakes the dispatcher


def messages(jobs: list[queue.ToSend], max_batch: int) -> list[list[queue.ToSend]]:
    """Fresh jobs in batches of up to ``max_batch``, in order; a job tried before alone."""
    fresh = [j for j in jobs if j.attempts == 0]
    return ([fresh[i:i + max_batch] for i in range(0, len(fresh), max_batch)]
            + [[j] for j in jobs if j.attempts > 0])


class Dispatcher:
    """``run(stop, wake)`` on a thread of the daemon; ``dispatch_once`` is one look."""

    def __init__(self, engine: Engine, settings: QueueSettings, max_batch: int, app: Celery | None = None):
        self.engine, self.settings, self.max_batch = engine, settings, max_batch
        self.app = app or broker.make_app(settings)
        self.url = safe_url(settings.broker_url)
        self._redis = broker.client(settings.broker_url)  # asked every second: one connection, kept
        self._down: str | None = None  # why the broker could not be reached, said once per outage

    def run(self, stop: threading.Event, wake: threading.Event) -> None:
        try:
            while not stop.is_set():
                try:
                    self.dispatch_once()
                except Exception:  # the store failed: the next look tries again
                    log.exception("dispatching failed; trying again")
                if wake.wait(TICK):
                    wake.clear()
        finally:
            self._redis.close()

    def dispatch_once(self, now: dt.datetime | None = None) -> int:
        """Send what is due; returns how many photos were sent."""
        now = now or utcnow()
        with session_scope(self.engine) as session:
            fail_dead_jobs(session, self.settings.max_attempts)
        state = broker.state(self.settings.broker_url, using=self._redis)
        if not state.reachable:
            if self._down is None:
                log.warning("the broker %s cannot be reached (%s); the jobs wait in the store", state.url, state.error)
            self._down = state.error
            return 0
        if self._down is not None:
            log.info("the broker %s is back", state.url)
            self._down = None
        with session_scope(self.engine, read_only=True) as session:
            due = queue.due_to_send(session, now, dt.timedelta(seconds=self.settings.resend_after),
                                    state.started_at, broker_idle=state.waiting == 0)
        batches = messages(due, self.max_batch)
        if not batches:
            return 0
        with session_scope(self.engine) as session:  # before sending: a worker may fail a job at once after
            queue.mark_sent(session, [j.job_id for j in due], now)
        sent = 0
        try:
            for message in batches:
                broker.send(self.app, [j.photo_id for j in message])
                sent += 1
        except Exception as exc:  # what was not sent is due again at the next look
            log.warning("sending to the broker %s failed (%s: %s)", state.url, type(exc).__name__, exc)
            with session_scope(self.engine) as session:
                queue.mark_sent(session, [j.job_id for m in batches[sent:] for j in m], None)
        photos = sum(len(m) for m in batches[:sent])
        if photos:
            log.info("sent %d photo(s) to the broker in %d message(s)", photos, sent)
        return photos
