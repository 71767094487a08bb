"""/team/*, /user/*, /organization/*, /budget/*, and the roles: a viewer cannot write, an internal
user sees and changes only their own keys, a team admin manages their team."""

from __future__ import annotations

from pathlib import Path

from tests.stack import stack


async def test_team_lifecycle(tmp_path: Path, db_env: dict[str, str]) -> None:
    async with stack(tmp_path, db_env) as s:
        status, team = await s.admin("POST", "/team/new", {
            "team_alias": "research", "models": ["a"], "members_with_roles": [{"role": "admin", "user_id": "lead"}],
            "rpm_limit": 100, "budget_duration": "30d", "metadata": {"cc": "42"},
        })  # fmt: skip
        assert status == 200, team
        team_id = team["team_id"]
        assert team["admins"] == ["lead"] and team["members"] == ["lead"] and team["blocked"] is False
        assert team["budget_reset_at"] is not None and team["spend"] == 0
        status, body = await s.admin(
            "POST", "/team/member_add", {"team_id": team_id, "member": {"role": "user", "user_id": "dev"}}
        )
        assert status == 200 and body["members"] == ["lead", "dev"]
        assert body["updated_users"][0]["user_id"] == "dev" and team_id in body["updated_users"][0]["teams"]
        status, body = await s.admin(
            "POST",
            "/team/member_update",
            {"team_id": team_id, "user_id": "dev", "role": "admin", "max_budget_in_team": 5},
        )
        assert status == 200 and body["role"] == "admin" and body["max_budget_in_team"] == 5
        status, body = await s.admin("POST", "/team/member_delete", {"team_id": team_id, "user_id": "dev"})
        assert status == 200 and body["members"] == ["lead"]
        status, body = await s.admin("POST", "/team/update", {"team_id": team_id, "models": ["a", "b"]})
        assert status == 200 and body["team_id"] == team_id and body["data"]["models"] == ["a", "b"]
        key = await s.generate(team_id=team_id, models=["b"])
        assert (await s.chat(key, "b")).status_code == 200
        await s.admin("POST", "/team/block", {"team_id": team_id})
        blocked = await s.chat(key, "b")
        assert blocked.status_code == 401 and "research" in blocked.json()["error"]["message"]
        status, body = await s.admin("POST", "/team/unblock", {"team_id": team_id})
        assert status == 200 and body["blocked"] is False
        status, teams = await s.admin("GET", "/team/list", user_id="lead")
        assert [t["team_id"] for t in teams] == [team_id]
        status, body = await s.admin("POST", "/team/delete", {"team_ids": [team_id]})
        assert status == 200 and body == {"deleted_teams": [team_id]}
        assert (await s.chat(key, "b")).status_code == 401  # the team's keys go with it
        status, body = await s.admin("GET", "/team/info", team_id=team_id)
        assert status == 404 and body["error"]["param"] == "team_id"


async def test_team_model_add_and_delete(tmp_path: Path, db_env: dict[str, str]) -> None:
    """LiteLLM's /team/model/add and /team/model/delete: the team's keys follow at once; a team
    with no models (every model) keeps every model when one is added; a team member who is not
    its admin may not change them."""
    async with stack(tmp_path, db_env) as s:
        dev_id = f"dev-{tmp_path.name}"[-40:]  # (the session's database is shared: an id of this test's own)
        made = {"team_alias": "grows", "models": ["a"], "members_with_roles": [{"role": "user", "user_id": dev_id}]}
        _, team = await s.admin("POST", "/team/new", made)
        team_id = team["team_id"]
        key = await s.generate(team_id=team_id)
        assert (await s.chat(key, "b")).status_code == 403
        status, body = await s.admin("POST", "/team/model/add", {"team_id": team_id, "models": ["b", "a", "b"]})
        assert status == 200 and body["models"] == ["a", "b"] and body["team_id"] == team_id
        assert (await s.chat(key, "b")).status_code == 200
        status, body = await s.admin("POST", "/team/model/delete", {"team_id": team_id, "models": ["a", "zzz"]})
        assert status == 200 and body["models"] == ["b"]
        assert (await s.chat(key, "a")).status_code == 403

        _, everything = await s.admin("POST", "/team/new", {"team_alias": "open"})
        status, body = await s.admin("POST", "/team/model/add", {"team_id": everything["team_id"], "models": ["b"]})
        assert status == 200 and body["models"] == ["all-proxy-models", "b"]
        assert (await s.chat(await s.generate(team_id=everything["team_id"]), "a")).status_code == 200

        dev = await s.generate(user_id=dev_id)  # a member, not the team's admin
        status, body = await s.admin("POST", "/team/model/add", {"team_id": team_id, "models": ["a"]}, as_key=dev)
        assert status == 403, body
        for bad in ({"team_id": team_id}, {"team_id": team_id, "models": []}, {"team_id": team_id, "models": [1]}):
            status, body = await s.admin("POST", "/team/model/add", bad)
            assert status == 400 and body["error"]["param"] == "models", bad
        status, body = await s.admin("POST", "/team/model/delete", {"team_id": "nope", "models": ["a"]})
        assert status == 404 and body["error"]["code"] == "team_not_found"


