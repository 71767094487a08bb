"""Budgets per model (model_max_budget) of a key, its team, its user and an end user: the model
over its budget is refused (400, budget_exceeded) and the other models go on; a key's own budget
takes the place of its team's; the spend is read back from the spend log, so another replica
refuses too; only the budget's period counts; the management API refuses a budget it could not
enforce. On SQLite and on the real PostgreSQL."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from tests.stack import COST, Stack, stack

from seance.gateway.store import model_budgets, tables
from seance.gateway.store.keys import hash_key
from seance.gateway.store.model_budgets import ModelBudget


def budget(limit: Any, period: str = "1d") -> dict[str, Any]:
    return {"budget_limit": limit, "time_period": period}


async def test_the_model_over_its_budget_is_refused_and_the_others_go_on(
    tmp_path: Path, db_env: dict[str, str]
) -> None:
    async with stack(tmp_path, db_env) as s:
        key = await s.generate(key_alias="app", model_max_budget={"a": budget(COST * 1.5)})
        assert (await s.chat(key, "a")).status_code == 200
        assert (await s.chat(key, "a")).status_code == 200  # COST spent: under 1.5 COST
        assert s.store.spend.pending, "the spend is still in the batch"
        await usage_is(s, key, 2 * COST)  # from the rows not written yet
        refused = await s.chat(key, "a")
        assert refused.status_code == 400
        error = refused.json()["error"]
        assert error["type"] == "budget_exceeded"
        assert "Key=app, model=a" in error["message"] and "Max budget: 0.003" in error["message"]
        assert (await s.chat(key, "b")).status_code == 200  # no budget on b
        await s.store.spend.flush()
        s.store.forget()  # read from the database again: summed from the spend log, the same answer
        assert (await s.chat(key, "a")).status_code == 400
        assert (await s.chat(key, "b")).status_code == 200
        await usage_is(s, key, 2 * COST)  # from the written rows


async def usage_is(s: Stack, key: str, spent: float) -> None:
    """/key/info's model_max_budget_usage, LiteLLM's: the key's budget on model a."""
    status, info = await s.admin("GET", "/key/info", key=key)
    assert status == 200, info
    usage = info["info"]["model_max_budget_usage"]
    assert usage.keys() == {"a"} and usage["a"]["budget_limit"] == COST * 1.5 and usage["a"]["time_period"] == "1d"
    assert abs(usage["a"]["current_spend"] - spent) < 1e-12, usage


async def test_another_replica_counts_what_this_one_spent(tmp_path: Path, db_env: dict[str, str]) -> None:
    async with stack(tmp_path, db_env) as first:
        key = await first.generate(model_max_budget={"a": budget(COST * 0.5)})
        assert (await first.chat(key, "a")).status_code == 200
        await first.store.spend.flush()
        async with stack(tmp_path, db_env) as second:  # the same database, a process of its own
            assert (await second.chat(key, "a")).status_code == 400
            assert (await second.chat(key, "b")).status_code == 200


async def test_only_the_period_counts(tmp_path: Path, db_env: dict[str, str]) -> None:
    async with stack(tmp_path, db_env) as s:
        key = await s.generate(model_max_budget={"a": budget(1.0, "1d")})
        now = time.time()
        async with s.store.engine().begin() as db:  # spent two days ago: outside a day, inside a week
            await db.execute(sa.insert(tables.spend_logs).values(
                row_id="old-1", request_id="r-old-1", call_type="acompletion", api_key=hash_key(key),
                model="a", spend=5.0, start_time=now - 2 * 86400, end_time=now - 2 * 86400,
                status="success", status_code=200,
            ))  # fmt: skip
        assert (await s.chat(key, "a")).status_code == 200
        status, body = await s.admin("POST", "/key/update", {"key": key, "model_max_budget": {"a": budget(1.0, "7d")}})
        assert status == 200, body
        refused = await s.chat(key, "a")
        assert refused.status_code == 400 and "model=a" in refused.json()["error"]["message"]


async def test_a_teams_budget_bounds_its_keys_unless_a_key_has_its_own(tmp_path: Path, db_env: dict[str, str]) -> None:
    async with stack(tmp_path, db_env) as s:
        team_fields = {"team_alias": "ml", "model_max_budget": {"a": budget(COST * 1.5)}}
        status, team = await s.admin("POST", "/team/new", team_fields)
        assert status == 200, team
        first = await s.generate(team_id=team["team_id"])
        second = await s.generate(team_id=team["team_id"])
        own = await s.generate(team_id=team["team_id"], model_max_budget={"a": budget(1.0)})  # takes the team's place
        assert (await s.chat(first, "a")).status_code == 200
        assert (await s.chat(second, "a")).status_code == 200
        refused = await s.chat(first, "a")
        assert refused.status_code == 400 and "Team=ml, model=a" in refused.json()["error"]["message"]
        assert (await s.chat(second, "b")).status_code == 200
        assert (await s.chat(own, "a")).status_code == 200
        await s.store.spend.flush()
        s.store.forget()  # summed from the team's rows: the key with its own budget spent on its own
        assert (await s.chat(second, "a")).status_code == 400
        assert (await s.chat(own, "a")).status_code == 200


