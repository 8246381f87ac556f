"""``anon-plugin policy``: show or change an album's policy (each change is a new version)."""

from __future__ import annotations

import json

import click

from . import store
from .albums import _sync


@click.group("policy")
def policy_group() -> None:
    """Show or change an album's policy."""


@policy_group.command()
@click.argument("name")
@click.pass_context
def show(ctx: click.Context, name: str) -> None:
    """Print NAME's current policy and its version, as JSON."""
    from .. import albums, policies

    with store(ctx) as session:
        _sync(ctx, session)  # an album not shared yet is known before `albums list` or the daemon ran
        album = albums.find(session, name)
        version, policy = policies.current(session, album.id)
    click.echo(json.dumps({"album": name, "version": version, "policy": policy.to_mapping()}, indent=2))


@policy_group.command("set")
@click.argument("name")
@click.argument("assignments", nargs=-1, required=True)
@click.pass_context
def set_policy(ctx: click.Context, name: str, assignments: tuple[str, ...]) -> None:
    """Change fields of NAME's policy: KEY=VALUE ... (e.g. strength=large metadata=strip-all).

    Saving makes a new version; `anon-plugin albums republish NAME` renders
    the album's copies under it.
    """
    from .. import albums, policies

    with store(ctx) as session:
        _sync(ctx, session)  # the policy can be set before the album is first shared
        album = albums.find(session, name)
        _, policy = policies.current(session, album.id)
        changed = policy.with_changes(**policies.parse_assignments(assignments))
        version, queued = albums.set_policy(session, album, changed, by=None)
    click.echo(f"anon-plugin: album {name} policy version {version}; "
               + (f"{queued} photo(s) that waited while its publishing was off queued; " if queued else "")
               + f"`anon-plugin albums republish {name}` renders its copies under it", err=True)