async def test_team_models_bound_its_keys(tmp_path: Path, db_env: dict[str, str]) -> None:
    async with stack(tmp_path, db_env) as s:
        _status, team = await s.admin("POST", "/team/new", {"team_alias": "only-a", "models": ["a"]})
        key = await s.generate(team_id=team["team_id"])  # no models of its own: the team's
        assert (await s.chat(key, "a")).status_code == 200
        assert (await s.chat(key, "b")).status_code == 403
        wider = await s.generate(team_id=team["team_id"], models=["a", "b"])  # never wider than the team
        assert (await s.chat(wider, "b")).status_code == 403


async def test_user_lifecycle(tmp_path: Path, db_env: dict[str, str]) -> None:
    async with stack(tmp_path, db_env) as s:
        status, user = await s.admin(
            "POST",
            "/user/new",
            {"user_id": "ann", "user_email": "ann@example.com", "user_role": "internal_user", "max_budget": 3},
        )
        assert status == 200 and user["key"].startswith("sk-") and user["user_role"] == "internal_user"
        assert (await s.chat(user["key"])).status_code == 200  # the key a new user gets works
        status, body = await s.admin("POST", "/user/update", {"user_email": "ann@example.com", "max_budget": 4})
        assert status == 200 and body["max_budget"] == 4 and body["user_id"] == "ann"
        status, body = await s.admin("GET", "/user/info", user_id="ann")
        assert status == 200 and body["user_info"]["user_email"] == "ann@example.com" and len(body["keys"]) == 1
        status, body = await s.admin("GET", "/user/list", role="internal_user", page_size=100)
        assert status == 200 and "ann" in [u["user_id"] for u in body["users"]] and body["page"] == 1
        status, body = await s.admin("POST", "/user/new", {"user_id": "bad", "user_role": "emperor"})
        assert status == 400 and body["error"]["param"] == "user_role"
        status, body = await s.admin("POST", "/user/delete", {"user_ids": ["ann"]})
        assert status == 200 and body == {"deleted_users": ["ann"]}
        assert (await s.chat(user["key"])).status_code == 401


async def test_roles(tmp_path: Path, db_env: dict[str, str]) -> None:
    async with stack(tmp_path, db_env) as s:
        keys = {}
        for role in ("proxy_admin_viewer", "internal_user", "internal_user_viewer", "proxy_admin"):
            status, user = await s.admin("POST", "/user/new", {"user_id": f"u-{role}", "user_role": role})
            assert status == 200, user
            keys[role] = user["key"]
        other = await s.generate(key_alias="someone-elses")

        # a viewer reads everything and changes nothing
        viewer = keys["proxy_admin_viewer"]
        assert (await s.admin("GET", "/key/list", as_key=viewer))[0] == 200
        assert (await s.admin("GET", "/user/list", as_key=viewer))[0] == 200
        status, body = await s.admin("POST", "/key/generate", {}, as_key=viewer)
        assert status == 403 and "proxy_admin_viewer" in body["error"]["message"]
        assert (await s.admin("POST", "/team/new", {"team_alias": "x"}, as_key=viewer))[0] == 403

        # an internal user manages their own keys, and sees only theirs
        user = keys["internal_user"]
        status, mine = await s.admin("POST", "/key/generate", {"user_id": "someone-else"}, as_key=user)
        assert status == 200 and mine["user_id"] == "u-internal_user"
        status, listed = await s.admin("GET", "/key/list", as_key=user)
        assert status == 200 and listed["total_count"] == 2  # the one from /user/new and this one
        assert (await s.admin("GET", "/key/info", as_key=user, key=other))[0] == 403
        assert (await s.admin("POST", "/key/delete", {"keys": [other]}, as_key=user))[0] == 403
        assert (await s.admin("POST", "/key/update", {"key": mine["key"], "key_alias": "mine"}, as_key=user))[0] == 200
        assert (await s.admin("POST", "/key/block", {"key": mine["key"]}, as_key=user))[0] == 403
        assert (await s.admin("GET", "/user/list", as_key=user))[0] == 403
        assert (await s.admin("GET", "/user/info", as_key=user))[1]["user_id"] == "u-internal_user"
        assert (await s.admin("GET", "/user/info", as_key=user, user_id="u-proxy_admin"))[0] == 403
        assert (await s.admin("POST", "/user/new", {}, as_key=user))[0] == 403
        assert (await s.admin("GET", "/spend/logs", as_key=user))[0] == 200
        assert (await s.admin("GET", "/global/spend/report", as_key=user))[0] == 403

        # an internal viewer reads only what is theirs, and writes nothing
        status, body = await s.admin("POST", "/key/generate", {}, as_key=keys["internal_user_viewer"])
        assert status == 403
        # a proxy admin's key is the master key's equal
        assert (await s.admin("POST", "/team/new", {"team_alias": "by-admin"}, as_key=keys["proxy_admin"]))[0] == 200