async def test_a_users_budget_bounds_every_key_of_theirs(tmp_path: Path, db_env: dict[str, str]) -> None:
    async with stack(tmp_path, db_env) as s:
        status, user = await s.admin("POST", "/user/new", {"user_id": "ann", "model_max_budget": {"a": budget(COST)}})
        assert status == 200, user
        first, second = await s.generate(user_id="ann"), await s.generate(user_id="ann")
        assert (await s.chat(first, "a")).status_code == 200
        refused = await s.chat(second, "a")
        assert refused.status_code == 400 and "User=ann, model=a" in refused.json()["error"]["message"]
        await s.store.spend.flush()
        async with stack(tmp_path, db_env) as replica:  # from the spend log's rows of the user
            assert (await replica.chat(second, "a")).status_code == 400
            assert (await replica.chat(second, "b")).status_code == 200
        status, info = await s.admin("GET", "/user/info", user_id="ann")
        assert status == 200 and info["user_info"]["model_max_budget_usage"] == {
            "a": {"current_spend": COST, "budget_limit": COST, "time_period": "1d"}
        }, info


async def test_an_end_users_budget_bounds_what_is_asked_in_their_name(tmp_path: Path, db_env: dict[str, str]) -> None:
    async with stack(tmp_path, db_env) as s:
        status, body = await s.admin(
            "POST", "/customer/new", {"user_id": "cust-1", "model_max_budget": {"a": budget(COST)}}
        )
        assert status == 200, body
        key = await s.generate()
        assert (await s.chat(key, "a", user="cust-1")).status_code == 200
        refused = await s.chat(key, "a", user="cust-1")
        assert refused.status_code == 400 and "End User=cust-1, model=a" in refused.json()["error"]["message"]
        assert (await s.chat(key, "b", user="cust-1")).status_code == 200
        assert (await s.chat(key, "a", user="someone-else")).status_code == 200
        await s.store.spend.flush()
        s.store.forget()  # summed from the end user's rows
        assert (await s.chat(key, "a", user="cust-1")).status_code == 400


async def test_the_spend_log_is_summed_by_model_with_or_without_its_provider(
    tmp_path: Path, db_env: dict[str, str]
) -> None:
    async with stack(tmp_path, db_env) as s:
        now = time.time()
        rows = [("openai/gpt-4o", 1.0), ("gpt-4o", 2.0), ("azure/gpt-4o-mini", 4.0), ("gpt-4o_x", 8.0),
                ("other/gpt%4o", 16.0)]  # fmt: skip
        async with s.store.engine().begin() as db:
            for i, (model, spend) in enumerate(rows):
                await db.execute(sa.insert(tables.spend_logs).values(
                    row_id=f"row-{i}", request_id=f"r-{i}", call_type="acompletion", api_key="hash-1",
                    model=model, spend=spend, start_time=now, end_time=now, status="success", status_code=200,
                ))  # fmt: skip
            gpt_4o = (ModelBudget("gpt-4o", 10.0, "1d"),)
            found = await model_budgets.spent(db, "key_model", "hash-1", gpt_4o)
            assert found == {"gpt-4o": 3.0}  # not gpt-4o-mini, and '_' or '%' match only themselves
            assert await model_budgets.spent(db, "key_model", "hash-2", gpt_4o) == {"gpt-4o": 0.0}
    assert model_budgets.governing({"gpt-4o": 1}, "openai/gpt-4o") == 1
    assert model_budgets.governing({"openai/gpt-4o": 2, "gpt-4o": 1}, "openai/gpt-4o") == 2  # the exact name first
    assert model_budgets.governing({"gpt-4o": 1}, "gpt-4o-mini") is None


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ({"a": 5}, "model_max_budget.a must be an object"),
        ({"a": budget("5")}, "model_max_budget.a.budget_limit must be a number, 0 or more, not '5'"),
        ({"a": budget(-1)}, "budget_limit must be a number, 0 or more, not -1"),
        ({"a": {"budget_limit": 1}}, "model_max_budget.a.time_period must be a duration"),
        ({"a": budget(1, "1 day")}, "model_max_budget.a.time_period: '1 day' is not a duration"),
    ],
)
async def test_the_management_api_refuses_a_budget_it_could_not_enforce(
    tmp_path: Path, db_env: dict[str, str], given: dict[str, Any], message: str
) -> None:
    async with stack(tmp_path, db_env) as s:
        status, body = await s.admin("POST", "/key/generate", {"model_max_budget": given})
        assert status == 400 and message in body["error"]["message"], body
        assert body["error"]["param"] == "model_max_budget"


async def test_litellms_other_spelling_is_enforced_too(tmp_path: Path, db_env: dict[str, str]) -> None:
    async with stack(tmp_path, db_env) as s:
        key = await s.generate(model_max_budget={"a": {"max_budget": COST * 0.5, "budget_duration": "30d"}})
        assert (await s.chat(key, "a")).status_code == 200
        assert (await s.chat(key, "a")).status_code == 400


def test_a_stored_entry_that_cannot_be_enforced_is_skipped_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="seance.gateway"):
        found = model_budgets.parse({"a": {"budget_limit": "lots", "time_period": "1d"}, "b": budget(2)}, "Key=x")
    assert found == (ModelBudget("b", 2.0, "1d"),)
    assert model_budgets.parse({"a": {"budget_limit": None, "time_period": "1d"}}, "Key=x") == ()  # no limit
    assert "Key=x: model_max_budget.a.budget_limit must be a number" in caplog.text
