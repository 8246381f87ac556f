"""Albums and sharing: what the CLI's ``albums`` commands and the admin panel call.

An album is a first-level folder of a library root, or an Immich album
(``connectors/immich/source.py`` keeps those in step). Only shared albums get
public copies; sharing queues the photos already there, unsharing removes
their public copies (provenance keeps the record), republishing queues every
photo again under the album's current policy.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from . import photos, policies
from .errors import AlbumError
from .jobs import queue
from .library.ignore import PathFilter
from .library.walk import NotAPhoto, PhotoFile, WalkProblem, scan_album
from .store import queries
from .store.db import session_scope
from .store.tables import Album, Photo, utcnow

if TYPE_CHECKING:
    from .config import ImmichSettings
    from .connectors.immich.client import ImmichClient

log = logging.getLogger("anon_plugin.albums")


@dataclass(frozen=True)
class NotPublished:
    """A file of a shared album that gets no public copy, and why: a video, a document, a symbolic link, a
    folder that cannot be read. ``path`` is POSIX, relative to the album folder ("" for the folder itself)."""

    path: str
    reason: str


@dataclass(frozen=True)
class AlbumSummary:
    name: str
    root: str
    shared: bool
    policy_version: int | None
    photos: int
    published: int
    failed: int
    held: int
    pending: int
    missing: bool = False  # the folder is gone but the album is still shared (its copies stay)
    source: str = "folder"  # or "immich": root is then the album's address in Immich
    # of a shared album: a folder album's filled by ``with_not_published``, an Immich album's as its last poll found
    not_published: tuple[NotPublished, ...] = ()


def sync(session: Session, found: Iterable[tuple[Path, str]], share_new: bool) -> list[str]:
    """Make the store's albums match the folders ``found`` ((root, name) pairs): new ones are
    added (shared when ``share_new``), vanished ones marked removed. Returns the names added."""
    present = {(str(root), name) for root, name in found}
    known = {(a.root, a.name): a for a in session.scalars(sa.select(Album).where(Album.source == "folder"))}
    added = []
    for root, name in sorted(present - set(known)):
        clash = _shared_namesake(session, name)
        if share_new and clash is not None:
            log.warning("new album %s in %s not shared: %s shares that name and its public folder", name, root,
                        f"{clash.root}/{clash.name}")
        queries.add_album(session, root, name, shared=share_new and clash is None)
        added.append(name)
    for key, album in known.items():
        if key in present and album.removed_at is not None:
            album.removed_at = None
        elif key not in present and album.removed_at is None:
            album.removed_at = utcnow()
    return added


def find(session: Session, name: str, *, missing_ok: bool = False) -> Album:
    """The album called ``name`` (or ``ROOT/NAME`` when two library roots hold one of that name).

    An album whose folder has gone (deleted, or its share unmounted) is found only with
    ``missing_ok``: unsharing it must stay possible, since its copies stay published.
    """
    matches = [a for a in session.scalars(sa.select(Album)) if name in (a.name, f"{a.root}/{a.name}")]
    rows = [a for a in matches if a.removed_at is None] or [a for a in matches if missing_ok and a.shared]
    if not rows:
        if matches and any(a.shared for a in matches):
            raise AlbumError(f"album {name!r}: its folder is missing; `anon-plugin albums unshare {name}` "
                             "removes its public copies")
        raise AlbumError(f"no album {name!r}; `anon-plugin albums list` shows them")
    if len(rows) > 1:
        raise AlbumError(f"{name!r} is an album in several library roots; say which: "
                         + ", ".join(f"{a.root}/{a.name}" for a in rows))
    return rows[0]


def summaries(session: Session, album_id: int | None = None) -> list[AlbumSummary]:
    """Every listed album (present, or shared with its folder missing), or only the one with ``album_id``,
    with its policy version and photo counts, by name; a shared Immich album with what its last poll found
    it does not publish."""
    counts = queries.photo_counts(session, album_id)
    versions = queries.latest_versions(session, album_id)
    out = []
    for album in queries.listed_albums(session, album_id):
        c = counts.get(album.id, {})
        out.append(AlbumSummary(
            album.name, album.root, album.shared, versions.get(album.id),
            photos=sum(v for k, v in c.items() if k != "removed"), published=c.get("published", 0),
            failed=c.get("failed", 0), held=c.get("held", 0), pending=c.get("pending", 0),
            missing=album.removed_at is not None, source=album.source,
            not_published=tuple(NotPublished(**f) for f in album.not_published or ()) if album.shared else (),
        ))
    return out


def not_published(root: Path, name: str, path_filter: PathFilter) -> tuple[NotPublished, ...]:
    """What the album folder ``root / name`` holds that is neither a photo nor ignored clutter, and what the walk
    could not look into, by path. Walks the folder now: call it with no write transaction open."""
    others: list[NotAPhoto] = []
    problems: list[WalkProblem] = []
    for _photo in scan_album(root, name, path_filter, problems=problems, not_photos=others):
        pass
    found = [NotPublished(f.path, f.reason) for f in others] + [NotPublished(p.path, p.reason) for p in problems]
    return tuple(sorted(found, key=lambda f: f.path))


def with_not_published(rows: list[AlbumSummary], path_filter: PathFilter) -> list[AlbumSummary]:
    """``rows`` with ``not_published`` filled for every shared folder album whose folder is there (see
    ``not_published``)."""
    return [replace(r, not_published=not_published(Path(r.root), r.name, path_filter))
            if r.shared and not r.missing and r.source == "folder" else r for r in rows]


def _shared_namesake(session: Session, name: str, other_than: int | None = None) -> Album | None:
    """A shared folder album of this name in another library root: its public copies go to the same folder."""
    return session.scalar(sa.select(Album).where(Album.name == name, Album.shared, Album.source == "folder",
                                                 Album.id != (other_than or -1)))


def share(session: Session, album: Album, found: Iterable[PhotoFile], by: str | None) -> int:
    """Share the album and queue its photos (``found``: what a scan of its folder saw; nothing for an Immich
    album, whose assets the next poll reads); returns how many.

    A folder album whose name a shared album of another library root has is refused: both would publish
    to ``public_root/<name>``, each overwriting and removing the other's copies."""
    clash = _shared_namesake(session, album.name, album.id) if album.source == "folder" else None
    if clash is not None:
        raise AlbumError(f"album {album.name!r}: {clash.root}/{clash.name} is shared and publishes to the same "
                         "public folder; unshare it first, or rename one of the two folders")
    album.shared = True
    album.external_version = None  # an Immich album's assets are read in full at the next poll
    policies.current(session, album.id)  # the policy its copies will name, version 1 if it had none
    queries.audit(session, by, "share", album.name)
    return sum(photos.seen(session, album, f) for f in found)


