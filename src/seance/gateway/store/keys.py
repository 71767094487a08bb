"""Virtual keys on the request path: what a key may do, known in one dict lookup.

A key is stored as the SHA-256 hex of its text (LiteLLM's hash: keys imported from LiteLLM keep
working). What the auth hook needs of a key — its Caller (whose it is, its models, its limits),
its expiry, whether it (or its team) is blocked, which budgets bound it — is resolved once from
the key's row and its team's, user's, organization's and budgets' rows into an `Entry`, cached
in-process:

    hit, fresh       the entry, one dict lookup
    hit, stale       the entry, and one background reload (other replicas' changes arrive so, within
                     the TTL); a reload that fails (the database is down) keeps the entry: known keys
                     keep working through an outage
    miss             one read of the database, shared by every request that misses the same key
                     meanwhile (a burst with a new key reads it once); unknown keys are remembered
                     too (briefly), so a client retrying a bad key does not reach the database each time
    miss, database down   503: the key may well be valid, so no 401 that would tell its owner otherwise

Budgets are checked from spend that includes what this process has not written yet (the Ledger).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import secrets
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from seance.gateway.context import NOTHING, Caller, Limits
from seance.gateway.errors import GatewayError, Unauthorized
from seance.gateway.store import model_budgets, tables
from seance.gateway.store.durations import iso

log = logging.getLogger("seance.gateway")

TTL = 10.0  # seconds an entry is served before it is reloaded (in the background)
MISSING_TTL = 5.0  # seconds an unknown key is remembered as unknown
MAX_ENTRIES = 10_000
ALL_MODELS = frozenset({"*", "all-proxy-models"})
TEAM_MODELS = "all-team-models"


def _sha256_module() -> Callable[[bytes], Any]:
    """SHA-256 for the key of every virtual-key request. CPython's own implementation (`_sha256`,
    `_sha2` from 3.12) hashes a key in ~4,500 instructions where hashlib's OpenSSL one takes ~6,000
    (its EVP context is made, copied for hexdigest and freed each time: measured with callgrind,
    10,000 hashes of a 25-byte key). Same digest; hashlib's when neither module exists."""
    for name in ("_sha256", "_sha2"):
        try:
            module = __import__(name)
        except ImportError:
            continue
        sha256 = getattr(module, "sha256", None)
        if callable(sha256) and sha256(b"abc").hexdigest() == hashlib.sha256(b"abc").hexdigest():
            return sha256  # type: ignore[no-any-return]
    return hashlib.sha256


_sha256 = _sha256_module()


def hash_key(key: str) -> str:
    """The stored form of a key (and of a `token` given to the management API as such)."""
    if len(key) == 64 and not key.startswith("sk-") and all(c in "0123456789abcdef" for c in key):
        return key  # already a hash: LiteLLM's API accepts either
    return hashlib.sha256(key.encode()).hexdigest()


def new_key() -> str:
    return "sk-" + secrets.token_urlsafe(16)


def member_scope(team_id: str, user_id: str) -> str:
    """The scope of a member's spend inside a team, "member:<team>:<user>": a ':' (or '%') in the
    team id is escaped, so `member_ids` splits it back whatever the ids hold."""
    return f"member:{team_id.replace('%', '%25').replace(':', '%3A')}:{user_id}"


def member_ids(ident: str) -> tuple[str, str]:
    """(team_id, user_id) of a member scope, its "member:" prefix taken off."""
    team, _, user = ident.partition(":")
    return unquote(team), user


def key_name(key: str) -> str:
    """How LiteLLM shows a key without revealing it."""
    return f"sk-...{key[-4:]}"


class BudgetExceeded(GatewayError):
    """LiteLLM's BudgetExceededError: 400 (not 429: waiting does not help), its type and wording."""

    status = 400
    type = "budget_exceeded"
    default_code = "budget_exceeded"


class KeyUnavailable(GatewayError):
    status = 503
    default_code = "key_store_unavailable"


@dataclass(frozen=True, slots=True)
class Budget:
    scope: str  # "key:<hash>", "team:<id>", "user:<id>", "end_user:<id>", "org:<id>", member_scope()
    label: str  # for the message: "Key=my-app", "Team=ml", "User=ann in Team=ml"
    max_budget: float


@dataclass(slots=True)
class Entry:
    caller: Caller | None  # None: no such key
    expires: float | None = None
    refusal: GatewayError | None = None  # blocked key or team: refused whatever it asks
    budgets: tuple[Budget, ...] = ()
    loaded: float = 0.0
    reloading: bool = False
    soft_budget: float | None = None  # LiteLLM alerts past it; here one WARNING line per key and process
    warned: bool = False


