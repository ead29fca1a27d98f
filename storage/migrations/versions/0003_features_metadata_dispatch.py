"""recording: metadata_collector_dispatch_id

Revision ID: 0003_features
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003_features"
down_revision = "0003_auth"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("meet_recording") as batch:
        batch.add_column(
            sa.Column("metadata_collector_dispatch_id", sa.String(length=255), nullable=True)
        )


def downgrade() -> None:
    with op.batch_alter_table("meet_recording") as batch:
        batch.drop_column("metadata_collector_dispatch_id")
