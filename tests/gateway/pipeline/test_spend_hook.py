"""The spend hook's rows: one per model request, with a row id that is unique and increasing within
a process, and different in each forked worker (the app is built before the fork)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import orjson
import sqlalchemy as sa
from tests.databases import db_env, pg_database, sqlite_database
from tests.stack import MASTER as MASTER_KEY
from tests.stack import stack

from seance.gateway import routes
from seance.gateway.context import MASTER_KEY_ALIAS, RequestContext, new_request_id
from seance.gateway.pipeline.auth import MASTER
from seance.gateway.pipeline.spend import Spend
from seance.gateway.store import tables
from seance.gateway.store.keys import Ledger
from seance.gateway.store.spend import SpendLog, SpendRow

__all__ = ["db_env", "pg_database", "sqlite_database"]  # the fixtures, for pytest


class _Store:
    def __init__(self) -> None:
        self.spend = SpendLog(lambda: None, Ledger())  # type: ignore[arg-type,return-value]  # never written


def _rows(hook: Spend, n: int) -> list[SpendRow]:
    for _ in range(n):
        ctx = RequestContext(new_request_id(), routes.CHAT, "POST", "/v1/chat/completions")
        ctx.caller, ctx.model, ctx.status = MASTER, "gpt", 200
        hook.after_now(ctx)
    rows = [row for row, _ in hook.log.pending]
    hook.log.pending.clear()
    return rows


def test_row_ids_are_unique_increasing_and_32_characters() -> None:
    hook = Spend(_Store(), "sk-master")  # type: ignore[arg-type]
    ids = [row.row_id for row in _rows(hook, 1000)]
    assert len(set(ids)) == 1000
    assert ids == sorted(ids)
    assert {len(i) for i in ids} == {32}
    other = Spend(_Store(), "sk-master")  # type: ignore[arg-type]  # another process's: its own tag
    assert not set(ids) & {row.row_id for row in _rows(other, 1000)}


def test_the_count_wrapping_keeps_the_ids_increasing() -> None:
    hook = Spend(_Store(), "sk-master")  # type: ignore[arg-type]
    before = _rows(hook, 1)[0].row_id
    hook.count = iter([0xFFFFFFFF, 0x100000000, 0x100000001])  # type: ignore[assignment]
    ids = [row.row_id for row in _rows(hook, 3)]
    assert [before, *ids] == sorted([before, *ids])
    assert len({before, *ids}) == 4
    assert ids[1][:24] != before[:24]  # the wrap took a new time


def test_a_forked_worker_makes_ids_of_its_own() -> None:
    hook = Spend(_Store(), "sk-master")  # type: ignore[arg-type]
    parent = [row.row_id for row in _rows(hook, 100)]
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the worker: its next 100 ids, to the parent
        try:
            os.write(write, "\n".join(row.row_id for row in _rows(hook, 100)).encode())
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read) as pipe:
        child = pipe.read().split("\n")
    os.waitpid(pid, 0)
    assert len(child) == 100
    sibling = [row.row_id for row in _rows(hook, 100)]  # the parent goes on from where it was
    assert not set(child) & set(parent + sibling)


def test_gateway_fields_of_any_shape_still_make_the_row() -> None:
    """`metadata` and `tags` are what the client sent: a string `metadata` made the hook fail after
    the answer, and the request's spend was never recorded (nor counted against its budgets)."""
    hook = Spend(_Store(), "sk-master")  # type: ignore[arg-type]
    shapes = [{"metadata": "a string"}, {"metadata": ["a"]}, {"tags": "one"}, {"metadata": {"tags": "x", "k": [1]}},
              {"tags": [1, {"a": 2}, None], "metadata": {"tags": ["t"], "team": "x"}}]  # fmt: skip
    for fields in shapes:
        ctx = RequestContext(new_request_id(), routes.CHAT, "POST", "/v1/chat/completions")
        ctx.caller, ctx.model, ctx.status, ctx.cost, ctx.gateway_fields = MASTER, "gpt", 200, 0.5, fields
        hook.after_now(ctx)
    rows = [row for row, _ in hook.log.pending]
    assert len(rows) == len(shapes) and all(row.spend == 0.5 for row in rows)
    assert rows[-1].request_tags == '["1","{\'a\': 2}","None","t"]' and rows[-1].metadata == '{"team":"x"}'


