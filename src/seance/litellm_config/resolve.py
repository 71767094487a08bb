"""LiteLLM's layering of settings, done once: which of litellm_settings, router_settings and a
deployment's litellm_params wins for each value the gateway runs with.

The rules, as LiteLLM's proxy applies them (its Router is built from router_settings, and
litellm_settings become module defaults underneath):

    num_retries       router_settings > litellm_settings > 2
    timeout           litellm_params.timeout > litellm_params.request_timeout
                      > router_settings.timeout > litellm_settings.request_timeout > 600 s
    stream timeout    litellm_params.stream_timeout > router_settings.stream_timeout > the timeout above
    drop_params       litellm_settings.drop_params OR litellm_params.drop_params (either one drops)
    fallbacks         router_settings.fallbacks if any, else litellm_settings.fallbacks (no merge);
                      the same for context_window_fallbacks, content_policy_fallbacks, default_fallbacks
    default_fallbacks for a group that has no fallbacks of its own
    max_fallbacks     router_settings > litellm_settings > 5: at most that many fallback groups

LiteLLM's own default timeout is 6000 s; Seance keeps 600 s, the OpenAI SDK's.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from seance.litellm_config.known_keys import LITELLM_PARAMS
from seance.litellm_config.schema import ConfigFile, LiteLLMParams

DEFAULT_TIMEOUT = 600.0
DEFAULT_RETRIES = 2
DEFAULT_MAX_FALLBACKS = 5
FALLBACK_KINDS = ("fallbacks", "context_window_fallbacks", "content_policy_fallbacks")


@dataclass(frozen=True)
class DeploymentValues:
    """What one model_list entry runs with, after the layering."""

    timeout: float
    stream_timeout: float
    drop_params: bool
    # litellm_params that are request parameters (temperature, top_k, thinking…): defaults of the body
    request_defaults: Mapping[str, Any]
    # the other litellm_params LiteLLM knows as deployment settings (never sent to the provider)
    settings: Mapping[str, Any]


@dataclass(frozen=True)
class FallbackRule:
    path: str  # e.g. "router_settings.fallbacks[0]", for messages
    kind: str  # one of FALLBACK_KINDS, or "default_fallbacks"
    source: str  # the group that falls back ("*" for default_fallbacks)
    targets: tuple[str, ...]


@dataclass(frozen=True)
class Resolved:
    num_retries: int = DEFAULT_RETRIES
    timeout: float = DEFAULT_TIMEOUT
    stream_timeout: float | None = None
    drop_params: bool = False
    max_fallbacks: int = DEFAULT_MAX_FALLBACKS
    routing_strategy: str = "simple-shuffle"
    rules: tuple[FallbackRule, ...] = ()
    # (key path, what overrides it): set values that the layering makes irrelevant
    overridden: tuple[tuple[str, str], ...] = ()
    _fallbacks: Mapping[str, Mapping[str, tuple[str, ...]]] = field(default_factory=dict, repr=False)  # by kind
    _default: tuple[str, ...] = ()

    def fallbacks_for(self, group: str, kind: str = "fallbacks") -> tuple[str, ...]:
        """The groups to try, in order, when `group` fails (LiteLLM's `fallbacks`, else
        `default_fallbacks`); with a `kind` of FALLBACK_KINDS, when it fails so (no default)."""
        targets = self._fallbacks.get(kind, {}).get(group) or (self._default if kind == "fallbacks" else ())
        return tuple(t for t in targets if t != group)[: self.max_fallbacks]

    def deployment(self, params: LiteLLMParams) -> DeploymentValues:
        timeout = params.timeout or params.request_timeout or self.timeout
        extra = params.model_extra or {}
        return DeploymentValues(
            timeout=timeout,
            stream_timeout=params.stream_timeout or self.stream_timeout or timeout,
            drop_params=self.drop_params or params.drop_params is True,
            request_defaults={k: v for k, v in extra.items() if k not in LITELLM_PARAMS},
            settings={k: v for k, v in extra.items() if k in LITELLM_PARAMS},
        )

    def fallback_rules(self, kind: str | None = None) -> Iterator[FallbackRule]:
        return (rule for rule in self.rules if kind is None or rule.kind == kind)


def resolve(file: ConfigFile) -> Resolved:
    litellm, router = file.litellm_settings, file.router_settings
    overridden: list[tuple[str, str]] = []

    def pick(name: str, router_value: Any, litellm_value: Any, litellm_name: str | None = None) -> Any:
        if router_value is not None and router_value != []:
            if litellm_value is not None and litellm_value != []:
                overridden.append((f"litellm_settings.{litellm_name or name}", f"router_settings.{name}"))
            return router_value
        return litellm_value

    rules: list[FallbackRule] = []
    chosen: dict[str, Sequence[dict[str, list[str]]]] = {}
    for kind in FALLBACK_KINDS:
        from_router = bool(getattr(router, kind))
        chosen[kind] = pick(kind, getattr(router, kind), getattr(litellm, kind))
        section = "router_settings" if from_router else "litellm_settings"
        for index, rule in enumerate(chosen[kind]):
            for source, targets in rule.items():
                rules.append(FallbackRule(f"{section}.{kind}[{index}]", kind, source, tuple(targets)))
    default = pick("default_fallbacks", router.default_fallbacks, litellm.default_fallbacks)
    if default:
        section = "router_settings" if router.default_fallbacks else "litellm_settings"
        rules.append(FallbackRule(f"{section}.default_fallbacks", "default_fallbacks", "*", tuple(default)))

    fallbacks: dict[str, dict[str, tuple[str, ...]]] = {kind: {} for kind in FALLBACK_KINDS}
    for fallback in rules:
        if fallback.kind in fallbacks:
            by_source = fallbacks[fallback.kind]
            by_source[fallback.source] = by_source.get(fallback.source, ()) + fallback.targets

    retries = pick("num_retries", router.num_retries, litellm.num_retries)
    timeout = pick("timeout", router.timeout, litellm.request_timeout, "request_timeout")
    max_fallbacks = pick("max_fallbacks", router.max_fallbacks, litellm.max_fallbacks)
    return Resolved(
        num_retries=DEFAULT_RETRIES if retries is None else retries,
        timeout=timeout or DEFAULT_TIMEOUT,
        stream_timeout=router.stream_timeout,
        drop_params=litellm.drop_params,
        max_fallbacks=DEFAULT_MAX_FALLBACKS if max_fallbacks is None else max_fallbacks,
        routing_strategy=router.routing_strategy,
        rules=tuple(rules),
        overridden=tuple(overridden),
        _fallbacks=fallbacks,
        _default=tuple(default),
    )
