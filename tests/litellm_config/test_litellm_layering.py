"""LiteLLM's layering of litellm_settings / router_settings / litellm_params, resolved in one place."""

from __future__ import annotations

from typing import Any

import pytest

from seance.litellm_config import ConfigFile, LiteLLMParams, Resolved, resolve


def resolved(**sections: Any) -> Resolved:
    return resolve(ConfigFile.model_validate(sections))


def params(**values: Any) -> LiteLLMParams:
    return LiteLLMParams.model_validate({"model": "openai/gpt-4o", **values})


def test_defaults() -> None:
    config = resolved()
    assert (config.num_retries, config.timeout, config.stream_timeout, config.max_fallbacks) == (2, 600, None, 5)
    values = config.deployment(params())
    assert (values.timeout, values.stream_timeout, values.drop_params) == (600, 600, False)


@pytest.mark.parametrize(
    ("litellm", "router", "expected"),
    [({"num_retries": 5}, {}, 5), ({}, {"num_retries": 1}, 1), ({"num_retries": 5}, {"num_retries": 0}, 0)],
)
def test_num_retries_router_settings_win(litellm: dict[str, Any], router: dict[str, Any], expected: int) -> None:
    assert resolved(litellm_settings=litellm, router_settings=router).num_retries == expected


def test_the_value_a_router_setting_overrides_is_reported() -> None:
    config = resolved(litellm_settings={"num_retries": 5, "request_timeout": 10}, router_settings={"num_retries": 1})
    assert config.overridden == (("litellm_settings.num_retries", "router_settings.num_retries"),)


@pytest.mark.parametrize(
    ("sections", "deployment", "expected"),
    [
        ({}, {}, (600, 600)),
        ({"litellm_settings": {"request_timeout": 10}}, {}, (10, 10)),
        ({"litellm_settings": {"request_timeout": 10}, "router_settings": {"timeout": 30}}, {}, (30, 30)),
        ({"router_settings": {"timeout": 30, "stream_timeout": 120}}, {}, (30, 120)),
        ({"router_settings": {"timeout": 30}}, {"timeout": 5}, (5, 5)),
        ({"router_settings": {"timeout": 30}}, {"request_timeout": 7}, (7, 7)),
        ({"router_settings": {"timeout": 30}}, {"timeout": 5, "request_timeout": 7}, (5, 5)),
        ({"router_settings": {"stream_timeout": 120}}, {"timeout": 5}, (5, 120)),
        ({"router_settings": {"stream_timeout": 120}}, {"stream_timeout": 60}, (600, 60)),
    ],
)  # fmt: skip
def test_timeouts(sections: dict[str, Any], deployment: dict[str, Any], expected: tuple[float, float]) -> None:
    values = resolved(**sections).deployment(params(**deployment))
    assert (values.timeout, values.stream_timeout) == expected


@pytest.mark.parametrize(
    ("global_", "local", "expected"),
    [(False, None, False), (True, None, True), (False, True, True), (True, False, True), (False, False, False)],
)
def test_drop_params_either_one_drops(global_: bool, local: bool | None, expected: bool) -> None:
    deployment = params() if local is None else params(drop_params=local)
    assert resolved(litellm_settings={"drop_params": global_}).deployment(deployment).drop_params is expected


def test_request_parameters_and_deployment_settings_are_told_apart() -> None:
    values = resolved().deployment(params(temperature=0.2, top_k=5, thinking={"type": "enabled"}, organization="o"))
    assert values.request_defaults == {"temperature": 0.2, "top_k": 5, "thinking": {"type": "enabled"}}
    assert values.settings == {"organization": "o"}


def test_fallbacks_router_settings_replace_litellm_settings() -> None:
    config = resolved(
        litellm_settings={"fallbacks": [{"a": ["b"]}], "context_window_fallbacks": [{"a": ["c"]}]},
        router_settings={"fallbacks": [{"a": ["d"]}, {"a": ["e"]}, {"x": "y"}]},
    )
    assert config.fallbacks_for("a") == ("d", "e")
    assert config.fallbacks_for("x") == ("y",)
    assert config.fallbacks_for("other") == ()
    assert [(r.path, r.kind) for r in config.rules] == [
        ("router_settings.fallbacks[0]", "fallbacks"),
        ("router_settings.fallbacks[1]", "fallbacks"),
        ("router_settings.fallbacks[2]", "fallbacks"),
        ("litellm_settings.context_window_fallbacks[0]", "context_window_fallbacks"),
    ]
    assert ("litellm_settings.fallbacks", "router_settings.fallbacks") in config.overridden


def test_default_fallbacks_serve_groups_without_their_own() -> None:
    config = resolved(litellm_settings={"fallbacks": [{"a": ["b"]}], "default_fallbacks": ["backup", "last"]})
    assert config.fallbacks_for("a") == ("b",)
    assert config.fallbacks_for("z") == ("backup", "last")
    assert config.fallbacks_for("backup") == ("last",)  # never itself


def test_max_fallbacks_caps_the_list() -> None:
    config = resolved(router_settings={"fallbacks": [{"a": ["b", "c", "d"]}], "max_fallbacks": 2})
    assert config.fallbacks_for("a") == ("b", "c")
