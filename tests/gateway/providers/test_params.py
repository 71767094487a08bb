"""Every OpenAI chat parameter, per provider: mapped (forwarded, or renamed), dropped silently, or
refused (a 400 naming it and the provider; left out with drop_params). The listings below are what
each provider's own API reference says; the tests check the adapters do exactly that, parameter by
parameter. A parameter added to `CHAT_PARAMS` changes every listing and fails here until each
provider classifies it."""

from __future__ import annotations

import importlib
from typing import Any

import orjson
import pytest
from tests.gateway.providers.helpers import WEATHER_TOOL, make_call

from seance.gateway.errors import BadRequest
from seance.gateway.formats.openai import CHAT_PARAMS, EXTENSIONS
from seance.gateway.providers import REGISTRY, load_adapter
from seance.gateway.providers.openai_compat import OpenAICompatible

EVERYTHING = sorted(CHAT_PARAMS | EXTENSIONS)

# provider -> (renamed, dropped silently, refused); every other OpenAI parameter is forwarded as it is,
# except Anthropic-style `thinking`, sent as reasoning_effort wherever that is not refused
# fmt: off
FAMILY: dict[str, tuple[dict[str, str], list[str], list[str]]] = {
    "openai": ({}, [], ["top_k"]),
    "text-completion-openai": ({}, [], ["top_k"]),
    # azure: the default deployment, not a reasoning model, API 2024-10-21
    "azure": ({}, [], ["reasoning_effort", "thinking", "top_k"]),
    "together_ai": (
        {"max_completion_tokens": "max_tokens"},
        ["safety_identifier", "stream_options", "user"],
        ["audio", "function_call", "functions", "logprobs", "modalities", "parallel_tool_calls", "prediction",
         "prompt_cache_key", "service_tier", "store", "top_logprobs", "verbosity", "web_search_options"],
    ),
    "groq": (
        {},
        ["safety_identifier"],
        ["audio", "logit_bias", "logprobs", "modalities", "prediction", "prompt_cache_key", "store", "top_k",
         "top_logprobs", "verbosity", "web_search_options"],
    ),
    "mistral": (
        {"max_completion_tokens": "max_tokens", "seed": "random_seed"},
        ["safety_identifier", "stream_options", "user"],
        ["audio", "function_call", "functions", "logit_bias", "logprobs", "modalities", "prompt_cache_key",
         "reasoning_effort", "service_tier", "store", "thinking", "top_k", "top_logprobs", "verbosity",
         "web_search_options"],
    ),
    "deepseek": (
        {"max_completion_tokens": "max_tokens"},
        ["safety_identifier", "user"],
        ["audio", "function_call", "functions", "logit_bias", "modalities", "n", "parallel_tool_calls",
         "prediction", "prompt_cache_key", "reasoning_effort", "seed", "service_tier", "store", "thinking",
         "top_k", "verbosity", "web_search_options"],
    ),
    "openrouter": ({}, [], []),  # OpenRouter itself passes each parameter to the models that have it
    "huggingface": ({}, [], []),
    "hosted_vllm": ({}, [], []),
    "ollama": (
        {"max_completion_tokens": "max_tokens"},
        ["safety_identifier", "user"],
        ["audio", "function_call", "functions", "logit_bias", "modalities", "n", "parallel_tool_calls",
         "prediction", "prompt_cache_key", "service_tier", "store", "tool_choice", "top_k", "verbosity",
         "web_search_options"],
    ),
}
# fmt: on

# translating providers: the OpenAI parameters each one maps; every other one is refused
TRANSLATING: dict[str, list[str]] = {
    "anthropic": ["max_completion_tokens", "max_tokens", "parallel_tool_calls", "reasoning_effort",
                  "response_format", "stop", "temperature", "thinking", "tool_choice", "tools", "top_k", "top_p",
                  "user"],
    "cohere": ["frequency_penalty", "logprobs", "max_completion_tokens", "max_tokens", "presence_penalty",
               "response_format", "seed", "stop", "temperature", "thinking", "tool_choice", "tools", "top_k",
               "top_p", "user"],
    "gemini": ["frequency_penalty", "logprobs", "max_completion_tokens", "max_tokens", "n", "presence_penalty",
               "reasoning_effort", "response_format", "seed", "stop", "temperature", "thinking", "tool_choice",
               "tools", "top_k", "top_logprobs", "top_p", "user"],
    "ollama_chat": ["frequency_penalty", "max_completion_tokens", "max_tokens", "presence_penalty",
                    "reasoning_effort", "response_format", "seed", "stop", "temperature", "thinking", "tool_choice",
                    "tools", "top_k", "top_p", "user"],
    "replicate": ["frequency_penalty", "max_completion_tokens", "max_tokens", "presence_penalty", "seed", "stop",
                  "temperature", "top_k", "top_p", "user"],
}  # fmt: skip

# a value of each parameter that asks for something (never OpenAI's default)
SAMPLE: dict[str, Any] = {
    "audio": {"voice": "alloy", "format": "wav"},
    "frequency_penalty": 0.5,
    "function_call": "auto",
    "functions": [WEATHER_TOOL["function"]],
    "logit_bias": {"50256": -100},
    "logprobs": True,
    "max_completion_tokens": 50,
    "max_tokens": 60,
    "modalities": ["text", "audio"],
    "n": 2,
    "parallel_tool_calls": False,
    "prediction": {"type": "content", "content": "Berlin"},
    "presence_penalty": 0.5,
    "prompt_cache_key": "weather",
    "reasoning_effort": "low",
    "response_format": {"type": "json_object"},
    "safety_identifier": "user-1",
    "seed": 0,
    "service_tier": "flex",
    "stop": ["\n\n"],
    "store": True,
    "stream_options": {"include_usage": True},
    "temperature": 0,
    "thinking": {"type": "enabled", "budget_tokens": 2048},
    "top_k": 40,
    "tool_choice": "required",
    "tools": [WEATHER_TOOL],
    "top_logprobs": 2,
    "top_p": 0.5,
    "user": "user-1",
    "verbosity": "low",
    "web_search_options": {"search_context_size": "low"},
}
CONTEXT: dict[str, dict[str, Any]] = {  # what a parameter needs beside it to make sense
    "tool_choice": {"tools": [WEATHER_TOOL]},
    "parallel_tool_calls": {"tools": [WEATHER_TOOL]},
    "top_logprobs": {"logprobs": True},
    "function_call": {"functions": [WEATHER_TOOL["function"]]},
}
BASES = {"azure": "https://example.openai.azure.com", "hosted_vllm": "http://vllm:8000/v1"}