class Ledger:
    """Spend per scope as this process knows it: what the database said when the scope was last
    read, plus what this process added since (written or not). Only scopes that were read (those
    a budget may bound) are followed, at most MAX_SCOPES: a client sending a new `user` with every
    request grows nothing here."""

    MAX_SCOPES = 100_000

    def __init__(self) -> None:
        self.base: dict[str, float] = {}
        self.added: dict[str, float] = {}

    def spent(self, scope: str) -> float:
        return self.base.get(scope, 0.0) + self.added.get(scope, 0.0)

    def add(self, scope: str, cost: float) -> None:
        if scope in self.base:
            self.added[scope] = self.added.get(scope, 0.0) + cost

    def read(self, scope: str, stored: float, unwritten: float) -> None:
        """The database says `stored`; `unwritten` of what was added here is not in it yet."""
        if scope not in self.base and len(self.base) >= self.MAX_SCOPES:
            del self.base[oldest := next(iter(self.base))]
            self.added.pop(oldest, None)
        self.base[scope] = stored
        self.added[scope] = unwritten

    def per_model(
        self,
        kind: str,
        ident: str,
        label: str,
        budgets: Iterable[model_budgets.ModelBudget],
        spent: Mapping[str, float],
        unwritten: Callable[[str], float],
    ) -> dict[str, Budget]:
        """`budgets` (model_budgets.parse's, of the key, team, user or end user `ident` by `kind`)
        as the Budgets a request for each model is held to, each scope read with the spend log's
        sum for it (`spent`, by model) and what this process added that is not written yet."""
        found: dict[str, Budget] = {}
        for budget in budgets:
            scope = model_budgets.scope(kind, ident, budget.model)
            found[budget.model] = Budget(scope, f"{label}, model={budget.model}", budget.max_budget)
            self.read(scope, spent.get(budget.model, 0.0), unwritten(scope))
        return found

    def reset(self, scope: str) -> None:
        if scope in self.base:
            self.base[scope] = 0.0
            self.added[scope] = 0.0


def past_soft_budget(ledger: Ledger, entry: Entry) -> None:
    """Log once when a key's spend passes its soft_budget (a warning, not a refusal)."""
    caller = entry.caller
    if entry.soft_budget is None or entry.warned or caller is None:
        return
    spent = ledger.spent(f"key:{caller.key_hash}")
    if spent >= entry.soft_budget:
        entry.warned = True
        log.warning("key %s passed its soft budget: spend %.6g, soft_budget %g",
                    caller.key_alias or f"{(caller.key_hash or '')[:8]}…", spent, entry.soft_budget)  # fmt: skip


def over_budget(ledger: Ledger, budgets: Iterable[Budget]) -> GatewayError | None:
    base, added = ledger.base, ledger.added  # Ledger.spent, inline: every request of a key with a budget
    for budget in budgets:
        scope = budget.scope
        spent = base.get(scope, 0.0) + added.get(scope, 0.0)
        if spent >= budget.max_budget:
            limit = budget.max_budget
            return BudgetExceeded(
                f"Budget has been exceeded! {budget.label}: Current cost: {spent:.6g}, Max budget: {limit:g}"
            )
    return None


