"""The budget gauges of GET /metrics (budget_metrics.py): every key, team and user with a
max_budget, read from the store at each scrape (spend not yet written included), LiteLLM's names
and labels; a key deleted or a database that does not answer."""

from __future__ import annotations

import logging
import uuid
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families
from tests.databases import db_env, pg_database, sqlite_database
from tests.stack import COST, MASTER, Stack, stack

from seance.gateway.store.keys import hash_key

__all__ = ["db_env", "pg_database", "sqlite_database"]


async def scrape(s: Stack) -> list[Any]:
    answer = await s.client.get("/metrics", headers={"authorization": f"Bearer {MASTER}"})
    assert answer.status_code == 200, answer.text
    return [sample for family in text_string_to_metric_families(answer.text) for sample in family.samples]


def values(samples: list[Any], name: str, **labels: str) -> list[float]:
    return [s.value for s in samples if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())]


async def test_keys_teams_and_users_with_a_budget(tmp_path: Path, db_env: dict[str, str]) -> None:
    tag = uuid.uuid4().hex[:8]  # the session's tests share one database
    async with stack(tmp_path, db_env, metrics=True) as s:
        status, team = await s.admin(
            "POST", "/team/new", {"team_alias": f"ml-{tag}", "max_budget": 10.0, "budget_duration": "30d"}
        )
        assert status == 200, team
        status, user = await s.admin("POST", "/user/new", {"user_id": f"u-{tag}", "max_budget": 5.0})
        assert status == 200, user
        key = await s.generate(max_budget=1.0, key_alias=f"bot-{tag}", team_id=team["team_id"], user_id=f"u-{tag}")
        unbounded = await s.generate(key_alias=f"free-{tag}")
        for _ in range(3):
            assert (await s.chat(key)).status_code == 200
        assert (await s.chat(unbounded)).status_code == 200
        assert s.store.spend.pending, "the spend is not written yet: the gauges must count it all the same"

        got = await scrape(s)
        mine = {"hashed_api_key": hash_key(key)[:12], "api_key_alias": f"bot-{tag}"}
        assert values(got, "litellm_remaining_api_key_budget_metric", **mine) == [pytest.approx(1.0 - 3 * COST)]
        assert values(got, "litellm_api_key_max_budget_metric", **mine) == [1.0]
        assert values(got, "litellm_api_key_budget_remaining_hours_metric", **mine) == []  # no budget_duration
        ml = {"team": team["team_id"], "team_alias": f"ml-{tag}"}
        assert values(got, "litellm_remaining_team_budget_metric", **ml) == [pytest.approx(10.0 - 3 * COST)]
        assert values(got, "litellm_team_max_budget_metric", **ml) == [10.0]
        (hours,) = values(got, "litellm_team_budget_remaining_hours_metric", **ml)
        assert 30 * 24 - 1 < hours <= 30 * 24
        assert values(got, "litellm_remaining_user_budget_metric", user=f"u-{tag}") == [pytest.approx(5.0 - 3 * COST)]
        assert values(got, "litellm_user_max_budget_metric", user=f"u-{tag}") == [5.0]
        assert values(got, "litellm_remaining_api_key_budget_metric", api_key_alias=f"free-{tag}") == []
        assert key not in str(got) and hash_key(key) not in str(got)

        await s.store.spend.flush()  # written: the same figures from the database alone
        got = await scrape(s)
        assert values(got, "litellm_remaining_api_key_budget_metric", **mine) == [pytest.approx(1.0 - 3 * COST)]

        status, body = await s.admin("POST", "/key/delete", {"keys": [key]})
        assert status == 200, body
        got = await scrape(s)
        assert values(got, "litellm_remaining_api_key_budget_metric", **mine) == []
        assert values(got, "litellm_api_key_max_budget_metric", **mine) == []


async def test_a_database_that_does_not_answer_keeps_the_last_values(
    tmp_path: Path, db_env: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    tag = uuid.uuid4().hex[:8]
    async with stack(tmp_path, db_env, metrics=True) as s:
        key = await s.generate(max_budget=2.0, key_alias=f"kept-{tag}")
        mine = {"api_key_alias": f"kept-{tag}"}
        assert values(await scrape(s), "litellm_api_key_max_budget_metric", **mine) == [2.0]
        metrics = s.app.metrics.metrics
        assert metrics is not None and metrics.budget_gauges is not None

        async def down(limit: int) -> list[Any]:
            raise ConnectionRefusedError("the database is down")

        metrics.budget_gauges.read = down
        with caplog.at_level(logging.WARNING, logger="seance.gateway"):
            for _ in range(2):
                assert values(await scrape(s), "litellm_api_key_max_budget_metric", **mine) == [2.0]
        warnings = [r.getMessage() for r in caplog.records if "budgets could not be read" in r.getMessage()]
        assert warnings == ["metrics: the budgets could not be read (ConnectionRefusedError); their gauges keep "
                            "their last values"]  # fmt: skip
        assert (await s.chat(key)).status_code == 200


async def test_a_reload_keeps_one_set_of_budget_gauges(tmp_path: Path, db_env: dict[str, str]) -> None:
    """The collector is registered once: a reload (SIGHUP, --watch-config) reuses it."""
    from seance.gateway.config import load_settings

    tag = uuid.uuid4().hex[:8]
    async with stack(tmp_path, db_env, metrics=True) as s:
        await s.generate(max_budget=4.0, key_alias=f"reloaded-{tag}")
        settings = load_settings(tmp_path / "config.yaml", {"LITELLM_MASTER_KEY": MASTER, **db_env}, announce=False)
        await s.app.reload(settings)
        await s.app.reload(settings)
        got = await scrape(s)
        assert values(got, "litellm_api_key_max_budget_metric", api_key_alias=f"reloaded-{tag}") == [4.0]
