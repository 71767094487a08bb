"""The tables, in SQLAlchemy Core (no ORM objects: rows go to the API as plain dicts).

Column names follow LiteLLM's Prisma schema where there is one (so an admin reading either database
finds the same names, and `seance import-litellm` maps one to one). Times are epoch seconds (floats):
the same on SQLite and PostgreSQL, compared without time-zone surprises; the API renders them in
ISO 8601 as LiteLLM does. Lists and objects are JSON columns.
"""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()


def _limits() -> list[sa.Column[object]]:
    """The budget and rate-limit columns that keys, users, teams and budgets share."""
    return [
        sa.Column("max_budget", sa.Float),
        sa.Column("soft_budget", sa.Float),
        sa.Column("budget_duration", sa.String(32)),
        sa.Column("budget_reset_at", sa.Float),
        sa.Column("tpm_limit", sa.BigInteger),
        sa.Column("rpm_limit", sa.BigInteger),
        sa.Column("max_parallel_requests", sa.Integer),
        sa.Column("model_max_budget", sa.JSON, nullable=False, default=dict),
    ]


def _stamps() -> list[sa.Column[object]]:
    return [
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
        sa.Column("created_by", sa.String(256)),
        sa.Column("updated_by", sa.String(256)),
    ]


keys = sa.Table(
    "seance_keys",
    metadata,
    sa.Column("token", sa.String(64), primary_key=True),  # SHA-256 hex of the key, as LiteLLM stores it
    sa.Column("key_name", sa.String(64)),  # "sk-...abcd": enough to recognise it, never the key
    sa.Column("key_alias", sa.String(256), unique=True),
    sa.Column("spend", sa.Float, nullable=False, default=0.0),
    sa.Column("expires", sa.Float),
    sa.Column("models", sa.JSON, nullable=False, default=list),
    sa.Column("aliases", sa.JSON, nullable=False, default=dict),
    sa.Column("config", sa.JSON, nullable=False, default=dict),
    sa.Column("permissions", sa.JSON, nullable=False, default=dict),
    sa.Column("metadata", sa.JSON, nullable=False, default=dict),
    sa.Column("tags", sa.JSON, nullable=False, default=list),
    sa.Column("model_rpm_limit", sa.JSON, nullable=False, default=dict),
    sa.Column("model_tpm_limit", sa.JSON, nullable=False, default=dict),
    sa.Column("model_spend", sa.JSON, nullable=False, default=dict),
    sa.Column("user_id", sa.String(256), index=True),
    sa.Column("team_id", sa.String(256), index=True),
    sa.Column("organization_id", sa.String(256)),
    sa.Column("budget_id", sa.String(256)),
    sa.Column("blocked", sa.Boolean),
    # the cache controls its requests may set ([]: all of them), as LiteLLM's keys have (migration 0005)
    sa.Column("allowed_cache_controls", sa.JSON, nullable=False, default=list, server_default=sa.text("'[]'")),
    sa.Column("last_active", sa.Float),
    *_limits(),
    *_stamps(),
)

users = sa.Table(
    "seance_users",
    metadata,
    sa.Column("user_id", sa.String(256), primary_key=True),
    sa.Column("user_alias", sa.String(256)),
    sa.Column("user_email", sa.String(320), index=True),
    sa.Column("user_role", sa.String(64), nullable=False, default="internal_user"),
    sa.Column("teams", sa.JSON, nullable=False, default=list),
    sa.Column("organization_id", sa.String(256)),
    sa.Column("spend", sa.Float, nullable=False, default=0.0),
    sa.Column("models", sa.JSON, nullable=False, default=list),
    sa.Column("metadata", sa.JSON, nullable=False, default=dict),
    sa.Column("model_spend", sa.JSON, nullable=False, default=dict),
    *_limits(),
    *_stamps(),
)

teams = sa.Table(
    "seance_teams",
    metadata,
    sa.Column("team_id", sa.String(256), primary_key=True),
    sa.Column("team_alias", sa.String(256)),
    sa.Column("organization_id", sa.String(256)),
    sa.Column("admins", sa.JSON, nullable=False, default=list),
    sa.Column("members", sa.JSON, nullable=False, default=list),
    # [{"user_id", "user_email", "role": "admin" | "user"}], LiteLLM's shape
    sa.Column("members_with_roles", sa.JSON, nullable=False, default=list),
    sa.Column("metadata", sa.JSON, nullable=False, default=dict),
    sa.Column("spend", sa.Float, nullable=False, default=0.0),
    sa.Column("models", sa.JSON, nullable=False, default=list),
    sa.Column("blocked", sa.Boolean, nullable=False, default=False),
    sa.Column("model_spend", sa.JSON, nullable=False, default=dict),
    sa.Column("budget_id", sa.String(256)),
    *_limits(),
    *_stamps(),
)

