"""LiteLLM's litellm_remaining_api_key_requests_for_model / _tokens_for_model: what a virtual key
has left of its model_rpm_limit / model_tpm_limit for a model group after its last request there,
on GET /metrics; only keys with such a limit, only those groups. In process and in Redis."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from tests.databases import db_env, pg_database, sqlite_database
from tests.gateway.pipeline.test_limits import REDIS_URL
from tests.gateway.test_budget_metrics import scrape, values
from tests.stack import stack

from seance.gateway.store.keys import hash_key

__all__ = ["db_env", "pg_database", "sqlite_database"]  # the fixtures, for pytest

REQUESTS = "litellm_remaining_api_key_requests_for_model"
TOKENS = "litellm_remaining_api_key_tokens_for_model"


@pytest.fixture(params=["in-process", "redis"])
def redis_url(request: pytest.FixtureRequest) -> str | None:
    return REDIS_URL if request.param == "redis" else None


async def test_what_a_key_has_left_of_its_per_model_limits(
    tmp_path: Path, db_env: dict[str, str], redis_url: str | None
) -> None:
    tag = uuid.uuid4().hex[:8]  # a key of its own each run: Redis keeps a window's counts for a minute
    async with stack(tmp_path, db_env, metrics=True, redis_url=redis_url) as s:
        key = await s.generate(key_alias=f"bot-{tag}", model_rpm_limit={"a": 5}, model_tpm_limit={"a": 100})
        plain = await s.generate(key_alias=f"plain-{tag}", rpm_limit=100)
        for _ in range(2):
            assert (await s.chat(key, "a")).status_code == 200  # 15 tokens each
        assert (await s.chat(key, "b")).status_code == 200  # no limit of its own for b
        assert (await s.chat(plain, "a")).status_code == 200

        got = await scrape(s)
        mine = {"hashed_api_key": hash_key(key)[:12], "api_key_alias": f"bot-{tag}"}
        assert values(got, REQUESTS, **mine, model="a") == [3.0]
        assert values(got, TOKENS, **mine, model="a") == [70.0]
        assert values(got, REQUESTS, **mine, model="a", model_id=s.app.deployments.groups["a"][0].id) == [3.0]
        assert values(got, REQUESTS, **mine, model="b") == []
        assert values(got, REQUESTS, api_key_alias=f"plain-{tag}") == []
        assert (await s.chat(key, "a")).status_code == 200
        assert values(await scrape(s), REQUESTS, **mine, model="a") == [2.0]