class KeyCache:
    def __init__(
        self,
        engine: Callable[[], AsyncEngine],
        ledger: Ledger,
        unwritten: Callable[[str], float],
        access_groups: Mapping[str, frozenset[str]] | None = None,
        ttl: float = TTL,
    ) -> None:
        self._engine = engine
        self.ledger = ledger
        self.unwritten = unwritten
        self.access_groups = access_groups or {}
        self.ttl = ttl
        self.entries: dict[str, Entry] = {}
        self.unknown: dict[str, Entry] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._loading: dict[str, asyncio.Task[Entry]] = {}  # token -> the read under way
        self._generation = 0  # forget() counts up: a read begun before a change is not cached
        self.failing = False  # the last read failed (the database is unreachable, as far as it knows)

    def get(self, token: str) -> Entry | None:
        """The cached entry (reloaded in the background when stale), or None: `load` it."""
        entry = self.entries.get(token)
        if entry is None:
            unknown = self.unknown.get(token)
            return unknown if unknown is not None and time.monotonic() - unknown.loaded < MISSING_TTL else None
        age = time.monotonic() - entry.loaded
        if age > self.ttl and not entry.reloading:
            entry.reloading = True
            task = asyncio.ensure_future(self._reload(token, entry))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return entry

    async def verified(self, presented: bytes) -> Entry:
        """The entry of a key a client presented, for the API and the management API alike: always
        hashed here (a stored hash is never taken as the key itself); refused when the key is
        unknown, blocked or expired."""
        token = _sha256(presented).hexdigest()
        return self.checked(self.get(token) or await self.load(token))

    def cached(self, presented: bytes) -> Entry | None:
        """`verified` for a key in the cache, without a coroutine (the request path: every virtual
        key request comes here, and a coroutine made and awaited costs ~1,000 instructions); None
        when it is not cached: then `verified` reads it."""
        token = _sha256(presented).hexdigest()
        entry = self.entries.get(token)  # get's usual case inline: a fresh entry (a call less)
        if entry is None or time.monotonic() - entry.loaded > self.ttl:
            entry = self.get(token)  # an unknown key, or a stale entry to reload: get's own way
        if entry is None or (entry.caller is not None and entry.refusal is None and entry.expires is None):
            return entry  # (the usual key: nothing to check, without a call to `checked`)
        return self.checked(entry)

    @staticmethod
    def checked(entry: Entry) -> Entry:
        """The entry, or the refusal of an unknown, blocked or expired key."""
        caller = entry.caller
        if caller is None:
            raise Unauthorized(
                "invalid API key: neither this gateway's master key nor a virtual key it issued (/key/generate)"
            )
        if entry.refusal is not None:
            raise entry.refusal
        if entry.expires is not None and entry.expires < time.time():
            alias = caller.key_alias or "no alias"
            raise Unauthorized(f"this key ({alias}) expired at {iso(entry.expires)}", code="key_expired")
        return entry

    async def load(self, token: str) -> Entry:
        """The key's entry read from the database. Requests that miss the same key while it is read
        wait for that one read: its entry or its error reaches all of them, and a waiter that is
        cancelled (its client left) leaves the read going for the others (the shield)."""
        task = self._loading.get(token)
        if task is None:
            task = asyncio.ensure_future(self._load(token))
            self._loading[token] = task
            task.add_done_callback(lambda done: self._loaded(token, done))
        return await asyncio.shield(task)

    async def _load(self, token: str) -> Entry:
        generation = self._generation
        try:
            entry = await self._read(token)
        except Exception as exc:  # the driver's errors are many; each means "not now"
            self.failing = True
            log.warning("the key store (database) cannot be read: %s", type(exc).__name__)
            raise KeyUnavailable(
                "the key store is unavailable and this key was not used recently: try again shortly"
            ) from None
        self.failing = False
        if generation == self._generation:
            self._put(token, entry)
        return entry

    def _loaded(self, token: str, task: asyncio.Task[Entry]) -> None:
        if self._loading.get(token) is task:
            del self._loading[token]
        if not task.cancelled():
            task.exception()  # retrieved: when every waiter left, a failure is not reported as unheard

    def forget(self, tokens: Iterable[str] | None = None) -> None:
        """Drop entries after a change made here (None: all of them). Reads under way are not waited
        for: what they return is not cached (it may predate the change), and later misses read anew."""
        self._generation += 1
        self._loading.clear()
        if tokens is None:
            self.entries.clear()
            self.unknown.clear()
        else:
            for token in tokens:
                self.entries.pop(token, None)
                self.unknown.pop(token, None)

    async def close(self) -> None:
        for task in [*self._tasks, *self._loading.values()]:
            task.cancel()

    async def _reload(self, token: str, old: Entry) -> None:
        try:
            entry = await self._read(token)
        except Exception as exc:
            self.failing = True
            old.reloading = False
            old.loaded = time.monotonic() - self.ttl + 1.0  # try again in a second, keep serving it
            log.warning("the key store (database) cannot be read; known keys are served from memory: %s",
                        type(exc).__name__)  # fmt: skip
            return
        self.failing = False
        self._put(token, entry)

    def _put(self, token: str, entry: Entry) -> None:
        # unknown keys apart: a client trying many bad keys must not push the good ones out
        entries = self.entries if entry.caller is not None else self.unknown
        if entry.caller is not None:
            self.unknown.pop(token, None)
        if token not in entries and len(entries) >= MAX_ENTRIES:
            del entries[next(iter(entries))]  # the oldest inserted
        entries[token] = entry

    async def _read(self, token: str) -> Entry:
        async with self._engine().connect() as db:
            key = await _one(db, tables.keys, tables.keys.c.token, token)
            if key is None:
                return Entry(None, loaded=time.monotonic())
            team = user = org = membership = None
            budget_rows: dict[str, Mapping[str, Any]] = {}
            if key["team_id"]:
                team = await _one(db, tables.teams, tables.teams.c.team_id, key["team_id"])
            if team is not None and key["user_id"]:
                memberships = tables.team_memberships
                found_member = await db.execute(
                    sa.select(memberships.c.spend, memberships.c.max_budget).where(
                        memberships.c.team_id == key["team_id"], memberships.c.user_id == key["user_id"]
                    )
                )
                found_row = found_member.mappings().first()
                membership = None if found_row is None else dict(found_row)
            if key["user_id"]:
                user = await _one(db, tables.users, tables.users.c.user_id, key["user_id"])
            org_id = key["organization_id"] or (team["organization_id"] if team else None)
            if org_id:
                org = await _one(db, tables.organizations, tables.organizations.c.organization_id, org_id)
            ids = [row["budget_id"] for row in (key, team, org) if row is not None and row["budget_id"]]
            if ids:
                found = await db.execute(sa.select(tables.budgets).where(tables.budgets.c.budget_id.in_(ids)))
                budget_rows = {row["budget_id"]: dict(row) for row in found.mappings()}
            model_spent: dict[str, dict[str, float]] = {}
            for kind, row, ident in (("key_model", key, token), ("team_model", team, key["team_id"]),
                                     ("user_model", user, key["user_id"])):  # fmt: skip
                per_model = model_budgets.parse(row["model_max_budget"]) if row is not None else ()
                if per_model:
                    model_spent[kind] = await model_budgets.spent(db, kind, ident, per_model)
        return self.resolve(key, team, user, org, budget_rows, membership, model_spent)

    def resolve(
        self,
        key: Mapping[str, Any],
        team: Mapping[str, Any] | None,
        user: Mapping[str, Any] | None,
        org: Mapping[str, Any] | None,
        budget_rows: Mapping[str, Mapping[str, Any]],
        membership: Mapping[str, Any] | None = None,
        model_spent: Mapping[str, Mapping[str, float]] | None = None,
    ) -> Entry:
        """The entry of a key from its rows; `membership`: the key's user's row in the key's team
        (their spend there and max_budget_in_team), when they are a member; `model_spent`: by kind
        (key_model, team_model, user_model), the spend on each model of that row's model_max_budget
        over the budget's period (the spend log's)."""
        token = key["token"]
        alias = _alias(key)
        budgets: list[Budget] = []
        limits: list[Limits] = []

        def bound(scope: str, label: str, row: Mapping[str, Any] | None, spend: float | None) -> None:
            if row is None:
                return
            shared = budget_rows.get(row.get("budget_id") or "")
            max_budget = _first(row.get("max_budget"), shared and shared["max_budget"])
            if max_budget is not None:
                budgets.append(Budget(scope, label, float(max_budget)))
            if spend is not None:
                self.ledger.read(scope, float(spend), self.unwritten(scope))
            rpm = _first(row.get("rpm_limit"), shared and shared["rpm_limit"])
            tpm = _first(row.get("tpm_limit"), shared and shared["tpm_limit"])
            parallel = _first(row.get("max_parallel_requests"), shared and shared["max_parallel_requests"])
            model_rpm = _per_model(row.get("model_rpm_limit"), "model_rpm_limit", label)
            model_tpm = _per_model(row.get("model_tpm_limit"), "model_tpm_limit", label)
            if rpm is not None or tpm is not None or parallel is not None or model_rpm or model_tpm:
                limits.append(Limits(scope, _int(rpm), _int(tpm), _int(parallel), model_rpm or {}, model_tpm or {}))

        bound(f"key:{token}", f"Key={alias}", key, key["spend"])
        if team is not None:
            bound(f"team:{team['team_id']}", f"Team={team['team_alias'] or team['team_id']}", team, team["spend"])
            if membership is not None and key["user_id"]:
                # LiteLLM's team member budget, and its wording: "User=<id> in Team=<id>"
                bound(member_scope(team["team_id"], key["user_id"]), f"User={key['user_id']} in Team={team['team_id']}",
                      membership, membership["spend"])  # fmt: skip
        if user is not None:
            # LiteLLM (since 1.94.1): a key of a team answers to the team's budget, not to its
            # owner's personal one (spend still adds up on the user; their rate limits still apply)
            if team is not None:
                user = {**user, "max_budget": None, "budget_id": None}
            bound(f"user:{user['user_id']}", f"User={user['user_id']}", user, user["spend"])
        if org is not None:
            name = org["organization_alias"] or org["organization_id"]
            bound(
                f"org:{org['organization_id']}", f"Organization={name}", {"budget_id": org["budget_id"]}, org["spend"]
            )

        def per_model(kind: str, ident: str, label: str, row: Mapping[str, Any] | None) -> dict[str, Budget]:
            budgets = model_budgets.parse(row.get("model_max_budget") if row else None, label)
            return self.ledger.per_model(kind, ident, label, budgets, (model_spent or {}).get(kind, {}), self.unwritten)

        own = per_model("key_model", token, f"Key={alias}", key)
        team_budgets = per_model("team_model", team["team_id"], f"Team={team['team_alias'] or team['team_id']}",
                                 team) if team is not None else {}  # fmt: skip
        user_budgets = per_model("user_model", user["user_id"], f"User={user['user_id']}", user) if user else {}
        budgeted = bool(own or team_budgets or user_budgets)

        refusal = None
        if key["blocked"]:
            refusal = GatewayError(f"this key ({alias}) is blocked: ask an admin to unblock it (/key/unblock)",
                                   status=401, code="key_blocked")  # fmt: skip
        elif team is not None and team["blocked"]:
            refusal = GatewayError(f"the team of this key ({team['team_alias'] or team['team_id']}) is blocked",
                                   status=401, code="team_blocked")  # fmt: skip

        models = self.allowed(key["models"], team["models"] if team is not None else None)
        metadata = dict(key["metadata"] or {})
        if key["tags"]:
            metadata.setdefault("tags", list(key["tags"]))
        caller = Caller(
            "virtual_key",
            key_hash=token,
            key_alias=key["key_alias"],
            user_id=key["user_id"],
            team_id=key["team_id"],
            org_id=key["organization_id"] or (team["organization_id"] if team is not None else None),
            team_alias=team["team_alias"] if team is not None else None,
            user_email=user["user_email"] if user is not None else None,
            role=(user["user_role"] if user is not None and user["user_role"] else "internal_user"),
            models=models,
            limits=tuple(limits),
            # NOTHING when empty (most keys): the spend hook then writes "[]" for the tags without a
            # call (a fresh {} cost every vkey request a _tags and a json_text, ~1 us)
            metadata=metadata or NOTHING,
            cache_controls=frozenset(key.get("allowed_cache_controls") or ()) or None,
            model_budgets=model_budgets.PerModel(own, team_budgets, user_budgets) if budgeted else None,
        )
        soft = key["soft_budget"]
        return Entry(caller, key["expires"], refusal, tuple(budgets), time.monotonic(),
                     soft_budget=None if soft is None else float(soft))  # fmt: skip

    def allowed(self, key_models: list[str] | None, team_models: list[str] | None) -> frozenset[str] | None:
        """The model groups a key may use: its own list within its team's, access groups expanded;
        None when nothing restricts it."""
        team = self._expand(team_models or [], None)
        own = self._expand(key_models or [], team)
        if own is None:
            return team
        if team is None:
            return own
        return frozenset(m for m in own if model_allowed(team, m))

    def _expand(self, names: list[str], team: frozenset[str] | None) -> frozenset[str] | None:
        if not names or ALL_MODELS & set(names):
            return None
        out: set[str] = set()
        for name in names:
            if name == TEAM_MODELS:
                if team is None:
                    return None
                out |= team
            else:
                out |= self.access_groups.get(name, {name})
        return frozenset(out)


