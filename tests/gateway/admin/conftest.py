from tests.databases import db_env, pg_database, sqlite_database
from tests.gateway.conftest import gateway

__all__ = ["db_env", "gateway", "pg_database", "sqlite_database"]
