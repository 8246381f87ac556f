"""Every query of the store, with ``select()``: callers pass a session and get rows or values back.

Kept in one module so the daemon, the CLI and the admin panel ask the same
questions the same way (and the panel's views hold no SQL).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from .db import rows_changed
from .tables import Album, AuditEntry, Face, Job, Output, Photo, PolicyVersion, User


# The albums the panel and ``albums list`` show: present, or shared with their folder gone (their copies
# stay published until they are unshared).
LISTED = sa.or_(Album.removed_at.is_(None), Album.shared)


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
    """The photo's outputs that are still in force: its public copy, or the copy held back (not an Immich copy
    superseded, still ``published`` until its deletion goes through)."""
    return list(session.scalars(
        sa.select(Output).where(Output.photo_id == photo_id, Output.status.in_(("published", "held")),
                                Output.superseded_by.is_(None))  # a superseded Immich copy not yet deleted
    ))


def live_output_at(session: Session, public_path: str) -> Output | None:
    """The output in force whose public copy is at this path, if any."""
    return session.scalar(sa.select(Output).where(Output.public_path == public_path, Output.status == "published"))


def published_count(session: Session, album_id: int) -> int:
    return session.scalar(
        sa.select(sa.func.count()).select_from(Output).join(Photo, Photo.id == Output.photo_id)
        .where(Photo.album_id == album_id, Output.status == "published")
    ) or 0


def policy_version_id(session: Session, album_id: int, version: int) -> int:
    """The id of the album's policy ``version``, which must exist."""
    return session.execute(sa.select(PolicyVersion.id).where(
        PolicyVersion.album_id == album_id, PolicyVersion.version == version)).scalar_one()


def photo_paths_under(session: Session, album_id: int, folder: str) -> list[str]:
    """The present photos at or under ``folder`` (a POSIX path in the album)."""
    prefix = folder.rstrip("/") + "/"
    return list(session.scalars(sa.select(Photo.relative_path).where(
        Photo.album_id == album_id, Photo.state != "removed",
        sa.or_(Photo.relative_path == folder, Photo.relative_path.startswith(prefix, autoescape=True)))))


# ---------------------------------------------------------------- the admin panel's questions


def user_named(session: Session, name: str) -> User | None:
    return session.scalar(sa.select(User).where(User.name == name))


def user_by_id(session: Session, user_id: int) -> User | None:
    return session.get(User, user_id)


def users(session: Session) -> list[User]:
    """Every panel user, by name."""
    return list(session.scalars(sa.select(User).order_by(User.name)))


def add_user(session: Session, name: str, password_hash: str) -> User:
    row = User(name=name, password_hash=password_hash)
    session.add(row)
    session.flush()
    return row


def remove_user(session: Session, name: str) -> bool:
    """Delete the user (their audit lines keep the name); False when there was none."""
    return rows_changed(session, sa.delete(User).where(User.name == name)) > 0


def present_album(session: Session, album_id: int) -> Album | None:
    """The album with this id unless it is unknown or its folder is gone."""
    return session.scalar(sa.select(Album).where(Album.id == album_id, Album.removed_at.is_(None)))


def listed_album(session: Session, album_id: int) -> Album | None:
    """The album with this id if it is ``LISTED``."""
    return session.scalar(sa.select(Album).where(Album.id == album_id, LISTED))


def photo_in_album(session: Session, album_id: int, photo_id: int) -> Photo | None:
    """The album's present photo with this id; None for another album's photo or a removed one."""
    return session.scalar(sa.select(Photo).where(
        Photo.id == photo_id, Photo.album_id == album_id, Photo.state != "removed"))


def photo_by_id(session: Session, photo_id: int) -> Photo | None:
    return session.get(Photo, photo_id)


def album_by_id(session: Session, album_id: int) -> Album | None:
    return session.get(Album, album_id)


def output_by_id(session: Session, output_id: int) -> Output | None:
    return session.get(Output, output_id)


def faces_of(session: Session, output_id: int) -> list[Face]:
    return list(session.scalars(sa.select(Face).where(Face.output_id == output_id).order_by(Face.index)))


def album_jobs(session: Session, album_id: int) -> dict[str, int]:
    """How many of the album's jobs are in each state."""
    counts = dict(session.execute(
        sa.select(Job.state, sa.func.count()).join(Photo, Photo.id == Job.photo_id)
        .where(Photo.album_id == album_id).group_by(Job.state)).tuples().all())
    return {state: counts.get(state, 0) for state in ("queued", "running", "done", "failed")}


