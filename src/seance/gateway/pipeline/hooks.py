"""The ordered hook list — the one place that says what runs around every API request.

Before the provider: top to bottom. After the last byte: bottom to top. A feature that is off is
not in the list. Where the next features go:

    auth          who is calling (master key; virtual keys)            on_request; before: model, end user
    limits        rpm / tpm / parallel / budget                        before (and after: tokens used)
    cache         lookup (may answer)                                  before; store                after
    access log    one line per request                                                             after
    metrics       Prometheus counters and histograms                                               after
    spend         usage → cost → spend log, batched (store/spend.py)                               after
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from seance.gateway.logs import AccessWriter
from seance.gateway.pipeline import Hook
from seance.gateway.pipeline.access_log import AccessLog
from seance.gateway.pipeline.auth import Auth, KeyAuth
from seance.gateway.pipeline.spend import Spend

if TYPE_CHECKING:
    from seance.gateway.store import Store


@dataclass(frozen=True)
class Features:
    """What the start asked for, beside the config file."""

    master_key: str | None
    allow_no_auth: bool = False
    access_log: bool = False
    log_format: str = "plain"
    store: Store | None = None  # virtual keys, budgets and spend (None: the master key only)


def build(features: Features) -> list[Hook]:
    store = features.store
    hooks: list[Hook | None] = [
        KeyAuth(features.master_key, features.allow_no_auth, store)
        if store
        else Auth(features.master_key, features.allow_no_auth),
        AccessLog(AccessWriter(features.log_format)) if features.access_log else None,
        Spend(store, features.master_key) if store else None,
    ]
    return [hook for hook in hooks if hook is not None]
