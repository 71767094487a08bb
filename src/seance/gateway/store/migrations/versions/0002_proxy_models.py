"""models added through /model/new

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "seance_proxy_models",
        sa.Column("model_id", sa.String(length=256), nullable=False),
        sa.Column("model_name", sa.String(length=256), nullable=False),
        sa.Column("litellm_params", sa.JSON(), nullable=False),
        sa.Column("model_info", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.Column("created_by", sa.String(length=256), nullable=True),
        sa.Column("updated_by", sa.String(length=256), nullable=True),
        sa.PrimaryKeyConstraint("model_id"),
    )
    with op.batch_alter_table("seance_proxy_models", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_seance_proxy_models_model_name"), ["model_name"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("seance_proxy_models", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_seance_proxy_models_model_name"))
    op.drop_table("seance_proxy_models")
