"""End to end, the real server with two workers: a key made with /key/generate used through the
official openai SDK; 1,000 requests then SIGTERM leave exactly 1,000 spend rows whose costs sum to
what the usage and the prices say; a retried request writes one row; streams count toward budgets."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import httpx2 as httpx
import openai
import pytest
import sqlalchemy as sa
from tests.gateway.conftest import MASTER_KEY, GatewayFactory

from seance.gateway.config import load_settings
from seance.gateway.store import find_database, tables
from seance.gateway.store.keys import hash_key

PRICES = {"input_cost_per_token": 0.0001, "output_cost_per_token": 0.0002}
MOCK_COST = 10 * 0.0001 + 20 * 0.0002  # mock_response reports 10 + 20 tokens
UPSTREAM = {"model": "openai/a", "api_base": "http://127.0.0.1:9/v1", "api_key": "sk-up"}  # never called: mocks
CONFIG = {"model_list": [{"model_name": "a", "litellm_params": UPSTREAM, "model_info": PRICES}]}


def _generate(url: str, **fields: object) -> str:
    answer = httpx.post(url + "/key/generate", json=fields, headers={"authorization": f"Bearer {MASTER_KEY}"})
    assert answer.status_code == 200, answer.text
    key: str = answer.json()["key"]
    return key


async def _rows(tmp_path: Path, db_env: dict[str, str], key: str) -> tuple[int, float]:
    config = tmp_path / "read.yaml"
    config.write_text("model_list: [{model_name: x, litellm_params: {model: openai/x}}]\n")
    engine = find_database(load_settings(config, db_env, announce=False)).engine()
    try:
        async with engine.connect() as db:
            count, total = (await db.execute(
                sa.select(sa.func.count(), sa.func.coalesce(sa.func.sum(tables.spend_logs.c.spend), 0.0))
                .where(tables.spend_logs.c.api_key == hash_key(key))
            )).one()  # fmt: skip
        return int(count), float(total)
    finally:
        await engine.dispose()


def test_thousand_requests_two_workers_then_sigterm(
    gateway: GatewayFactory, tmp_path: Path, db_env: dict[str, str]
) -> None:
    running = gateway(CONFIG, db_env, args=("--workers", "2"))
    key = _generate(running.url, key_alias="load", models=["a"])

    async def load() -> None:
        client = openai.AsyncOpenAI(base_url=running.url + "/v1", api_key=key, max_retries=0)
        gate = asyncio.Semaphore(32)

        async def one(i: int) -> None:
            async with gate:
                answer = await client.chat.completions.create(
                    model="a", messages=[{"role": "user", "content": f"n{i}"}], extra_body={"mock_response": "ok"}
                )
                assert answer.usage is not None and answer.usage.completion_tokens == 20

        await asyncio.gather(*(one(i) for i in range(1000)))
        await client.close()

    asyncio.run(load())
    running.process.send_signal(signal.SIGTERM)
    assert running.process.wait(timeout=30) == 0 or running.process.returncode in (0, -signal.SIGTERM)
    count, total = asyncio.run(_rows(tmp_path, db_env, key))
    assert count == 1000, running.output()
    assert total == pytest.approx(1000 * MOCK_COST)


def test_retried_request_writes_one_row_and_streams_count(
    gateway: GatewayFactory, tmp_path: Path, db_env: dict[str, str]
) -> None:
    running = gateway(CONFIG, db_env)
    key = _generate(running.url, key_alias="retry", max_budget=MOCK_COST * 1.5)
    client = openai.OpenAI(base_url=running.url + "/v1", api_key=key, max_retries=0)
    with pytest.raises(openai.InternalServerError):
        client.chat.completions.create(
            model="a",
            messages=[{"role": "user", "content": "x"}],
            extra_body={"mock_response": "litellm.InternalServerError", "num_retries": 2},
        )
    stream = client.chat.completions.create(model="a", messages=[{"role": "user", "content": "x"}], stream=True,
                                            extra_body={"mock_response": "streamed"})  # fmt: skip
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == "streamed"
    stream = client.chat.completions.create(model="a", messages=[{"role": "user", "content": "x"}], stream=True,
                                            extra_body={"mock_response": "again"})  # fmt: skip
    list(stream)
    with pytest.raises(openai.BadRequestError) as refused:
        client.chat.completions.create(model="a", messages=[{"role": "user", "content": "x"}],
                                       extra_body={"mock_response": "no"})  # fmt: skip
    assert "Budget has been exceeded" in str(refused.value)
    running.stop()
    count, total = asyncio.run(_rows(tmp_path, db_env, key))
    assert count == 3  # the retried failure once, the two streams; the refused request never ran
    assert total == pytest.approx(2 * MOCK_COST)
