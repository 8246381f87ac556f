"""Immich albums as sources: one poll brings the store in line with the source user's albums.

Every album the source key lists becomes an album of the store (``source``
'immich', unshared when new), renamed and marked removed as Immich has it.
The assets of the shared ones are read page by page and compared with the
store by asset id and checksum: a new or changed photo is pending and queued,
one gone from the album is removed, a video is listed as not published (in
``albums.not_published``, which ``albums list`` and the panel show). An
album whose asset count and times are what they were at its last reading is
not read again. Immich is only read, never written, and no transaction is
open while it is: a refusal (401, 403) or an unreachable server raises before
anything is recorded.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from ...albums import NotPublished
from ...jobs import queue
from ...store.db import session_scope
from ...store.tables import Album, Photo, utcnow
from .client import Album as ImmichAlbum
from . import target
from .client import Asset, ImmichClient

SOURCE = "immich"
VIDEO = "video: videos are not anonymized yet"
GONE = "removed from the Immich album"


@dataclass
class Polled:
    """What one poll found and did. Album names as Immich has them now."""

    added: list[str] = field(default_factory=list)  # albums new to the store (unshared)
    renamed: list[tuple[str, str]] = field(default_factory=list)  # (old name, new name)
    removed: list[str] = field(default_factory=list)  # albums gone from Immich
    read: list[str] = field(default_factory=list)  # shared albums whose assets were read (the others: unchanged)
    new: int = 0  # photos seen for the first time
    changed: int = 0  # photos whose checksum changed, or that came back to their album
    gone: int = 0  # photos removed from their album
    queued: int = 0  # publish jobs queued
    not_published: dict[str, tuple[NotPublished, ...]] = field(default_factory=dict)  # per album read, by asset id
    withdrawn: target.Withdrawn = field(default_factory=target.Withdrawn)  # public copies and links deleted


def version(album: ImmichAlbum) -> str:
    """What tells that an album's assets changed: its asset count and times, as Immich lists them."""
    return f"{album.asset_count} {album.last_modified or '-'} {album.updated_at}"


def album_address(url: str, album_id: str) -> str:
    """An Immich album's ``root`` in the store: its address in Immich's web app."""
    return f"{url.rstrip('/')}/albums/{album_id}"


def poll(client: ImmichClient, engine: Engine, *, force: bool = False, public: ImmichClient | None = None) -> Polled:
    """Bring the store in line with the albums ``client`` (the source key) lists, reading the assets of the
    shared albums that changed since their last reading (every shared one when ``force``). With ``public``
    (the public key), the copies of the photos removed now or before, and of unshared albums, are deleted in
    the transaction that records it (``target.withdraw``); what Immich refuses stays owed to the next poll."""
    listed = client.albums()
    with session_scope(engine, read_only=True) as session:
        readings = {a.external_id: a.external_version for a in _immich_albums(session)
                    if a.shared and a.removed_at is None}
    assets = {a.id: client.album_assets(a.id) for a in listed
              if a.id in readings and (force or readings[a.id] != version(a))}
    with session_scope(engine) as session:
        polled = _record(session, client.url, listed, assets)
        if public is not None:
            session.flush()
            polled.withdrawn = target.withdraw(session, public)
        return polled


def _immich_albums(session: Session) -> list[Album]:
    return list(session.scalars(sa.select(Album).where(Album.source == SOURCE)))


def _record(session: Session, url: str, listed: Sequence[ImmichAlbum],
            assets: Mapping[str, Sequence[Asset]]) -> Polled:
    polled = Polled()
    rows = {a.external_id: a for a in _immich_albums(session)}
    for remote in listed:
        row = rows.get(remote.id)
        root = album_address(url, remote.id)
        if row is None:
            row = Album(source=SOURCE, external_id=remote.id, root=root, name=remote.name, shared=False)
            session.add(row)
            session.flush()
            polled.added.append(remote.name)
        elif (row.root, row.name) != (root, remote.name):
            if row.name != remote.name:
                polled.renamed.append((row.name, remote.name))
            row.root, row.name = root, remote.name
        row.removed_at = None
        if not row.shared:
            row.external_version = None  # read in full once it is shared
        elif remote.id in assets:  # shared since the store was read: left for the next poll otherwise
            _record_assets(session, row, assets[remote.id], polled)
            row.external_version = version(remote)
            polled.read.append(remote.name)
    present = {a.id for a in listed}
    for external_id, row in rows.items():
        if external_id not in present and row.removed_at is None:
            row.removed_at, row.external_version = utcnow(), None
            polled.removed.append(row.name)
    return polled


def _record_assets(session: Session, album: Album, assets: Sequence[Asset], polled: Polled) -> None:
    """Compare an album's assets with its photos: new and changed ones queued, missing ones removed."""
    images = {a.id: a for a in assets if a.is_image}
    skipped = tuple(NotPublished(a.id, _not_published(a)) for a in assets if not a.is_image)
    polled.not_published[album.name] = skipped
    album.not_published = [{"path": f.path, "reason": f.reason} for f in skipped]
    rows = {p.relative_path: p for p in session.scalars(sa.select(Photo).where(Photo.album_id == album.id))}
    for asset in images.values():
        row = rows.get(asset.id)
        if row is None:
            row = Photo(album_id=album.id, relative_path=asset.id, checksum=asset.checksum, size=None, mtime=None)
            session.add(row)
            session.flush()
            polled.new += 1
        elif row.checksum != asset.checksum or row.state == "removed":
            row.checksum, row.sha256 = asset.checksum, None
            row.state, row.reason = "pending", None
            polled.changed += 1
        elif row.state != "pending":
            continue  # published, held or failed, and unchanged
        polled.queued += queue.enqueue(session, row.id).new
    for asset_id, row in rows.items():
        if asset_id not in images and row.state != "removed":
            queue.cancel(session, row.id, GONE)
            row.state, row.reason = "removed", GONE
            polled.gone += 1


def _not_published(asset: Asset) -> str:
    return VIDEO if asset.type == "VIDEO" else f"{asset.type.lower()}: not a photo"
