"""LiteLLM's `litellm_settings.default_key_generate_params` and `upperbound_key_generate_params`:
what /key/generate gives a key its request leaves unset, and the most it may ask for.

    default_key_generate_params      any /key/generate field (max_budget, models, duration,
                                     team_id, metadata, …): used when the request does not set it
    upperbound_key_generate_params   max_budget, budget_duration, duration, max_parallel_requests,
                                     tpm_limit, rpm_limit: /key/generate fills an unset one with the
                                     bound and refuses one over it (400 naming the field); /key/update
                                     refuses one over it

Checked once, at start (and by `seance check`): a field that is not one, or a value of the wrong
kind, stops the start with one line naming it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from seance.gateway.config import ConfigError
from seance.gateway.errors import BadRequest
from seance.gateway.store import durations
from seance.litellm_config.suggest import closest

if TYPE_CHECKING:
    from seance.gateway.config import Settings

# /key/generate's fields a default may set (the key itself, its spend and who made it are its own)
DEFAULTABLE = frozenset({
    "key_alias", "duration", "models", "max_budget", "budget_duration", "soft_budget", "tpm_limit", "rpm_limit",
    "max_parallel_requests", "team_id", "user_id", "organization_id", "budget_id", "metadata", "tags", "permissions",
    "aliases", "config", "model_max_budget", "model_rpm_limit", "model_tpm_limit", "allowed_cache_controls",
    "blocked", "allowed_model_region",
})  # fmt: skip
BOUNDED_NUMBERS = ("max_budget", "max_parallel_requests", "tpm_limit", "rpm_limit")
BOUNDED_DURATIONS = ("budget_duration", "duration")
BOUNDED = (*BOUNDED_NUMBERS, *BOUNDED_DURATIONS)


@dataclass(frozen=True)
class KeyPolicy:
    defaults: Mapping[str, Any] = field(default_factory=dict)
    upperbounds: Mapping[str, Any] = field(default_factory=dict)

    def fill(self, data: dict[str, Any]) -> dict[str, Any]:
        """A /key/generate request with the defaults, then the bounds, where it sets nothing."""
        for source in (self.defaults, self.upperbounds):
            for name, value in source.items():
                if data.get(name) is None:
                    data[name] = value
        return data

    def bound(self, data: Mapping[str, Any]) -> None:
        """400 for a field over its bound (fields the request leaves unset are not looked at)."""
        for name, most in self.upperbounds.items():
            value = data.get(name)
            if value is None:
                continue
            over = _seconds(value, name) > _seconds(most, name) if name in BOUNDED_DURATIONS else float(value) > most
            if over:
                raise BadRequest(
                    f"{name} {value} is over the most litellm_settings.upperbound_key_generate_params allows: {most}",
                    param=name,
                )


def read(settings: Settings) -> KeyPolicy:
    """The policy the config sets, checked (ConfigError naming the first bad field)."""
    from seance.gateway.admin.base import check  # (here: base imports this module)

    litellm = settings.file.litellm_settings
    defaults = dict(litellm.default_key_generate_params)
    where = f"{settings.source}: litellm_settings.default_key_generate_params"
    for name in defaults:
        if name not in DEFAULTABLE:
            near = closest(name, DEFAULTABLE)
            hint = f"; did you mean {near!r}?" if near else ""
            raise ConfigError(f"{where}.{name}: not a /key/generate field a default may set{hint}")
    try:
        check(defaults)
    except BadRequest as exc:
        raise ConfigError(f"{where}.{exc.message}") from None
    defaults = {name: value for name, value in defaults.items() if value is not None}  # blank: no default

    upperbounds = dict(litellm.upperbound_key_generate_params)
    where = f"{settings.source}: litellm_settings.upperbound_key_generate_params"
    for name, value in list(upperbounds.items()):
        if name not in BOUNDED:
            near = closest(name, BOUNDED)
            hint = f"did you mean {near!r}?" if near else f"one of {', '.join(BOUNDED)}"
            raise ConfigError(f"{where}.{name}: not a field with an upper bound; {hint}")
        if value is None:
            del upperbounds[name]
        elif name in BOUNDED_DURATIONS:
            try:
                durations.parse(value, name)
            except ValueError as exc:
                raise ConfigError(f"{where}.{exc}") from None
        elif isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
            raise ConfigError(f"{where}.{name}: a number, 0 or more, not {value!r}")
    return KeyPolicy(defaults, upperbounds)


def _seconds(text: str, name: str) -> float:
    """A duration's length, for comparing two (a month counts from the epoch's first: 31 days)."""
    return durations.after(text, name, 0.0)
