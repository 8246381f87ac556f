"""The CLI's command families, one module each, loaded only when run (see ``cli._LazyGroup``).

What they share: settings read once per command, the store opened at its
current schema (a session, or the engine for work that opens its own), and
library errors turned into one line and exit code 1.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

import click

T = TypeVar("T")


def guarded(ctx: click.Context, work: Callable[[], T]) -> T:
    """``work()``; a library error prints one line and exits 1 (an unexpected one too, unless --debug)."""
    from ..cli import _fail, _unexpected
    from ..errors import AnonPluginError

    try:
        return work()
    except AnonPluginError as exc:
        _fail(str(exc))
    except Exception as exc:
        if ctx.obj["debug"]:
            raise
        _fail(_unexpected(exc))
    ctx.exit(1)


def settings(ctx: click.Context):
    """The settings, read once per command from --config / ANON_CONFIG and ANON_* variables."""
    from ..config import load_settings

    if "settings" not in ctx.obj:
        ctx.obj["settings"] = guarded(ctx, lambda: load_settings(ctx.obj["config"]))
    return ctx.obj["settings"]


@contextmanager
def database(ctx: click.Context) -> Iterator:
    """An engine on the settings' database, which must be at the current schema; disposed when the block ends."""
    from ..store import migrate
    from ..store.db import engine_for

    url = settings(ctx).database_url
    guarded(ctx, lambda: migrate.require_head(url))
    engine = engine_for(url)
    try:
        yield engine
    finally:
        engine.dispose()


@contextmanager
def store(ctx: click.Context) -> Iterator:
    """A write session on the settings' database, which must be at the current schema."""
    from ..store.db import session_scope

    with database(ctx) as engine, session_scope(engine) as session:
        yield session
