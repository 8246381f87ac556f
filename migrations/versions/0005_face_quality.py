"""Each face records its fill's own scores (faces.quality): the stylegan fill's realism of the candidate kept.

The face prior's fill (docs/face-prior.md) draws candidates and keeps the most
realistic one that passes verification; its scores (colour step across the
hole's border, detail ratio, landmark error, SFace cosine, the candidate's
index) or the reason it fell back to another method go to provenance with the
face. Other methods and older rows keep quality NULL.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-04
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("faces") as batch:
        batch.add_column(sa.Column("quality", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("faces") as batch:
        batch.drop_column("quality")