team_memberships = sa.Table(
    "seance_team_memberships",
    metadata,
    # LiteLLM_TeamMembership: what a member spent inside one team, and their budget there
    # (`max_budget_in_team`); kept in step with the team's members_with_roles
    sa.Column("team_id", sa.String(256), primary_key=True),
    sa.Column("user_id", sa.String(256), primary_key=True, index=True),
    sa.Column("spend", sa.Float, nullable=False, default=0.0),
    sa.Column("max_budget", sa.Float),  # max_budget_in_team; None: the team's budget only
    *_stamps(),
)

organizations = sa.Table(
    "seance_organizations",
    metadata,
    sa.Column("organization_id", sa.String(256), primary_key=True),
    sa.Column("organization_alias", sa.String(256)),
    sa.Column("budget_id", sa.String(256)),
    sa.Column("metadata", sa.JSON, nullable=False, default=dict),
    sa.Column("models", sa.JSON, nullable=False, default=list),
    sa.Column("members", sa.JSON, nullable=False, default=list),  # [{"user_id", "user_role"}]
    sa.Column("spend", sa.Float, nullable=False, default=0.0),
    sa.Column("model_spend", sa.JSON, nullable=False, default=dict),
    *_stamps(),
)

budgets = sa.Table(
    "seance_budgets",
    metadata,
    sa.Column("budget_id", sa.String(256), primary_key=True),
    *_limits(),
    *_stamps(),
)

end_users = sa.Table(
    "seance_end_users",
    metadata,
    sa.Column("user_id", sa.String(256), primary_key=True),  # the `user` field of requests
    sa.Column("alias", sa.String(256)),
    sa.Column("spend", sa.Float, nullable=False, default=0.0),
    sa.Column("allowed_model_region", sa.String(32)),
    sa.Column("default_model", sa.String(256)),
    sa.Column("budget_id", sa.String(256)),
    sa.Column("blocked", sa.Boolean, nullable=False, default=False),
    sa.Column("metadata", sa.JSON, nullable=False, default=dict),
    *_stamps(),
)

spend_logs = sa.Table(
    "seance_spend_logs",
    metadata,
    # one row per request: a fresh id made when the request ended, so no retry (of the request
    # upstream, or of a batch write) ever writes it twice
    sa.Column("row_id", sa.String(32), primary_key=True),
    sa.Column("request_id", sa.String(128), nullable=False, index=True),  # x-request-id / x-litellm-call-id
    sa.Column("call_type", sa.String(32), nullable=False),
    sa.Column("api_key", sa.String(64), nullable=False, index=True),  # the key's hash (the master's: its alias)
    sa.Column("key_alias", sa.String(256)),
    sa.Column("user", sa.String(256)),  # these three: partial indexes, below
    sa.Column("team_id", sa.String(256)),
    sa.Column("organization_id", sa.String(256)),
    sa.Column("end_user", sa.String(256)),
    sa.Column("model", sa.String(256)),  # what the client asked for
    sa.Column("model_group", sa.String(256)),
    sa.Column("model_id", sa.String(256)),  # the deployment
    sa.Column("custom_llm_provider", sa.String(64)),
    sa.Column("prompt_tokens", sa.Integer, nullable=False, default=0),
    sa.Column("completion_tokens", sa.Integer, nullable=False, default=0),
    sa.Column("cached_tokens", sa.Integer, nullable=False, default=0),
    sa.Column("total_tokens", sa.Integer, nullable=False, default=0),
    sa.Column("spend", sa.Float, nullable=False, default=0.0),
    sa.Column("start_time", sa.Float, nullable=False, index=True),
    sa.Column("end_time", sa.Float, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),  # "success" | "failure"
    sa.Column("status_code", sa.Integer, nullable=False),
    sa.Column("cache_hit", sa.Boolean, nullable=False, default=False),
    sa.Column("request_tags", sa.JSON, nullable=False, default=list),
    sa.Column("metadata", sa.JSON, nullable=False, default=dict),
)

# Most rows have no user, team or end user: their indexes hold only the rows that have one
# (migration 0004), which a query for a value still finds (`col = x` implies `col IS NOT NULL`).
for _column in (spend_logs.c.user, spend_logs.c.team_id, spend_logs.c.end_user):
    _present = _column.isnot(None)
    sa.Index(f"ix_seance_spend_logs_{_column.name}", _column, sqlite_where=_present, postgresql_where=_present)
del _column, _present

proxy_models = sa.Table(
    "seance_proxy_models",
    metadata,
    # LiteLLM_ProxyModelTable: deployments added through /model/new, served beside config.yaml's
    sa.Column("model_id", sa.String(256), primary_key=True),  # model_info.id, x-litellm-model-id
    sa.Column("model_name", sa.String(256), nullable=False, index=True),
    # credentials sealed (store/sealing.py); `os.environ/NAME` references kept as written
    sa.Column("litellm_params", sa.JSON, nullable=False, default=dict),
    sa.Column("model_info", sa.JSON, nullable=False, default=dict),
    *_stamps(),
)
