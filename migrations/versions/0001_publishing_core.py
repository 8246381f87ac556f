"""The publishing core: albums, their policy versions, photos, the job queue, public copies and their faces.

Revision ID: 0001
Revises:
Create Date: 2026-11-28
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UTC_DATETIME = sa.DateTime(timezone=True)  # anon_plugin.store.tables.UTCDateTime stores this type


def upgrade() -> None:
    op.create_table(
        "albums",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("root", sa.Text(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("shared", sa.Boolean(), nullable=False),
        sa.Column("created_at", UTC_DATETIME, nullable=False),
        sa.Column("removed_at", UTC_DATETIME, nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_albums")),
        sa.UniqueConstraint("root", "name", name=op.f("uq_albums_root_name")),
    )
    op.create_table(
        "policy_versions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("album_id", sa.Integer(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("policy", sa.JSON(), nullable=False),
        sa.Column("created_at", UTC_DATETIME, nullable=False),
        sa.Column("created_by", sa.String(length=150), nullable=True),
        sa.ForeignKeyConstraint(["album_id"], ["albums.id"], name=op.f("fk_policy_versions_album_id_albums")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_policy_versions")),
        sa.UniqueConstraint("album_id", "version", name=op.f("uq_policy_versions_album_id_version")),
    )
    op.create_table(
        "photos",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("album_id", sa.Integer(), nullable=False),
        sa.Column("relative_path", sa.Text(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("mtime", sa.Float(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("first_seen", UTC_DATETIME, nullable=False),
        sa.Column("updated_at", UTC_DATETIME, nullable=False),
        sa.CheckConstraint("state IN ('pending', 'published', 'held', 'failed', 'removed')",
                           name=op.f("ck_photos_state")),
        sa.ForeignKeyConstraint(["album_id"], ["albums.id"], name=op.f("fk_photos_album_id_albums")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_photos")),
        sa.UniqueConstraint("album_id", "relative_path", name=op.f("uq_photos_album_id_relative_path")),
    )
    op.create_index(op.f("ix_photos_sha256"), "photos", ["sha256"])
    op.create_index(op.f("ix_photos_state"), "photos", ["state"])
    op.create_table(
        "jobs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("photo_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("claimed_by", sa.String(length=200), nullable=True),
        sa.Column("claimed_until", UTC_DATETIME, nullable=True),
        sa.Column("heartbeat_at", UTC_DATETIME, nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("not_before", UTC_DATETIME, nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", UTC_DATETIME, nullable=False),
        sa.Column("finished_at", UTC_DATETIME, nullable=True),
        sa.CheckConstraint("kind IN ('publish', 'remove', 'move')", name=op.f("ck_jobs_kind")),
        sa.CheckConstraint("state IN ('queued', 'running', 'done', 'failed')", name=op.f("ck_jobs_state")),
        sa.ForeignKeyConstraint(["photo_id"], ["photos.id"], name=op.f("fk_jobs_photo_id_photos")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_jobs")),
    )
    op.create_index(op.f("ix_jobs_photo_id"), "jobs", ["photo_id"])
    op.create_index(op.f("ix_jobs_state_not_before"), "jobs", ["state", "not_before"])
    op.create_table(
        "outputs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("photo_id", sa.Integer(), nullable=False),
        sa.Column("source_sha256", sa.String(length=64), nullable=False),
        sa.Column("public_path", sa.Text(), nullable=False),
        sa.Column("public_sha256", sa.String(length=64), nullable=True),
        sa.Column("policy_version_id", sa.Integer(), nullable=False),
        sa.Column("engine_version", sa.String(length=64), nullable=False),
        sa.Column("model_sha256s", sa.JSON(), nullable=False),
        sa.Column("device", sa.String(length=64), nullable=False),
        sa.Column("seconds", sa.Float(), nullable=False),
        sa.Column("removed_tags", sa.JSON(), nullable=False),
        sa.Column("notes", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("superseded_by", sa.Integer(), nullable=True),
        sa.Column("created_at", UTC_DATETIME, nullable=False),
        sa.CheckConstraint("status IN ('published', 'held', 'removed', 'superseded')",
                           name=op.f("ck_outputs_status")),
        sa.ForeignKeyConstraint(["photo_id"], ["photos.id"], name=op.f("fk_outputs_photo_id_photos")),
        sa.ForeignKeyConstraint(["policy_version_id"], ["policy_versions.id"],
                                name=op.f("fk_outputs_policy_version_id_policy_versions")),
        sa.ForeignKeyConstraint(["superseded_by"], ["outputs.id"], name=op.f("fk_outputs_superseded_by_outputs")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outputs")),
    )
    op.create_index(op.f("ix_outputs_photo_id"), "outputs", ["photo_id"])
    op.create_index(op.f("ix_outputs_policy_version_id"), "outputs", ["policy_version_id"])
    op.create_index(op.f("ix_outputs_source_sha256_policy_version_id"), "outputs",
                    ["source_sha256", "policy_version_id"])
    op.create_table(
        "faces",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("output_id", sa.Integer(), nullable=False),
        sa.Column("index", sa.Integer(), nullable=False),
        sa.Column("box", sa.JSON(), nullable=False),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("threshold", sa.Float(), nullable=True),
        sa.Column("mask_area", sa.Float(), nullable=True),
        sa.Column("method", sa.String(length=32), nullable=False),
        sa.Column("seed", sa.Integer(), nullable=False),
        sa.Column("similarity", sa.JSON(), nullable=True),
        sa.Column("covered", sa.Boolean(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(["output_id"], ["outputs.id"], name=op.f("fk_faces_output_id_outputs")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_faces")),
        sa.UniqueConstraint("output_id", "index", name=op.f("uq_faces_output_id_index")),
    )


def downgrade() -> None:
    op.drop_table("faces")
    op.drop_index(op.f("ix_outputs_source_sha256_policy_version_id"), table_name="outputs")
    op.drop_index(op.f("ix_outputs_policy_version_id"), table_name="outputs")
    op.drop_index(op.f("ix_outputs_photo_id"), table_name="outputs")
    op.drop_table("outputs")
    op.drop_index(op.f("ix_jobs_state_not_before"), table_name="jobs")
    op.drop_index(op.f("ix_jobs_photo_id"), table_name="jobs")
    op.drop_table("jobs")
    op.drop_index(op.f("ix_photos_state"), table_name="photos")
    op.drop_index(op.f("ix_photos_sha256"), table_name="photos")
    op.drop_table("photos")
    op.drop_table("policy_versions")
    op.drop_table("albums")
