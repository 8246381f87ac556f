"""Albums from Immich beside folder albums: albums.source, external_id, external_version; photos.checksum.

An Immich album is a row of ``albums`` with ``source`` 'immich', its Immich
id in ``external_id`` (unique per source), its address in Immich as ``root``
and its Immich name as ``name``; ``external_version`` keeps what Immich said
of it (asset count, times) when its assets were last read, so that polling
skips an unchanged album. A photo of an Immich album is keyed by its asset id
(in ``relative_path``, unique per album as before) and its ``checksum``
(Immich's SHA-1, base64) tells a change; ``size`` and ``mtime``, which tell a
change of a file in a folder, become nullable (None for an Immich asset).

Downgrade drops the new columns; an Immich photo's size and mtime become 0,
and its album, whose "folder" does not exist, is marked removed by the older
version's next rescan.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("albums") as batch:
        batch.add_column(sa.Column("source", sa.String(16), nullable=False, server_default="folder"))
        batch.add_column(sa.Column("external_id", sa.Text(), nullable=True))
        batch.add_column(sa.Column("external_version", sa.Text(), nullable=True))
        batch.create_check_constraint("source", "source IN ('folder', 'immich')")
        batch.create_unique_constraint("uq_albums_source_external_id", ["source", "external_id"])
    with op.batch_alter_table("photos") as batch:
        batch.add_column(sa.Column("checksum", sa.String(64), nullable=True))
        batch.alter_column("size", existing_type=sa.BigInteger(), nullable=True)
        batch.alter_column("mtime", existing_type=sa.Float(), nullable=True)


def downgrade() -> None:
    op.execute("UPDATE photos SET size = 0 WHERE size IS NULL")
    op.execute("UPDATE photos SET mtime = 0 WHERE mtime IS NULL")
    with op.batch_alter_table("photos") as batch:
        batch.alter_column("mtime", existing_type=sa.Float(), nullable=False)
        batch.alter_column("size", existing_type=sa.BigInteger(), nullable=False)
        batch.drop_column("checksum")
    with op.batch_alter_table("albums") as batch:
        batch.drop_constraint("uq_albums_source_external_id", type_="unique")
        batch.drop_constraint("source", type_="check")
        batch.drop_column("external_version")
        batch.drop_column("external_id")
        batch.drop_column("source")
