"""Every query of the store, with ``select()``: callers pass a session and get rows or values back.

Kept in one module so the daemon, the CLI and the admin panel ask the same
questions the same way (and the panel's views hold no SQL).
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from .tables import Album, AuditEntry, Output, Photo, PolicyVersion


def album(session: Session, root: str, name: str) -> Album | None:
    return session.scalar(sa.select(Album).where(Album.root == root, Album.name == name))


def add_album(session: Session, root: str, name: str, shared: bool = False) -> Album:
    row = Album(root=root, name=name, shared=shared)
    session.add(row)
    session.flush()
    return row


def latest_policy_version(session: Session, album_id: int) -> PolicyVersion | None:
    """The album's newest policy version, None when it has none yet."""
    return session.scalar(
        sa.select(PolicyVersion).where(PolicyVersion.album_id == album_id)
        .order_by(PolicyVersion.version.desc()).limit(1)
    )


def policy_versions(session: Session, album_id: int) -> list[PolicyVersion]:
    """Every policy version of the album, oldest first."""
    return list(session.scalars(
        sa.select(PolicyVersion).where(PolicyVersion.album_id == album_id).order_by(PolicyVersion.version)
    ))


def add_policy_version(session: Session, album_id: int, policy: dict[str, Any], by: str | None) -> PolicyVersion:
    """A new version, numbered after the newest; the older ones stay as they were."""
    latest = latest_policy_version(session, album_id)
    row = PolicyVersion(album_id=album_id, version=(latest.version + 1) if latest else 1, policy=policy, created_by=by)
    session.add(row)
    session.flush()
    return row


def audit(session: Session, user: str | None, action: str, target: str, detail: dict[str, Any] | None = None) -> None:
    """One line of the audit log: who did what to which target."""
    session.add(AuditEntry(user_name=user, action=action, target=target, detail=detail))


def photo_at(session: Session, album_id: int, path: str) -> Photo | None:
    return session.scalar(sa.select(Photo).where(Photo.album_id == album_id, Photo.relative_path == path))


def live_outputs(session: Session, photo_id: int) -> list[Output]:
    """The photo's outputs that are still in force: its public copy, or the copy held back."""
    return list(session.scalars(
        sa.select(Output).where(Output.photo_id == photo_id, Output.status.in_(("published", "held")))
    ))


def published_count(session: Session, album_id: int) -> int:
    return session.scalar(
        sa.select(sa.func.count()).select_from(Output).join(Photo, Photo.id == Output.photo_id)
        .where(Photo.album_id == album_id, Output.status == "published")
    ) or 0


def policy_version_id(session: Session, album_id: int, version: int) -> int:
    return session.scalar(sa.select(PolicyVersion.id).where(
        PolicyVersion.album_id == album_id, PolicyVersion.version == version))


def photo_paths_under(session: Session, album_id: int, folder: str) -> list[str]:
    """The present photos at or under ``folder`` (a POSIX path in the album)."""
    prefix = folder.rstrip("/") + "/"
    return list(session.scalars(sa.select(Photo.relative_path).where(
        Photo.album_id == album_id, Photo.state != "removed",
        sa.or_(Photo.relative_path == folder, Photo.relative_path.startswith(prefix, autoescape=True)))))
