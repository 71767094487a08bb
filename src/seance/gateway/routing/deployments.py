"""The deployment table: which upstream serves a requested model name.

Built once at start from the settings. Exact `model_name`s form groups (several entries with one
name share the load); names with `*` are wildcards whose matched part fills the `*` of their
`litellm_params.model`; `model: "*"` (and no-config mode) routes `provider/model` to that provider
and a bare well-known name (`gpt-…`, `claude-…`) to its maker, if that provider has a key.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import orjson

from seance.gateway import catalogue
from seance.gateway.catalogue import Catalogue, Prices
from seance.gateway.config import ConfigError, ModelEntry, Settings, announce
from seance.gateway.errors import GatewayError, ModelNotFound
from seance.gateway.providers import REGISTRY, load_adapter
from seance.gateway.providers.base import Adapter, Operation, Target, Usage
from seance.litellm_config import DEFAULT_TIMEOUT, LITELLM_PROVIDERS
from seance.litellm_config.suggest import closest

# operations the gateway serves on deployments that lack them, by translating to another one
TRANSLATED: dict[Operation, Operation] = {"messages": "chat"}
# LiteLLM's model_info.mode narrows what a deployment serves to what its model does
MODES: dict[str, frozenset[Operation]] = {
    "chat": frozenset({"chat", "messages", "count_tokens"}),
    "completion": frozenset({"completion"}),
    "embedding": frozenset({"embedding"}),
}
MAX_DYNAMIC = 4096  # wildcard deployments remembered; beyond this they are rebuilt per request


@dataclass(frozen=True, eq=False)
class Deployment:
    id: str  # x-litellm-model-id: model_info.id, else a hash of the entry without its key
    model_name: str
    adapter: Adapter
    target: Target
    params: Mapping[str, Any] = field(default_factory=dict)  # request defaults (temperature…)
    weight: float = 1.0
    timeout: float = DEFAULT_TIMEOUT
    stream_timeout: float = DEFAULT_TIMEOUT
    max_retries: int | None = None
    rpm: int | None = None
    tpm: int | None = None
    model_info: Mapping[str, Any] = field(default_factory=dict)
    missing_key: str | None = None  # why this deployment cannot be called, when its key is absent
    # what it charges (catalogue.Prices: computed once, at start), None when no price is known;
    # and what /model/info says about its model: the catalogue's entry under the config's overrides
    prices: Prices | None = None
    info: Mapping[str, Any] = field(default_factory=dict)
    entry: ModelEntry | None = None  # its entry in the config (shown by /model/info, credentials left out)
    where: str = ""  # its entry's key path in the config, e.g. "model_list[3]"
    max_parallel: int | None = None  # litellm_params.max_parallel_requests: calls at once, per worker

    @functools.cached_property
    def operations(self) -> frozenset[Operation]:
        """What this deployment serves: its adapter's operations (with those the gateway translates
        to them), narrowed by model_info.mode when the config says what the model is."""
        offered = set(self.adapter.operations)
        offered.update(op for op, via in TRANSLATED.items() if via in offered)
        mode = self.model_info.get("mode")
        if isinstance(mode, str) and mode in MODES:
            offered &= MODES[mode]
        return frozenset(offered)

    @functools.cached_property
    def id_header(self) -> tuple[bytes, bytes]:
        return (b"x-litellm-model-id", self.id.encode())

    # Worked out once, when it is made: read on every request with pre-call checks, where a
    # cached_property (a class attribute the value shadows) is CPython 3.11's generic attribute
    # lookup, ~350 instructions a read, and a field without a class default its specialized one.
    # its context window for the pre-call checks (routing/strategies.py): max_input_tokens of
    # `info` (the config's model_info over the catalogue's), when it is one
    max_input: int | None = field(init=False, repr=False)
    # it has an `rpm` or a `tpm`: the pre-call checks count its requests and tokens
    limited: bool = field(init=False, repr=False)
    # with max_parallel: the places of its calls in flight (routing/proxy.py waits for one)
    gate: asyncio.Semaphore | None = field(init=False, repr=False)

    def __post_init__(self) -> None:
        value = self.info.get("max_input_tokens")
        valid = isinstance(value, int) and not isinstance(value, bool) and value > 0
        object.__setattr__(self, "max_input", value if valid else None)
        object.__setattr__(self, "limited", self.rpm is not None or self.tpm is not None)
        object.__setattr__(self, "gate", asyncio.Semaphore(self.max_parallel) if self.max_parallel else None)

    def serves(self, op: Operation) -> bool:
        return op in self.operations

    def cost(self, usage: Usage | None) -> float | None:
        if usage is None or self.prices is None:
            return None
        return self.prices.cost(usage)


@dataclass(frozen=True)
class Wildcard:
    pattern: re.Pattern[str]
    name: str
    entry: ModelEntry
    where: str

    @property
    def id(self) -> str:
        params = self.entry.litellm_params
        return str(self.entry.model_info.get("id") or fingerprint(self.name, params.model, params.model_dump()))


class Deployments:
    def __init__(self, settings: Settings, stored: Sequence[ModelEntry] = ()) -> None:
        """`stored`: the entries added through /model/new (each with its model_info.id), served
        beside the file's; one that cannot be served is left out, and why is in `rejected`."""
        self.settings = settings
        self.stored = tuple(stored)
        self.rejected: dict[str, str] = {}  # model id -> why that stored entry is not served
        self.adapters: dict[str, Adapter] = {}
        for prefix in REGISTRY:
            adapter = load_adapter(prefix)
            assert adapter is not None
            self.adapters[prefix] = adapter
        self.groups: dict[str, list[Deployment]] = {}
        self.wildcards: list[Wildcard] = []
        self._dynamic: dict[str, tuple[Deployment, ...]] = {}
        # entries of a provider Seance does not serve (yet): listed by /health, answered with 501
        self.unsupported: dict[str, list[Deployment]] = {}
        self.warnings: list[str] = []
        providers = {name for adapter in self.adapters.values() for name in adapter.catalogue_names}
        litellm_settings = settings.file.litellm_settings.model_extra or {}
        self.catalogue, found = catalogue.load(settings.env, litellm_settings, providers)
        self.warnings += found
        entries = settings.file.model_list
        weighted: set[str] = set()  # groups with a weight in the file
        if settings.no_config:
            entries = [ModelEntry.model_validate({"model_name": "*", "litellm_params": {"model": "*"}})]
        for index, entry in enumerate(entries):
            self._add(entry, f"model_list[{index}]", weighted)
        for entry in self.stored:
            model_id = str(entry.model_info.get("id"))
            where = f"db_model[{model_id}]"
            try:
                self._add(entry, where, weighted, stored=True)
            except _NotServed as exc:
                self.rejected[model_id] = exc.reason
            except ConfigError as exc:  # its key path from the entry, as /model/new answers it
                self.rejected[model_id] = str(exc).removeprefix(f"{settings.source}: {where}.")
        for name, group in self.groups.items():
            if name not in weighted:
                group[:] = _weighed_by_limits(group)
        self._fallbacks: dict[str, tuple[str, ...]] = {}
        self.aliases, self.hidden = self._aliases()
        # the most specific wildcard wins, whatever the order of the file: `groq/*` before `*`
        self.wildcards.sort(key=lambda w: -len(w.name.replace("*", "")))
        if not self.wildcards:  # every deployment has what it needs of it: the rest is not kept
            self.catalogue = Catalogue({}, self.catalogue.source)
        self._listed: list[str] | None = None
        self._check_fallbacks()
        announce(settings, self.warnings)

    def _add(self, entry: ModelEntry, where: str, weighted: set[str], stored: bool = False) -> None:
        upstream = entry.litellm_params.model
        served = True
        try:
            if upstream != "*":
                self._split(upstream, entry.model_name, where, dynamic=False)
        except _NotServed as exc:
            if stored:  # refused when it is added, rather than answered 501
                raise
            served = False
            self.unsupported.setdefault(entry.model_name, []).append(self._not_served(entry, where, exc.reason))
            self.warnings.append(
                f"{self.settings.source}: {where} ({entry.model_name}): not served, requests answer 501: {exc.reason}"
            )
        else:
            self.settings.require_env(f"{where}.litellm_params")
        if "*" in entry.model_name:  # one of a provider not served answers 501 from _split at request time
            regex = "^" + re.escape(entry.model_name).replace(r"\*", "(.*)") + "$"
            self.wildcards.append(Wildcard(re.compile(regex, re.S), entry.model_name, entry, where))
        elif served:
            deployment = self._build(entry, upstream, entry.model_name, where)
            self.groups.setdefault(entry.model_name, []).append(deployment)
            if "weight" in entry.litellm_params.model_fields_set:
                weighted.add(entry.model_name)

    # -- lookups (request path) --

    def lookup(self, model: str) -> Sequence[Deployment]:
        group = self.groups.get(model)
        if group is not None:
            return group
        if model in self.aliases:
            return self.lookup(self.aliases[model])
        if model in self.unsupported:
            raise _not_implemented(model, self.unsupported[model][0].missing_key)
        found = self._dynamic.get(model)
        if found is not None:
            return found
        for wildcard in self.wildcards:
            match = wildcard.pattern.match(model)
            if match is None:
                continue
            upstream = wildcard.entry.litellm_params.model
            if "*" in upstream:
                upstream = upstream.replace("*", match.group(1) if match.groups() else model, 1)
            deployment = self._build(wildcard.entry, upstream, model, wildcard.where, dynamic=True)
            if deployment.missing_key and wildcard.entry.litellm_params.model == "*":
                # routing by name only reaches providers that have a key
                raise ModelNotFound(self._not_found_message(model), param="model")
            found = (deployment,)
            if len(self._dynamic) < MAX_DYNAMIC:
                self._dynamic[model] = found
            return found
        raise ModelNotFound(self._not_found_message(model), param="model")

    def model_names(self) -> list[str]:
        names = list(self.groups)
        for wildcard in self.wildcards:
            if wildcard.entry.litellm_params.model == "*":
                names.extend(f"{p}/*" for p in self.configured_providers())
            elif wildcard.name not in self.unsupported:
                names.append(wildcard.name)
        names.extend(alias for alias in self.aliases if alias not in self.hidden)
        return names

    def listed_names(self) -> list[str]:
        """What /v1/models lists: the groups, and for each wildcard the models of the catalogue it
        reaches, by the names a client sends for them (chat UIs fill their model picker from this);
        a wildcard whose provider the catalogue does not know is listed as itself; then the aliases
        that are not hidden."""
        if self._listed is None:
            names = list(self.groups)
            for wildcard in self.wildcards:
                if wildcard.name not in self.unsupported:
                    names += self._concrete(wildcard) or self._wildcard_names(wildcard)
            names += [alias for alias in self.aliases if alias not in self.hidden]
            self._listed = list(dict.fromkeys(names))
        return self._listed

    def _wildcard_names(self, wildcard: Wildcard) -> list[str]:
        if wildcard.entry.litellm_params.model == "*":
            return [f"{p}/*" for p in self.configured_providers()]
        return [wildcard.name]

    def _concrete(self, wildcard: Wildcard) -> list[str]:
        upstream = wildcard.entry.litellm_params.model
        if upstream == "*":  # `provider/model` for every provider with a key
            prefixes, pattern = self.configured_providers(), None
        else:
            prefix, slash, _ = upstream.partition("/")
            if not slash or prefix not in self.adapters:
                return []
            prefixes = [prefix]
            pattern = re.compile("^" + re.escape(upstream).replace(r"\*", "(.*)") + "$", re.S)
        found = []
        listed: set[str] = set()  # by `*`, each model once: `cohere/…` and not again as `cohere_chat/…`
        for prefix in prefixes:
            for model, key in self.catalogue.models(self.adapters[prefix].catalogue_names):
                if pattern is None and key in listed:
                    continue
                listed.add(key)
                full = f"{prefix}/{model}"
                match = pattern.match(full) if pattern is not None else None
                if pattern is not None and match is None:
                    continue
                part = match.group(1) if match is not None and match.groups() else full
                found.append(wildcard.name.replace("*", part, 1))
        return found

    def all(self) -> list[Deployment]:
        """Every deployment of the file, those not served included (for /health)."""
        return [*(d for group in self.groups.values() for d in group), *self._unsupported()]

    def in_config(self, model_id: str) -> bool:
        """Whether `model_id` names an entry of the config file (which /model/delete leaves alone)."""
        found: list[Deployment | Wildcard] = [*self.all(), *self.wildcards]
        return any(d.id == model_id and d.where.startswith("model_list[") for d in found)

    def fallbacks_for(self, model: str, kind: str = "fallbacks") -> tuple[str, ...]:
        """The fallback groups of `model` that this gateway serves, in order (kept per listed group:
        this runs on every request). `kind`: context_window_fallbacks or content_policy_fallbacks,
        asked only after such a refusal."""
        found = self._fallbacks.get(model) if kind == "fallbacks" else None
        if found is None and model in self.aliases:  # an alias falls back as its group does
            return self.fallbacks_for(self.aliases[model], kind)
        if found is None:
            fallbacks = self.settings.resolved.fallbacks_for(model, kind)
            found = tuple(name for name in fallbacks if name in self.groups or name not in self.unsupported)
            if model in self.groups and kind == "fallbacks":
                self._fallbacks[model] = found
        return found

    def _unsupported(self) -> list[Deployment]:
        return [d for group in self.unsupported.values() for d in group]

    def secrets(self) -> list[str]:
        """Every secret value the gateway was configured with: provider keys (of the model list
        and, for wildcards, of the environment), the master key, passwords in api_bases."""
        env = self.settings.env
        found = [self.settings.master_key]
        for entry in [*self.settings.file.model_list, *self.stored]:
            found += [entry.litellm_params.api_key, _password(entry.litellm_params.api_base)]
        for adapter in self.adapters.values():
            found += [env.get(name) for name in adapter.key_env]
            found += [_password(env.get(name)) for name in adapter.base_env]
        return [value for value in found if value]

    def configured_providers(self) -> list[str]:
        return [name for name, adapter in self.adapters.items() if self._reachable(adapter)]

    # -- building --

    def _build(
        self, entry: ModelEntry, upstream: str, model_name: str, where: str, dynamic: bool = False
    ) -> Deployment:
        params = entry.litellm_params
        prefix, model = self._split(upstream, model_name, where, dynamic)
        adapter = self.adapters[prefix]
        env = self.settings.env
        api_key = params.api_key or _first(env, adapter.key_env)
        api_base = params.api_base or _first(env, adapter.base_env) or adapter.default_base
        if api_base is None:
            names = " or ".join(adapter.base_env) or "litellm_params.api_base"
            raise ConfigError(
                f"{self.settings.source}: {where}.litellm_params.api_base: {prefix} needs an api_base "
                f"(set it, or {names})"
            )
        api_version = params.api_version or _first(env, adapter.version_env)
        values = self.settings.resolved.deployment(params)
        extra = {**values.settings, "drop_params": values.drop_params}
        missing = None
        if adapter.key_required and not api_key:
            names = " or ".join(adapter.key_env)
            missing = f"{prefix} has no API key: set {names}, or litellm_params.api_key"
        target = Target(prefix, model, adapter.normalize_base(api_base), api_key, api_version, extra)
        info = self._info(entry, adapter, model, f"{self.settings.source}: {where}")
        return Deployment(
            id=str(entry.model_info.get("id") or fingerprint(model_name, upstream, params.model_dump())),
            model_name=model_name,
            adapter=adapter,
            target=target,
            params=values.request_defaults,
            weight=params.weight,
            timeout=values.timeout,
            stream_timeout=values.stream_timeout,
            max_retries=params.max_retries,
            rpm=params.rpm,
            tpm=params.tpm,
            model_info=entry.model_info,
            missing_key=missing,
            prices=Prices.of(info),
            info=info,
            entry=entry,
            where=where,
            max_parallel=_max_parallel(params.model_extra or {}, f"{self.settings.source}: {where}")
            or self.settings.file.router_settings.default_max_parallel_requests,
        )

    def _info(self, entry: ModelEntry, adapter: Adapter, model: str, where: str) -> Mapping[str, Any]:
        """The catalogue's entry for the model (LiteLLM's `base_model` names it when the deployment
        name does not: Azure), under the prices of litellm_params, under model_info."""
        base_model = entry.model_info.get("base_model") or (entry.litellm_params.model_extra or {}).get("base_model")
        names = adapter.catalogue_names
        found = None
        if isinstance(base_model, str) and base_model:
            found = self.catalogue.entries.get(base_model) or self.catalogue.find(names, base_model)
        if found is None:
            found = self.catalogue.find(names, model)
        overrides = {k: v for k, v in (entry.litellm_params.model_extra or {}).items() if catalogue.is_price(k)}
        if not overrides and not entry.model_info:
            return found or {}  # shared with the catalogue: wildcard deployments are built per model name
        catalogue.check_prices(overrides, f"{where}.litellm_params")
        catalogue.check_prices(entry.model_info, f"{where}.model_info")
        return {**(found or {}), **overrides, **entry.model_info}

    def _split(self, upstream: str, model_name: str, where: str, dynamic: bool) -> tuple[str, str]:
        """`provider/model` → (provider, model); a bare name goes to the provider that makes it."""
        prefix, slash, rest = upstream.partition("/")
        if slash and prefix in self.adapters:
            return prefix, rest
        for name, adapter in self.adapters.items():
            if adapter.model_prefixes and upstream.startswith(adapter.model_prefixes):
                return name, upstream
        if slash and prefix in LITELLM_PROVIDERS:
            reason = f"{prefix} is a LiteLLM provider that Seance does not serve yet"
        elif not slash:
            reason = f"cannot tell the provider of '{upstream}' (write it as <provider>/<model>)"
        else:
            if dynamic:
                raise ModelNotFound(self._not_found_message(model_name), param="model")
            near = closest(prefix, [*self.adapters, *LITELLM_PROVIDERS])
            hint = (
                f"did you mean '{near}'?"
                if near
                else f"write it as <provider>/<model> with one of: {', '.join(sorted(self.adapters))}"
            )
            raise ConfigError(
                f"{self.settings.source}: {where}.litellm_params.model: unknown provider '{prefix}'; {hint}"
            )
        if not dynamic:
            raise _NotServed(reason)
        if slash:
            raise _not_implemented(model_name, reason)
        raise ModelNotFound(self._not_found_message(model_name), param="model")

    def _reachable(self, adapter: Adapter) -> bool:
        env = self.settings.env
        if adapter.key_required:
            return _first(env, adapter.key_env) is not None
        return _first(env, adapter.base_env) is not None or _first(env, adapter.key_env) is not None

    def _not_found_message(self, model: str) -> str:
        if self.wildcards and any(w.entry.litellm_params.model == "*" for w in self.wildcards):
            providers = ", ".join(self.configured_providers()) or "none"
            return (
                f"model '{model}' has no configured provider: name it as <provider>/<model> for a "
                f"provider with a key in the environment (configured providers: {providers})"
            )
        names = ", ".join(self.model_names()[:50]) or "none"
        return f"model '{model}' is not served here; available models: {names}"

    def _not_served(self, entry: ModelEntry, where: str, reason: str) -> Deployment:
        params = entry.litellm_params
        prefix, slash, model = params.model.partition("/")
        # never contacted (lookup answers 501 first); the reserved .invalid domain cannot resolve
        api_base = (params.api_base or f"https://{prefix if slash else 'unknown'}.invalid").rstrip("/")
        return Deployment(
            id=str(entry.model_info.get("id") or fingerprint(entry.model_name, params.model, params.model_dump())),
            model_name=entry.model_name,
            adapter=_NOT_SERVED,
            target=Target(prefix if slash else "unknown", model if slash else params.model, api_base),
            model_info=entry.model_info,
            missing_key=reason,
            where=where,
        )

    def _aliases(self) -> tuple[dict[str, str], frozenset[str]]:
        """router_settings.model_group_alias: another name of a group (hidden: not on /v1/models)."""
        aliases: dict[str, str] = {}
        hidden: set[str] = set()
        for alias, value in self.settings.file.router_settings.model_group_alias.items():
            target = value if isinstance(value, str) else value.model
            where = f"{self.settings.source}: router_settings.model_group_alias.{alias}"
            if alias in self.groups:
                raise ConfigError(f"{where}: '{alias}' is already a model_name; an alias cannot hide a group")
            known = target in self.groups or target in self.unsupported
            if not known and not any(w.pattern.match(target) for w in self.wildcards):
                raise ConfigError(f"{where}: model '{target}' is not in model_list")
            aliases[alias] = target
            if not isinstance(value, str) and value.hidden:
                hidden.add(alias)
        return aliases, frozenset(hidden)

    def _check_fallbacks(self) -> None:
        for rule in self.settings.resolved.fallback_rules():
            for name in [rule.source, *rule.targets]:
                if (
                    name in self.groups
                    or name in self.aliases
                    or name == "*"
                    or any(w.pattern.match(name) for w in self.wildcards)
                ):
                    continue
                if name in self.unsupported:
                    self.warnings.append(f"{self.settings.source}: {rule.path}: '{name}' is not served; skipped")
                    continue
                raise ConfigError(f"{self.settings.source}: {rule.path}: model '{name}' is not in model_list")
            self._check_capabilities(rule.path, rule.source, rule.targets)

    def _check_capabilities(self, path: str, source: str, targets: Sequence[str]) -> None:
        """A fallback group must serve something its source serves, or it could never be reached."""
        offered = self._operations(source)
        for target in targets:
            served = self._operations(target)
            if offered is not None and served is not None and not offered & served:
                raise ConfigError(
                    f"{self.settings.source}: {path}: '{target}' cannot stand in for "
                    f"'{source}': it serves {', '.join(sorted(served))}, '{source}' serves "
                    f"{', '.join(sorted(offered))}"
                )

    def _operations(self, name: str) -> set[str] | None:
        """What a listed group serves (None for a wildcard: known only per request)."""
        group = self.groups.get(name)
        if group is None:
            return None
        return {op for d in group for op in d.operations}


