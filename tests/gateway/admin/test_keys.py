"""/key/* as a LiteLLM admin calls them, and what the keys then do on the API: on SQLite and on
the real PostgreSQL."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import sqlalchemy as sa
from tests.stack import COST, MASTER, stack

from seance.gateway.store import tables
from seance.gateway.store.keys import hash_key


async def test_generate_then_use_then_info(tmp_path: Path, db_env: dict[str, str]) -> None:
    async with stack(tmp_path, db_env) as s:
        status, body = await s.admin(
            "POST",
            "/key/generate",
            {"key_alias": "app-1", "models": ["a"], "metadata": {"owner": "x"}, "max_budget": 10},
        )
        assert status == 200, body
        key = body["key"]
        assert key.startswith("sk-") and body["token"] == hash_key(key) and body["key_name"] == f"sk-...{key[-4:]}"
        assert body["key_alias"] == "app-1" and body["models"] == ["a"] and body["max_budget"] == 10
        assert body["expires"] is None and body["spend"] == 0
        answer = await s.chat(key)
        assert answer.status_code == 200, answer.text
        await s.store.spend.flush()
        status, info = await s.admin("GET", "/key/info", key=key)
        assert status == 200
        assert info["key"] == key and abs(info["info"]["spend"] - COST) < 1e-12
        assert info["info"]["key_alias"] == "app-1" and info["info"]["metadata"] == {"owner": "x"}


async def test_model_not_allowed_and_models_listed(tmp_path: Path, db_env: dict[str, str]) -> None:
    async with stack(tmp_path, db_env) as s:
        key = await s.generate(models=["a"], key_alias="only-a")
        refused = await s.chat(key, "b")
        assert refused.status_code == 403
        error = refused.json()["error"]
        assert "only-a" in error["message"] and "model b" in error["message"] and error["param"] == "model"
        listed = await s.client.get("/v1/models", headers={"authorization": f"Bearer {key}"})
        assert [m["id"] for m in listed.json()["data"]] == ["a"]
        everything = await s.client.get("/v1/models", headers={"authorization": f"Bearer {MASTER}"})
        assert [m["id"] for m in everything.json()["data"]] == ["a", "b"]
        assert (await s.client.get("/v1/models/b", headers={"authorization": f"Bearer {key}"})).status_code == 404


async def test_access_groups_expand(tmp_path: Path, db_env: dict[str, str]) -> None:
    from tests.stack import model

    models = [model("a", access_groups=["beta"]), model("b", access_groups=["beta"]), model("c")]
    async with stack(tmp_path, db_env, models) as s:
        key = await s.generate(models=["beta"])
        assert (await s.chat(key, "b")).status_code == 200
        assert (await s.chat(key, "c")).status_code == 403


async def test_expired_key_is_refused(tmp_path: Path, db_env: dict[str, str]) -> None:
    async with stack(tmp_path, db_env) as s:
        key = await s.generate(duration="1s", key_alias="short")
        assert (await s.chat(key)).status_code == 200
        await asyncio.sleep(1.1)
        refused = await s.chat(key)
        assert refused.status_code == 401 and "short" in refused.json()["error"]["message"]
        assert "expired" in refused.json()["error"]["message"]


async def test_unknown_key_and_missing_key(tmp_path: Path, db_env: dict[str, str]) -> None:
    async with stack(tmp_path, db_env) as s:
        answer = await s.chat("sk-not-a-key")
        assert answer.status_code == 401 and "invalid API key" in answer.json()["error"]["message"]
        assert (await s.chat("")).status_code == 401


async def test_block_unblock_delete(tmp_path: Path, db_env: dict[str, str]) -> None:
    async with stack(tmp_path, db_env) as s:
        key = await s.generate(key_alias="blockme")
        assert (await s.chat(key)).status_code == 200
        status, body = await s.admin("POST", "/key/block", {"key": key})
        assert status == 200 and body["blocked"] is True
        blocked = await s.chat(key)
        assert blocked.status_code == 401 and "blocked" in blocked.json()["error"]["message"]
        status, body = await s.admin("POST", "/key/unblock", {"key": hash_key(key)})
        assert status == 200 and body["blocked"] is False
        assert (await s.chat(key)).status_code == 200
        status, body = await s.admin("POST", "/key/delete", {"keys": [key]})
        assert status == 200 and body == {"deleted_keys": [key]}
        assert (await s.chat(key)).status_code == 401
        status, body = await s.admin("POST", "/key/delete", {"keys": [key]})
        assert status == 404 and body["error"]["param"] == "key"


async def test_update_and_regenerate(tmp_path: Path, db_env: dict[str, str]) -> None:
    async with stack(tmp_path, db_env) as s:
        key = await s.generate(models=["a"])
        status, body = await s.admin("POST", "/key/update", {"key": key, "models": ["a", "b"], "key_alias": "k2"})
        assert status == 200 and body["models"] == ["a", "b"] and body["key_alias"] == "k2"
        assert (await s.chat(key, "b")).status_code == 200  # the change is seen at once here
        status, body = await s.admin("POST", "/key/regenerate", {"key": key})
        assert status == 200 and body["key"] != key and body["key_alias"] == "k2"
        assert (await s.chat(key)).status_code == 401
        assert (await s.chat(body["key"])).status_code == 200
        status, again = await s.admin("POST", f"/key/{body['key']}/regenerate", {})
        assert status == 200 and again["key"] != body["key"]


async def test_list_paginates_and_filters(tmp_path: Path, db_env: dict[str, str]) -> None:
    async with stack(tmp_path, db_env) as s:
        await s.admin("POST", "/user/new", {"user_id": "u-list", "auto_create_key": False})
        made = [hash_key(await s.generate(user_id="u-list")) for _ in range(3)]
        status, body = await s.admin("GET", "/key/list", user_id="u-list", size=2)
        assert status == 200 and body["total_count"] == 3 and body["total_pages"] == 2
        assert body["current_page"] == 1 and len(body["keys"]) == 2 and set(body["keys"]) <= set(made)
        status, body = await s.admin("GET", "/key/list", user_id="u-list", size=2, page=2, return_full_object="true")
        assert len(body["keys"]) == 1 and body["keys"][0]["user_id"] == "u-list"


async def test_validation_errors_name_the_field(tmp_path: Path, db_env: dict[str, str]) -> None:
    async with stack(tmp_path, db_env) as s:
        cases = [
            ({"max_budget": "ten"}, "max_budget"),
            ({"models": "a"}, "models"),
            ({"duration": "soon"}, "duration"),
            ({"budget_duration": "30x"}, "budget_duration"),
            ({"team_id": "no-such-team"}, "team_id"),
            ({"rpm_limit": -1}, "rpm_limit"),
            ({"model_tpm_limit": {"a": "x"}}, "model_tpm_limit"),  # (it made every request to `a` a 500)
            ({"model_rpm_limit": {"a": -1}}, "model_rpm_limit"),
            ({"model_rpm_limit": {"a": 2.5}}, "model_rpm_limit"),
            ({"key": "not-sk"}, "key"),
        ]
        for fields, param in cases:
            status, body = await s.admin("POST", "/key/generate", fields)
            assert status == 400, (fields, body)
            assert body["error"]["param"] == param and param in body["error"]["message"], body
        await s.generate(key_alias="dup")
        status, body = await s.admin("POST", "/key/generate", {"key_alias": "dup"})
        assert status == 400 and body["error"]["param"] == "key_alias"
        status, body = await s.admin("POST", "/key/update", {"models": ["a"]})
        assert status == 400 and body["error"]["param"] == "key"
        bad = await s.client.post("/key/generate", content=b"{", headers={"authorization": f"Bearer {MASTER}"})
        assert bad.status_code == 400 and "JSON" in bad.json()["error"]["message"]


async def test_health_and_unknown_paths(tmp_path: Path, db_env: dict[str, str]) -> None:
    async with stack(tmp_path, db_env) as s:
        key = await s.generate()
        status, body = await s.admin("POST", "/key/health", {}, as_key=key)
        assert status == 200 and body["key"] == "healthy"
        status, body = await s.admin("GET", "/key/nothing-here")
        assert status == 404 and "management endpoint" in body["error"]["message"]
        status, body = await s.admin("POST", "/key/generate", {}, as_key="sk-wrong")
        assert status == 401


def test_without_a_database_the_management_api_says_so(tmp_path: Path) -> None:
    from tests.gateway.asgi_client import deployment, make_app, request

    from seance.gateway.upstream.mock import MockResponse

    app, _ = make_app(tmp_path, {"model_list": [deployment("gpt", "openai/gpt-4o")]}, lambda r: MockResponse(200))
    answer = request(app, "POST", "/key/generate", {})
    assert answer.status == 501 and "database" in answer.json()["error"]["message"]


async def test_a_keys_hash_is_not_the_key(tmp_path: Path, db_env: dict[str, str]) -> None:
    """The stored hash (what /key/list shows, what spend logs carry) opens nothing: the management
    API hashes what is presented, as the API does; LiteLLM's `token` field still takes a hash."""
    async with stack(tmp_path, db_env) as s:
        key = await s.generate(key_alias="app")
        status, _ = await s.admin("GET", "/key/info", as_key=key, key=key)
        assert status == 200
        status, body = await s.admin("GET", "/key/info", as_key=hash_key(key), key=key)
        assert status == 401, body
        assert (await s.chat(hash_key(key))).status_code == 401