async def test_the_x_litellm_tags_header_tags_the_spend(tmp_path: Path, db_env: dict[str, str]) -> None:
    """LiteLLM's x-litellm-tags (comma-separated): for clients that can add a header but not change
    the body (Claude Code's ANTHROPIC_CUSTOM_HEADERS); after the body's tags, before the key's."""
    async with stack(tmp_path, db_env) as s:
        key = await s.generate(tags=["from-key"])
        body = {"model": "a", "messages": [{"role": "user", "content": "hi"}], "tags": ["job:1"]}
        headers = {"authorization": f"Bearer {key}", "x-litellm-tags": " team-a, job:1 ,,cost-centre-7 "}
        answer = await s.client.post("/v1/chat/completions", content=orjson.dumps(body), headers=headers)
        assert answer.status_code == 200
        await s.store.spend.flush()
        status, rows = await s.admin("GET", "/spend/logs", api_key=key)
        assert status == 200 and rows[-1]["request_tags"] == ["job:1", "team-a", "cost-centre-7", "from-key"]
        status, tags = await s.admin("GET", "/spend/tags")
        assert any(t["individual_request_tag"] == "team-a" for t in tags)


async def test_extra_spend_tag_headers_tag_the_spend(tmp_path: Path, db_env: dict[str, str]) -> None:
    """litellm_settings.extra_spend_tag_headers, as LiteLLM's Open WebUI guide sets it: each listed
    header a request carries becomes "<header as configured>: <value>"; those it lacks add nothing."""
    litellm = {"extra_spend_tag_headers": ["X-OpenWebUI-User-Email", "X-OpenWebUI-Chat-Id"]}
    async with stack(tmp_path, db_env, litellm=litellm) as s:
        key = await s.generate()
        body = {"model": "a", "messages": [{"role": "user", "content": "hi"}]}
        headers = {"authorization": f"Bearer {key}", "x-openwebui-user-email": " ada@example.com ",
                   "x-litellm-tags": "team-a"}  # fmt: skip
        answer = await s.client.post("/v1/chat/completions", content=orjson.dumps(body), headers=headers)
        assert answer.status_code == 200
        await s.store.spend.flush()
        status, rows = await s.admin("GET", "/spend/logs", api_key=key)
        assert status == 200 and rows[-1]["request_tags"] == ["team-a", "X-OpenWebUI-User-Email: ada@example.com"]
        status, tags = await s.admin("GET", "/spend/tags")
        assert any(t["individual_request_tag"] == "X-OpenWebUI-User-Email: ada@example.com" for t in tags)


async def test_the_master_keys_requests_are_logged_under_litellms_alias(tmp_path: Path, db_env: dict[str, str]) -> None:
    """As LiteLLM 1.108 logs them: `litellm_proxy_master_key`, never the key's SHA-256 (an unsalted
    hash of a short key gives it away); found by the key itself or by the alias. Rows logged under
    the hash before are renamed when the gateway prepares its database."""
    async with stack(tmp_path, db_env) as s:
        hashed = hashlib.sha256(MASTER_KEY.encode()).hexdigest()
        async with s.store.engine().begin() as db:  # a row an earlier version logged
            await db.execute(sa.insert(tables.spend_logs).values(
                row_id="old-1", request_id="old-1", call_type="acompletion", api_key=hashed, model="a",
                spend=0.5, start_time=1.0, end_time=2.0, status="success", status_code=200, request_tags=[],
                metadata={},
            ))  # fmt: skip
        assert (await s.chat(MASTER_KEY)).status_code == 200
        await s.store.spend.flush()
        status, rows = await s.admin("GET", "/spend/logs", api_key=MASTER_KEY)
        assert status == 200 and [row["api_key"] for row in rows] == [MASTER_KEY_ALIAS]
        await s.store._prepare(MASTER_KEY)  # what `seance gateway` does before serving
        for asked in (MASTER_KEY, MASTER_KEY_ALIAS):
            status, rows = await s.admin("GET", "/spend/logs", api_key=asked, start_date="1970-01-01")
            assert status == 200 and "old-1" in {row["request_id"] for row in rows}
            assert {row["api_key"] for row in rows} == {MASTER_KEY_ALIAS} and len(rows) == 2
        status, rows = await s.admin("GET", "/spend/logs", api_key=hashed, start_date="1970-01-01")
        assert status == 200 and rows == []