def share_album(engine: Engine, album_id: int, path_filter: PathFilter, by: str | None, *,
                progress: Callable[[list[PhotoFile]], Iterable[PhotoFile]] = iter) -> int:
    """Share the album ``album_id`` and queue the photos already there, as ``share``; returns how many were queued.

    A folder album's folder is walked with no transaction open, so the daemon never waits on a walk; the album
    is then read again and shared in one short write transaction. An Immich album is shared without a walk: the
    next poll reads its assets (0 queued now). ``progress`` wraps the photos as they are queued (the CLI's
    progress bar). Raises AlbumError when the album is unknown or its folder gone, or as ``share``.
    """
    with session_scope(engine, read_only=True) as session:
        album = queries.present_album(session, album_id)
        if album is None:
            raise AlbumError(f"no album with id {album_id}; `anon-plugin albums list` shows them")
        root, name, source = Path(album.root), album.name, album.source
    found = list(scan_album(root, name, path_filter)) if source == "folder" else []
    with session_scope(engine) as session:
        album = queries.present_album(session, album_id)
        if album is None:
            raise AlbumError(f"album {name!r}: its folder went away while it was read")
        return share(session, album, progress(found), by)


def set_policy(session: Session, album: Album, policy: policies.Policy, by: str | None) -> tuple[int, int]:
    """Save ``policy`` as the album's next version; returns it and how many photos were queued: a shared
    album that publishes again queues the photos that came while its publishing was off."""
    version = policies.save(session, album.id, policy, by)
    queued = 0
    if album.shared and policy.enabled:
        waiting = sa.select(Photo.id).where(Photo.album_id == album.id, Photo.state == "pending")
        queued = sum(queue.enqueue(session, photo_id).new for photo_id in session.scalars(waiting))
    return version, queued


def unshare(session: Session, album: Album, public_root: Path, by: str | None,
            immich: ImmichClient | None = None) -> int:
    """Stop sharing: waiting jobs are closed and every public copy removed (the records stay). Returns
    how many copies were removed. An Immich album's copies and link are deleted with ``immich``, the public
    client; without it, or when Immich fails, they are owed and the next poll deletes them."""
    album.shared = False
    removed = 0
    for photo in session.scalars(sa.select(Photo).where(Photo.album_id == album.id)):
        queue.cancel(session, photo.id, "album unshared")
        removed += photos.withdraw(session, photo, public_root, "album unshared")
    if album.source == "immich" and immich is not None:
        from .connectors.immich import target

        removed += target.withdraw(session, immich, album.id).copies
    queries.audit(session, by, "unshare", album.name, {"copies_removed": removed})
    return removed


@contextmanager
def immich_public(settings: ImmichSettings | None) -> Iterator[ImmichClient | None]:
    """The public Immich key's client for ``unshare`` while the block runs (closed after); None without an
    ``[immich]`` section."""
    if settings is None:
        yield None
        return
    from .connectors.immich.client import ImmichClient, read_key

    assert settings.url is not None and settings.public_key_file is not None, "checked when settings load"
    with ImmichClient(settings.url, read_key(settings.public_key_file), name="public") as client:
        yield client


def copies(session: Session, album: Album) -> int:
    """How many public copies the album has now (what unsharing would remove)."""
    return queries.published_count(session, album.id)


def republish(session: Session, album: Album, by: str | None) -> int:
    """Queue every present photo of a shared album again, to be rendered under its current policy."""
    if not album.shared:
        raise AlbumError(f"album {album.name!r} is not shared; share it first")
    version, _ = policies.current(session, album.id)
    count = 0
    for photo in session.scalars(sa.select(Photo).where(Photo.album_id == album.id, Photo.state != "removed")):
        queue.enqueue(session, photo.id)
        count += 1
    queries.audit(session, by, "republish", album.name, {"policy_version": version, "queued": count})
    return count
