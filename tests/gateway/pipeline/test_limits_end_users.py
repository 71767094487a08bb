"""An end user's rate limits, end to end: the rpm_limit / tpm_limit / max_parallel_requests that
/customer/new puts in their budget row hold every request that names them (its `user`, or LiteLLM's
x-litellm-customer-id / x-litellm-end-user-id header), whichever key sends it; in the process and in
the real Redis, on SQLite and PostgreSQL."""

from __future__ import annotations

import os
from pathlib import Path

import orjson
import pytest
from tests.databases import db_env, pg_database, sqlite_database
from tests.gateway.pipeline.test_limits import REDIS_URL
from tests.stack import MASTER, Stack, stack

__all__ = ["db_env", "pg_database", "sqlite_database"]  # the fixtures, for pytest


@pytest.fixture(params=["in-process", "redis"])
def redis_url(request: pytest.FixtureRequest) -> str | None:
    return REDIS_URL if request.param == "redis" else None


def _name() -> str:
    """A new end user each run: Redis keeps a window's counts for a minute."""
    return f"cust-{os.urandom(6).hex()}"


async def _chat(s: Stack, key: str, headers: dict[str, str], **extra: object) -> int:
    body = {"model": "a", "messages": [{"role": "user", "content": "hi"}], **extra}
    answer = await s.client.post(
        "/v1/chat/completions", content=orjson.dumps(body), headers={"authorization": f"Bearer {key}", **headers}
    )
    return answer.status_code


async def test_an_end_users_rpm_limit_holds_them_whatever_the_key(
    tmp_path: Path, db_env: dict[str, str], redis_url: str | None
) -> None:
    async with stack(tmp_path, db_env, redis_url=redis_url) as s:
        name = _name()
        status, body = await s.admin("POST", "/customer/new", {"user_id": name, "rpm_limit": 2})
        assert status == 200 and body["litellm_budget_table"]["rpm_limit"] == 2, body
        first, second = await s.generate(), await s.generate()
        assert (await s.chat(first, user=name)).status_code == 200
        admitted = await s.chat(second, user=name)  # another key, the same end user: the same count
        assert admitted.status_code == 200
        assert admitted.headers["x-ratelimit-limit-requests"] == "2"
        assert admitted.headers["x-ratelimit-remaining-requests"] == "0"

        refused = await s.chat(first, user=name)
        assert refused.status_code == 429, refused.text
        assert f"end user '{name}' is at its rpm limit of 2" in refused.json()["error"]["message"]
        assert 1 <= int(refused.headers["retry-after"]) <= 60
        assert (await s.chat(MASTER, user=name)).status_code == 429  # their limit, whoever sends it

        assert (await s.chat(first, user=_name())).status_code == 200  # another end user
        plain = await s.chat(first)  # none named: nothing of theirs applies
        assert plain.status_code == 200 and "x-ratelimit-limit-requests" not in plain.headers

        status, body = await s.admin("POST", "/customer/update", {"user_id": name, "rpm_limit": 3})
        assert status == 200, body
        assert (await s.chat(first, user=name)).status_code == 200  # raised: one more this minute
        assert (await s.chat(first, user=name)).status_code == 429


async def test_the_headers_name_the_end_user_before_the_body(
    tmp_path: Path, db_env: dict[str, str], redis_url: str | None
) -> None:
    """LiteLLM's order: x-litellm-customer-id, then x-litellm-end-user-id, then the body's `user`
    (apps in front of a gateway, Open WebUI among them, send a header)."""
    async with stack(tmp_path, db_env, redis_url=redis_url) as s:
        name = _name()
        status, body = await s.admin("POST", "/customer/new", {"user_id": name, "rpm_limit": 1})
        assert status == 200, body
        key = await s.generate()
        assert await _chat(s, key, {"x-litellm-customer-id": name}, user="someone-else") == 200
        assert await _chat(s, key, {"x-litellm-end-user-id": name}) == 429
        assert await _chat(s, key, {}, user=name) == 429
        other = _name()
        assert await _chat(s, key, {"x-litellm-customer-id": other, "x-litellm-end-user-id": name}) == 200

        await s.store.spend.flush()
        status, rows = await s.admin("GET", "/spend/logs", api_key=key)
        assert status == 200
        spent = sorted(row["end_user"] for row in rows if row["status"] == "success")
        assert spent == sorted([name, other]), "spend is theirs too"
        assert sum(row["end_user"] == name for row in rows) == 3, "the refused requests are logged as theirs"


async def test_an_end_users_tpm_limit_counts_their_tokens(
    tmp_path: Path, db_env: dict[str, str], redis_url: str | None
) -> None:
    async with stack(tmp_path, db_env, redis_url=redis_url) as s:
        name = _name()
        # each answer uses 15 tokens (tests.stack.ANSWER): the second request finds 15 of 20 used,
        # the third 30
        status, body = await s.admin("POST", "/customer/new", {"user_id": name, "tpm_limit": 20, "max_budget": 100})
        assert status == 200, body
        key = await s.generate()
        assert (await s.chat(key, user=name)).status_code == 200
        second = await s.chat(key, user=name)
        assert second.status_code == 200 and second.headers["x-ratelimit-limit-tokens"] == "20"
        refused = await s.chat(key, user=name)
        assert refused.status_code == 429
        assert f"end user '{name}' is at its tpm limit of 20" in refused.json()["error"]["message"]


async def test_an_end_user_without_limits_costs_no_limit(tmp_path: Path, db_env: dict[str, str]) -> None:
    """A budget alone (or nothing: an end user not made with /customer/new) limits no rate."""
    async with stack(tmp_path, db_env) as s:
        name = _name()
        status, body = await s.admin("POST", "/customer/new", {"user_id": name, "max_budget": 100})
        assert status == 200, body
        key = await s.generate()
        for _ in range(5):
            answer = await s.chat(key, user=name)
            assert answer.status_code == 200 and "x-ratelimit-limit-requests" not in answer.headers
        assert (await s.chat(key, user=_name())).status_code == 200


async def test_the_configs_user_header_mappings_name_the_end_user(tmp_path: Path, db_env: dict[str, str]) -> None:
    """LiteLLM's general_settings.user_header_mappings (what its Open WebUI guide configures): a
    header of role customer names the end user, after LiteLLM's own headers and before `user`;
    other roles are not acted on. user_header_name, its older form, does the same."""
    general = {
        "user_header_mappings": [
            {"header_name": "X-OpenWebUI-User-Email", "litellm_user_role": "customer"},
            {"header_name": "X-OpenWebUI-User-Id", "litellm_user_role": "internal_user"},
        ],
        "user_header_name": "X-Team-Member",
    }
    async with stack(tmp_path, db_env, general=general) as s:
        name = f"{_name()}@example.com"
        status, body = await s.admin("POST", "/customer/new", {"user_id": name, "rpm_limit": 1})
        assert status == 200, body
        key = await s.generate()
        assert await _chat(s, key, {"X-OpenWebUI-User-Email": name}, user="someone-else") == 200
        assert await _chat(s, key, {"x-openwebui-user-email": name}) == 429
        assert await _chat(s, key, {"X-Team-Member": name}) == 429
        assert await _chat(s, key, {"x-litellm-customer-id": _name(), "X-OpenWebUI-User-Email": name}) == 200
        assert await _chat(s, key, {"X-OpenWebUI-User-Id": name}) == 200, "role internal_user: not the end user"

        await s.store.spend.flush()
        status, rows = await s.admin("GET", "/spend/logs", api_key=key)
        assert next(row["end_user"] for row in rows if row["status"] == "success") == name
