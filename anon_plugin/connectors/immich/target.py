"""The public Immich user as the target of an Immich album's copies.

A copy is uploaded under a neutral name (the checksum tells a duplicate: the
same bytes give the same asset, no error) and put into the album's *mirror*
album on the public user, created at its first copy with the source album's
name; the mirror is shared by one link that shows no metadata and allows
downloads as the policy says. An output names its copy ``immich:<asset id>``.

Withdrawing follows the store's rule (docs/store.md): the transaction that
records why deletes the copies. A copy is *owed* a withdrawal while its
output is still ``published`` though its photo was removed, its album
unshared or a newer copy supersedes it; ``withdraw`` deletes the owed copies
and the links of unshared albums, then marks the outputs. When Immich cannot
be reached (or refuses), the outputs stay ``published``, noted, and the next
``withdraw`` (every poll) tries again: a withdrawal is never lost.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import sqlalchemy as sa
from sqlalchemy.orm import Session

from ...errors import ImmichError
from ...publish import IMMICH, immich_asset
from ...store.tables import Album, Output, Photo

if TYPE_CHECKING:
    from .client import ImmichClient

log = logging.getLogger(__name__)
OWED = "withdrawal owed, tried again at the next poll"


@dataclass(frozen=True)
class PublishedAsset:
    """A copy on the public user: its asset id, and whether Immich held the same bytes already."""

    asset_id: str
    duplicate: bool

    @property
    def public_path(self) -> str:
        return f"{IMMICH}{self.asset_id}"


def mirror(client: ImmichClient, album: Album) -> str:
    """The id of ``album``'s mirror album on the public user, created (named as ``album``) when it has none.
    Call it with the album's row locked: the id is stored on it."""
    if album.mirror_album_id is None:
        album.mirror_album_id = client.create_album(album.name)
    return album.mirror_album_id


def publish(client: ImmichClient, mirror_album_id: str, rendered: Path) -> PublishedAsset:
    """Upload the rendered copy under a neutral name and put it into the mirror album."""
    upload = client.upload(rendered)
    client.add_to_album(mirror_album_id, [upload.id])
    return PublishedAsset(upload.id, upload.duplicate)


def share(client: ImmichClient, album: Album, allow_download: bool) -> str:
    """The id of the mirror album's one shared link, made when it has none, else set again to show no metadata
    and to allow downloads as ``allow_download`` says. Call it with the album's row locked."""
    assert album.mirror_album_id is not None, "a link is made after the album's first copy"
    if album.mirror_link_id is None:
        album.mirror_link_id = client.create_link(album.mirror_album_id, allow_download).id
    else:
        client.update_link(album.mirror_link_id, allow_download)
    return album.mirror_link_id


@dataclass(frozen=True)
class Withdrawn:
    """What ``withdraw`` did: the copies deleted, the links deleted, or why nothing was (then still owed)."""

    copies: int = 0
    links: int = 0
    failed: str | None = None


def owed(session: Session, album_id: int | None = None) -> list[Output]:
    """Immich copies still published whose photo was removed, whose album is unshared, or that are superseded."""
    query = (sa.select(Output).join(Photo, Photo.id == Output.photo_id).join(Album, Album.id == Photo.album_id)
             .where(Output.status == "published", Output.public_path.startswith(IMMICH),
                    sa.or_(Photo.state == "removed", sa.not_(Album.shared), Output.superseded_by.is_not(None))))
    if album_id is not None:
        query = query.where(Album.id == album_id)
    return list(session.scalars(query))


def withdraw(session: Session, client: ImmichClient, album_id: int | None = None) -> Withdrawn:
    """Delete the copies owed a withdrawal (of one album, or all) and the shared links of unshared albums,
    marking their outputs ``removed`` (``superseded``). A copy whose bytes another copy in force shares (the same
    asset) is only marked. When Immich fails, nothing is marked, the outputs are noted, and the error returned."""
    outputs = owed(session, album_id)
    links = [a for a in session.scalars(sa.select(Album).where(
        Album.source == "immich", sa.not_(Album.shared), Album.mirror_link_id.is_not(None)))
        if album_id in (None, a.id)]
    if not outputs and not links:
        return Withdrawn()
    leaving = {o.id for o in outputs}
    kept = {_asset(o) for o in session.scalars(sa.select(Output).where(
        Output.status == "published", Output.public_path.startswith(IMMICH))) if o.id not in leaving}
    assets = sorted({_asset(o) for o in outputs} - kept)
    try:
        client.delete_assets(assets)
        for album in links:
            assert album.mirror_link_id is not None
            client.delete_link(album.mirror_link_id)
            album.mirror_link_id = None
    except ImmichError as exc:
        log.warning("Immich copies not withdrawn yet (%d, tried again at the next poll): %s", len(outputs), exc)
        for output in outputs:
            if OWED not in output.notes:
                output.notes = [*output.notes, OWED]
        return Withdrawn(failed=str(exc))
    for output in outputs:
        output.status = "superseded" if output.superseded_by is not None else "removed"
    return Withdrawn(len(assets), len(links))


def _asset(output: Output) -> str:
    asset = immich_asset(output.public_path)
    assert asset, "an Immich copy's output names its asset"
    return asset
