"""`seance import-litellm`: LiteLLM's tables created from its published schema in the real
PostgreSQL, rows inserted, imported (twice: nothing changes), and those keys then work here."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest
from click.testing import CliRunner
from tests.databases import create_pg_database, drop_pg_database, pg_url
from tests.stack import COST, stack

from seance.cli import main
from seance.gateway.store.keys import hash_key

FIXTURES = Path(__file__).parents[2] / "fixtures" / "litellm"


@pytest.fixture(scope="module")
def litellm_database() -> Iterator[str]:
    name = create_pg_database()

    async def fill() -> None:
        connection = await asyncpg.connect(pg_url(name), timeout=5)
        try:
            await connection.execute((FIXTURES / "schema.sql").read_text())
            await connection.execute((FIXTURES / "rows.sql").read_text())
        finally:
            await connection.close()

    asyncio.run(fill())
    yield pg_url(name)
    drop_pg_database(name)


def test_import_then_the_keys_work(tmp_path: Path, litellm_database: str, db_env: dict[str, str]) -> None:
    runner = CliRunner()
    first = runner.invoke(main, ["import-litellm", "--from", litellm_database], env=db_env)
    assert first.exit_code == 0, first.output
    assert "2 keys" in first.output and "1 users" in first.output and "1 teams" in first.output
    assert "1 organizations" in first.output and "1 budgets" in first.output and "1 end users" in first.output
    again = runner.invoke(main, ["import-litellm", "--from", litellm_database], env=db_env)
    assert again.exit_code == 0 and again.output == first.output

    async def use() -> None:
        async with stack(tmp_path, db_env) as s:
            assert (await s.chat("sk-litellm-imported-1", "a")).status_code == 200
            assert (await s.chat("sk-litellm-imported-1", "b")).status_code == 403  # its models: [a]
            blocked = await s.chat("sk-litellm-imported-2", "a")
            assert blocked.status_code == 401 and "blocked" in blocked.json()["error"]["message"]
            status, info = await s.admin("GET", "/key/info", key="sk-litellm-imported-1")
            assert status == 200 and info["info"]["token"] == hash_key("sk-litellm-imported-1")
            assert info["info"]["spend"] == pytest.approx(0.5 + COST)  # the spend came along, and grows
            assert info["info"]["tags"] == ["legacy"] and info["info"]["model_rpm_limit"] == {"a": 7}
            assert info["info"]["allowed_cache_controls"] == ["no-cache"]
            assert info["info"]["budget_reset_at"].startswith("2030-01-01")
            status, team = await s.admin("GET", "/team/info", team_id="team-1")
            assert team["team_info"]["members"] == ["alice", "bob"] and team["team_info"]["spend"] == pytest.approx(
                1.25 + COST
            )
            status, org = await s.admin("GET", "/organization/info", organization_id="org-1")
            assert org["litellm_budget_table"]["max_budget"] == 100.0
            status, customer = await s.admin("GET", "/customer/info", end_user_id="customer-7")
            assert customer["alias"] == "seven"

    asyncio.run(use())


def test_not_a_litellm_database(tmp_path: Path, pg_database: str, db_env: dict[str, str]) -> None:
    result = CliRunner().invoke(main, ["import-litellm", "--from", pg_database], env=db_env)
    assert result.exit_code == 1 and "no LiteLLM_VerificationToken table" in result.output
    result = CliRunner().invoke(main, ["import-litellm", "--from", "mysql://x/y"], env=db_env)
    assert result.exit_code == 1 and "a PostgreSQL URL" in result.output


@pytest.mark.parametrize(
    ("columns", "values", "says"),
    [
        (
            "key_alias",
            "'" + "a" * 300 + "'",
            "LiteLLM_VerificationToken (token t-bad): key_alias is 300 characters long",
        ),
        ("budget_duration", "'9999999999d'", "LiteLLM_VerificationToken (token t-bad): budget_duration: '9999999999d'"),
    ],
)
def test_a_row_seance_cannot_keep_is_named_and_nothing_is_written(
    db_env: dict[str, str], columns: str, values: str, says: str
) -> None:
    name = create_pg_database()

    async def fill() -> None:
        connection = await asyncpg.connect(pg_url(name), timeout=5)
        try:
            await connection.execute((FIXTURES / "schema.sql").read_text())
            insert = f"""INSERT INTO "LiteLLM_VerificationToken" (token, key_name, {columns})"""
            await connection.execute(f"{insert} VALUES ('t-bad', 'sk-x', {values})")
        finally:
            await connection.close()

    try:
        asyncio.run(fill())
        result = CliRunner().invoke(main, ["import-litellm", "--from", pg_url(name)], env=db_env)
        assert result.exit_code == 1 and says in result.output, result.output
    finally:
        drop_pg_database(name)
