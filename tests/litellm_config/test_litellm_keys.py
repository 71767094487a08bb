"""Unknown, refused and ignored keys: one line naming the file and the key path, before anything runs."""

from __future__ import annotations

from pathlib import Path

import pytest

from seance.litellm_config import ConfigError, LoadedConfig, read_config

MODEL = "model_list:\n  - model_name: m\n    litellm_params:\n      model: openai/gpt-4o\n"


def load(tmp_path: Path, text: str, env: dict[str, str] | None = None) -> LoadedConfig:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    return read_config(path, env or {})


def error(tmp_path: Path, text: str, env: dict[str, str] | None = None) -> str:
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, text, env)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"{tmp_path / 'config.yaml'}: ")
    return message.split(": ", 1)[1]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("model_lst:\n  - model_name: m\n    litellm_params: {model: openai/gpt-4o}\n",
         "model_lst: unknown key; did you mean 'model_list'?"),
        (MODEL + "      api_bse: https://eu.example.com\n",
         "model_list[0].litellm_params.api_bse: unknown key; did you mean 'api_base'?"),
        ("model_list:\n  - model_name: m\n    litellm_param:\n      model: openai/gpt-4o\n",
         "model_list[0].litellm_param: unknown key; did you mean 'litellm_params'?"),
        (MODEL + "      temprature: 0.2\n",
         "model_list[0].litellm_params.temprature: unknown key; did you mean 'temperature'?"),
        (MODEL + "      tmp: 6\n", "model_list[0].litellm_params.tmp: unknown key; did you mean 'tpm'?"),
        (MODEL + "    model_info:\n      input_cost_per_tokn: 0.001\n",
         "model_list[0].model_info.input_cost_per_tokn: unknown key; did you mean 'input_cost_per_token'?"),
        (MODEL + "litelm_settings:\n  drop_params: true\n",
         "litelm_settings: unknown key; did you mean 'litellm_settings'?"),
        (MODEL + "litellm_settings:\n  num_retry: 3\n",
         "litellm_settings.num_retry: unknown key; did you mean 'num_retries'?"),
        (MODEL + "router_settings:\n  routing_stategy: least-busy\n",
         "router_settings.routing_stategy: unknown key; did you mean 'routing_strategy'?"),
        (MODEL + "general_settings:\n  master_ky: sk-1\n",
         "general_settings.master_ky: unknown key; did you mean 'master_key'?"),
        (MODEL + "general_settings:\n  colour: blue\n",
         "general_settings.colour: unknown key; see the compatibility table in docs/gateway.md"),
        (MODEL + "litellm_settings:\n  callbacks: [promethues]\n",
         "litellm_settings.callbacks: 'promethues' is not a callback; did you mean 'prometheus'?"),
        (MODEL + "litellm_settings:\n  success_callback: [langfuse, otle]\n",
         "litellm_settings.success_callback: 'otle' is not a callback; did you mean 'otel'?"),
    ],
)  # fmt: skip
def test_a_typo_is_one_line_with_did_you_mean(tmp_path: Path, text: str, expected: str) -> None:
    assert error(tmp_path, text) == expected


def test_every_problem_is_counted(tmp_path: Path) -> None:
    text = MODEL + "      temprature: 0.2\n      api_bse: https://x.example\nmodel_lst: []\n"
    assert error(tmp_path, text).endswith("(and 2 more problems)")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (MODEL + "guardrails:\n  - guardrail_name: pii\n", "guardrails: not supported by Seance (requests would"),
        (MODEL + "general_settings:\n  allowed_ips: [10.0.0.1]\n", "general_settings.allowed_ips: not supported"),
        (MODEL + "litellm_settings:\n  api_base: https://proxy.internal\n", "litellm_settings.api_base: not supported"),
        (MODEL + "include:\n  - models.yaml\n", "include: not supported by Seance (Seance reads one file"),
    ],
)  # fmt: skip
def test_a_refused_key_stops_the_start(tmp_path: Path, text: str, expected: str) -> None:
    message = error(tmp_path, text)
    assert message.startswith(expected)
    assert message.endswith("remove it to start without it")


def test_provider_specific_request_parameters_are_not_typos(tmp_path: Path) -> None:
    text = MODEL + "      max_new_tokens: 10\n      num_ctx: 8192\n      thinking: {type: enabled}\n"
    text += "      top_a: 0.1\n      safety_settings: []\n      my_vendor_flag: true\n"
    text += "    model_info:\n      version: 2\n      supports_vision: true\n      team: research\n"
    loaded = load(tmp_path, text)
    assert loaded.ignored == ()
    extra = loaded.file.model_list[0].litellm_params.model_extra or {}
    assert extra["my_vendor_flag"] is True


