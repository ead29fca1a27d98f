"""server-side login sessions

Revision ID: 0003_auth
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import storage.models

revision = "0003_auth"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "meet_session",
        sa.Column("key_hash", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("created_at", storage.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("expires_at", storage.models.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["user_id"], ["meet_user.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("key_hash"),
    )
    with op.batch_alter_table("meet_session", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_meet_session_user_id"), ["user_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_meet_session_expires_at"), ["expires_at"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("meet_session", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_meet_session_expires_at"))
        batch_op.drop_index(batch_op.f("ix_meet_session_user_id"))
    op.drop_table("meet_session")