def model_allowed(models: frozenset[str], model: str) -> bool:
    """Whether `model` is in `models`, whose entries may be wildcards (`openai/*`)."""
    if model in models:
        return True
    return any(pattern.endswith("*") and model.startswith(pattern[:-1]) for pattern in models)


async def _one(db: Any, table: sa.Table, column: Any, value: str) -> Mapping[str, Any] | None:
    row = (await db.execute(sa.select(table).where(column == value))).mappings().first()
    return None if row is None else dict(row)


def _per_model(value: Any, name: str, label: str) -> dict[str, int]:
    """A per-model limit as the limits hook counts it: whole numbers, 0 or more. The management API
    refuses anything else; a row written elsewhere (an import, a hand edit) loses the entries that
    are not, with a WARNING, rather than failing every request to their model."""
    if not value:
        return {}
    kept = {m: n for m, n in value.items() if type(n) is int and n >= 0} if isinstance(value, dict) else {}
    if len(kept) != (len(value) if isinstance(value, dict) else 1):
        log.warning("%s: %s holds values that are not whole numbers, 0 or more; those are ignored", label, name)
    return kept


def _alias(key: Mapping[str, Any]) -> str:
    return str(key["key_alias"] or key["key_name"] or key["token"][:8])


def _first(*values: Any) -> Any:
    for value in values:
        if value is not None and value is not False and value != "":
            return value
    return None


def _int(value: Any) -> int | None:
    return None if value is None else int(value)
