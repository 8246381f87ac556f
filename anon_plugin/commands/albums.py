"""``anon-plugin albums``: list, share, unshare and republish albums (the panel calls the same functions)."""

from __future__ import annotations

import dataclasses
import functools
import json
import sys
from collections.abc import Iterator
from typing import TypeVar

import click

from . import database, settings, store

T = TypeVar("T")
MISSING = {"folder": "folder missing", "immich": "gone from Immich"}  # what a listed album that is not there lacks


def _sync(ctx: click.Context, session) -> None:
    """The store's albums as the library roots have them now."""
    from .. import albums
    from ..library.ignore import PathFilter
    from ..library.walk import albums as album_folders

    s = settings(ctx)
    albums.sync(session, album_folders(s.library_roots, PathFilter(s.watch.ignore)), s.share_new_albums)


def _progress(label: str, items: list[T]) -> Iterator[T]:
    """``items``, with a progress bar on stderr while they are taken (none for fewer than two)."""
    with click.progressbar(items, label=label, file=sys.stderr, show_pos=True, hidden=len(items) < 2) as bar:
        yield from bar


@click.group("albums")
def albums_group() -> None:
    """List albums and share, unshare or republish them."""


@albums_group.command("list")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per album, as a list.")
@click.pass_context
def list_albums(ctx: click.Context, as_json: bool) -> None:
    """Every album, folder or Immich (its source), with its sharing, policy version and photo counts.

    A shared album also counts the files it does not publish (videos, other files that are not photos,
    links and folders that cannot be read; an Immich album's videos, as the daemon's last poll found them);
    --json lists them, each with its reason. System and sync
    clutter (.DS_Store, @eaDir, hidden files) and the [watch] ignore patterns are left out.
    """
    from .. import albums
    from ..library.ignore import PathFilter

    with store(ctx) as session:
        _sync(ctx, session)
        rows = albums.summaries(session)
    rows = albums.with_not_published(rows, PathFilter(settings(ctx).watch.ignore))  # walked after the transaction
    if as_json:
        click.echo(json.dumps([dataclasses.asdict(r) for r in rows], indent=2))
        return
    click.echo(f"{'album':24} {'source':6} {'shared':6} {'policy':6} {'photos':>6} {'published':>9} {'failed':>6} "
               f"{'held':>5} {'pending':>7}")
    for r in rows:
        click.echo(f"{r.name:24} {r.source:6} {'yes' if r.shared else 'no':6} {r.policy_version or '-'!s:6} "
                   f"{r.photos:>6} {r.published:>9} {r.failed:>6} {r.held:>5} {r.pending:>7}"
                   + (f"  ({MISSING[r.source]}: its copies stay until it is back or unshared)" if r.missing else "")
                   + (f"  ({len(r.not_published)} file(s) not published: --json lists them with the reason)"
                      if r.not_published else ""))


@albums_group.command()
@click.argument("name")
@click.pass_context
def share(ctx: click.Context, name: str) -> None:
    """Share NAME: its photos get public copies (the daemon publishes them)."""
    from .. import albums
    from ..library.ignore import PathFilter
    from ..store.db import session_scope

    path_filter = PathFilter(settings(ctx).watch.ignore)
    with database(ctx) as engine:
        with session_scope(engine) as session:
            _sync(ctx, session)
            album = albums.find(session, name)
            album_id, folder = album.id, album.name
        progress = functools.partial(_progress, f"queueing {folder}")
        queued = albums.share_album(engine, album_id, path_filter, by=None, progress=progress)
    click.echo(f"anon-plugin: album {name} shared; {queued} photo(s) queued", err=True)


@albums_group.command()
@click.argument("name")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.pass_context
def unshare(ctx: click.Context, name: str, yes: bool) -> None:
    """Stop sharing NAME and remove its public copies (their provenance stays)."""
    from .. import albums

    if not yes:  # asked before the write transaction opens: the daemon never waits on an answer
        with store(ctx) as session:
            count = albums.copies(session, albums.find(session, name, missing_ok=True))
        click.confirm(f"Remove the {count} public copies of {name}?", abort=True, err=True)
    with albums.immich_public(settings(ctx).immich) as public, store(ctx) as session:
        album = albums.find(session, name, missing_ok=True)
        removed = albums.unshare(session, album, settings(ctx).public_root, by=None, immich=public)
    click.echo(f"anon-plugin: album {name} unshared; {removed} public copies removed", err=True)


@albums_group.command()
@click.argument("name")
@click.pass_context
def republish(ctx: click.Context, name: str) -> None:
    """Render every photo of NAME again under its current policy (unchanged ones are skipped)."""
    from .. import albums

    with store(ctx) as session:
        album = albums.find(session, name)
        count = albums.republish(session, album, by=None)
    click.echo(f"anon-plugin: {count} photo(s) of {name} queued", err=True)
