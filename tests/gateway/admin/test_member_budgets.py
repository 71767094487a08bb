"""Team member budgets: a member's `max_budget_in_team` (/team/member_add, /team/member_update)
bounds what they spend with the team's keys, counted per member (seance_team_memberships, LiteLLM's
LiteLLM_TeamMembership) in the spend log's transaction, refused with LiteLLM's wording, shown by
/team/info, and reset with the team's budget period."""

from __future__ import annotations

import secrets
from pathlib import Path

import sqlalchemy as sa
from tests.stack import COST, Stack, stack

from seance.gateway.store import tables
from seance.gateway.store.budgets import reset_due

M = tables.team_memberships


def _id(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(4)}"  # the suite's databases are shared between tests


async def _team(s: Stack, **fields: object) -> str:
    status, team = await s.admin("POST", "/team/new", {"team_alias": _id("t"), **fields})
    assert status == 200, team
    team_id: str = team["team_id"]
    return team_id


async def _member_spend(s: Stack, team_id: str) -> dict[str, float]:
    async with s.store.engine().connect() as db:
        rows = await db.execute(sa.select(M.c.user_id, M.c.spend).where(M.c.team_id == team_id))
        return {user_id: spend for user_id, spend in rows.all()}


async def test_a_member_over_their_budget_in_the_team_is_refused(tmp_path: Path, db_env: dict[str, str]) -> None:
    async with stack(tmp_path, db_env) as s:
        team_id = await _team(s)
        ann, bob = _id("ann"), _id("bob")
        adding = {"team_id": team_id, "max_budget_in_team": COST * 1.5, "member": {"user_id": ann, "role": "user"}}
        status, added = await s.admin("POST", "/team/member_add", adding)
        assert status == 200, added
        assert added["updated_team_memberships"] == [{"team_id": team_id, "user_id": ann, "spend": 0.0,
                                                      "budget_id": None,
                                                      "litellm_budget_table": {"max_budget": COST * 1.5}}]  # fmt: skip
        status, _ = await s.admin("POST", "/team/member_add", {"team_id": team_id, "member": [{"user_id": bob}]})
        assert status == 200
        ann_key = await s.generate(team_id=team_id, user_id=ann)
        bob_key = await s.generate(team_id=team_id, user_id=bob)

        assert (await s.chat(ann_key)).status_code == 200
        assert (await s.chat(ann_key)).status_code == 200
        refused = await s.chat(ann_key)  # the third: 2 COST spent, over 1.5 COST
        assert refused.status_code == 400
        error = refused.json()["error"]
        assert error["type"] == "budget_exceeded"
        assert f"Budget has been exceeded! User={ann} in Team={team_id}" in error["message"]
        for _ in range(3):
            assert (await s.chat(bob_key)).status_code == 200  # the same team, no budget of their own

        await s.store.spend.flush()
        s.store.forget()  # read from the database again: the same answer
        assert (await s.chat(ann_key)).status_code == 400
        assert await _member_spend(s, team_id) == {ann: 2 * COST, bob: 3 * COST}

        status, info = await s.admin("GET", "/team/info", team_id=team_id)
        assert status == 200
        shown = {m["user_id"]: m for m in info["team_memberships"]}
        assert shown[ann]["spend"] == 2 * COST and shown[ann]["litellm_budget_table"] == {"max_budget": COST * 1.5}
        assert shown[bob]["spend"] == 3 * COST and shown[bob]["litellm_budget_table"] is None
        assert abs(info["team_info"]["spend"] - 5 * COST) < 1e-12

        status, body = await s.admin("POST", "/team/member_update",
                                     {"team_id": team_id, "user_id": ann, "max_budget_in_team": None})  # fmt: skip
        assert status == 200 and body["max_budget_in_team"] is None, body
        assert (await s.chat(ann_key)).status_code == 200  # the budget removed: through again

        status, info = await s.admin("GET", "/team/info", team_id=team_id)
        assert {m["user_id"]: m["spend"] for m in info["team_memberships"]}[ann] == 3 * COST  # unwritten counted
        await s.store.spend.flush()
        assert await _member_spend(s, team_id) == {ann: 3 * COST, bob: 3 * COST}
        async with s.store.engine().connect() as db:
            logged = await db.execute(sa.select(sa.func.count(), sa.func.sum(tables.spend_logs.c.spend))
                                      .where(tables.spend_logs.c.team_id == team_id))  # fmt: skip
            rows, total = logged.one()
            team_spend = (await db.execute(sa.select(tables.teams.c.spend)
                                           .where(tables.teams.c.team_id == team_id))).scalar_one()  # fmt: skip
        assert rows == 6 and abs(total - 6 * COST) < 1e-12 and abs(team_spend - 6 * COST) < 1e-12


async def test_members_rows_follow_the_team(tmp_path: Path, db_env: dict[str, str]) -> None:
    async with stack(tmp_path, db_env) as s:
        lead, dev = _id("lead"), _id("dev")
        team_id = await _team(s, members_with_roles=[{"role": "admin", "user_id": lead}])
        assert set(await _member_spend(s, team_id)) == {lead}
        await s.admin("POST", "/team/member_add", {"team_id": team_id, "member": {"user_id": dev}})
        status, body = await s.admin("POST", "/team/member_update",
                                     {"team_id": team_id, "user_id": dev, "max_budget_in_team": 7})  # fmt: skip
        assert status == 200 and body["max_budget_in_team"] == 7
        status, team = await s.admin("GET", "/team/info", team_id=team_id)
        assert all("max_budget_in_team" not in m for m in team["team_info"]["members_with_roles"])
        status, bad = await s.admin("POST", "/team/member_update",
                                    {"team_id": team_id, "user_id": dev, "max_budget_in_team": -1})  # fmt: skip
        assert status == 400 and bad["error"]["param"] == "max_budget_in_team"
        adding = {"team_id": team_id, "member": {"user_id": dev}, "max_budget_in_team": "ten"}
        status, bad = await s.admin("POST", "/team/member_add", adding)
        assert status == 400 and "max_budget_in_team must be an integer or number" in bad["error"]["message"]
        await s.admin("POST", "/team/member_delete", {"team_id": team_id, "user_id": dev})
        assert set(await _member_spend(s, team_id)) == {lead}
        await s.admin("POST", "/team/delete", {"team_ids": [team_id]})
        assert await _member_spend(s, team_id) == {}


async def test_a_members_spend_resets_with_the_teams_period(tmp_path: Path, db_env: dict[str, str]) -> None:
    async with stack(tmp_path, db_env) as s:
        team_id = await _team(s, max_budget=100.0, budget_duration="1h")
        ann = _id("ann")
        await s.admin("POST", "/team/member_add", {"team_id": team_id, "member": {"user_id": ann},
                                                   "max_budget_in_team": COST * 0.5})  # fmt: skip
        key = await s.generate(team_id=team_id, user_id=ann)
        assert (await s.chat(key)).status_code == 200
        assert (await s.chat(key)).status_code == 400
        await s.store.spend.flush()
        engine = s.store.engine()
        async with engine.connect() as db:
            reset_at = (await db.execute(sa.select(tables.teams.c.budget_reset_at)
                                         .where(tables.teams.c.team_id == team_id))).scalar_one()  # fmt: skip
        assert await reset_due(engine, s.store.ledger, now=reset_at + 1) >= 1
        assert await _member_spend(s, team_id) == {ann: 0.0}
        assert (await s.chat(key)).status_code == 200  # the ledger was reset too, even before a re-read
