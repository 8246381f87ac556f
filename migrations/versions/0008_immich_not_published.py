"""What an Immich album does not publish: albums.not_published.

A shared folder album's files that get no public copy (videos, documents) are
found by walking its folder when asked; an Immich album's cannot be, without
calling Immich from every listing. So each poll that reads a shared Immich
album's assets records them here: a JSON list of ``{"path": asset id,
"reason": ...}``. NULL for folder albums and for Immich albums never read.

Downgrade drops the column (the next poll after an upgrade writes it again).

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("albums") as batch:
        batch.add_column(sa.Column("not_published", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("albums") as batch:
        batch.drop_column("not_published")
