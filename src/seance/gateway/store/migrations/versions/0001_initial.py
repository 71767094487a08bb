"""keys, teams, users, organizations, budgets, end users, spend logs

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "seance_budgets",
        sa.Column("budget_id", sa.String(length=256), nullable=False),
        sa.Column("max_budget", sa.Float(), nullable=True),
        sa.Column("soft_budget", sa.Float(), nullable=True),
        sa.Column("budget_duration", sa.String(length=32), nullable=True),
        sa.Column("budget_reset_at", sa.Float(), nullable=True),
        sa.Column("tpm_limit", sa.BigInteger(), nullable=True),
        sa.Column("rpm_limit", sa.BigInteger(), nullable=True),
        sa.Column("max_parallel_requests", sa.Integer(), nullable=True),
        sa.Column("model_max_budget", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.Column("created_by", sa.String(length=256), nullable=True),
        sa.Column("updated_by", sa.String(length=256), nullable=True),
        sa.PrimaryKeyConstraint("budget_id"),
    )
    op.create_table(
        "seance_end_users",
        sa.Column("user_id", sa.String(length=256), nullable=False),
        sa.Column("alias", sa.String(length=256), nullable=True),
        sa.Column("spend", sa.Float(), nullable=False),
        sa.Column("allowed_model_region", sa.String(length=32), nullable=True),
        sa.Column("default_model", sa.String(length=256), nullable=True),
        sa.Column("budget_id", sa.String(length=256), nullable=True),
        sa.Column("blocked", sa.Boolean(), nullable=False),
        sa.Column("metadata", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.Column("created_by", sa.String(length=256), nullable=True),
        sa.Column("updated_by", sa.String(length=256), nullable=True),
        sa.PrimaryKeyConstraint("user_id"),
    )
    op.create_table(
        "seance_keys",
        sa.Column("token", sa.String(length=64), nullable=False),
        sa.Column("key_name", sa.String(length=64), nullable=True),
        sa.Column("key_alias", sa.String(length=256), nullable=True),
        sa.Column("spend", sa.Float(), nullable=False),
        sa.Column("expires", sa.Float(), nullable=True),
        sa.Column("models", sa.JSON(), nullable=False),
        sa.Column("aliases", sa.JSON(), nullable=False),
        sa.Column("config", sa.JSON(), nullable=False),
        sa.Column("permissions", sa.JSON(), nullable=False),
        sa.Column("metadata", sa.JSON(), nullable=False),
        sa.Column("tags", sa.JSON(), nullable=False),
        sa.Column("model_rpm_limit", sa.JSON(), nullable=False),
        sa.Column("model_tpm_limit", sa.JSON(), nullable=False),
        sa.Column("model_spend", sa.JSON(), nullable=False),
        sa.Column("user_id", sa.String(length=256), nullable=True),
        sa.Column("team_id", sa.String(length=256), nullable=True),
        sa.Column("organization_id", sa.String(length=256), nullable=True),
        sa.Column("budget_id", sa.String(length=256), nullable=True),
        sa.Column("blocked", sa.Boolean(), nullable=True),
        sa.Column("last_active", sa.Float(), nullable=True),
        sa.Column("max_budget", sa.Float(), nullable=True),
        sa.Column("soft_budget", sa.Float(), nullable=True),
        sa.Column("budget_duration", sa.String(length=32), nullable=True),
        sa.Column("budget_reset_at", sa.Float(), nullable=True),
        sa.Column("tpm_limit", sa.BigInteger(), nullable=True),
        sa.Column("rpm_limit", sa.BigInteger(), nullable=True),
        sa.Column("max_parallel_requests", sa.Integer(), nullable=True),
        sa.Column("model_max_budget", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.Column("created_by", sa.String(length=256), nullable=True),
        sa.Column("updated_by", sa.String(length=256), nullable=True),
        sa.PrimaryKeyConstraint("token"),
        sa.UniqueConstraint("key_alias"),
    )
    with op.batch_alter_table("seance_keys", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_seance_keys_team_id"), ["team_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_seance_keys_user_id"), ["user_id"], unique=False)

    op.create_table(
        "seance_organizations",
        sa.Column("organization_id", sa.String(length=256), nullable=False),
        sa.Column("organization_alias", sa.String(length=256), nullable=True),
        sa.Column("budget_id", sa.String(length=256), nullable=True),
        sa.Column("metadata", sa.JSON(), nullable=False),
        sa.Column("models", sa.JSON(), nullable=False),
        sa.Column("members", sa.JSON(), nullable=False),
        sa.Column("spend", sa.Float(), nullable=False),
        sa.Column("model_spend", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.Column("created_by", sa.String(length=256), nullable=True),
        sa.Column("updated_by", sa.String(length=256), nullable=True),
        sa.PrimaryKeyConstraint("organization_id"),
    )
    op.create_table(
        "seance_spend_logs",
        sa.Column("row_id", sa.String(length=32), nullable=False),
        sa.Column("request_id", sa.String(length=128), nullable=False),
        sa.Column("call_type", sa.String(length=32), nullable=False),
        sa.Column("api_key", sa.String(length=64), nullable=False),
        sa.Column("key_alias", sa.String(length=256), nullable=True),
        sa.Column("user", sa.String(length=256), nullable=True),
        sa.Column("team_id", sa.String(length=256), nullable=True),
        sa.Column("organization_id", sa.String(length=256), nullable=True),
        sa.Column("end_user", sa.String(length=256), nullable=True),
        sa.Column("model", sa.String(length=256), nullable=True),
        sa.Column("model_group", sa.String(length=256), nullable=True),
        sa.Column("model_id", sa.String(length=256), nullable=True),
        sa.Column("custom_llm_provider", sa.String(length=64), nullable=True),
        sa.Column("prompt_tokens", sa.Integer(), nullable=False),
        sa.Column("completion_tokens", sa.Integer(), nullable=False),
        sa.Column("cached_tokens", sa.Integer(), nullable=False),
        sa.Column("total_tokens", sa.Integer(), nullable=False),
        sa.Column("spend", sa.Float(), nullable=False),
        sa.Column("start_time", sa.Float(), nullable=False),
        sa.Column("end_time", sa.Float(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=False),
        sa.Column("cache_hit", sa.Boolean(), nullable=False),
        sa.Column("request_tags", sa.JSON(), nullable=False),
        sa.Column("metadata", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("row_id"),
    )
    with op.batch_alter_table("seance_spend_logs", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_seance_spend_logs_api_key"), ["api_key"], unique=False)
        batch_op.create_index(batch_op.f("ix_seance_spend_logs_end_user"), ["end_user"], unique=False)
        batch_op.create_index(batch_op.f("ix_seance_spend_logs_request_id"), ["request_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_seance_spend_logs_start_time"), ["start_time"], unique=False)
        batch_op.create_index(batch_op.f("ix_seance_spend_logs_team_id"), ["team_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_seance_spend_logs_user"), ["user"], unique=False)

    op.create_table(
        "seance_teams",
        sa.Column("team_id", sa.String(length=256), nullable=False),
        sa.Column("team_alias", sa.String(length=256), nullable=True),
        sa.Column("organization_id", sa.String(length=256), nullable=True),
        sa.Column("admins", sa.JSON(), nullable=False),
        sa.Column("members", sa.JSON(), nullable=False),
        sa.Column("members_with_roles", sa.JSON(), nullable=False),
        sa.Column("metadata", sa.JSON(), nullable=False),
        sa.Column("spend", sa.Float(), nullable=False),
        sa.Column("models", sa.JSON(), nullable=False),
        sa.Column("blocked", sa.Boolean(), nullable=False),
        sa.Column("model_spend", sa.JSON(), nullable=False),
        sa.Column("budget_id", sa.String(length=256), nullable=True),
        sa.Column("max_budget", sa.Float(), nullable=True),
        sa.Column("soft_budget", sa.Float(), nullable=True),
        sa.Column("budget_duration", sa.String(length=32), nullable=True),
        sa.Column("budget_reset_at", sa.Float(), nullable=True),
        sa.Column("tpm_limit", sa.BigInteger(), nullable=True),
        sa.Column("rpm_limit", sa.BigInteger(), nullable=True),
        sa.Column("max_parallel_requests", sa.Integer(), nullable=True),
        sa.Column("model_max_budget", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.Column("created_by", sa.String(length=256), nullable=True),
        sa.Column("updated_by", sa.String(length=256), nullable=True),
        sa.PrimaryKeyConstraint("team_id"),
    )
    op.create_table(
        "seance_users",
        sa.Column("user_id", sa.String(length=256), nullable=False),
        sa.Column("user_alias", sa.String(length=256), nullable=True),
        sa.Column("user_email", sa.String(length=320), nullable=True),
        sa.Column("user_role", sa.String(length=64), nullable=False),
        sa.Column("teams", sa.JSON(), nullable=False),
        sa.Column("organization_id", sa.String(length=256), nullable=True),
        sa.Column("spend", sa.Float(), nullable=False),
        sa.Column("models", sa.JSON(), nullable=False),
        sa.Column("metadata", sa.JSON(), nullable=False),
        sa.Column("model_spend", sa.JSON(), nullable=False),
        sa.Column("max_budget", sa.Float(), nullable=True),
        sa.Column("soft_budget", sa.Float(), nullable=True),
        sa.Column("budget_duration", sa.String(length=32), nullable=True),
        sa.Column("budget_reset_at", sa.Float(), nullable=True),
        sa.Column("tpm_limit", sa.BigInteger(), nullable=True),
        sa.Column("rpm_limit", sa.BigInteger(), nullable=True),
        sa.Column("max_parallel_requests", sa.Integer(), nullable=True),
        sa.Column("model_max_budget", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.Column("created_by", sa.String(length=256), nullable=True),
        sa.Column("updated_by", sa.String(length=256), nullable=True),
        sa.PrimaryKeyConstraint("user_id"),
    )
    with op.batch_alter_table("seance_users", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_seance_users_user_email"), ["user_email"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("seance_users", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_seance_users_user_email"))

    op.drop_table("seance_users")
    op.drop_table("seance_teams")
    with op.batch_alter_table("seance_spend_logs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_seance_spend_logs_user"))
        batch_op.drop_index(batch_op.f("ix_seance_spend_logs_team_id"))
        batch_op.drop_index(batch_op.f("ix_seance_spend_logs_start_time"))
        batch_op.drop_index(batch_op.f("ix_seance_spend_logs_request_id"))
        batch_op.drop_index(batch_op.f("ix_seance_spend_logs_end_user"))
        batch_op.drop_index(batch_op.f("ix_seance_spend_logs_api_key"))

    op.drop_table("seance_spend_logs")
    op.drop_table("seance_organizations")
    with op.batch_alter_table("seance_keys", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_seance_keys_user_id"))
        batch_op.drop_index(batch_op.f("ix_seance_keys_team_id"))

    op.drop_table("seance_keys")
    op.drop_table("seance_end_users")
    op.drop_table("seance_budgets")
