"""Each face records the steps it went through: the fill, then the verification ladder (faces.steps).

Verification (docs/verification.md) checks every anonymized face and, while
it is still too close to its original, redraws it, enlarges its mask, then
covers it. Provenance keeps which of those steps ran; the final scores go to
the existing faces.similarity. Older rows keep steps NULL: nobody recorded them.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-28
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("faces") as batch:
        batch.add_column(sa.Column("steps", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("faces") as batch:
        batch.drop_column("steps")
