"""team members' spend and budgets (max_budget_in_team)

Revision ID: 0003
Revises: 0002

Members that teams already have get their row, with the max_budget_in_team that /team/member_update
kept in members_with_roles before this revision, and no spend (none was counted per member).
"""

from __future__ import annotations

import time

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    memberships = op.create_table(
        "seance_team_memberships",
        sa.Column("team_id", sa.String(length=256), nullable=False),
        sa.Column("user_id", sa.String(length=256), nullable=False),
        sa.Column("spend", sa.Float(), nullable=False),
        sa.Column("max_budget", sa.Float(), nullable=True),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.Column("created_by", sa.String(length=256), nullable=True),
        sa.Column("updated_by", sa.String(length=256), nullable=True),
        sa.PrimaryKeyConstraint("team_id", "user_id"),
    )
    with op.batch_alter_table("seance_team_memberships", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_seance_team_memberships_user_id"), ["user_id"], unique=False)

    teams = sa.table("seance_teams", sa.column("team_id", sa.String), sa.column("members_with_roles", sa.JSON))
    now = time.time()
    rows: dict[tuple[str, str], dict[str, object]] = {}
    for team_id, members in op.get_bind().execute(sa.select(teams.c.team_id, teams.c.members_with_roles)):
        for member in members or []:
            user_id = member.get("user_id") if isinstance(member, dict) else None
            if user_id:
                budget = member.get("max_budget_in_team")
                rows[(team_id, user_id)] = {
                    "team_id": team_id, "user_id": user_id, "spend": 0.0,
                    "max_budget": float(budget) if isinstance(budget, int | float) else None,
                    "created_at": now, "updated_at": now, "created_by": None, "updated_by": None,
                }  # fmt: skip
    if rows:
        op.bulk_insert(memberships, list(rows.values()))


def downgrade() -> None:
    with op.batch_alter_table("seance_team_memberships", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_seance_team_memberships_user_id"))
    op.drop_table("seance_team_memberships")
