"""Provenance: what was published, from which original, under which policy, and what each face became.

``record`` answers for an original (a path under a library root) or a
public copy (under the public root), from the store alone.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from .errors import AlbumError
from .store import queries
from .store.tables import Album, Output, Photo, PolicyVersion


def _plain(value: Any) -> Any:
    return value.isoformat() if isinstance(value, dt.datetime) else value


def _row(obj: Any, *skip: str) -> dict[str, Any]:
    return {c.key: _plain(getattr(obj, c.key)) for c in sa.inspect(obj).mapper.column_attrs if c.key not in skip}


def find_photo(session: Session, path: Path, library_roots: tuple[Path, ...], public_root: Path | None) -> Photo:
    """The photo an original's path or a public copy's path belongs to."""
    path = path.resolve()
    output = session.scalar(sa.select(Output).where(Output.public_path == str(path)).order_by(Output.id.desc()))
    if output is not None:
        return session.get_one(Photo, output.photo_id)
    for root in library_roots:
        if path.is_relative_to(root) and len(path.relative_to(root).parts) >= 2:
            album_name, *rest = path.relative_to(root).parts
            album = queries.album(session, str(root), album_name)
            photo = queries.photo_at(session, album.id, "/".join(rest)) if album is not None else None
            if photo is not None:
                return photo
    where = "the public root" if public_root and path.is_relative_to(public_root) else "the library roots"
    raise AlbumError(f"{path}: no record of it (looked in {where})")


def record(session: Session, photo: Photo) -> dict[str, Any]:
    """The photo and every output made from it, newest first, with faces and policies."""
    album = session.get_one(Album, photo.album_id)
    outputs = []
    for output in session.scalars(sa.select(Output).where(Output.photo_id == photo.id).order_by(Output.id.desc())):
        policy = session.get_one(PolicyVersion, output.policy_version_id)
        faces = queries.faces_of(session, output.id)
        outputs.append({**_row(output, "photo_id", "policy_version_id"),
                        "policy": {"version": policy.version, **policy.policy},
                        "faces": [_row(f, "id", "output_id") for f in faces]})
    return {"album": album.name, "library_root": album.root, "original": str(Path(album.root) / album.name /
            photo.relative_path), **_row(photo, "id", "album_id"), "outputs": outputs}


def photos_of(session: Session, album_id: int, limit: int | None = None) -> list[Photo]:
    """The album's present photos, by path (the first ``limit`` of them)."""
    return list(session.scalars(sa.select(Photo).where(Photo.album_id == album_id, Photo.state != "removed")
                                .order_by(Photo.relative_path).limit(limit)))
