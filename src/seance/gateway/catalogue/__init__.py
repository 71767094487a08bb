"""The price and model catalogue: LiteLLM's `model_prices_and_context_window.json`, in its format.

The package ships that file trimmed to the providers Seance serves (`python -m
seance.gateway.catalogue FILE` makes the trimmed copy). A user drops in a newer or their own one with
`SEANCE_MODEL_PRICES=/path.json`, or LiteLLM's ways to name one: `LITELLM_MODEL_COST_MAP_URL` or
`litellm_settings.model_cost_map_url` naming a local file (`file://…` or a path). Nothing is fetched
at run time: an http(s) URL there is refused with a warning and the shipped file is used.

Read once at start. Each deployment keeps its own `Prices` (a few floats, computed once) and a
reference to its entry; the catalogue itself stays only for wildcards (their models are known per
request) and the model listings.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import orjson

from seance.gateway.formats.openai import Usage
from seance.litellm_config import ConfigError

SHIPPED = "model_prices_and_context_window.json"
# keys of price templates rather than models: fine-tuned models' prices, Together's size buckets
NOT_MODELS = ("ft:", "together-ai-")
# the modes of the models Seance serves (the file also lists image, audio, realtime, rerank… models)
SERVED_MODES = frozenset({"chat", "completion", "embedding"})
# LiteLLM's long-context tiers: above N thousand prompt tokens the whole request is billed at the tier
TIER = re.compile(r"^(input_cost_per_token|output_cost_per_token|cache_read_input_token_cost|"
                  r"cache_creation_input_token_cost|output_cost_per_reasoning_token)_above_(\d+)k_tokens$")  # fmt: skip
# the price fields Seance bills by; LiteLLM's other ones (per image, per second, batches…) stay data
BILLED = (
    "input_cost_per_token", "output_cost_per_token", "cache_read_input_token_cost",
    "cache_creation_input_token_cost", "output_cost_per_reasoning_token", "input_cost_per_token_cache_hit",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Rates:
    """USD per token of each kind; cached and reasoning rates default to the plain ones."""

    input: float
    output: float
    cache_read: float
    cache_write: float
    reasoning: float

    def cost(self, usage: Usage) -> float:
        cached, written, reasoning = usage.cached_tokens, usage.cache_creation_tokens, usage.reasoning_tokens
        # (conditionals, not max(…, 0): a builtin call each, ~1.5k instructions a request in all)
        plain = usage.prompt_tokens - cached - written
        answered = usage.completion_tokens - reasoning
        return (
            (plain * self.input if plain > 0 else 0.0)
            + cached * self.cache_read
            + written * self.cache_write
            + (answered * self.output if answered > 0 else 0.0)
            + reasoning * self.reasoning
        )


@dataclass(frozen=True, slots=True)
class Prices:
    """What one deployment charges: its base rates and, above a prompt size, LiteLLM's tiers."""

    base: Rates
    tiers: tuple[tuple[int, Rates], ...] = ()  # (prompt tokens above which, rates), largest first

    def cost(self, usage: Usage) -> float:
        for threshold, rates in self.tiers:
            if usage.prompt_tokens > threshold:
                return rates.cost(usage)
        return self.base.cost(usage)

    @classmethod
    def of(cls, info: Mapping[str, Any]) -> Prices | None:
        """The prices of a (merged) model entry; None when it has neither an input nor an output
        price (unknown: no cost is reported, rather than a wrong 0)."""
        if info.get("input_cost_per_token") is None and info.get("output_cost_per_token") is None:
            return None
        base = _rates(info, "")
        tiers: dict[int, Rates] = {}
        for key in info:
            match = TIER.match(key)
            if match and (size := int(match.group(2)) * 1000) not in tiers:
                tiers[size] = _rates(info, f"_above_{match.group(2)}k_tokens", base)
        return cls(base, tuple(sorted(tiers.items(), reverse=True)))


def _rates(info: Mapping[str, Any], suffix: str, fallback: Rates | None = None) -> Rates:
    def rate(name: str, default: float) -> float:
        value = info.get(name + suffix)
        return default if value is None else float(value)

    plain_in = rate("input_cost_per_token", fallback.input if fallback else 0.0)
    plain_out = rate("output_cost_per_token", fallback.output if fallback else 0.0)
    cache_hit = info.get("input_cost_per_token_cache_hit") if not suffix else None  # DeepSeek's older name
    return Rates(
        input=plain_in,
        output=plain_out,
        cache_read=rate("cache_read_input_token_cost", plain_in if cache_hit is None else float(cache_hit)),
        cache_write=rate("cache_creation_input_token_cost", plain_in),
        reasoning=rate("output_cost_per_reasoning_token", plain_out),
    )


def is_price(name: str) -> bool:
    return name in BILLED or TIER.match(name) is not None


