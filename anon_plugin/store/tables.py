"""The database tables, as SQLAlchemy 2.0 typed declarative classes.

One ``Base`` whose metadata carries a naming convention, so every index and
constraint has a stable name that Alembic can find again (SQLite's batch
mode recreates tables and needs names to drop or alter constraints).

Portable on purpose: SQLite (the default) and PostgreSQL read the same
tables. JSON columns are ``sa.JSON``; states are short strings checked by a
named CHECK constraint rather than a database ENUM type (an ENUM needs its
own migrations on PostgreSQL and is emulated on SQLite anyway); times are
UTC, stored through ``UTCDateTime`` so they come back timezone-aware on
both engines.

Provenance is never deleted: photos, outputs and policy versions change
state (``removed``, ``superseded``) instead of disappearing. Rows refer to
each other by id only; queries join with ``select()`` in the store's query
module rather than through ORM relationships.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from ..errors import StoreError

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

PHOTO_STATES = ("pending", "published", "held", "failed", "removed")
JOB_STATES = ("queued", "running", "done", "failed")
OUTPUT_STATUSES = ("published", "held", "removed", "superseded")
ALBUM_SOURCES = ("folder", "immich")


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class UTCDateTime(sa.TypeDecorator[dt.datetime]):
    """``DateTime(timezone=True)`` that stores UTC and always returns aware UTC datetimes.

    SQLite has no time zone type: SQLAlchemy writes the wall-clock digits
    and drops the offset, so an aware non-UTC value would be stored wrong
    and read back naive. Converting to UTC on the way in and attaching UTC
    on the way out makes both engines behave like PostgreSQL's timestamptz.
    Naive datetimes are refused: their zone is a guess.
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: sa.Dialect) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"naive datetime {value.isoformat()} given to a UTC column; use an aware datetime")
        return value.astimezone(dt.UTC)

    def process_result_value(self, value: dt.datetime | None, dialect: sa.Dialect) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=dt.UTC)
        return value.astimezone(dt.UTC)


def one_of(column: str, values: tuple[str, ...]) -> sa.CheckConstraint:
    """A CHECK that ``column`` holds one of ``values``; named ``ck_<table>_<column>`` by the convention."""
    allowed = ", ".join(f"'{value}'" for value in values)
    return sa.CheckConstraint(f"{column} IN ({allowed})", name=column)


class Base(DeclarativeBase):
    metadata = sa.MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {dt.datetime: UTCDateTime()}


class Album(Base):
    """An album, from a ``source``: a first-level folder of a library root (``root``), or an Immich album
    (``external_id`` its id, ``root`` its address in Immich, ``name`` its name there). ``shared`` albums get
    public copies. ``external_version``: what the source said of the album when its assets were last read
    (an Immich album's asset count and times), so that polling skips an unchanged one. ``not_published``: what
    the last reading of an Immich album found that gets no public copy (videos), as a list of ``{"path": asset
    id, "reason": ...}``; None for folder albums (their folder is walked when asked). ``mirror_album_id`` and
    ``mirror_link_id``: an Immich album's album on the public Immich user, where its copies go, and that album's
    one shared link (None until its first copy, the link None again once unshared)."""

    __tablename__ = "albums"
    __table_args__ = (sa.UniqueConstraint("root", "name"), sa.UniqueConstraint("source", "external_id"),
                      one_of("source", ALBUM_SOURCES))

    id: Mapped[int] = mapped_column(primary_key=True)
    source: Mapped[str] = mapped_column(sa.String(16), default="folder", server_default="folder")
    external_id: Mapped[str | None] = mapped_column(sa.Text)
    external_version: Mapped[str | None] = mapped_column(sa.Text)
    not_published: Mapped[list[dict[str, str]] | None] = mapped_column(sa.JSON)
    mirror_album_id: Mapped[str | None] = mapped_column(sa.Text)
    mirror_link_id: Mapped[str | None] = mapped_column(sa.Text)
    root: Mapped[str] = mapped_column(sa.Text)
    name: Mapped[str] = mapped_column(sa.Text)
    shared: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    removed_at: Mapped[dt.datetime | None]


