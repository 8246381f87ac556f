"""Alembic, driven from code: no alembic.ini, no Flask.

The revisions live in the top-level ``migrations/`` folder, installed as the
package ``anon_plugin.migrations`` by ``pip install .``; a run from the source
tree (or an editable install) uses the checkout's folder, as
``inference.registry.weights_dir`` does for the weights.

Every function raises StoreError with a one-line message when the database
cannot be reached or holds a revision this code does not know (a database
migrated by a newer anon-plugin).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError

from ..errors import StoreError
from ..resources import shipped_dir
from .db import engine_for, safe_url

_T = TypeVar("_T")


@dataclass(frozen=True)
class SchemaState:
    """Where a database stands: ``revision`` None means no schema at all (an empty database)."""

    revision: str | None
    head: str

    @property
    def at_head(self) -> bool:
        return self.revision == self.head

    def __str__(self) -> str:
        if self.revision is None:
            return f"base (no tables; head is {self.head})"
        return f"{self.revision} (head)" if self.at_head else f"{self.revision} (head is {self.head})"


def script_location() -> Path:
    """The folder holding env.py and versions/ (``migrations/``, shipped in the package)."""
    found = shipped_dir("migrations", "env.py")
    if found is None:
        raise StoreError("the migrations are not installed (no anon_plugin.migrations, no migrations/ in the checkout)")
    return found


def alembic_config(url: str) -> Config:
    """An Alembic Config for ``url``, usable with any ``alembic.command`` (e.g. ``revision`` with
    ``autogenerate=True`` when writing a new migration). The URL travels in ``attributes``, not
    in the ini options, where ConfigParser would misread a ``%`` in a password."""
    config = Config()
    config.set_main_option("script_location", str(script_location()))
    config.attributes["url"] = url
    return config


def _scripts() -> ScriptDirectory:
    return ScriptDirectory(str(script_location()))


def head() -> str:
    """The newest migration's revision."""
    revision = _scripts().get_current_head()
    if revision is None:
        raise StoreError(f"no migrations in {script_location()}")
    return revision


def current(url: str) -> SchemaState:
    """The database's revision next to the code's head; StoreError for a revision the code does not know."""

    def read() -> SchemaState:
        engine = engine_for(url)
        try:
            with engine.connect() as connection:
                revision = MigrationContext.configure(connection).get_current_revision()
        finally:
            engine.dispose()
        if revision is not None:
            _known(revision)
        return SchemaState(revision, head())

    return _guarded(url, read)


def upgrade(url: str, revision: str = "head") -> SchemaState:
    """Migrate up to ``revision``; an empty database gets every table."""
    current(url)  # refuses a database migrated by a newer version before touching it
    _guarded(url, lambda: command.upgrade(alembic_config(url), revision))
    return current(url)


def downgrade(url: str, revision: str) -> SchemaState:
    """Migrate down to ``revision`` ("base" drops every table but alembic_version)."""
    current(url)
    _guarded(url, lambda: command.downgrade(alembic_config(url), revision))
    return current(url)


def require_head(url: str) -> SchemaState:
    """For the daemon and the panel at start: refuse a database that is not at the code's head."""
    state = current(url)
    if not state.at_head:
        raise StoreError(f"the database {safe_url(url)} is at {state}; run: anon-plugin db upgrade")
    return state


def _known(revision: str) -> None:
    try:
        _scripts().get_revision(revision)
    except CommandError:
        raise StoreError(f"the database is at revision {revision}, which this anon-plugin does not know "
                         f"(its head is {head()}); it was migrated by a newer version") from None


def _guarded(url: str, work: Callable[[], _T]) -> _T:
    try:
        return work()
    except CommandError as exc:
        raise StoreError(f"{safe_url(url)}: {_one_line(exc)}") from None
    except sa.exc.DBAPIError as exc:
        raise StoreError(f"cannot use the database {safe_url(url)}: {_one_line(exc.orig or exc)}") from None


def _one_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]
