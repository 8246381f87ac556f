"""Workers on several machines: jobs.sent_at, the workers table, faces.seed as a big integer.

With the celery backend the daemon sends each waiting job to the broker
(Redis) and notes when in ``jobs.sent_at``, so that a message lost with a
Redis restart, or held by a worker that died, is sent again
(``jobs/dispatch.py``). ``workers`` holds each worker's heartbeat and what it
has done, for the panel's jobs and health pages; the daemon's own worker
threads (the local backend) have rows too.

A face's seed is 32 bits unsigned: past PostgreSQL's integer, which refused
the first face recorded there by a worker (SQLite's integer is 64 bits), so
``faces.seed`` becomes a big integer.

Downgrade drops the column and the table, and narrows the seed again.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UTC_DATETIME = sa.DateTime(timezone=True)  # anon_plugin.store.tables.UTCDateTime stores this type


def upgrade() -> None:
    with op.batch_alter_table("faces") as batch:
        batch.alter_column("seed", type_=sa.BigInteger(), existing_type=sa.Integer(), existing_nullable=False)
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("sent_at", UTC_DATETIME, nullable=True))
    op.create_table(
        "workers",
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("host", sa.String(200), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("device", sa.String(32), nullable=False),
        sa.Column("backend", sa.String(16), nullable=False),
        sa.Column("started_at", UTC_DATETIME, nullable=False),
        sa.Column("heartbeat_at", UTC_DATETIME, nullable=False),
        sa.Column("stopped_at", UTC_DATETIME, nullable=True),
        sa.Column("batches", sa.Integer(), nullable=False),
        sa.Column("photos", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_workers")),
    )


def downgrade() -> None:
    op.drop_table("workers")
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("sent_at")
    with op.batch_alter_table("faces") as batch:
        batch.alter_column("seed", type_=sa.Integer(), existing_type=sa.BigInteger(), existing_nullable=False)