async def test_a_management_body_is_checked_as_the_model_apis_check_theirs(
    tmp_path: Path, db_env: dict[str, str]
) -> None:
    async with stack(tmp_path, db_env) as s:
        headers = {"authorization": f"Bearer {MASTER}", "content-type": "application/json"}
        for raw, message in [(b"{", "not valid JSON"), (b"[]", "must be a JSON object"),
                             (b'{"metadata": ' + b"[" * 300 + b"]" * 300 + b"}", "nests deeper than")]:  # fmt: skip
            answer = await s.client.post("/key/generate", content=raw, headers=headers)
            assert answer.status_code == 400 and message in answer.json()["error"]["message"]


async def test_allowed_cache_controls_are_the_only_ones_a_keys_requests_may_set(
    tmp_path: Path, db_env: dict[str, str]
) -> None:
    async with stack(tmp_path, db_env, litellm={"cache": True, "cache_params": {"type": "local"}}) as s:
        ready = (await s.client.get("/health/readiness")).json()
        assert ready == {"status": "healthy", "db": "connected", "cache": "local"}
        status, refused = await s.admin("POST", "/key/generate", {"allowed_cache_controls": ["no-cahce"]})
        assert status == 400 and "did you mean 'no-cache'?" in refused["error"]["message"]
        limited = await s.generate(allowed_cache_controls=["no-cache"])
        status, info = await s.admin("GET", "/key/info", key=limited)
        assert info["info"]["allowed_cache_controls"] == ["no-cache"]
        assert (await s.chat(limited, cache={"no-cache": True})).status_code == 200
        answer = await s.chat(limited, cache={"no-cache": True, "ttl": 5})
        assert answer.status_code == 403 and "may not set the cache control 'ttl'" in answer.json()["error"]["message"]
        # a Cache-Control directive it may not set is not acted on (HTTP intermediaries add them), not refused
        body = b'{"model": "a", "messages": [{"role": "user", "content": "through a proxy"}]}'
        headers = {"authorization": f"Bearer {limited}", "cache-control": "no-store"}
        assert (await s.client.post("/v1/chat/completions", content=body, headers=headers)).status_code == 200
        calls = len(s.transport.requests)
        headers = {"authorization": f"Bearer {limited}"}
        hit = await s.client.post("/v1/chat/completions", content=body, headers=headers)
        assert hit.status_code == 200 and len(s.transport.requests) == calls  # it was stored: a hit
        anyone = await s.generate()  # [] (the default): every control
        assert (await s.chat(anyone, cache={"ttl": 5, "no-store": True})).status_code == 200
        status, _ = await s.admin("POST", "/key/update", {"key": limited, "allowed_cache_controls": []})
        assert status == 200 and (await s.chat(limited, cache={"ttl": 5})).status_code == 200


async def test_a_stored_per_model_limit_that_is_not_a_number_is_ignored_not_a_500(
    tmp_path: Path, db_env: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    """A row the management API did not write (an import, a hand edit) with a per-model limit that is
    no whole number: its other limits still apply, and requests to the model are served."""
    async with stack(tmp_path, db_env) as s:
        key = await s.generate(key_alias="edited", model_rpm_limit={"b": 1})
        async with s.store.engine().begin() as db:
            await db.execute(
                sa.update(tables.keys).where(tables.keys.c.token == hash_key(key))
                .values(model_tpm_limit={"a": "x"}, model_rpm_limit={"a": -1, "b": 1})
            )  # fmt: skip
        s.store.keys.forget()
        with caplog.at_level("WARNING", logger="seance.gateway"):
            assert (await s.chat(key, "a")).status_code == 200
        assert "Key=edited: model_tpm_limit holds values that are not whole numbers" in caplog.text
        assert (await s.chat(key, "b")).status_code == 200
        assert (await s.chat(key, "b")).status_code == 429  # b's limit of 1 a minute still holds