def test_ignored_keys_are_one_warning_listing_each_path(tmp_path: Path) -> None:
    text = MODEL + "      rpm: 10\n      organization: org-1\n"
    text += "litellm_settings:\n  cache: true\n  success_callback: [langfuse]\n  callbacks: []\n"
    text += "router_settings:\n  routing_strategy: least-busy\n"
    text += "general_settings:\n  disable_spend_updates: true\n  alerting: [slack]\n"
    loaded = load(tmp_path, text)
    paths = [item.path for item in loaded.ignored]
    assert paths == [
        "litellm_settings.success_callback",
        "general_settings.disable_spend_updates",
        "general_settings.alerting",
        "model_list[0].litellm_params.organization",
    ]
    (warning,) = loaded.warnings
    assert warning.startswith(f"{tmp_path / 'config.yaml'}: LiteLLM settings that Seance does not implement")
    assert all(path in warning for path in paths)
    assert "callbacks" not in paths  # off (an empty list) is not worth a warning
    assert "langfuse: not implemented; Seance has otel, prometheus" in warning
    assert "least-busy" not in warning  # a strategy Seance implements


def test_off_values_and_the_default_strategy_are_quiet(tmp_path: Path) -> None:
    text = MODEL + "litellm_settings:\n  cache: false\n  success_callback: []\n  set_verbose: false\n"
    text += "router_settings:\n  routing_strategy: simple-shuffle\n"
    assert load(tmp_path, text).warnings == []


def test_unset_variables_in_ignored_keys_are_no_error(tmp_path: Path) -> None:
    text = MODEL + "router_settings:\n  redis_host: os.environ/REDIS_HOST\n  redis_port: os.environ/REDIS_PORT\n"
    text += "litellm_settings:\n  cache_params:\n    password: os.environ/REDIS_PASSWORD\n"
    loaded = load(tmp_path, text)
    assert loaded.unresolved == {
        "router_settings.redis_host": "REDIS_HOST",
        "router_settings.redis_port": "REDIS_PORT",
        "litellm_settings.cache_params.password": "REDIS_PASSWORD",
    }
    assert loaded.file.router_settings.redis_host is None


def test_unset_variables_in_used_keys_are_an_error(tmp_path: Path) -> None:
    text = MODEL + "litellm_settings:\n  cache: true\n  cache_params:\n    password: os.environ/REDIS_PASSWORD\n"
    assert error(tmp_path, text) == (
        "litellm_settings.cache_params.password: environment variable REDIS_PASSWORD is not set"
    )
    text = MODEL + "general_settings:\n  master_key: os.environ/MASTER\n"
    assert error(tmp_path, text) == "general_settings.master_key: environment variable MASTER is not set"
    text = MODEL + "litellm_settings:\n  request_timeout: os.environ/TIMEOUT\n"
    assert error(tmp_path, text) == "litellm_settings.request_timeout: environment variable TIMEOUT is not set"


def test_litellm_params_references_are_deferred_to_the_gateway(tmp_path: Path) -> None:
    # whether a deployment's unset key is an error depends on whether the gateway serves it
    loaded = load(tmp_path, MODEL + "      api_key: os.environ/OPENAI_KEY_2\n")
    assert loaded.unresolved == {"model_list[0].litellm_params.api_key": "OPENAI_KEY_2"}
    assert loaded.env_refs == {"model_list[0].litellm_params.api_key": "OPENAI_KEY_2"}
    text = "model_list:\n  - model_name: m\n    litellm_params:\n      model: os.environ/MODEL\n"
    assert error(tmp_path, text) == "model_list[0].litellm_params.model: environment variable MODEL is not set"


@pytest.mark.parametrize(
    "text",
    ["", "# nothing\n", "model_list: []\n", "model_list:\ngeneral_settings:\n  master_key: sk-1\n",
     "litellm_settings:\n  drop_params: true\n"],
)  # fmt: skip
def test_a_config_without_models_is_an_error(tmp_path: Path, text: str) -> None:
    message = error(tmp_path, text)
    assert message.startswith('model_list: no models; add entries, or one with model_name "*"')


def test_a_wildcard_alone_is_a_config(tmp_path: Path) -> None:
    loaded = load(tmp_path, "model_list:\n  - model_name: '*'\n    litellm_params:\n      model: '*'\n")
    assert loaded.file.model_list[0].litellm_params.model == "*"


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ("api_base: localhost:11434", "model_list[0].litellm_params.api_base: must be an http:// or https:// URL"),
        ("rpm: lots", "model_list[0].litellm_params.rpm: input should be a valid integer"),
        ("timeout: -1", "model_list[0].litellm_params.timeout: input should be greater than 0"),
    ],
)  # fmt: skip
def test_values_of_the_wrong_type(tmp_path: Path, params: str, expected: str) -> None:
    assert error(tmp_path, MODEL + f"      {params}\n").startswith(expected)


def test_litellm_spellings(tmp_path: Path) -> None:
    text = (
        "model_list:\n  - model_name: m\n    litellm_params:\n      model: llama-3.3-70b\n"
        "      custom_llm_provider: groq\n"
        "litellm_settings:\n  fallbacks: [{m: other}]\n  default_fallbacks: backup\n  drop_params:\n"
    )
    loaded = load(tmp_path, text)
    assert loaded.file.model_list[0].litellm_params.model == "groq/llama-3.3-70b"
    assert loaded.file.litellm_settings.fallbacks == [{"m": ["other"]}]
    assert loaded.file.litellm_settings.default_fallbacks == ["backup"]
    assert loaded.file.litellm_settings.drop_params is False  # `key:` with no value is unset
