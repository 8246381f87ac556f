"""Originals as the watcher and scans see them, kept in step with the store and the public root.

A photo seen for the first time, or changed (size or mtime), is queued when
its album is shared; a permanent failure stays failed until the file
changes. A deleted original takes its public copy with it; a moved one
moves it. Rows are never deleted: provenance outlives the files.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy.orm import Session

from . import publish
from .library.walk import PhotoFile
from .jobs import queue
from .store import queries
from .store.tables import Album, Photo


def seen(session: Session, album: Album, found: PhotoFile) -> bool:
    """Record the file a scan or the watcher found in ``album``; True when a new publish job was queued for it."""
    row = queries.photo_at(session, album.id, found.path)
    mtime = found.mtime_ns / 1e9
    if row is None:
        row = Photo(album_id=album.id, relative_path=found.path, size=found.size, mtime=mtime)
        session.add(row)
        session.flush()
    elif (row.size, row.mtime) != (found.size, mtime) or row.state == "removed":
        row.size, row.mtime, row.sha256 = found.size, mtime, None
        row.state, row.reason = "pending", None
    elif row.state != "pending":
        return False  # published, held or failed, and unchanged: nothing new to do
    if not album.shared:
        return False
    return queue.enqueue(session, row.id).new


def withdraw(session: Session, photo: Photo, public_root: Path, reason: str) -> int:
    """Remove the photo's public copy, if any, and mark its outputs removed; returns 1 when a file went.
    A copy on the public Immich user is left ``published``, owed a withdrawal (``connectors/immich/target.py``)."""
    removed = 0
    for output in queries.live_outputs(session, photo.id):
        if output.status == "published" and publish.immich_asset(output.public_path):
            continue  # on the public Immich user: connectors.immich.target.withdraw deletes it
        if output.status == "published" and publish.remove(Path(output.public_path), public_root):
            removed = 1
        output.status = "removed"
    if photo.state in ("published", "held"):
        photo.state, photo.reason = "pending", reason
    return removed


def deleted(session: Session, album: Album, path: str, public_root: Path) -> bool:
    """The original is gone: so are its waiting jobs and its public copy. False when it was unknown."""
    row = queries.photo_at(session, album.id, path)
    if row is None or row.state == "removed":
        return False
    queue.cancel(session, row.id, "original deleted")
    withdraw(session, row, public_root, "original deleted")
    row.state, row.reason = "removed", "original deleted"
    return True


def moved(session: Session, album: Album, old: str, found: PhotoFile, public_root: Path) -> bool:
    """The original moved inside its album: the photo and its public copy follow without new work.

    When the new path already held a known photo, that one is withdrawn and the
    moved file is treated as changed (published again under its new name).
    Returns True when a publish job was queued.
    """
    new = found.path
    row = queries.photo_at(session, album.id, old)
    target = queries.photo_at(session, album.id, new)
    if row is None or row.state == "removed" or target is not None:
        if row is not None:
            deleted(session, album, old, public_root)
        if target is not None:
            deleted(session, album, new, public_root)
        return seen(session, album, found)
    row.relative_path, row.size, row.mtime = new, found.size, found.mtime_ns / 1e9
    for output in queries.live_outputs(session, row.id):
        destination = publish.public_path(public_root, album.name, new, Path(output.public_path).suffix)
        if output.status == "published":
            publish.move(Path(output.public_path), destination, public_root)
        output.public_path = str(destination)
    return False
