"""Watching Immich: the daemon's poller thread, calling ``source.poll`` every ``poll_interval`` seconds.

Every ``FORCE_EVERY``-th poll (the first one included) reads every shared
album's assets whatever Immich says of it: an asset removed and another added
between two polls can leave an album's asset count and times as they were.
A fault (Immich down, a refused key) is logged in one line and kept for the
health page; the next poll tries again, and the daemon goes on.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy.engine import Engine

from ...config import ImmichSettings
from ...errors import ImmichError
from ...store.tables import utcnow
from .client import ImmichClient, connect
from .source import Polled, poll

log = logging.getLogger("anon_plugin.immich")

FORCE_EVERY = 60  # polls: with the default poll_interval (60 s), every shared album is read in full hourly


@dataclass(frozen=True)
class PollHealth:
    """How polling stands: when a poll last succeeded, and the last fault (with its time), if any since."""

    last_success: dt.datetime | None
    last_error: str | None
    last_error_at: dt.datetime | None


class Poller:
    """Polls one Immich server's source albums into the store until ``stopping`` is set. ``queued`` is
    called after a poll that queued jobs (the daemon wakes its workers). With ``public`` (the public key's
    client), each poll also deletes the copies owed a withdrawal."""

    def __init__(self, client: ImmichClient, engine: Engine, interval: float, *, force_every: int = FORCE_EVERY,
                 queued: Callable[[], None] = lambda: None, public: ImmichClient | None = None):
        self.client = client
        self.public = public
        self.engine = engine
        self.interval = interval
        self.force_every = force_every
        self.queued = queued
        self.polls = 0
        self._last_success: dt.datetime | None = None
        self._last_error: tuple[str, dt.datetime] | None = None

    @classmethod
    def from_settings(cls, settings: ImmichSettings, engine: Engine, stopping: threading.Event,
                      queued: Callable[[], None] = lambda: None) -> Poller:
        """A poller with both clients, built once; their retries wait on ``stopping``, so a stop does not
        wait out a backoff."""
        source, public = connect(settings, sleep=stopping.wait)
        return cls(source, engine, settings.poll_interval, queued=queued, public=public)

    def health(self) -> PollHealth:
        error, at = self._last_error or (None, None)
        return PollHealth(self._last_success, error, at)

    def run(self, stopping: threading.Event) -> None:
        """Poll now and then every ``interval`` seconds until ``stopping`` is set; closes the clients."""
        try:
            while not stopping.is_set():
                self.poll_once()
                stopping.wait(self.interval)
        finally:
            self.client.close()
            if self.public is not None:
                self.public.close()

    def poll_once(self) -> Polled | None:
        """One poll (forced every ``force_every``-th), its fault logged and kept rather than raised."""
        force = self.polls % self.force_every == 0
        self.polls += 1
        try:
            polled = poll(self.client, self.engine, force=force, public=self.public)
        except ImmichError as exc:
            self._failed(str(exc))
            log.error("Immich poll failed: %s; trying again in %.0f s", exc, self.interval)
            return None
        except Exception as exc:  # the daemon never dies of a poll
            self._failed(f"{type(exc).__name__}: {exc}")
            log.exception("Immich poll failed; trying again in %.0f s", self.interval)
            return None
        self._last_success = utcnow()
        _log(polled)
        if polled.queued:
            self.queued()
        return polled

    def _failed(self, message: str) -> None:
        self._last_error = (message, utcnow())


def _log(polled: Polled) -> None:
    for name in polled.added:
        log.info("new Immich album %s (not shared)", name)
    for old, new in polled.renamed:
        log.info("Immich album %s renamed %s", old, new)
    for name in polled.removed:
        log.info("Immich album %s gone", name)
    if polled.new or polled.changed or polled.gone:
        log.info("Immich: %d new, %d changed, %d removed photo(s); %d queued", polled.new, polled.changed,
                 polled.gone, polled.queued)
    if polled.withdrawn.copies or polled.withdrawn.links:
        log.info("Immich: %d public copy(ies) and %d link(s) withdrawn", polled.withdrawn.copies,
                 polled.withdrawn.links)
