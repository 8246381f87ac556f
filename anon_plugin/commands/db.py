"""``anon-plugin db``: create, upgrade or downgrade the database (Alembic migrations).

The database is the one the settings name (``database_url``; by default
``<data_dir>/anon_plugin.db``). Errors print one line and exit 1.
"""

from __future__ import annotations

import click

from . import settings


@click.group("db")
def db() -> None:
    """Create or upgrade the database (Alembic migrations)."""


@db.command()
@click.argument("revision", default="head")
@click.pass_context
def upgrade(ctx: click.Context, revision: str) -> None:
    """Upgrade the database to REVISION (default: head, the newest); an empty database gets every table."""
    from ..store import migrate
    from ..store.db import safe_url

    url = settings(ctx).database_url
    state = migrate.upgrade(url, revision)
    click.echo(f"anon-plugin: database {safe_url(url)} at {state}", err=True)


@db.command()
@click.argument("revision")
@click.pass_context
def downgrade(ctx: click.Context, revision: str) -> None:
    """Downgrade the database to REVISION ("base" drops every table, and their rows with them)."""
    from ..store import migrate
    from ..store.db import safe_url

    url = settings(ctx).database_url
    state = migrate.downgrade(url, revision)
    click.echo(f"anon-plugin: database {safe_url(url)} at {state}", err=True)


@db.command()
@click.pass_context
def current(ctx: click.Context) -> None:
    """Print the database's revision and the newest one this anon-plugin knows."""
    from ..store import migrate

    url = settings(ctx).database_url
    state = migrate.current(url)
    click.echo(str(state))
