from tests.databases import db_env, pg_database, sqlite_database

__all__ = ["db_env", "pg_database", "sqlite_database"]
