"""file: user uploads (background images)

Revision ID: 0004_files
Revises: 0004_extapi
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from storage.models import UTCDateTime

revision = "0004_files"
down_revision = "0004_extapi"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "meet_file",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.Column("type", sa.String(length=25), nullable=False),
        sa.Column("title", sa.String(length=255), nullable=False),
        sa.Column(
            "creator_id",
            sa.Uuid(),
            sa.ForeignKey("meet_user.id", ondelete="RESTRICT"),
            nullable=True,
        ),
        sa.Column("deleted_at", UTCDateTime(), nullable=True),
        sa.Column("hard_deleted_at", UTCDateTime(), nullable=True),
        sa.Column("filename", sa.String(length=255), nullable=False),
        sa.Column("upload_state", sa.String(length=25), nullable=False),
        sa.Column("mimetype", sa.String(length=255), nullable=True),
        sa.Column("size", sa.BigInteger(), nullable=True),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("malware_detection_info", sa.JSON(), nullable=True),
        sa.CheckConstraint("type IN ('background_image')", name="ck_file_type"),
        sa.CheckConstraint(
            "upload_state IN ('pending', 'analyzing', 'ready')", name="ck_file_upload_state"
        ),
    )
    op.create_index(
        "ix_file_creator_type_created",
        "meet_file",
        ["creator_id", "type", sa.text("created_at DESC")],
    )


def downgrade() -> None:
    op.drop_index("ix_file_creator_type_created", table_name="meet_file")
    op.drop_table("meet_file")
