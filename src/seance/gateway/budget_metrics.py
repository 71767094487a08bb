"""The budget gauges of GET /metrics (LiteLLM's `litellm_remaining_{api_key,team,user}_budget_metric`,
`litellm_{…}_max_budget_metric`, `litellm_{…}_budget_remaining_hours_metric`): every key, team and
user with a max_budget, as the store has them at the scrape.

They are a collector made at each scrape from the rows last read, not gauges set and kept: a key
deleted or a budget removed leaves the next scrape with nothing to remove, in one process as in
multiprocess mode (where a gauge's series live in every worker's files until a restart, and the
worker answering the scrape reads the shared database itself, so no other worker need write them).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from seance.gateway.store.budgets import Budgeted

log = logging.getLogger("seance.gateway")

# the store's kind → LiteLLM's word in the metrics' names, whose budget (their help), their labels
KINDS = {
    "key": ("api_key", "api key", ("hashed_api_key", "api_key_alias")),
    "team": ("team", "team", ("team", "team_alias")),
    "user": ("user", "user", ("user",)),
}


def labels_of(row: Budgeted, hash_prefix: int) -> list[str]:
    """A row's label values: a key by the first characters of its hash (never the key) and its alias."""
    if row.kind == "key":
        return [row.ident[:hash_prefix], row.alias or ""]
    if row.kind == "team":
        return [row.ident, row.alias or ""]
    return [row.ident]


class BudgetGauges:
    """A prometheus_client collector: `refresh` reads the store (in the event loop, before a scrape);
    `collect` (in the scrape's thread) makes the gauges of what it read."""

    def __init__(self, read: Callable[[int], Awaitable[list[Budgeted]]], limit: int, hash_prefix: int) -> None:
        self.read = read  # the store's `budgeted`
        self.limit = limit  # rows at most: a bound on the series
        self.hash_prefix = hash_prefix
        self.rows: list[Budgeted] = []  # as last read; kept while the database does not answer
        self._failing = False

    async def refresh(self) -> None:
        try:
            rows = await self.read(self.limit)
        except Exception as exc:
            if not self._failing:
                log.warning("metrics: the budgets could not be read (%s); their gauges keep their last values",
                            type(exc).__name__)  # fmt: skip
            self._failing = True
            return
        self._failing = False
        self.rows = rows

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import GaugeMetricFamily

        families: dict[str, tuple[Any, Any, Any]] = {}
        for kind, (word, whose, labels) in KINDS.items():
            families[kind] = (
                GaugeMetricFamily(f"litellm_remaining_{word}_budget_metric", f"Remaining budget for {whose}",
                                  labels=labels),
                GaugeMetricFamily(f"litellm_{word}_max_budget_metric", f"Maximum budget set for {whose}",
                                  labels=labels),
                GaugeMetricFamily(f"litellm_{word}_budget_remaining_hours_metric",
                                  f"Hours until the budget of {whose} resets", labels=labels),
            )  # fmt: skip
        now = time.time()
        for row in self.rows:
            remaining, most, hours = families[row.kind]
            values = labels_of(row, self.hash_prefix)
            remaining.add_metric(values, row.max_budget - row.spend)
            most.add_metric(values, row.max_budget)
            if row.reset_at is not None:
                hours.add_metric(values, max(0.0, (row.reset_at - now) / 3600))
        for three in families.values():
            yield from three
