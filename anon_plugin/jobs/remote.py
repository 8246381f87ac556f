"""``anon-plugin worker``: one Celery worker process per device, for the celery backend.

A solo pool (the batch runs in this process, on its one device, with models
loaded once at start), one message at a time. Before it takes any, it checks
that it sees what the daemon sees: the library roots readable and the public
root writable at the configured paths, and every album folder the store
knows of. A message names photo ids; ``Worker.run_photos`` claims their jobs
in the store and publishes exactly as the daemon's own workers do.

Celery's time limits need a prefork pool; here a batch that runs past
``[queue] time_limit`` ends the process (``TimeLimit``): stuck in a native
call, nothing else would stop it. Its message is then handed again by Redis
and its jobs sent again, alone, by the daemon; each such end counts as an
attempt. SIGTERM is Celery's warm shutdown: the batch in hand is finished
and acknowledged, then the process exits 0.

Celery workers have been seen to stop taking messages after a broker
reconnect while looking alive (paperless-ngx #6260). ``StallGuard`` ends a
worker that has been idle for ``STALLED`` seconds while messages wait in
Redis (an idle worker with prefetch 1 takes one at once), so that its
supervisor starts a fresh one; idle, it holds nothing that could be lost.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import sqlalchemy as sa

from ..errors import WorkerError
from ..store import migrate
from ..store.db import engine_for, safe_url, session_scope
from ..store.tables import Album
from . import broker
from .worker import Worker

if TYPE_CHECKING:
    from ..config import Settings

log = logging.getLogger("anon_plugin.worker")
EXIT_TIME_LIMIT = 75  # the process ended itself: a batch ran past the time limit
EXIT_STALLED = 76  # the process ended itself: idle while messages waited in the broker
STALLED = 60.0  # seconds idle, with messages waiting, before the worker counts as stalled


class TimeLimit:
    """``with TimeLimit(seconds, what)``: the process ends (os._exit) when the block is still running after
    ``seconds``."""

    def __init__(self, seconds: float, what: str):
        self._timer = threading.Timer(seconds, self._overrun, args=(seconds, what))
        self._timer.daemon = True

    @staticmethod
    def _overrun(seconds: float, what: str) -> None:
        log.critical("%s ran past the time limit of %g s; ending this worker process", what, seconds)
        logging.shutdown()
        os._exit(EXIT_TIME_LIMIT)

    def __enter__(self) -> TimeLimit:
        self._timer.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._timer.cancel()


class StallGuard:
    """Ends the process when it has been idle ``after`` seconds while the broker holds waiting messages.
    ``with guard.busy():`` around each batch."""

    def __init__(self, url: str, after: float = STALLED, every: float = 10.0):
        self.url, self.after, self.every = url, after, every
        self._busy, self._idle_since = False, time.monotonic()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True, name="stall-guard")

    def __enter__(self) -> StallGuard:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()

    @contextmanager
    def busy(self) -> Iterator[None]:
        self._busy = True
        try:
            yield
        finally:
            self._busy, self._idle_since = False, time.monotonic()

    def _watch(self) -> None:
        while not self._stop.wait(self.every):
            idle = time.monotonic() - self._idle_since
            if self._busy or idle < self.after:
                continue
            state = broker.state(self.url)
            if state.reachable and state.waiting and not self._busy:
                log.critical("idle for %.0f s while %d message(s) wait in the broker: this worker stopped taking "
                             "them; ending the process so that a fresh one starts", idle, state.waiting)
                logging.shutdown()
                os._exit(EXIT_STALLED)


def check_paths(settings: Settings, engine: sa.Engine) -> Path:
    """Refuse (WorkerError) unless this machine sees the library roots (read), the public root (write) and
    every album folder of the store at the paths the settings and the store name; returns the public root."""
    for root in settings.library_roots:
        if not root.is_dir() or not os.access(root, os.R_OK | os.X_OK):
            raise WorkerError(f"library root {root} cannot be read here (is the share mounted at that path?)")
    public = settings.public_root
    if public is None:
        raise WorkerError("the settings have no public_root: a worker publishes there")
    probe = public / f".anon-worker-check-{uuid.uuid4().hex}"
    try:
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise WorkerError(f"public root {public} cannot be written here: {exc.strerror}") from None
    with session_scope(engine, read_only=True) as session:
        folders = session.execute(sa.select(Album.root, Album.name).where(
            Album.source == "folder", Album.removed_at.is_(None), Album.shared)).tuples().all()
    for album_root, name in folders:
        if not (Path(album_root) / name).is_dir():
            raise WorkerError(f"album folder {Path(album_root) / name} cannot be read here (the store names it; is the "
                              "share mounted at the same path as on the daemon's machine?)")
    return public


def serve(settings: Settings, device: str, loglevel: str = "INFO") -> int:
    """Check, load the models, register, then consume until a warm shutdown; returns the exit code."""
    import torch

    if settings.queue.backend != "celery":
        raise WorkerError("[queue] backend is local: the daemon runs its own workers; set backend = \"celery\" "
                          "(with broker_url and a PostgreSQL database_url) to run workers on other machines")
    migrate.require_head(settings.database_url)
    engine = engine_for(settings.database_url)
    public_root = check_paths(settings, engine)
    torch.set_num_threads(settings.inference.threads)
    name = f"{os.uname().nodename}:{os.getpid()}:0"
    queue_settings = settings.queue
    worker = Worker(engine, public_root, name, device, settings.inference.max_batch,
                    immich=settings.immich, data_dir=settings.data_dir,
                    lease=dt.timedelta(seconds=queue_settings.lease), max_attempts=queue_settings.max_attempts,
                    backend="celery")
    seconds = worker.load_models()
    log.info("%s: models loaded on %s in %.1f s", name, device, seconds)
    app = broker.make_app(queue_settings)

    guard = StallGuard(queue_settings.broker_url)

    @app.task(name=broker.TASK)
    def publish(photo_ids: list[int]) -> int:
        with guard.busy(), TimeLimit(queue_settings.time_limit, f"the batch of photos {photo_ids}"):
            return worker.run_photos([int(p) for p in photo_ids])

    consumer = app.Worker(pool="solo", concurrency=1, hostname=f"anon@{name.replace(':', '-')}",
                          loglevel=loglevel, without_gossip=True, without_mingle=True, without_heartbeat=True,
                          quiet=True)
    log.info("%s: taking batches from %s on %s", name, safe_url(queue_settings.broker_url), device)
    with worker.presence, guard:
        consumer.start()
    engine.dispose()
    return int(consumer.exitcode or 0)