def _weighed_by_limits(group: list[Deployment]) -> list[Deployment]:
    """LiteLLM's simple-shuffle: without weights, a group whose deployments all have an `rpm`
    (else all a `tpm`) shares its traffic in proportion to them."""
    for limit in ("rpm", "tpm"):
        values = [getattr(d, limit) for d in group]
        if len(group) > 1 and all(values):
            return [dataclasses.replace(d, weight=float(v)) for d, v in zip(group, values, strict=True)]
    return group


class _NotServed(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class _NotServedAdapter(Adapter):
    """Stands in for the adapter of a provider Seance does not serve; serves no operation."""

    name = "not-served"
    operations = frozenset()


_NOT_SERVED = _NotServedAdapter()


def _not_implemented(model: str, reason: str | None) -> GatewayError:
    return GatewayError(f"model '{model}' is not served by this gateway: {reason}", status=501, code="not_implemented")


def _first(env: Mapping[str, str], names: Sequence[str]) -> str | None:
    for name in names:
        value = env.get(name)
        if value:
            return value
    return None


def _password(url: str | None) -> str | None:
    try:
        return urlsplit(url or "").password
    except ValueError:
        return None


def fingerprint(model_name: str, upstream: str, params: Mapping[str, Any]) -> str:
    public = {k: v for k, v in params.items() if k != "api_key"}
    blob = orjson.dumps([model_name, upstream, public], option=orjson.OPT_SORT_KEYS, default=str)
    return hashlib.sha256(blob).hexdigest()


def _max_parallel(extra: Mapping[str, Any], where: str) -> int | None:
    """litellm_params.max_parallel_requests (read from the entry's other keys, so that deployments
    without it keep the ids they had: the id hashes the entry's fields)."""
    value = extra.get("max_parallel_requests")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{where}.litellm_params.max_parallel_requests: a number of calls, 1 or more, not {value!r}")
    return value
