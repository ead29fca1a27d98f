"""initial schema

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import storage.models

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "meet_room",
        sa.Column("name", sa.String(length=500), nullable=False),
        sa.Column("slug", sa.String(length=100), nullable=True),
        sa.Column("access_level", sa.String(length=50), nullable=False),
        sa.Column("configuration", sa.JSON(), nullable=False),
        sa.Column("pin_code", sa.Text(), nullable=True),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("created_at", storage.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", storage.models.UTCDateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "access_level IN ('public', 'trusted', 'restricted')", name="ck_room_access"
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("pin_code"),
        sa.UniqueConstraint("slug"),
    )
    op.create_table(
        "meet_user",
        sa.Column("sub", sa.String(length=255), nullable=True),
        sa.Column("email", sa.String(length=254), nullable=True),
        sa.Column("admin_email", sa.String(length=254), nullable=True),
        sa.Column("full_name", sa.String(length=100), nullable=True),
        sa.Column("short_name", sa.String(length=100), nullable=True),
        sa.Column("language", sa.String(length=10), nullable=False),
        sa.Column("timezone", sa.String(length=63), nullable=False),
        sa.Column("default_room_access_level", sa.String(length=50), nullable=True),
        sa.Column("default_room_configuration", sa.JSON(), nullable=False),
        sa.Column("is_device", sa.Boolean(), nullable=False),
        sa.Column("is_staff", sa.Boolean(), nullable=False),
        sa.Column("is_superuser", sa.Boolean(), nullable=False),
        sa.Column("is_active", sa.Boolean(), nullable=False),
        sa.Column("password", sa.String(length=128), nullable=True),
        sa.Column("last_login", storage.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("created_at", storage.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", storage.models.UTCDateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "default_room_access_level IS NULL OR default_room_access_level = '' OR default_room_access_level IN ('public', 'trusted', 'restricted')",
            name="ck_user_default_room_access_level",
        ),
        sa.CheckConstraint(
            "language IN ('en-us', 'fr-fr', 'nl-nl', 'de-de')", name="ck_user_language"
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("admin_email"),
        sa.UniqueConstraint("sub"),
    )
    op.create_index(
        "unique_email_when_sub_is_null",
        "meet_user",
        [sa.text("lower(email)")],
        unique=True,
        sqlite_where=sa.text("sub IS NULL"),
        postgresql_where=sa.text("sub IS NULL"),
    )
    op.create_index("ix_user_email_lower", "meet_user", [sa.text("lower(email)")])
    op.create_table(
        "meet_recording",
        sa.Column("room_id", sa.Uuid(), nullable=False),
        sa.Column("status", sa.String(length=50), nullable=False),
        sa.Column("worker_id", sa.String(length=255), nullable=True),
        sa.Column("mode", sa.String(length=20), nullable=False),
        sa.Column("options", sa.JSON(), nullable=False),
        sa.Column("external_process_id", sa.String(length=255), nullable=True),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("created_at", storage.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", storage.models.UTCDateTime(timezone=True), nullable=False),
        sa.CheckConstraint("mode IN ('screen_recording', 'transcript')", name="ck_recording_mode"),
        sa.CheckConstraint(
            "status IN ('initiated', 'active', 'stopped', 'saved', 'aborted', 'failed_to_start', 'failed_to_stop', 'notification_succeeded', 'external_process_successful', 'external_process_failed')",
            name="ck_recording_status",
        ),
        sa.ForeignKeyConstraint(["room_id"], ["meet_room.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("external_process_id"),
    )
    with op.batch_alter_table("meet_recording", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_meet_recording_room_id"), ["room_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_meet_recording_worker_id"), ["worker_id"], unique=False
        )
        batch_op.create_index(
            "unique_initiated_or_active_recording_per_room",
            ["room_id"],
            unique=True,
            sqlite_where=sa.text("status IN ('initiated', 'active')"),
            postgresql_where=sa.text("status IN ('initiated', 'active')"),
        )

    op.create_table(
        "meet_resource_access",
        sa.Column("resource_id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("role", sa.String(length=20), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("created_at", storage.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", storage.models.UTCDateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "role IN ('member', 'administrator', 'owner')", name="ck_resource_access_role"
        ),
        sa.ForeignKeyConstraint(["resource_id"], ["meet_room.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["user_id"], ["meet_user.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("meet_resource_access", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_meet_resource_access_resource_id"), ["resource_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_meet_resource_access_user_id"), ["user_id"], unique=False
        )
        batch_op.create_index(
            "resource_access_unique_user_resource", ["user_id", "resource_id"], unique=True
        )

    op.create_table(
        "meet_recording_access",
        sa.Column("recording_id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=True),
        sa.Column("team", sa.String(length=100), nullable=False),
        sa.Column("role", sa.String(length=20), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("created_at", storage.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", storage.models.UTCDateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "(user_id IS NOT NULL AND team = '') OR (user_id IS NULL AND team != '')",
            name="check_either_user_or_team",
        ),
        sa.CheckConstraint(
            "role IN ('member', 'administrator', 'owner')", name="ck_recording_access_role"
        ),
        sa.ForeignKeyConstraint(["recording_id"], ["meet_recording.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["user_id"], ["meet_user.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("meet_recording_access", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_meet_recording_access_recording_id"), ["recording_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_meet_recording_access_user_id"), ["user_id"], unique=False
        )
        batch_op.create_index(
            "recording_access_unique_team_recording",
            ["team", "recording_id"],
            unique=True,
            sqlite_where=sa.text("team != ''"),
            postgresql_where=sa.text("team != ''"),
        )
        batch_op.create_index(
            "recording_access_unique_user_recording",
            ["user_id", "recording_id"],
            unique=True,
            sqlite_where=sa.text("user_id IS NOT NULL"),
            postgresql_where=sa.text("user_id IS NOT NULL"),
        )


def downgrade() -> None:
    with op.batch_alter_table("meet_recording_access", schema=None) as batch_op:
        batch_op.drop_index(
            "recording_access_unique_user_recording",
            sqlite_where=sa.text("user_id IS NOT NULL"),
            postgresql_where=sa.text("user_id IS NOT NULL"),
        )
        batch_op.drop_index(
            "recording_access_unique_team_recording",
            sqlite_where=sa.text("team != ''"),
            postgresql_where=sa.text("team != ''"),
        )
        batch_op.drop_index(batch_op.f("ix_meet_recording_access_user_id"))
        batch_op.drop_index(batch_op.f("ix_meet_recording_access_recording_id"))

    op.drop_table("meet_recording_access")
    with op.batch_alter_table("meet_resource_access", schema=None) as batch_op:
        batch_op.drop_index("resource_access_unique_user_resource")
        batch_op.drop_index(batch_op.f("ix_meet_resource_access_user_id"))
        batch_op.drop_index(batch_op.f("ix_meet_resource_access_resource_id"))

    op.drop_table("meet_resource_access")
    with op.batch_alter_table("meet_recording", schema=None) as batch_op:
        batch_op.drop_index(
            "unique_initiated_or_active_recording_per_room",
            sqlite_where=sa.text("status IN ('initiated', 'active')"),
            postgresql_where=sa.text("status IN ('initiated', 'active')"),
        )
        batch_op.drop_index(batch_op.f("ix_meet_recording_worker_id"))
        batch_op.drop_index(batch_op.f("ix_meet_recording_room_id"))

    op.drop_table("meet_recording")
    op.drop_index("ix_user_email_lower", table_name="meet_user")
    op.drop_index("unique_email_when_sub_is_null", table_name="meet_user")
    op.drop_table("meet_user")
    op.drop_table("meet_room")
