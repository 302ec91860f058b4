"""callbacks: at most one open request per number and queue, enforced by the database

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-04 10:00:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OPEN = "status IN ('pending', 'dialing')"


def upgrade() -> None:
    # Two bookings that raced before this index existed: the older stays, the newer is closed (never
    # placed) so that the index can be built.
    op.execute(
        sa.text(
            "UPDATE callback_request SET status = 'failed', last_result = 'duplicate' "
            f"WHERE {OPEN} AND id NOT IN (SELECT MIN(id) FROM callback_request WHERE {OPEN} "
            "GROUP BY number, queue)"
        )
    )
    op.create_index(
        "uq_callback_request_open",
        "callback_request",
        ["number", "queue"],
        unique=True,
        sqlite_where=sa.text(OPEN),
        postgresql_where=sa.text(OPEN),
    )


def downgrade() -> None:
    op.drop_index("uq_callback_request_open", table_name="callback_request")
