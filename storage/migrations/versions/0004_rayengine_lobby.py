"""lobby entries of the Ray engine's rooms (they survive a room host's restart)

Revision ID: 0004_rayengine
Revises: 0003_features
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import storage.models

revision = "0004_rayengine"
down_revision = "0003_features"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "meet_lobby_entry",
        sa.Column("room", sa.String(length=255), nullable=False),
        sa.Column("participant_id", sa.String(length=255), nullable=False),
        sa.Column("username", sa.Text(), nullable=False),
        sa.Column("color", sa.String(length=32), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("identity", sa.String(length=255), nullable=False),
        sa.Column("expires_at", storage.models.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("room", "participant_id"),
    )
    with op.batch_alter_table("meet_lobby_entry", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_meet_lobby_entry_expires_at"), ["expires_at"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("meet_lobby_entry", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_meet_lobby_entry_expires_at"))
    op.drop_table("meet_lobby_entry")
