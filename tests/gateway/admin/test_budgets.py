"""Budgets on the request path: a key, team, user or end user over its max_budget is refused (400,
LiteLLM's budget_exceeded) from spend that includes what is not written yet; budget periods reset."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import pytest
import sqlalchemy as sa
from tests.stack import COST, stack

from seance.gateway.store import tables
from seance.gateway.store.budgets import reset_due
from seance.gateway.store.keys import hash_key


async def test_key_budget_crossed_before_the_batch_is_written(tmp_path: Path, db_env: dict[str, str]) -> None:
    async with stack(tmp_path, db_env) as s:
        key = await s.generate(max_budget=COST * 2.5, key_alias="budgeted")  # three requests cross it
        for _ in range(3):
            assert (await s.chat(key)).status_code == 200
        assert s.store.spend.pending, "the spend is still in the batch"
        refused = await s.chat(key)
        assert refused.status_code == 400
        error = refused.json()["error"]
        assert error["type"] == "budget_exceeded" and "Budget has been exceeded" in error["message"]
        assert "Key=budgeted" in error["message"]
        await s.store.spend.flush()
        s.store.forget()  # read from the database again: the same answer
        assert (await s.chat(key)).status_code == 400


async def test_team_budget_bounds_every_key_of_the_team(tmp_path: Path, db_env: dict[str, str]) -> None:
    async with stack(tmp_path, db_env) as s:
        status, team = await s.admin("POST", "/team/new", {"team_alias": "ml", "max_budget": COST * 1.5})
        assert status == 200, team
        first = await s.generate(team_id=team["team_id"])
        second = await s.generate(team_id=team["team_id"])
        assert (await s.chat(first)).status_code == 200
        assert (await s.chat(second)).status_code == 200
        refused = await s.chat(first)
        assert refused.status_code == 400 and "Team=ml" in refused.json()["error"]["message"]
        await s.store.spend.flush()
        status, info = await s.admin("GET", "/team/info", team_id=team["team_id"])
        assert status == 200 and abs(info["team_info"]["spend"] - 2 * COST) < 1e-12 and len(info["keys"]) == 2


async def test_end_user_budget(tmp_path: Path, db_env: dict[str, str]) -> None:
    async with stack(tmp_path, db_env) as s:
        status, body = await s.admin("POST", "/customer/new", {"user_id": "cust-1", "max_budget": COST * 0.5})
        assert status == 200 and body["litellm_budget_table"]["max_budget"] == COST * 0.5, body
        key = await s.generate()
        assert (await s.chat(key, user="cust-1")).status_code == 200
        refused = await s.chat(key, user="cust-1")
        assert refused.status_code == 400 and "End User=cust-1" in refused.json()["error"]["message"]
        assert (await s.chat(key, user="someone-else")).status_code == 200
        await s.store.spend.flush()
        status, info = await s.admin("GET", "/customer/info", end_user_id="someone-else")
        assert status == 200 and abs(info["spend"] - COST) < 1e-12  # end users exist once they spend
        status, body = await s.admin("POST", "/customer/block", {"user_ids": ["blocked-one"]})
        assert status == 200
        assert (await s.chat(key, user="blocked-one")).status_code == 400


async def test_max_end_user_budget_bounds_end_users_without_their_own(tmp_path: Path, db_env: dict[str, str]) -> None:
    """litellm_settings.max_end_user_budget: every end user without a budget of their own, whether
    they were made with /customer/new or exist only once they spend; their own budget wins."""
    async with stack(tmp_path, db_env, litellm={"max_end_user_budget": COST * 1.5}) as s:
        status, body = await s.admin("POST", "/customer/new", {"user_id": "big", "max_budget": COST * 10})
        assert status == 200, body
        status, body = await s.admin("POST", "/customer/new", {"user_id": "plain"})
        assert status == 200, body
        key = await s.generate()
        for end_user in ("new-one", "plain"):
            for _ in range(2):  # 1 x COST, then 2 x COST: over 1.5 x COST
                assert (await s.chat(key, user=end_user)).status_code == 200
            refused = await s.chat(key, user=end_user)
            assert refused.status_code == 400, refused.text
            error = refused.json()["error"]
            assert error["type"] == "budget_exceeded"
            assert f"End User={end_user} (litellm_settings.max_end_user_budget)" in error["message"]
        for _ in range(4):
            assert (await s.chat(key, user="big")).status_code == 200  # their own budget: 10 x COST
        await s.store.spend.flush()
        s.store.forget()  # read from the database again: the same answer
        assert (await s.chat(key, user="new-one")).status_code == 400
        assert (await s.chat(key)).status_code == 200  # no end user named: nothing to bound


async def test_budget_duration_resets(tmp_path: Path, db_env: dict[str, str]) -> None:
    async with stack(tmp_path, db_env) as s:
        key = await s.generate(max_budget=COST * 0.5, budget_duration="1h")
        assert (await s.chat(key)).status_code == 200
        assert (await s.chat(key)).status_code == 400
        await s.store.spend.flush()
        engine = s.store.engine()
        async with engine.connect() as db:
            reset_at = (await db.execute(sa.select(tables.keys.c.budget_reset_at)
                                         .where(tables.keys.c.token == hash_key(key)))).scalar_one()  # fmt: skip
        assert 3500 < reset_at - time.time() <= 3600
        assert await reset_due(engine, s.store.ledger, now=reset_at + 1) >= 1
        s.store.forget()
        assert (await s.chat(key)).status_code == 200
        _status, info = await s.admin("GET", "/key/info", key=key)
        assert info["info"]["budget_reset_at"] > info["info"]["updated_at"]  # the next period is set


async def test_spend_logs_rows_and_reports(tmp_path: Path, db_env: dict[str, str]) -> None:
    async with stack(tmp_path, db_env) as s:
        await s.admin("POST", "/user/new", {"user_id": "spender", "auto_create_key": False})
        key = await s.generate(user_id="spender", tags=["from-key"])
        for _ in range(3):
            answer = await s.chat(key, metadata={"tags": ["job:1"]}, user="eu-9")
            assert answer.status_code == 200
        request_id = answer.headers["x-request-id"]
        await s.store.spend.flush()
        status, rows = await s.admin("GET", "/spend/logs", api_key=key)
        assert status == 200 and len(rows) == 3
        row = rows[-1]
        assert row["api_key"] == hash_key(key) and row["user"] == "spender" and row["end_user"] == "eu-9"
        assert row["model_group"] == "a" and row["custom_llm_provider"] == "openai" and row["status"] == "success"
        assert row["prompt_tokens"] == 10 and row["completion_tokens"] == 5 and abs(row["spend"] - COST) < 1e-12
        assert row["request_tags"] == ["job:1", "from-key"] and row["startTime"] <= row["endTime"]
        status, one = await s.admin("GET", "/spend/logs", request_id=request_id)
        assert [r["request_id"] for r in one] == [request_id]
        status, tags = await s.admin("GET", "/spend/tags")
        job = next(t for t in tags if t["individual_request_tag"] == "job:1")
        assert job["log_count"] >= 3
        status, days = await s.admin("GET", "/global/spend/logs", api_key=key)
        assert status == 200 and abs(sum(d["spend"] for d in days) - 3 * COST) < 1e-12
        status, report = await s.admin("GET", "/global/spend/report", group_by="customer")
        assert status == 200 and any(c["customer"] == "eu-9" for day in report for c in day["customers"])
        other = await s.generate(key_alias="other")
        assert (await s.chat(other)).status_code == 200
        await s.store.spend.flush()
        # (the session's database holds other tests' spend too: these two keys, and the order of all)
        status, top = await s.admin("GET", "/global/spend/keys")
        mine = [k for k in top if k["api_key"] in (hash_key(key), hash_key(other))]
        assert status == 200 and [k["api_key"] for k in mine] == [hash_key(key), hash_key(other)]
        assert abs(mine[0]["total_spend"] - 3 * COST) < 1e-12 and mine[1]["key_alias"] == "other"
        assert mine[1]["key_name"] == f"sk-...{other[-4:]}"
        assert [k["total_spend"] for k in top] == sorted((k["total_spend"] for k in top), reverse=True)
        status, one = await s.admin("GET", "/global/spend/keys", limit="1")
        assert status == 200 and one == top[:1]
        status, models = await s.admin("GET", "/global/spend/models", limit="5")
        spent_on = {m["model"]: m["total_spend"] for m in models}
        assert status == 200 and len(models) <= 5 and spent_on["a"] >= 4 * COST - 1e-12
        for path in ("/global/spend/keys", "/global/spend/models"):
            status, bad = await s.admin("GET", path, limit="0")
            assert status == 400 and bad["error"]["param"] == "limit"
            assert (await s.admin("GET", path, as_key=key))[0] == 403  # an internal user's key
        status, user = await s.admin("GET", "/user/info", user_id="spender")
        assert abs(user["user_info"]["spend"] - 3 * COST) < 1e-12
        status, bad = await s.admin("GET", "/spend/logs", start_date="yesterday")
        assert status == 400 and bad["error"]["param"] == "start_date"


async def test_a_shared_budget_period_resets_its_end_users(tmp_path: Path, db_env: dict[str, str]) -> None:
    async with stack(tmp_path, db_env) as s:
        status, body = await s.admin("POST", "/customer/new", {"user_id": "cust-reset", "max_budget": COST * 0.5,
                                                               "budget_duration": "1d"})  # fmt: skip
        assert status == 200 and body["litellm_budget_table"]["budget_reset_at"] is not None
        key = await s.generate()
        assert (await s.chat(key, user="cust-reset")).status_code == 200
        assert (await s.chat(key, user="cust-reset")).status_code == 400
        await s.store.spend.flush()
        assert await reset_due(s.store.engine(), s.store.ledger, now=time.time() + 86401) >= 1
        s.store.forget()
        assert (await s.chat(key, user="cust-reset")).status_code == 200


async def test_soft_budget_warns_once_and_refuses_nothing(
    tmp_path: Path, db_env: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    async with stack(tmp_path, db_env) as s:
        key = await s.generate(soft_budget=COST * 0.5, key_alias="soft")
        with caplog.at_level(logging.WARNING, logger="seance.gateway"):
            for _ in range(3):
                assert (await s.chat(key)).status_code == 200
        warnings = [r.getMessage() for r in caplog.records if "soft budget" in r.getMessage()]
        assert len(warnings) == 1 and "key soft passed its soft budget" in warnings[0]
        assert key not in warnings[0]


async def test_disable_spend_logs_writes_no_rows_and_budgets_still_hold(tmp_path: Path, db_env: dict[str, str]) -> None:
    general = {"disable_spend_logs": True, "proxy_batch_write_at": 30}
    async with stack(tmp_path, db_env, general=general) as s:
        assert s.store.spend.interval == 30.0
        key = await s.generate(max_budget=COST * 1.5, key_alias="rowless")
        assert (await s.chat(key)).status_code == 200
        assert (await s.chat(key)).status_code == 200
        await s.store.spend.flush()
        s.store.forget()
        assert (await s.chat(key)).status_code == 400  # the key's spend was written, from the database
        async with s.store.engine().connect() as db:
            logs = tables.spend_logs
            mine = sa.select(sa.func.count()).select_from(logs).where(logs.c.api_key == hash_key(key))
            rows = (await db.execute(mine)).scalar_one()
            spend = (
                await db.execute(sa.select(tables.keys.c.spend).where(tables.keys.c.key_alias == "rowless"))
            ).scalar_one()
        assert rows == 0 and abs(spend - 2 * COST) < 1e-12


async def test_a_users_budget_bounds_their_own_keys_not_their_team_keys(tmp_path: Path, db_env: dict[str, str]) -> None:
    """As LiteLLM (since 1.94.1): a key of a team answers to the team's budgets only."""
    async with stack(tmp_path, db_env) as s:
        status, _ = await s.admin("POST", "/user/new", {"user_id": "ann-team-budget", "max_budget": COST * 1.5})
        assert status == 200
        status, team = await s.admin("POST", "/team/new", {"team_alias": "research-budget"})
        assert status == 200
        own = await s.generate(user_id="ann-team-budget")
        of_team = await s.generate(user_id="ann-team-budget", team_id=team["team_id"])
        assert (await s.chat(own)).status_code == 200
        assert (await s.chat(own)).status_code == 200
        refused = await s.chat(own)
        assert refused.status_code == 400 and "User=ann-team-budget" in refused.json()["error"]["message"]
        assert (await s.chat(of_team)).status_code == 200  # ann is over her own budget, the team is not
