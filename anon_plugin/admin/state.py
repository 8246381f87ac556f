"""What every view reaches through the app: the settings, the store, the daemon if it runs here."""

from __future__ import annotations

import functools
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

from flask import abort, current_app
from flask_login import current_user
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from ..config import Settings
from ..store.db import session_scope
from .security import Throttle

if TYPE_CHECKING:
    from ..daemon.service import Service

EXTENSION = "anon_plugin"
T = TypeVar("T")


@dataclass(frozen=True)
class Panel:
    settings: Settings
    engine: Engine
    service: Service | None  # the daemon, when it runs in this process (``anon-plugin serve``)
    throttle: Throttle

    @functools.cached_property
    def device(self) -> str:
        """Where the preview runs: the daemon's device, else the one the settings name."""
        return self.service.device if self.service is not None else self.settings.resolved_device()


def panel() -> Panel:
    return current_app.extensions[EXTENSION]


@contextmanager
def reading() -> Iterator[Session]:
    """A read-only session: takes no write lock, so the daemon never waits for a page."""
    with session_scope(panel().engine, read_only=True) as session:
        yield session


@contextmanager
def writing() -> Iterator[Session]:
    """A write transaction (BEGIN IMMEDIATE on SQLite), committed when the block ends."""
    with session_scope(panel().engine) as session:
        yield session


def user_name() -> str:
    """Who is signed in, for the audit log."""
    return current_user.name


def found(row: T | None) -> T:
    """``row``, or a 404 when the id named nothing."""
    if row is None:
        abort(404)
    return row
