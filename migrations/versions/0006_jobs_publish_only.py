"""The queue holds publish jobs only: jobs.kind goes.

The kinds ``remove`` and ``move`` were in the table from the start, but
nothing ever queued them: a public copy is removed or moved by the
transaction that records why (an original deleted or moved, an album
unshared), under the album's lock, so that withdrawing a copy never waits
for a worker (docs/store.md, "Who writes the public root"). A column with one
possible value says nothing, so it goes with its CHECK.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.drop_constraint("kind", type_="check")
        batch.drop_column("kind")


def downgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("kind", sa.String(16), nullable=False, server_default="publish"))
        batch.create_check_constraint("kind", "kind IN ('publish', 'remove', 'move')")
