"""mailings: the holder's consent by SMS and by e-mail

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02 17:10:43.215028
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
    # Plain ALTER TABLE (no batch copy): the account table is the target of many foreign keys. The
    # default is false() so that it renders for SQLite and PostgreSQL alike.
    op.add_column(
        "account", sa.Column("mailing_sms", sa.Boolean(), server_default=sa.false(), nullable=False)
    )
    op.add_column(
        "account", sa.Column("mailing_email", sa.Boolean(), server_default=sa.false(), nullable=False)
    )


def downgrade() -> None:
    op.drop_column("account", "mailing_email")
    op.drop_column("account", "mailing_sms")
