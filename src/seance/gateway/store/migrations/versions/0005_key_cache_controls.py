"""keys: allowed_cache_controls, the cache controls a key's requests may set

Revision ID: 0005
Revises: 0004

LiteLLM's LiteLLM_VerificationToken.allowed_cache_controls: an empty list lets a key's requests set
every control (the body's `cache` object, Cache-Control); a list names the only ones they may.
Keys made before this revision get the empty list: what they could do, they still can.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("seance_keys", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("allowed_cache_controls", sa.JSON(), nullable=False, server_default=sa.text("'[]'"))
        )


def downgrade() -> None:
    with op.batch_alter_table("seance_keys", schema=None) as batch_op:
        batch_op.drop_column("allowed_cache_controls")