def test_every_parameter_is_classified_for_every_provider() -> None:
    # text-completion-codestral serves completions only (FIM): tests/gateway/providers/test_codestral.py
    assert {*FAMILY, *TRANSLATING, "cohere_chat", "text-completion-codestral"} == set(REGISTRY)
    for prefix, (renamed, dropped, refused) in FAMILY.items():
        adapter = load_adapter(prefix)
        assert isinstance(adapter, OpenAICompatible)
        table = adapter.table(_call(prefix, {}))
        assert (dict(table.renamed), sorted(table.dropped), sorted(table.refused)) == (renamed, dropped, refused)
        assert table.accepted | set(renamed) | set(dropped) | set(refused) | table.converted == set(EVERYTHING)
        assert table.converted == ({"thinking"} if "reasoning_effort" in table.accepted else set())
    for prefix, mapped in TRANSLATING.items():
        assert sorted(_supported(prefix) & set(EVERYTHING)) == mapped, prefix
    assert set(SAMPLE) == set(EVERYTHING)


def _supported(prefix: str) -> frozenset[str]:
    module = REGISTRY[prefix].split(":")[0]
    if prefix in ("anthropic", "gemini"):
        module = f"_{prefix}_request"
    supported: frozenset[str] = importlib.import_module(f"seance.gateway.providers.{module}").SUPPORTED
    return supported


def _call(prefix: str, extra: dict[str, Any], *, op: str = "chat", drop: bool = False) -> Any:
    body = {"model": "m", "messages": [{"role": "user", "content": "Hi"}], **extra}
    model = "acme/m" if prefix == "replicate" else "m"  # Replicate's are <owner>/<name>
    call = make_call(op, body, provider=prefix, model=model, api_base=BASES.get(prefix, "https://up/v1"))  # type: ignore[arg-type]
    call.drop = drop
    return call


def _sent(prefix: str, extra: dict[str, Any], drop: bool = False) -> dict[str, Any]:
    adapter = load_adapter(prefix)
    assert adapter is not None
    call = _call(prefix, extra, drop=drop)
    call.stream = "stream_options" in extra
    if call.stream:
        call.body["stream"] = True
    sent: dict[str, Any] = orjson.loads(adapter.build(call).body)
    return sent


@pytest.mark.parametrize("prefix", list(FAMILY))
@pytest.mark.parametrize("param", EVERYTHING)
def test_family_parameter(prefix: str, param: str) -> None:
    renamed, dropped, refused = FAMILY[prefix]
    extra = {param: SAMPLE[param], **CONTEXT.get(param, {})}
    if param in refused:
        with pytest.raises(BadRequest) as caught:
            _sent(prefix, extra)
        assert caught.value.param == param and caught.value.status == 400
        assert f"{prefix} does not support the parameter '{param}'" in caught.value.message
        assert param not in _sent(prefix, extra, drop=True)
        return
    sent = _sent(prefix, extra)
    if param == "thinking":
        assert param not in sent and sent["reasoning_effort"] == "low"
    elif param in dropped:
        assert param not in sent
    elif param in renamed:
        assert param not in sent and sent[renamed[param]] == SAMPLE[param]
    else:
        assert sent[param] == SAMPLE[param]


@pytest.mark.parametrize("prefix", list(TRANSLATING))
@pytest.mark.parametrize("param", EVERYTHING)
def test_translating_parameter(prefix: str, param: str) -> None:
    adapter = load_adapter(prefix)
    assert adapter is not None
    extra = {param: SAMPLE[param], **CONTEXT.get(param, {})}
    if param == "stream_options":
        extra["stream"] = True
    if param in TRANSLATING[prefix] or param == "stream_options":
        adapter.build(_call(prefix, extra))  # mapped: builds
        return
    with pytest.raises(BadRequest) as caught:
        adapter.build(_call(prefix, extra))
    assert caught.value.param == param, caught.value.message
    assert f"{prefix} does not support the parameter '{param}'" in caught.value.message
    sent = adapter.build(_call(prefix, extra, drop=True)).body
    assert f'"{param}"'.encode() not in sent or param in ("stop", "seed")


@pytest.mark.parametrize("prefix", [*FAMILY, *TRANSLATING])
def test_default_values_ask_for_nothing(prefix: str) -> None:
    """A parameter at OpenAI's default is never refused: there is nothing to honour."""
    adapter = load_adapter(prefix)
    assert adapter is not None
    quiet = {"n": 1, "logprobs": False, "presence_penalty": 0, "frequency_penalty": 0.0, "store": False,
             "parallel_tool_calls": True, "logit_bias": {}, "seed": None}  # fmt: skip
    tools = {"tools": [WEATHER_TOOL]} if "tools" in TRANSLATING.get(prefix, ["tools"]) else {}
    adapter.build(_call(prefix, {**quiet, **tools, "tool_choice": "auto"}))