def jobs_in(session: Session, states: tuple[str, ...], limit: int = 100) -> list[tuple[Job, Photo, str]]:
    """Jobs in ``states`` with their photo and album name, newest first."""
    rows = session.execute(
        sa.select(Job, Photo, Album.name).join(Photo, Photo.id == Job.photo_id).join(Album, Album.id == Photo.album_id)
        .where(Job.state.in_(states)).order_by(Job.id.desc()).limit(limit))
    return [(job, photo, name) for job, photo, name in rows]


def job_by_id(session: Session, job_id: int) -> Job | None:
    return session.get(Job, job_id)


def search_photos(session: Session, name: str | None = None, sha256: str | None = None,
                  day: dt.date | None = None, limit: int = 100) -> list[tuple[Photo, str]]:
    """Photos (with their album's name), newest first, whose path contains ``name`` (any case), whose
    original or public copy's sha256 starts with ``sha256``, and that were first seen or published on
    ``day`` (UTC); a criterion left None is not applied."""
    query = sa.select(Photo, Album.name).join(Album, Album.id == Photo.album_id)
    if name:
        query = query.where(Photo.relative_path.icontains(name, autoescape=True))
    if sha256:
        copies = sa.select(Output.photo_id).where(sa.or_(
            Output.source_sha256.startswith(sha256, autoescape=True),
            Output.public_sha256.startswith(sha256, autoescape=True)))
        query = query.where(sa.or_(Photo.sha256.startswith(sha256, autoescape=True), Photo.id.in_(copies)))
    if day:
        start = dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC)
        end = start + dt.timedelta(days=1)
        made = sa.select(Output.photo_id).where(Output.created_at >= start, Output.created_at < end)
        query = query.where(sa.or_(sa.and_(Photo.first_seen >= start, Photo.first_seen < end), Photo.id.in_(made)))
    return [(photo, album) for photo, album in session.execute(query.order_by(Photo.id.desc()).limit(limit))]


def audit_entries(session: Session, limit: int = 100, before: int | None = None) -> list[AuditEntry]:
    """The audit log, newest first; ``before``: only entries older than that id (the next page)."""
    query = sa.select(AuditEntry)
    if before is not None:
        query = query.where(AuditEntry.id < before)
    return list(session.scalars(query.order_by(AuditEntry.id.desc()).limit(limit)))


def published_since(session: Session, since: dt.datetime) -> int:
    """How many public copies were written since ``since`` (those replaced or removed since included)."""
    return session.scalar(sa.select(sa.func.count()).select_from(Output).where(
        Output.created_at >= since, Output.public_sha256.is_not(None))) or 0


def last_job_error(session: Session) -> Job | None:
    """The job that failed most recently (cancelled jobs are not errors)."""
    return session.scalar(sa.select(Job).where(
        Job.last_error.is_not(None), sa.not_(Job.last_error.startswith("cancelled:"))).order_by(
        sa.func.coalesce(Job.finished_at, Job.heartbeat_at, Job.created_at).desc(), Job.id.desc()).limit(1))


def last_photo_problem(session: Session) -> Photo | None:
    """The photo most recently failed or held back, with its reason."""
    return session.scalar(sa.select(Photo).where(Photo.state.in_(("failed", "held"))).order_by(
        Photo.updated_at.desc(), Photo.id.desc()).limit(1))


def listed_albums(session: Session, album_id: int | None = None) -> list[Album]:
    """The ``LISTED`` albums (or the one with ``album_id`` if it is listed), by name."""
    query = sa.select(Album).where(LISTED).order_by(Album.name, Album.root)
    return list(session.scalars(query if album_id is None else query.where(Album.id == album_id)))


def photo_counts(session: Session, album_id: int | None = None) -> dict[int, dict[str, int]]:
    """Per album (or for the one with ``album_id``): how many of its photos are in each state."""
    query = sa.select(Photo.album_id, Photo.state, sa.func.count()).group_by(Photo.album_id, Photo.state)
    query = query if album_id is None else query.where(Photo.album_id == album_id)
    counts: dict[int, dict[str, int]] = {}
    for album, state, count in session.execute(query):
        counts.setdefault(album, {})[state] = count
    return counts


def latest_versions(session: Session, album_id: int | None = None) -> dict[int, int]:
    """Per album that has a policy (or for the one with ``album_id``): its newest policy version."""
    query = sa.select(PolicyVersion.album_id, sa.func.max(PolicyVersion.version)).group_by(PolicyVersion.album_id)
    query = query if album_id is None else query.where(PolicyVersion.album_id == album_id)
    return {album: version for album, version in session.execute(query)}
