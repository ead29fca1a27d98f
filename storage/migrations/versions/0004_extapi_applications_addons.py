"""external API applications and their domains; add-on sessions

Revision ID: 0004_extapi
Revises: 0003_features
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import storage.models

revision = "0004_extapi"
down_revision = "0003_features"
branch_labels = None
depends_on = None


def _timestamps() -> list[sa.Column[object]]:
    return [
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("created_at", storage.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", storage.models.UTCDateTime(timezone=True), nullable=False),
    ]


def upgrade() -> None:
    op.create_table(
        "meet_application",
        *_timestamps(),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("is_active", sa.Boolean(), nullable=False),
        sa.Column("client_id", sa.String(length=100), nullable=False),
        sa.Column("client_secret", sa.String(length=255), nullable=False),
        sa.Column("scopes", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("client_id"),
    )
    op.create_table(
        "meet_application_domain",
        *_timestamps(),
        sa.Column("domain", sa.String(length=253), nullable=False),
        sa.Column("application_id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(["application_id"], ["meet_application.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("meet_application_domain") as batch:
        batch.create_index(
            "ix_meet_application_domain_application_id", ["application_id"], unique=False
        )
        batch.create_index("application_domain_unique", ["application_id", "domain"], unique=True)
    op.create_table(
        "meet_addon_session",
        sa.Column("session_hash", sa.String(length=64), nullable=False),
        sa.Column("transit_hash", sa.String(length=64), nullable=False),
        sa.Column("state", sa.String(length=20), nullable=False),
        sa.Column("transit_consumed", sa.Boolean(), nullable=False),
        sa.Column("transit_expires_at", storage.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("expires_at", storage.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("access_token", sa.Text(), nullable=True),
        sa.Column("token_type", sa.String(length=20), nullable=True),
        sa.Column("token_expires_in", sa.Integer(), nullable=True),
        sa.Column("scope", sa.String(length=255), nullable=True),
        sa.Column("created_at", storage.models.UTCDateTime(timezone=True), nullable=False),
        sa.CheckConstraint("state IN ('pending', 'authenticated')", name="ck_addon_session_state"),
        sa.CheckConstraint(
            "state = 'pending' OR (transit_consumed AND access_token IS NOT NULL)",
            name="ck_addon_session_authenticated",
        ),
        sa.PrimaryKeyConstraint("session_hash"),
        sa.UniqueConstraint("transit_hash"),
    )
    with op.batch_alter_table("meet_addon_session") as batch:
        batch.create_index("ix_meet_addon_session_expires_at", ["expires_at"], unique=False)


def downgrade() -> None:
    op.drop_table("meet_addon_session")
    op.drop_table("meet_application_domain")
    op.drop_table("meet_application")
