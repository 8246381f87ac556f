"""Engines and sessions: one database shared by the daemon and the admin panel.

SQLite (the default) is made safe for two processes writing at once:

- ``journal_mode=WAL``: readers never block the writer nor the writer them.
  WAL needs shared memory, which network filesystems do not give reliably:
  keep the database on a local disk (a file that cannot switch to WAL is
  refused with ``StoreError``).
- ``busy_timeout=5000``: a writer that finds the lock taken waits up to 5 s
  instead of failing at once with "database is locked".
- ``foreign_keys=ON``: SQLite leaves foreign keys unchecked unless asked,
  per connection.
- ``synchronous=NORMAL``: with WAL, a commit survives a crash of the process;
  only a power cut may lose the last commits, never corrupt the file.
- Every transaction starts with ``BEGIN IMMEDIATE``. A plain (deferred)
  BEGIN takes the write lock only at the first write, and when that upgrade
  finds another writer SQLite fails at once, busy_timeout or not. Taking the
  lock at BEGIN makes a writer wait its turn instead. For that, pysqlite's
  own transaction handling is switched off (``isolation_level = None``) and
  a ``begin`` event emits the BEGIN (SQLAlchemy's documented pysqlite recipe).

The simplest correct rule is "every transaction is a write transaction".
The one exception is opt-in: ``session_scope(engine, read_only=True)`` begins
a deferred transaction that never commits, so a long page view in the panel
does not hold the write lock the daemon waits for.

Nothing else here depends on SQLite: a ``postgresql+psycopg://`` URL gets a
plain engine.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.orm import Session, sessionmaker

from ..errors import StoreError

DATABASE_FILE = "anon_plugin.db"
BUSY_TIMEOUT_MS = 5000
_BEGIN_OPTION = "anon_plugin_sqlite_begin"  # a connection execution option: "IMMEDIATE" or "DEFERRED"


def default_url(data_dir: Path) -> str:
    return f"sqlite:///{Path(data_dir) / DATABASE_FILE}"


def safe_url(url: str) -> str:
    """The URL with its password hidden, for messages."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except sa.exc.ArgumentError:
        return "<unparsable database URL>"


def engine_for(url: str) -> Engine:
    """An engine for ``url``; SQLite engines get the pragmas and BEGIN IMMEDIATE of this module's docstring.

    Raises StoreError when the URL cannot be parsed or names a driver that is not installed.
    Connecting happens later, at first use.
    """
    try:
        engine = sa.create_engine(url)
    except (sa.exc.ArgumentError, sa.exc.NoSuchModuleError, ImportError) as exc:
        raise StoreError(f"cannot use the database URL {safe_url(url)}: {exc}") from None
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_connect)
        event.listen(engine, "begin", _sqlite_begin)
    return engine


def _sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")  # before WAL: switching may wait for a lock
        mode = cursor.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if mode not in ("wal", "memory"):
            raise StoreError(f"SQLite cannot use WAL for this database (journal_mode stays {mode!r}); "
                             "keep the database on a local disk")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
    finally:
        cursor.close()


def _sqlite_begin(connection: sa.Connection) -> None:
    mode = connection.get_execution_options().get(_BEGIN_OPTION, "IMMEDIATE")
    if mode not in ("IMMEDIATE", "DEFERRED"):
        raise ValueError(f"unknown SQLite BEGIN mode {mode!r}")
    connection.exec_driver_sql(f"BEGIN {mode}")


def session_factory(engine: Engine) -> sessionmaker[Session]:
    """Sessions whose objects stay readable after commit (``expire_on_commit=False``),
    so a scope can return rows to code that runs outside it."""
    return sessionmaker(engine, expire_on_commit=False)


def rows_changed(session: Session, statement: sa.UpdateBase) -> int:
    """Run an UPDATE or DELETE; how many rows it matched."""
    result = session.execute(statement)
    assert isinstance(result, sa.CursorResult), "an UPDATE or DELETE without RETURNING yields a CursorResult"
    return result.rowcount


@contextmanager
def session_scope(engine: Engine, *, read_only: bool = False) -> Iterator[Session]:
    """A session in one transaction: committed when the block ends, rolled back if it raises.

    ``read_only=True``: on SQLite the transaction begins DEFERRED (takes no
    write lock) and is always rolled back; use it only for reads. Database
    errors (an integrity error, an unreachable server) propagate as
    SQLAlchemy raises them: callers decide which ones they expect.
    """
    with session_factory(engine)() as session:
        if read_only:
            session.connection(execution_options={_BEGIN_OPTION: "DEFERRED"})
        try:
            yield session
            if read_only:
                session.rollback()
            else:
                session.commit()
        except BaseException:
            session.rollback()
            raise
