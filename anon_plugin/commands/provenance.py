"""``anon-plugin provenance PATH``: the record of an original or a public copy, as JSON."""

from __future__ import annotations

import json
from pathlib import Path

import click

from . import settings, store


@click.command("provenance")
@click.argument("path", type=click.Path(path_type=Path))
@click.pass_context
def provenance_command(ctx: click.Context, path: Path) -> None:
    """Print the record of an original or a public copy as JSON.

    For PATH an original: what was published from it; for PATH a public copy:
    what it was made from. Policy, engine, models, device, removed metadata
    tags and every face, old copies included.
    """
    from .. import provenance

    s = settings(ctx)
    with store(ctx) as session:
        photo = provenance.find_photo(session, path, s.library_roots, s.public_root)
        record = provenance.record(session, photo)
    click.echo(json.dumps(record, indent=2))
