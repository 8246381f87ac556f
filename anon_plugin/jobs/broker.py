"""The celery backend's broker: the Celery app both sides build from ``[queue]``, and Redis's state.

A message is one batch of photo ids (``TASK``, on the queue ``QUEUE``); the
photos themselves travel by path on the shared mount, never through Redis,
and no result backend is used: the store is the truth. The app is set to
survive what the stack is known to do wrong:

- acknowledged late (``task_acks_late``), and handed again when its worker
  is lost (``task_reject_on_worker_lost``): Celery acknowledges on receipt
  by default, and a worker killed mid-batch loses the batch (paperless-ngx
  #872, #8125);
- one message at a time per worker (prefetch 1): a batch waits in Redis,
  where any worker can take it, not in a busy worker's buffer;
- Redis hands an unacknowledged message again after ``visibility_timeout``:
  a batch ends (or its worker does, ``[queue] time_limit``) well before;
- messages lost with a Redis restart without persistence (#2926) are sent
  again by the daemon (``dispatch.py``), which compares when each was sent
  with when Redis started.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..store.db import safe_url
from ..store.tables import utcnow

if TYPE_CHECKING:
    import redis
    from celery import Celery

    from ..config import QueueSettings

TASK = "anon_plugin.publish"
QUEUE = "anon_plugin"
UNACKED = "unacked"  # kombu's Redis transport keeps the messages handed out, not yet acknowledged, here


def make_app(settings: QueueSettings) -> Celery:
    """The Celery app of ``[queue]``; the worker registers ``TASK`` on it, the daemon only sends."""
    from celery import Celery

    app = Celery("anon_plugin", broker=settings.broker_url, set_as_current=False)
    app.conf.update(
        task_default_queue=QUEUE,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_ignore_result=True,
        task_serializer="json",
        accept_content=["json"],
        broker_transport_options={"visibility_timeout": settings.visibility_timeout},
        broker_connection_retry_on_startup=True,
        broker_connection_max_retries=None,  # a worker waits for Redis to come back, however long
        worker_hijack_root_logger=False,
        worker_redirect_stdouts=False,
        task_publish_retry_policy={"max_retries": 2, "interval_start": 0.5, "interval_step": 0.5},
    )
    return app


def send(app: Celery, photo_ids: list[int]) -> None:
    """One message: publish these photos. Raises when the broker cannot be reached."""
    app.send_task(TASK, args=[photo_ids], queue=QUEUE)


@dataclass(frozen=True)
class BrokerState:
    """Redis as the daemon and the panel see it."""

    url: str  # its password hidden
    reachable: bool
    error: str | None = None
    version: str | None = None
    started_at: dt.datetime | None = None  # messages sent before this may be lost (at most 2 s late)
    waiting: int | None = None  # messages no worker has taken yet
    unacked: int | None = None  # taken by a worker, not acknowledged yet (a batch running)
    append_only: bool | None = None  # persistence: does a restart keep the messages?


def client(url: str, timeout: float = 2.0) -> redis.Redis:
    """A Redis client for ``state``: one kept by a caller that asks every second (the dispatcher) reuses its
    connection, reconnecting by itself after an outage."""
    import redis

    return redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout)


def state(url: str, timeout: float = 2.0, now: dt.datetime | None = None,
          using: redis.Redis | None = None) -> BrokerState:
    """Ask Redis (through ``using``, else a client of its own, closed after); never raises (an unreachable
    broker is a state to show)."""
    import redis

    now = now or utcnow()
    asker = using or client(url, timeout)
    try:
        info = asker.info()
        waiting, unacked = asker.llen(QUEUE), asker.hlen(UNACKED)
    except redis.RedisError as exc:
        return BrokerState(safe_url(url), False, f"{type(exc).__name__}: {exc}".splitlines()[0])
    finally:
        if using is None:
            asker.close()
    return BrokerState(safe_url(url), True, None, str(info.get("redis_version")),
                       _started(now, int(info.get("uptime_in_seconds", 0))),
                       int(waiting), int(unacked), bool(info.get("aof_enabled")))


def _started(now: dt.datetime, uptime: int) -> dt.datetime:
    """When Redis started, at the latest. Its uptime is the difference of two whole seconds of its clock, so it
    started between ``now - uptime - 1`` and ``now - uptime + 1``: the later bound, because a message sent
    before this may have been lost and is sent again. The earlier bound would take a message sent in the
    second before a restart for one the new Redis holds, and it would wait ``resend_after``, or for ever while
    other messages wait; the later one only sends a message of Redis's first two seconds twice (harmless)."""
    return now - dt.timedelta(seconds=uptime - 1)