async def test_team_admin_manages_members_and_team_keys(tmp_path: Path, db_env: dict[str, str]) -> None:
    async with stack(tmp_path, db_env) as s:
        _, lead = await s.admin("POST", "/user/new", {"user_id": "lead2", "user_role": "internal_user"})
        _, team = await s.admin(
            "POST", "/team/new", {"team_alias": "t2", "members_with_roles": [{"role": "admin", "user_id": "lead2"}]}
        )
        team_key = await s.generate(team_id=team["team_id"])
        add = {"team_id": team["team_id"], "member": [{"role": "user", "user_id": "new-dev"}]}
        assert (await s.admin("POST", "/team/member_add", add, as_key=lead["key"]))[0] == 200
        assert (await s.admin("GET", "/key/info", as_key=lead["key"], key=team_key))[0] == 200
        _status, other = await s.admin("POST", "/team/new", {"team_alias": "t3"})
        add = {"team_id": other["team_id"], "member": {"role": "user", "user_id": "x"}}
        assert (await s.admin("POST", "/team/member_add", add, as_key=lead["key"]))[0] == 403


async def test_organizations_and_budgets(tmp_path: Path, db_env: dict[str, str]) -> None:
    async with stack(tmp_path, db_env) as s:
        status, budget = await s.admin(
            "POST", "/budget/new", {"budget_id": "small", "max_budget": 1e-9, "rpm_limit": 5}
        )
        assert status == 200 and budget["budget_id"] == "small" and budget["rpm_limit"] == 5
        status, body = await s.admin("POST", "/budget/update", {"budget_id": "small", "max_budget": 2})
        assert status == 200 and body["max_budget"] == 2
        status, body = await s.admin("POST", "/budget/info", {"budgets": ["small"]})
        assert status == 200 and [b["budget_id"] for b in body] == ["small"]
        assert "small" in [b["budget_id"] for b in (await s.admin("GET", "/budget/list"))[1]]
        status, org = await s.admin(
            "POST", "/organization/new", {"organization_alias": "acme", "max_budget": 10, "models": ["a"]}
        )
        assert status == 200 and org["litellm_budget_table"]["max_budget"] == 10
        org_id = org["organization_id"]
        status, body = await s.admin(
            "PATCH", "/organization/update", {"organization_id": org_id, "organization_alias": "acme2"}
        )
        assert status == 200 and body["organization_alias"] == "acme2"
        status, body = await s.admin(
            "POST",
            "/organization/member_add",
            {"organization_id": org_id, "member": [{"role": "internal_user", "user_id": "o1"}]},
        )
        assert status == 200 and body["updated_users"][0]["user_id"] == "o1"
        status, body = await s.admin(
            "PATCH", "/organization/member_update", {"organization_id": org_id, "user_id": "o1", "role": "org_admin"}
        )
        assert status == 200 and (body["user_id"], body["user_role"]) == ("o1", "org_admin")
        status, body = await s.admin("GET", "/organization/info", organization_id=org_id)
        assert status == 200 and body["members"][0] == {"user_id": "o1", "user_email": None, "user_role": "org_admin"}
        for bad, param in (
            ({"user_id": "o1", "role": "emperor"}, "role"),
            ({"role": "org_admin"}, "user_id"),
            ({"user_id": "o1", "role": "org_admin", "max_budget_in_organization": 5}, "max_budget_in_organization"),
        ):
            status, body = await s.admin("POST", "/organization/member_update", {"organization_id": org_id, **bad})
            assert status == 400 and body["error"]["param"] == param, bad
        status, body = await s.admin(
            "POST", "/organization/member_update", {"organization_id": org_id, "user_id": "nobody", "role": "org_admin"}
        )
        assert status == 404 and body["error"]["code"] == "member_not_found"
        status, body = await s.admin(
            "DELETE", "/organization/member_delete", {"organization_id": org_id, "user_id": "o1"}
        )
        assert status == 200 and body["members"] == []
        assert org_id in [o["organization_id"] for o in (await s.admin("GET", "/organization/list"))[1]]
        status, body = await s.admin("DELETE", "/organization/delete", {"organization_ids": [org_id]})
        assert status == 200 and body[0]["organization_id"] == org_id
        status, body = await s.admin("POST", "/budget/delete", {"id": "small"})
        assert status == 200 and (await s.admin("POST", "/budget/info", {"budgets": ["small"]}))[1] == []
        status, body = await s.admin("POST", "/organization/new", {})
        assert status == 400 and body["error"]["param"] == "organization_alias"
