"""config.yaml → settings → deployment table, with the errors an operator sees at start."""

from __future__ import annotations

from pathlib import Path

import pytest

from seance.gateway.config import ConfigError, load_settings
from seance.gateway.errors import ModelNotFound
from seance.gateway.routing.deployments import Deployments


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    return path


def table(tmp_path: Path, text: str, env: dict[str, str] | None = None) -> Deployments:
    return Deployments(load_settings(write(tmp_path, text), env or {}))


def test_litellm_config_is_read(tmp_path: Path) -> None:
    deployments = table(
        tmp_path,
        """
model_list:
  - model_name: gpt-4o
    litellm_params:
      model: openai/gpt-4o
      api_key: os.environ/MY_OPENAI_KEY
      temperature: 0.2
      rpm: 60
      weight: 2
    model_info:
      id: primary
  - model_name: gpt-4o
    litellm_params:
      model: azure/gpt4o-eu
      api_base: https://eu.example.com/
      api_key: az
litellm_settings:
  drop_params: true
  request_timeout: 30
general_settings:
  master_key: sk-1234
environment_variables:
  MY_OPENAI_KEY: sk-from-config
""",
    )
    first, second = deployments.lookup("gpt-4o")
    assert first.id == "primary"
    assert first.target.api_key == "sk-from-config"
    assert first.target.api_base == "https://api.openai.com/v1"
    assert first.params == {"temperature": 0.2}
    assert first.weight == 2 and first.rpm == 60 and first.timeout == 30
    assert first.target.extra["drop_params"] is True
    assert second.target.provider == "azure"
    assert second.target.api_base == "https://eu.example.com"
    assert deployments.settings.master_key == "sk-1234"


def test_master_key_from_environment(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path, "model_list: []\n"), {"LITELLM_MASTER_KEY": "sk-env"})
    assert settings.master_key == "sk-env"


def test_provider_key_from_its_usual_variable(tmp_path: Path) -> None:
    text = "model_list:\n  - model_name: t\n    litellm_params:\n      model: together_ai/meta-llama/Llama-3\n"
    (deployment,) = table(tmp_path, text, {"TOGETHER_API_KEY": "tg"}).lookup("t")
    assert deployment.target.model == "meta-llama/Llama-3"
    assert deployment.target.api_key == "tg"
    assert deployment.missing_key is None
    (keyless,) = table(tmp_path, text).lookup("t")
    assert keyless.missing_key is not None and "TOGETHER_API_KEY" in keyless.missing_key


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("model_list: [", "not valid YAML (line 1"),
        ("- a\n- b\n", "top level must be a mapping"),
        ("model_list:\n  - model_name: x\n    litellm_params:\n      model: nosuch/m\n",
         "model_list[0].litellm_params.model: unknown provider 'nosuch'"),
        ("model_list:\n  - model_name: x\n    litellm_params:\n      model: openai/m\n      api_key: os.environ/NOPE\n",
         "model_list[0].litellm_params.api_key: environment variable NOPE is not set"),
        ("model_list:\n  - model_name: x\n    litellm_params:\n      model: openai/m\n      rpm: lots\n",
         "model_list[0].litellm_params.rpm: input should be a valid integer"),
        ("model_list:\n  - model_name: x\n", "model_list[0].litellm_params: field required"),
        ("model_list:\n  - model_name: x\n    litellm_params:\n      model: hosted_vllm/m\n",
         "hosted_vllm needs an api_base"),
        ("model_list:\n  - model_name: x\n    litellm_params:\n      model: mystery-model\n",
         "cannot tell the provider of 'mystery-model'"),
        ("litellm_settings:\n  fallbacks: [{a: [b]}]\n",
         "litellm_settings.fallbacks[0]: model 'a' is not in model_list"),
    ],
)  # fmt: skip
def test_bad_config_names_file_path_and_reason(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        table(tmp_path, text)
    assert str(caught.value).startswith(str(tmp_path / "config.yaml") + ": ")
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="config file not found"):
        load_settings(tmp_path / "absent.yaml", {})


def test_wildcards(tmp_path: Path) -> None:
    deployments = table(
        tmp_path,
        """
model_list:
  - model_name: "openai/*"
    litellm_params: {model: "openai/*", api_key: k}
  - model_name: "team-*"
    litellm_params: {model: "groq/*", api_key: g}
""",
    )
    (openai,) = deployments.lookup("openai/gpt-4.1")
    assert (openai.target.provider, openai.target.model) == ("openai", "gpt-4.1")
    (groq,) = deployments.lookup("team-llama-3.3-70b")
    assert (groq.target.provider, groq.target.model, groq.model_name) == ("groq", "llama-3.3-70b", "team-llama-3.3-70b")
    assert deployments.lookup("openai/gpt-4.1")[0] is openai  # remembered, not rebuilt
    with pytest.raises(ModelNotFound):
        deployments.lookup("anthropic/claude")


def test_no_config_mode_routes_by_name_to_providers_with_keys() -> None:
    env = {"OPENAI_API_KEY": "sk-o", "ANTHROPIC_API_KEY": "sk-a", "OLLAMA_API_BASE": "http://127.0.0.1:11434"}
    deployments = Deployments(load_settings(None, env))
    assert deployments.lookup("gpt-4o-mini")[0].target.provider == "openai"
    assert deployments.lookup("o3-mini")[0].target.provider == "openai"
    assert deployments.lookup("openai/gpt-4o")[0].target.model == "gpt-4o"
    assert deployments.lookup("ollama/llama3")[0].target.api_base == "http://127.0.0.1:11434/v1"
    with pytest.raises(ModelNotFound) as caught:
        deployments.lookup("groq/llama-3.1-8b")
    assert "configured providers: " in caught.value.message
    assert caught.value.message.endswith("(configured providers: openai, ollama, anthropic, ollama_chat)")
    with pytest.raises(ModelNotFound):
        deployments.lookup("some-unknown-model")
    assert "openai/*" in deployments.model_names()