class PolicyVersion(Base):
    """One version of an album's policy. Immutable: a change is a new row with the next
    ``version``, so every output can name the exact policy it was made under. The ORM
    refuses updates (see ``_refuse_policy_update``)."""

    __tablename__ = "policy_versions"
    __table_args__ = (sa.UniqueConstraint("album_id", "version"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    album_id: Mapped[int] = mapped_column(sa.ForeignKey("albums.id"))
    version: Mapped[int]
    policy: Mapped[dict[str, Any]] = mapped_column(sa.JSON)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    created_by: Mapped[str | None] = mapped_column(sa.String(150))


class Photo(Base):
    """An original (never written by us) and where it stands. In a folder album ``relative_path`` is its
    path in the folder, ``size`` and ``mtime`` tell a change; in an Immich album ``relative_path`` is the
    asset's id and ``checksum`` (Immich's SHA-1, base64) tells a change, ``size`` and ``mtime`` are None."""

    __tablename__ = "photos"
    __table_args__ = (sa.UniqueConstraint("album_id", "relative_path"), one_of("state", PHOTO_STATES))

    id: Mapped[int] = mapped_column(primary_key=True)
    album_id: Mapped[int] = mapped_column(sa.ForeignKey("albums.id"))
    relative_path: Mapped[str] = mapped_column(sa.Text)
    sha256: Mapped[str | None] = mapped_column(sa.String(64), index=True)  # set when a worker reads it
    checksum: Mapped[str | None] = mapped_column(sa.String(64))
    size: Mapped[int | None] = mapped_column(sa.BigInteger)
    mtime: Mapped[float | None]
    state: Mapped[str] = mapped_column(sa.String(16), default="pending", index=True)
    reason: Mapped[str | None] = mapped_column(sa.Text)
    first_seen: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class Job(Base):
    """A photo to publish, for a worker, leased rather than taken: a worker sets ``claimed_by`` and
    ``claimed_until`` and renews them with ``heartbeat_at``; a lease that runs out makes the
    job claimable again. Rows are kept until finished (a crash never loses one)."""

    __tablename__ = "jobs"
    __table_args__ = (sa.Index(None, "state", "not_before"), one_of("state", JOB_STATES))

    id: Mapped[int] = mapped_column(primary_key=True)
    photo_id: Mapped[int] = mapped_column(sa.ForeignKey("photos.id"), index=True)
    state: Mapped[str] = mapped_column(sa.String(16), default="queued")
    claimed_by: Mapped[str | None] = mapped_column(sa.String(200))
    claimed_until: Mapped[dt.datetime | None]
    heartbeat_at: Mapped[dt.datetime | None]
    attempts: Mapped[int] = mapped_column(default=0)
    not_before: Mapped[dt.datetime | None]
    sent_at: Mapped[dt.datetime | None]  # the celery backend: when it was last sent to the broker
    last_error: Mapped[str | None] = mapped_column(sa.Text)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[dt.datetime | None]


class Output(Base):
    """A public copy (or a held one: ``public_sha256`` is then None) and its provenance: which
    original, which policy version, which engine and model files, where and how long it ran.
    Republishing marks the old row ``superseded`` and points ``superseded_by`` at the new one."""

    __tablename__ = "outputs"
    __table_args__ = (sa.Index(None, "source_sha256", "policy_version_id"), one_of("status", OUTPUT_STATUSES))

    id: Mapped[int] = mapped_column(primary_key=True)
    photo_id: Mapped[int] = mapped_column(sa.ForeignKey("photos.id"), index=True)
    source_sha256: Mapped[str] = mapped_column(sa.String(64))
    public_path: Mapped[str] = mapped_column(sa.Text)
    public_sha256: Mapped[str | None] = mapped_column(sa.String(64))
    policy_version_id: Mapped[int] = mapped_column(sa.ForeignKey("policy_versions.id"), index=True)
    engine_version: Mapped[str] = mapped_column(sa.String(64))
    model_sha256s: Mapped[dict[str, str]] = mapped_column(sa.JSON)
    device: Mapped[str] = mapped_column(sa.String(64))
    seconds: Mapped[float]
    removed_tags: Mapped[list[str]] = mapped_column(sa.JSON)
    notes: Mapped[list[str]] = mapped_column(sa.JSON)
    status: Mapped[str] = mapped_column(sa.String(16))
    superseded_by: Mapped[int | None] = mapped_column(sa.ForeignKey("outputs.id"))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class Face(Base):
    """One detected face of an output and what was done to it (``covered``: pixelated after
    a stage failed or verification gave up, with ``error`` saying why). ``steps``: the fill,
    then the verification ladder's steps that ran (None for rows older than 0004);
    ``similarity``: the final SFace and FaceNet cosines to the original when verified;
    ``quality``: the stylegan fill's scores of the candidate it kept, or why it fell back (None
    for other methods and for rows older than 0005)."""

    __tablename__ = "faces"
    __table_args__ = (sa.UniqueConstraint("output_id", "index"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    output_id: Mapped[int] = mapped_column(sa.ForeignKey("outputs.id"))
    index: Mapped[int]
    box: Mapped[list[float]] = mapped_column(sa.JSON)
    score: Mapped[float]
    threshold: Mapped[float | None]
    mask_area: Mapped[float | None]
    method: Mapped[str] = mapped_column(sa.String(32))
    seed: Mapped[int] = mapped_column(sa.BigInteger)  # 32 bits unsigned: past PostgreSQL's integer
    similarity: Mapped[dict[str, float] | None] = mapped_column(sa.JSON)
    steps: Mapped[list[str] | None] = mapped_column(sa.JSON)
    quality: Mapped[dict[str, Any] | None] = mapped_column(sa.JSON)
    covered: Mapped[bool]
    error: Mapped[str | None] = mapped_column(sa.Text)


class WorkerRow(Base):
    """A worker as it says of itself: a thread of the daemon (the local backend) or an ``anon-plugin worker``
    process (celery), with its last heartbeat and what it has done since it started. Kept after it stops
    (``stopped_at``), so the panel shows a worker that went away."""

    __tablename__ = "workers"

    name: Mapped[str] = mapped_column(sa.String(200), primary_key=True)  # host:pid:index, as jobs.claimed_by
    host: Mapped[str] = mapped_column(sa.String(200))
    pid: Mapped[int]
    device: Mapped[str] = mapped_column(sa.String(32))
    backend: Mapped[str] = mapped_column(sa.String(16))
    started_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    heartbeat_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    stopped_at: Mapped[dt.datetime | None]
    batches: Mapped[int] = mapped_column(default=0)
    photos: Mapped[int] = mapped_column(default=0)


class User(Base):
    """An admin-panel user; ``password_hash`` is a werkzeug scrypt hash, never the password."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(150), unique=True)
    password_hash: Mapped[str] = mapped_column(sa.Text)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    last_login: Mapped[dt.datetime | None]


class AuditEntry(Base):
    """Who did what to which target, kept by name (not a foreign key) so it outlives the user."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[dt.datetime] = mapped_column(default=utcnow, index=True)
    user_name: Mapped[str | None] = mapped_column(sa.String(150))
    action: Mapped[str] = mapped_column(sa.String(64))
    target: Mapped[str] = mapped_column(sa.Text)
    detail: Mapped[dict[str, Any] | None] = mapped_column(sa.JSON)


@event.listens_for(PolicyVersion, "before_update")
def _refuse_policy_update(mapper: Any, connection: sa.Connection, target: PolicyVersion) -> None:
    raise StoreError(f"policy version {target.version} of album {target.album_id} is immutable; add a new version")
