"""A key's budgets per model, LiteLLM's `model_max_budget`:

    {"gpt-4o": {"budget_limit": 5.0, "time_period": "1d"}}

refuses the key's requests to gpt-4o once it has spent $5 on that model over the last day (400
`budget_exceeded`, as LiteLLM answers), while its other models go on. LiteLLM's other spellings of
the two fields, `max_budget` and `budget_duration`, are read too.

The spend is counted where the key's own max_budget is: when the key is read (its first request,
then every `user_api_key_cache_ttl`), each budgeted model's spend over its period is summed from
the key's rows in the spend log; this process then adds what it serves (the Ledger, scope
`key_model:<hash>:<model>`), so workers and replicas see each other's spend within that TTL. The
period slides (the last day, not a day that began with the first request, as LiteLLM's does): a
burst at the end of one window and the start of the next cannot spend the budget twice.

A model matches as the client names it, or without its provider prefix (a budget on `gpt-4o`
covers `openai/gpt-4o`), as in LiteLLM. With `general_settings.disable_spend_logs` there are no
rows to sum: each process then counts what it served since it last read the key.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from seance.gateway.store import durations, tables

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection

log = logging.getLogger("seance.gateway")

KIND = "key_model"  # the scopes' prefix: summed from the spend log's rows, kept as no total (spend.py)


@dataclass(frozen=True, slots=True)
class ModelBudget:
    model: str
    max_budget: float
    period: str  # as written: "1d", "30d", "1mo"

    def since(self, now: float) -> float:
        """The start of the period that ends now (months are calendar months)."""
        return now - (durations.after(self.period, "time_period", now) - now)


def scope(token: str, model: str) -> str:
    return f"{KIND}:{token}:{model}"


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


def parse(value: Any, label: str) -> tuple[ModelBudget, ...]:
    """A stored model_max_budget's usable entries. The management API refuses the others; a row
    written elsewhere (an import, a hand edit) loses them with a WARNING, as LiteLLM skips them,
    rather than failing every request to their model."""
    if not value or not isinstance(value, Mapping):
        return ()
    found: list[ModelBudget] = []
    for model, entry in value.items():
        wrong = problem(model, entry)
        if wrong is not None:
            log.warning("%s: %s; that budget is not enforced", label, wrong)
            continue
        if _either(entry, "budget_limit", "max_budget") is None:
            continue  # a period without a limit: nothing to refuse
        found.append(ModelBudget(model, float(_either(entry, "budget_limit", "max_budget")),
                                 str(_either(entry, "time_period", "budget_duration"))))  # fmt: skip
    return tuple(found)


async def spent(db: AsyncConnection, token: str, budgets: tuple[ModelBudget, ...]) -> dict[str, float]:
    """Each budgeted model's spend by the key over its period, from the spend log (rows written so
    far; the spend log's unwritten rows are the Ledger's to add)."""
    logs = tables.spend_logs
    now = time.time()
    out: dict[str, float] = {}
    for budget in budgets:
        named = sa.or_(logs.c.model == budget.model, logs.c.model.like("%/" + _escaped(budget.model), escape="\\"))
        total = sa.select(sa.func.coalesce(sa.func.sum(logs.c.spend), 0.0)).where(
            logs.c.api_key == token, logs.c.start_time >= budget.since(now), named
        )
        out[budget.model] = float((await db.execute(total)).scalar_one())
    return out


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
