"""Budgets per model, LiteLLM's `model_max_budget`, of a key, its team, its user and the request's
end user (their budget row's):

    {"gpt-4o": {"budget_limit": 5.0, "time_period": "1d"}}

refuses the requests to gpt-4o once $5 was spent on that model over the last day (400
`budget_exceeded`, as LiteLLM answers), while the other models go on. LiteLLM's other spellings of
the two fields, `max_budget` and `budget_duration`, are read too. As in LiteLLM, a key's own budget
for a model takes the place of its team's for that model; its user's and the end user's apply
besides.

The spend is counted where the key's own max_budget is: when the key is read (its first request,
then every `user_api_key_cache_ttl`), each budgeted model's spend over its period is summed from
the spend log's rows (the key's, the team's, the user's; an end user's when they are read), then
this process adds what it serves (the Ledger, scopes `key_model:<hash>:<model>`, `team_model:…`,
`user_model:…`, `end_user_model:…`), so workers and replicas see each other's spend within that
TTL. The period slides (the last day, not a day that began with the first request, as LiteLLM's
does): a burst at the end of one window and the start of the next cannot spend the budget twice.

A model matches as the client names it, or without its provider prefix (a budget on `gpt-4o`
covers `openai/gpt-4o`), as in LiteLLM. With `general_settings.disable_spend_logs` there are no
rows to sum: each process then counts what it served since it last read the key.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from seance.gateway.store import durations, tables

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection

log = logging.getLogger("seance.gateway")

# the scopes' kinds, and the spend log's column that names whose a row is: summed from the rows when
# a key is read, kept as no total (store/spend.py)
COLUMNS = {"key_model": "api_key", "team_model": "team_id", "user_model": "user", "end_user_model": "end_user"}


@dataclass(frozen=True, slots=True)
class ModelBudget:
    model: str
    max_budget: float
    period: str  # as written: "1d", "30d", "1mo"

    def since(self, now: float) -> float:
        """The start of the period that ends now (months are calendar months)."""
        return now - (durations.after(self.period, "time_period", now) - now)


@dataclass(frozen=True, slots=True)
class PerModel:
    """The budgets per model over a key's requests, by model as configured: its own, its team's,
    its user's (Budgets of store/keys.py)."""

    key: Mapping[str, Any]
    team: Mapping[str, Any]
    user: Mapping[str, Any]

    def covering(self, model: str) -> tuple[Any, ...]:
        """The budgets a request for `model` is held to (and its spend counted in)."""
        own = governing(self.key, model)
        team = governing(self.team, model) if own is None else None  # the key's own takes its place
        user = governing(self.user, model)
        return tuple(budget for budget in (own, team, user) if budget is not None)


def scope(kind: str, ident: str, model: str) -> str:
    return f"{kind}:{ident}:{model}"


def problem(model: str, value: Any) -> str | None:
    """What is wrong with one entry of a model_max_budget (the management API refuses it), or None."""
    if not isinstance(value, Mapping):
        return f'model_max_budget.{model} must be an object: {{"budget_limit": 5.0, "time_period": "1d"}}'
    limit = _either(value, "budget_limit", "max_budget")  # None: tracked, not bounded (as LiteLLM)
    if limit is not None and (
        isinstance(limit, bool) or not isinstance(limit, int | float) or math.isnan(limit) or limit < 0
    ):
        return f"model_max_budget.{model}.budget_limit must be a number, 0 or more, not {limit!r}"
    period = _either(value, "time_period", "budget_duration")
    if not isinstance(period, str):
        return f'model_max_budget.{model}.time_period must be a duration such as "1d" or "30d", not {period!r}'
    try:
        durations.parse(period, f"model_max_budget.{model}.time_period")
    except ValueError as exc:
        return str(exc)
    return None


def parse(value: Any, label: str | None = None) -> tuple[ModelBudget, ...]:
    """A stored model_max_budget's usable entries. The management API refuses the others; a row
    written elsewhere (an import, a hand edit) loses them with a WARNING naming `label` (None: no
    WARNING), as LiteLLM skips them, rather than failing every request to their model."""
    if not value or not isinstance(value, Mapping):
        return ()
    found: list[ModelBudget] = []
    for model, entry in value.items():
        wrong = problem(model, entry)
        if wrong is not None:
            if label is not None:
                log.warning("%s: %s; that budget is not enforced", label, wrong)
            continue
        if _either(entry, "budget_limit", "max_budget") is None:
            continue  # a period without a limit: nothing to refuse
        found.append(ModelBudget(model, float(_either(entry, "budget_limit", "max_budget")),
                                 str(_either(entry, "time_period", "budget_duration"))))  # fmt: skip
    return tuple(found)


async def spent(db: AsyncConnection, kind: str, ident: str, budgets: tuple[ModelBudget, ...]) -> dict[str, float]:
    """Each budgeted model's spend over its period by the key, team, user or end user `ident` (by
    `kind`), from the spend log: the rows written so far (the unwritten ones are the Ledger's to add)."""
    logs = tables.spend_logs
    whose = logs.c[COLUMNS[kind]]
    now = time.time()
    out: dict[str, float] = {}
    for budget in budgets:
        named = sa.or_(logs.c.model == budget.model, logs.c.model.like("%/" + _escaped(budget.model), escape="\\"))
        total = sa.select(sa.func.coalesce(sa.func.sum(logs.c.spend), 0.0)).where(
            whose == ident, logs.c.start_time >= budget.since(now), named
        )
        out[budget.model] = float((await db.execute(total)).scalar_one())
    return out


async def usage(
    db: AsyncConnection, kind: str, ident: str, value: Any, unwritten: Callable[[str], float]
) -> dict[str, dict[str, Any]]:
    """LiteLLM's `model_max_budget_usage` (/key/info, /user/info): per budgeted model, what was
    spent on it over its period (the spend log's rows, and this process's rows not written yet),
    its limit and its period."""
    budgets = parse(value)
    found = await spent(db, kind, ident, budgets) if budgets else {}
    return {
        budget.model: {
            "current_spend": found[budget.model] + unwritten(scope(kind, ident, budget.model)),
            "budget_limit": budget.max_budget,
            "time_period": budget.period,
        }
        for budget in budgets
    }


def governing(budgets: Mapping[str, Any], model: str) -> Any:
    """The budget of `budgets` (by model) that covers a request for `model`, or None."""
    found = budgets.get(model)
    if found is None and "/" in model:
        found = budgets.get(model.rpartition("/")[2])
    return found


def _either(entry: Mapping[str, Any], name: str, other: str) -> Any:
    value = entry.get(name)
    return entry.get(other) if value is None else value


def _escaped(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
