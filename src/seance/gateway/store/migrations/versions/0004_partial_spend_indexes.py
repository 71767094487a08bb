"""spend logs: the user, team and end-user indexes hold only the rows that have one

Revision ID: 0004
Revises: 0003

Most requests have no user, team or end user (a key of its own, no `user` field), and each of the
three indexes still took an entry for each of their NULLs: ~11 % of SQLite's work a row
(bench/README.md). The queries that use them (/spend/logs?user_id=, ?team_id=, the end users')
look for a value, which the partial index's `IS NOT NULL` admits, on SQLite and PostgreSQL alike.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

COLUMNS = ("user", "team_id", "end_user")


def _where(column: str) -> sa.TextClause:
    return sa.text(f'"{column}" IS NOT NULL')


def upgrade() -> None:
    for column in COLUMNS:
        name = f"ix_seance_spend_logs_{column}"
        op.drop_index(name, table_name="seance_spend_logs")
        op.create_index(
            name, "seance_spend_logs", [column], sqlite_where=_where(column), postgresql_where=_where(column)
        )


def downgrade() -> None:
    for column in COLUMNS:
        name = f"ix_seance_spend_logs_{column}"
        op.drop_index(name, table_name="seance_spend_logs")
        op.create_index(name, "seance_spend_logs", [column])
