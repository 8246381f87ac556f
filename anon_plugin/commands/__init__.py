"""The CLI's commands, loaded only when run (see ``cli._LazyGroup``): a module per command family
(anonymize and explain, albums, policy, provenance, db, users, admin, daemon), with what anonymize
needs beside it (``files``: planning and processing files, ``report``: its JSON report).

What they share: settings read once per command, the store opened at its current schema (a session, or
the engine for work that opens its own), and the command's one-line messages. A command raises (a library
error, or ``Failure`` or ``Refusal`` for its own wording or exit code); ``cli`` turns what it raises into one
line on stderr and the exit code.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO

import click

from ..errors import AnonPluginError, OutputExistsError


def say(message: str) -> None:
    """One line on stderr, ``anon-plugin: <message>``."""
    click.echo(f"anon-plugin: {message}", err=True)


class Failure(click.ClickException):
    """The command's end: one line on stderr, exit code 1."""

    exit_code = 1

    def show(self, file: IO | None = None) -> None:
        say(self.format_message())


class Refusal(Failure):
    """The command's end before it did anything, as after a usage error: one line, exit code 2."""

    exit_code = 2


class _Lines(logging.Handler):
    """Log records as the command's own lines; the engine's (a stage that failed for a face, which the
    command names per file) and tracebacks only with --debug."""

    def __init__(self, debug: bool):
        super().__init__(logging.WARNING)
        self.debug = debug

    def filter(self, record: logging.LogRecord) -> bool:
        return self.debug or not record.name.startswith("anon_plugin.inference")

    def emit(self, record: logging.LogRecord) -> None:
        try:
            say(record.getMessage())
            if self.debug and record.exc_info:
                click.echo(logging.Formatter().formatException(record.exc_info), err=True)
        except Exception:
            self.handleError(record)


def log_warnings(ctx: click.Context) -> None:
    """Show the library's warnings (e.g. a photo read without its broken EXIF orientation) as ``say`` lines."""
    logging.getLogger("anon_plugin").handlers[:] = [_Lines(ctx.obj["debug"])]


def describe(exc: AnonPluginError) -> str:
    """A library error's one line as the CLI words it (an existing output names --overwrite)."""
    return f"{exc} (use --overwrite)" if isinstance(exc, OutputExistsError) else str(exc)


def unexpected(exc: Exception) -> str:
    """The one line for an error that is not the library's (a bug): --debug shows its traceback."""
    first = next(iter(str(exc).splitlines()), "")
    return f"unexpected {type(exc).__name__}: {first} (rerun with --debug)"


def settings(ctx: click.Context):
    """The settings, read once per command from --config / ANON_CONFIG and ANON_* variables."""
    from ..config import load_settings

    if "settings" not in ctx.obj:
        ctx.obj["settings"] = load_settings(ctx.obj["config"])
    return ctx.obj["settings"]


@contextmanager
def database(ctx: click.Context) -> Iterator:
    """An engine on the settings' database, which must be at the current schema; disposed when the block ends."""
    from ..store import migrate
    from ..store.db import engine_for

    url = settings(ctx).database_url
    migrate.require_head(url)
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
