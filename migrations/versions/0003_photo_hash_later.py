"""A photo's sha256 is known once a worker has read it: photos.sha256 becomes nullable.

Sharing an album with thousands of photos queues them at once; hashing each
one then would read the whole album before the first copy is published.
The worker hashes the bytes it decodes anyway.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("photos") as batch:
        batch.alter_column("sha256", existing_type=sa.String(length=64), nullable=True)


def downgrade() -> None:
    op.execute("UPDATE photos SET sha256 = '' WHERE sha256 IS NULL")
    with op.batch_alter_table("photos") as batch:
        batch.alter_column("sha256", existing_type=sa.String(length=64), nullable=False)
