"""``anon-plugin users``: the admin panel's users (add, list, remove). The first admin is made here."""

from __future__ import annotations

import sys

import click

from . import store


@click.group("users")
def users_group() -> None:
    """Add, list or remove the admin panel's users."""


@users_group.command()
@click.argument("name")
@click.option("--password-stdin", is_flag=True,
              help="Read the password from the first line of standard input instead of prompting twice.")
@click.pass_context
def add(ctx: click.Context, name: str, password_stdin: bool) -> None:
    """Add the user NAME; the password is asked twice (or read from stdin), stored as a scrypt hash."""
    from ..admin import accounts

    accounts.check_name(name)
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True, err=True)
    accounts.check_password(password)
    with store(ctx) as session:
        accounts.add(session, name, password)
    click.echo(f"anon-plugin: user {name} added", err=True)


@users_group.command("list")
@click.pass_context
def list_users(ctx: click.Context) -> None:
    """Every user, with when they were added and last signed in."""
    from ..admin import accounts

    with store(ctx) as session:
        rows = accounts.listing(session)
    click.echo(f"{'user':24} {'added':20} last sign-in")
    for row in rows:
        last = row.last_login.strftime("%Y-%m-%d %H:%M UTC") if row.last_login else "never"
        click.echo(f"{row.name:24} {row.created_at.strftime('%Y-%m-%d %H:%M UTC'):20} {last}")


@users_group.command()
@click.argument("name")
@click.pass_context
def remove(ctx: click.Context, name: str) -> None:
    """Remove the user NAME (signed out at their next request; the audit log keeps their name)."""
    from ..admin import accounts

    with store(ctx) as session:
        accounts.remove(session, name)
    click.echo(f"anon-plugin: user {name} removed", err=True)