class Catalogue:
    """Model entries by LiteLLM's key (`gpt-4o`, `gemini/gemini-2.5-pro`), of the served providers."""

    def __init__(self, entries: Mapping[str, Mapping[str, Any]], source: str) -> None:
        self.entries = entries
        self.source = source
        by_provider: dict[str, list[str]] = {}
        for key, entry in entries.items():
            by_provider.setdefault(str(entry.get("litellm_provider")), []).append(key)
        self._by_provider = by_provider

    def __len__(self) -> int:
        return len(self.entries)

    def find(self, providers: Iterable[str], model: str) -> Mapping[str, Any] | None:
        """The entry of `model` as one of `providers` (LiteLLM's provider names, in order) sells
        it: `<provider>/<model>` first, then the bare name when the entry is that provider's."""
        names = tuple(providers)
        for name in names:
            entry = self.entries.get(f"{name}/{model}")
            if entry is not None and entry.get("litellm_provider") in names:
                return entry
        entry = self.entries.get(model)
        if entry is not None and entry.get("litellm_provider") in names:
            return entry
        return None

    def models(self, providers: Iterable[str]) -> Iterator[tuple[str, str]]:
        """(model id without the provider prefix, its key) of each model the catalogue knows for
        `providers`, of the modes Seance serves."""
        seen: set[str] = set()
        for name in providers:
            prefix = name + "/"
            for key in self._by_provider.get(name, ()):
                if self.entries[key].get("mode") not in SERVED_MODES:
                    continue
                model = key.removeprefix(prefix)
                if model.startswith(NOT_MODELS):
                    continue
                if model not in seen:
                    seen.add(model)
                    yield model, key


def load(
    env: Mapping[str, str], litellm_settings: Mapping[str, Any], providers: Iterable[str]
) -> tuple[Catalogue, list[str]]:
    """The catalogue for the environment and config, kept to `providers`; with the warnings."""
    warnings: list[str] = []
    path, where = _chosen(env, litellm_settings, warnings)
    if path is None:
        data = resources.files(__name__).joinpath(SHIPPED).read_bytes()
        source = f"(shipped {SHIPPED})"
    else:
        try:
            data = Path(path).read_bytes()
        except OSError as exc:
            raise ConfigError(f"{where}: cannot read the model prices file {path}: {exc.strerror or exc}") from None
        source = path
    try:
        raw = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise ConfigError(f"{source}: not a JSON model prices file: {exc}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: a model prices file is a JSON object of model entries")
    return Catalogue(served(raw, providers, source), source), warnings


def served(raw: Mapping[str, Any], providers: Iterable[str], source: str) -> dict[str, Mapping[str, Any]]:
    """The entries of `providers` (LiteLLM provider names) of the served modes, their prices checked."""
    wanted = frozenset(providers)
    kept: dict[str, Mapping[str, Any]] = {}
    for key, entry in raw.items():
        if key == "sample_spec" or not isinstance(entry, dict) or entry.get("litellm_provider") not in wanted:
            continue
        if entry.get("mode", "chat") not in SERVED_MODES:
            continue
        check_prices(entry, f"{source}: {key}")
        kept[key] = entry
    return kept


def check_prices(entry: Mapping[str, Any], where: str) -> None:
    for name, value in entry.items():
        if (
            is_price(name)
            and value is not None
            and (isinstance(value, bool) or not isinstance(value, int | float) or value < 0)
        ):
            raise ConfigError(f"{where}.{name}: must be a number of USD per token, not {value!r}")


def _chosen(env: Mapping[str, str], litellm_settings: Mapping[str, Any], warnings: list[str]) -> tuple[str | None, str]:
    """The prices file the user named, if any: SEANCE_MODEL_PRICES, LITELLM_MODEL_COST_MAP_URL,
    litellm_settings.model_cost_map_url (a local path or file:// URL), in that order."""
    candidates = [
        ("SEANCE_MODEL_PRICES", env.get("SEANCE_MODEL_PRICES")),
        ("LITELLM_MODEL_COST_MAP_URL", env.get("LITELLM_MODEL_COST_MAP_URL")),
        ("litellm_settings.model_cost_map_url", litellm_settings.get("model_cost_map_url")),
    ]
    for where, value in candidates:
        if not value:
            continue
        if not isinstance(value, str):
            raise ConfigError(f"{where}: must be a file path, not {value!r}")
        parts = urlsplit(value)
        if parts.scheme in ("http", "https"):
            warnings.append(
                f"{where}: {parts.scheme}:// price maps are not fetched (no network at run time); using the "
                "shipped catalogue: download the file and name its path instead"
            )
            continue
        return (unquote(parts.path) if parts.scheme == "file" else value), where
    return None, ""
