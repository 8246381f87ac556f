"""The public side of an Immich album: albums.mirror_album_id and albums.mirror_link_id.

The anonymized copies of a shared Immich album go to an album of the public
Immich user, its *mirror* (created once, named as the source album), shared
by one link that shows no metadata. Their Immich ids are kept on the source
album's row, so that the mirror is made once and the link deleted when the
album is unshared. A public copy itself is named by its output's
``public_path``, ``immich:<asset id>``: no column for it.

Downgrade drops both columns (the mirror albums and links stay in Immich).

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-08
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("albums") as batch:
        batch.add_column(sa.Column("mirror_album_id", sa.Text(), nullable=True))
        batch.add_column(sa.Column("mirror_link_id", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("albums") as batch:
        batch.drop_column("mirror_link_id")
        batch.drop_column("mirror_album_id")
