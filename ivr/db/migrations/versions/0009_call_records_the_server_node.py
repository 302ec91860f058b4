"""call records: the server node that answered the call

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-04 09:00:00.000000
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
    # Records written before nodes existed came from the one machine: "" (settings.node_name's default).
    with op.batch_alter_table("ivr_call", schema=None) as batch_op:
        batch_op.add_column(sa.Column("node", sa.String(length=32), server_default="", nullable=False))


def downgrade() -> None:
    with op.batch_alter_table("ivr_call", schema=None) as batch_op:
        batch_op.drop_column("node")
