"""The key cache: another replica's change arrives within the TTL (a stale entry is served while it
is re-read in the background); unknown keys are remembered briefly; the cache is bounded."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import sqlalchemy as sa
from tests.stack import stack

from seance.gateway.store import durations, keys, tables
from seance.gateway.store.keys import hash_key


async def test_another_replicas_change_arrives_within_the_ttl(tmp_path: Path, db_env: dict[str, str]) -> None:
    async with stack(tmp_path, db_env, ttl=0.2) as s:
        key = await s.generate(models=["a"])
        assert (await s.chat(key, "b")).status_code == 403
        async with s.store.engine().begin() as db:  # as another replica's /key/update would
            await db.execute(sa.update(tables.keys).where(tables.keys.c.token == hash_key(key)).values(models=[]))
        assert (await s.chat(key, "b")).status_code == 403  # still the cached entry
        await asyncio.sleep(0.25)
        await s.chat(key, "b")  # stale: served, and re-read in the background
        # the re-read's time is the database's (a loaded CI machine's): waited for, within bounds
        deadline = asyncio.get_running_loop().time() + 10
        while (status := (await s.chat(key, "b")).status_code) == 403:
            assert asyncio.get_running_loop().time() < deadline, "the change never arrived"
            await asyncio.sleep(0.05)
        assert status == 200


async def test_unknown_keys_are_remembered_and_the_cache_is_bounded(
    tmp_path: Path, db_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(keys, "MAX_ENTRIES", 3)
    async with stack(tmp_path, db_env) as s:
        cache = s.store.keys
        assert (await s.chat("sk-nobody")).status_code == 401
        assert cache.get(hash_key("sk-nobody")) is not None  # no second database read
        for n in range(10):
            assert (await s.chat(f"sk-nobody-{n}")).status_code == 401  # many bad keys
        made = [await s.generate() for _ in range(4)]
        for key in made:
            assert (await s.chat(key)).status_code == 200
        assert len(cache.entries) == 3 and hash_key(made[-1]) in cache.entries and len(cache.unknown) == 3


def test_durations() -> None:
    assert durations.after("30s", "d", 100.0) == 130.0
    assert durations.after("2h", "d", 0.0) == 7200.0
    assert durations.after("7d", "d", 0.0) == 7 * 86400
    assert durations.after("1mo", "d", 1706659200.0) == 1709164800.0  # 31 Jan 2024 → 29 Feb 2024
    with pytest.raises(ValueError, match="budget_duration: 'soon' is not a duration"):
        durations.parse("soon", "budget_duration")


def test_the_ledger_follows_only_scopes_it_read_and_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    ledger = keys.Ledger()
    for n in range(1000):
        ledger.add(f"end_user:u{n}", 1.0)  # a new `user` with every request
    assert ledger.added == {} and ledger.spent("end_user:u1") == 0.0
    monkeypatch.setattr(keys.Ledger, "MAX_SCOPES", 2)
    ledger.read("key:a", 1.0, 0.0)
    ledger.add("key:a", 0.5)
    assert ledger.spent("key:a") == 1.5
    ledger.read("key:b", 0.0, 0.0)
    ledger.read("key:c", 0.0, 0.0)
    assert set(ledger.base) == {"key:b", "key:c"} and "key:a" not in ledger.added


async def test_a_burst_with_a_new_key_reads_the_database_once(tmp_path: Path, db_env: dict[str, str]) -> None:
    async with stack(tmp_path, db_env) as s:
        key = await s.generate(models=["a"])
        cache = s.store.keys
        cache.forget()
        reads: list[str] = []
        token = hash_key(key)

        def count(_conn: object, _cursor: object, statement: str, parameters: object, *_rest: object) -> None:
            # this key's reads only: the budget-reset loop's first look (at start, late on a loaded
            # machine) reads the keys table too
            if statement.lstrip().upper().startswith("SELECT") and token in str(parameters):
                reads.append(statement)

        engine = s.store.engine().sync_engine
        sa.event.listen(engine, "before_cursor_execute", count)
        try:
            entries = await asyncio.gather(*(cache.verified(key.encode()) for _ in range(50)))
        finally:
            sa.event.remove(engine, "before_cursor_execute", count)
        assert len(reads) == 1
        assert all(entry is entries[0] for entry in entries) and entries[0].caller is not None
        assert cache.get(hash_key(key)) is entries[0] and cache._loading == {}


async def test_a_shared_read_that_fails_fails_every_waiter(tmp_path: Path, db_env: dict[str, str]) -> None:
    async with stack(tmp_path, db_env) as s:
        cache = s.store.keys
        calls = 0

        async def down(token: str) -> keys.Entry:
            nonlocal calls
            calls += 1
            await asyncio.sleep(0.05)
            raise OSError("connection refused")

        cache._read = down  # type: ignore[method-assign]
        results = await asyncio.gather(*(cache.verified(b"sk-new") for _ in range(20)), return_exceptions=True)
        assert calls == 1
        assert all(isinstance(r, keys.KeyUnavailable) for r in results)
        await asyncio.gather(cache.verified(b"sk-new"), return_exceptions=True)
        assert calls == 2  # a failure is not remembered: the next miss reads again


async def test_a_waiter_that_leaves_does_not_cancel_the_read(tmp_path: Path, db_env: dict[str, str]) -> None:
    async with stack(tmp_path, db_env) as s:
        key = await s.generate()
        cache = s.store.keys
        cache.forget()
        read = cache._read
        started = asyncio.Event()

        async def slow(token: str) -> keys.Entry:
            started.set()
            await asyncio.sleep(0.1)
            return await read(token)

        cache._read = slow  # type: ignore[method-assign]
        first = asyncio.ensure_future(cache.verified(key.encode()))
        await started.wait()
        second = asyncio.ensure_future(cache.verified(key.encode()))
        await asyncio.sleep(0)
        first.cancel()  # its client disconnected
        entry = await second
        assert first.cancelled() and entry.caller is not None and cache.get(hash_key(key)) is entry


async def test_a_read_begun_before_a_change_is_not_cached(tmp_path: Path, db_env: dict[str, str]) -> None:
    async with stack(tmp_path, db_env) as s:
        key = await s.generate()
        cache = s.store.keys
        cache.forget()
        read = cache._read

        async def slow(token: str) -> keys.Entry:
            entry = await read(token)
            cache.forget()  # a management change lands while the read is under way
            return entry

        cache._read = slow  # type: ignore[method-assign]
        assert (await cache.verified(key.encode())).caller is not None
        assert cache.get(hash_key(key)) is None


def test_a_cached_key_is_checked_without_a_read() -> None:
    """`cached`, the request path's way in: None when the key is not cached (then `verified` reads
    it), else the same checks as `verified`: unknown, blocked and expired keys are refused."""
    from seance.gateway.context import Caller
    from seance.gateway.errors import GatewayError, Unauthorized

    cache = keys.KeyCache(lambda: None, keys.Ledger(), lambda scope: 0.0)  # type: ignore[arg-type,return-value]
    assert cache.cached(b"sk-never-seen") is None
    caller = Caller("virtual_key", key_hash=hash_key("sk-ok"))
    cache.entries[hash_key("sk-ok")] = ok = keys.Entry(caller, loaded=float("inf"))
    assert cache.cached(b"sk-ok") is ok
    cache.unknown[hash_key("sk-nobody")] = keys.Entry(None, loaded=float("inf"))
    with pytest.raises(Unauthorized, match="invalid API key"):
        cache.cached(b"sk-nobody")
    blocked = GatewayError("this key (b) is blocked", status=401, code="key_blocked")
    cache.entries[hash_key("sk-blocked")] = keys.Entry(caller, refusal=blocked, loaded=float("inf"))
    with pytest.raises(GatewayError, match="blocked"):
        cache.cached(b"sk-blocked")
    cache.entries[hash_key("sk-old")] = keys.Entry(caller, expires=1.0, loaded=float("inf"))
    with pytest.raises(Unauthorized, match="expired"):
        cache.cached(b"sk-old")


def test_the_request_paths_sha256_is_hashlibs() -> None:
    """keys._sha256 (CPython's own SHA-256 where it exists: cheaper than OpenSSL's for a key) must
    give the digest that is stored: hashlib's."""
    import hashlib

    for key in (b"", b"sk-1234", b"sk-" + bytes(range(256)) * 3):
        assert keys._sha256(key).hexdigest() == hashlib.sha256(key).hexdigest()
    assert hash_key("sk-1234") == hashlib.sha256(b"sk-1234").hexdigest()


async def test_a_keys_caller_carries_its_teams_alias_and_its_users_email(
    tmp_path: Path, db_env: dict[str, str]
) -> None:
    """What the metrics label a request with (team_alias, user_email), as LiteLLM does."""
    async with stack(tmp_path, db_env) as s:
        assert (await s.admin("POST", "/user/new", {"user_id": "ada", "user_email": "ada@example.com"}))[0] == 200
        status, team = await s.admin("POST", "/team/new", {"team_alias": "Search", "members_with_roles": [
            {"role": "user", "user_id": "ada"}]})  # fmt: skip
        assert status == 200, team
        key = await s.generate(user_id="ada", team_id=team["team_id"])
        assert (await s.chat(key)).status_code == 200
        entry = s.store.keys.get(hash_key(key))
        assert entry is not None and entry.caller is not None
        assert (entry.caller.team_alias, entry.caller.user_email) == ("Search", "ada@example.com")
        alone = await s.generate()
        assert (await s.chat(alone)).status_code == 200
        entry = s.store.keys.get(hash_key(alone))
        assert entry is not None and entry.caller is not None
        assert (entry.caller.team_alias, entry.caller.user_email) == (None, None)
