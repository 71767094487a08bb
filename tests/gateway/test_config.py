"""config.yaml → settings → deployment table, with the errors an operator sees at start."""

from __future__ import annotations

from pathlib import Path

import anthropic
import openai
import orjson
import pytest
from tests.gateway.conftest import GatewayFactory

from seance.gateway.config import ConfigError, load_settings
from seance.gateway.errors import GatewayError, ModelNotFound
from seance.gateway.routing.deployments import Deployments

ONE = "model_list:\n  - model_name: a\n    litellm_params: {model: openai/m}\n"
WILDCARD = "model_list:\n  - model_name: '*'\n    litellm_params: {model: '*'}\n"


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
    settings = load_settings(write(tmp_path, WILDCARD), {"LITELLM_MASTER_KEY": "sk-env"})
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
         "model_list[0].litellm_params.model: unknown provider 'nosuch'; write it as <provider>/<model> with one of: "),
        ("model_list:\n  - model_name: x\n    litellm_params:\n      model: opnai/gpt-4o\n",
         "model_list[0].litellm_params.model: unknown provider 'opnai'; did you mean 'openai'?"),
        ("model_list:\n  - model_name: x\n    litellm_params:\n      model: bedrock/m\n      api_key: os.environ/NOPE\n"
         "  - model_name: y\n    litellm_params:\n      model: openai/m\n      api_base: os.environ/NOPE\n",
         "model_list[1].litellm_params.api_base: environment variable NOPE is not set"),
        ("model_list:\n  - model_name: x\n    litellm_params:\n      model: openai/m\n      api_key: os.environ/NOPE\n",
         "model_list[0].litellm_params.api_key: environment variable NOPE is not set"),
        ("model_list:\n  - model_name: x\n    litellm_params:\n      model: openai/m\n      rpm: lots\n",
         "model_list[0].litellm_params.rpm: input should be a valid integer"),
        ("model_list:\n  - model_name: x\n", "model_list[0].litellm_params: field required"),
        ("model_list:\n  - model_name: x\n    litellm_params:\n      model: hosted_vllm/m\n",
         "hosted_vllm needs an api_base"),
        (ONE + "litellm_settings:\n  fallbacks: [{a: [b]}]\n",
         "litellm_settings.fallbacks[0]: model 'b' is not in model_list"),
        (ONE + "router_settings:\n  context_window_fallbacks: [{c: [a]}]\n",
         "router_settings.context_window_fallbacks[0]: model 'c' is not in model_list"),
        (ONE + "litellm_settings:\n  default_fallbacks: [z]\n",
         "litellm_settings.default_fallbacks: model 'z' is not in model_list"),
        (ONE + "general_settings:\n  proxy_batch_write_at: 0\n",
         "general_settings.proxy_batch_write_at: input should be greater than 0"),
        (ONE + "general_settings:\n  disable_spend_logs: sometimes\n",
         "general_settings.disable_spend_logs: input should be a valid boolean"),
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
    assert caught.value.message.endswith(
        "(configured providers: openai, text-completion-openai, ollama, anthropic, ollama_chat)"
    )
    with pytest.raises(ModelNotFound):
        deployments.lookup("some-unknown-model")
    assert "openai/*" in deployments.model_names()


def test_layered_values_reach_the_deployment_table(tmp_path: Path) -> None:
    deployments = table(
        tmp_path,
        """
model_list:
  - model_name: a
    litellm_params: {model: openai/gpt-4o, api_key: k, stream_timeout: 90, drop_params: false, top_k: 3}
  - model_name: b
    litellm_params: {model: openai/gpt-4o-mini, api_key: k}
litellm_settings:
  num_retries: 5
  request_timeout: 10
  drop_params: true
  fallbacks: [{a: [b]}]
router_settings:
  num_retries: 1
  timeout: 30
""",
    )
    (a,) = deployments.lookup("a")
    assert (a.timeout, a.stream_timeout) == (30, 90)
    assert a.target.extra["drop_params"] is True  # LiteLLM drops when either the global or the entry says so
    assert a.params == {"top_k": 3}
    assert deployments.settings.resolved.num_retries == 1
    assert deployments.fallbacks_for("a") == ("b",)


UNSUPPORTED = """
model_list:
  - model_name: claude
    litellm_params: {model: bedrock/anthropic.claude-3-5-sonnet, aws_region_name: os.environ/AWS_REGION}
  - model_name: claude
    litellm_params: {model: anthropic/claude-sonnet-4-5, api_key: k}
  - model_name: vertex
    litellm_params: {model: vertex_ai/gemini-2.0-flash, vertex_project: p}
  - model_name: titan
    litellm_params: {model: amazon.titan-text-express-v1}
  - model_name: gpt
    litellm_params: {model: gpt-4o, api_key: k}
  - model_name: "bedrock/*"
    litellm_params: {model: "bedrock/*"}
litellm_settings:
  fallbacks: [{gpt: [vertex, claude]}]
"""


def test_a_provider_seance_does_not_serve_starts_and_answers_501(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path, UNSUPPORTED), {}, announce=False)
    deployments = Deployments(settings)
    assert [d.target.provider for d in deployments.lookup("claude")] == ["anthropic"]
    assert deployments.lookup("gpt")[0].target.provider == "openai"  # a bare name resolves as in no-config mode
    for name, needle in (
        ("vertex", "vertex_ai is a LiteLLM provider that Seance does not serve yet"),
        ("titan", "cannot tell the provider of 'amazon.titan-text-express-v1'"),
        ("bedrock/anthropic.claude-v2", "bedrock is a LiteLLM provider that Seance does not serve yet"),
    ):
        with pytest.raises(GatewayError) as caught:
            deployments.lookup(name)
        assert caught.value.status == 501
        assert caught.value.message.startswith(f"model '{name}' is not served by this gateway: ")
        assert needle in caught.value.message
    assert deployments.model_names() == ["claude", "gpt"]
    unhealthy = {d.where: d.missing_key for d in deployments.all() if d.missing_key}
    assert set(unhealthy) == {"model_list[0]", "model_list[2]", "model_list[3]", "model_list[5]"}
    assert deployments.fallbacks_for("gpt") == ("claude",)  # a group that is not served is skipped
    warnings = deployments.warnings
    assert len(warnings) == 5
    assert warnings[0].endswith(
        "model_list[0] (claude): not served, requests answer 501: "
        "bedrock is a LiteLLM provider that Seance does not serve yet"
    )
    assert warnings[-1].endswith("litellm_settings.fallbacks[0]: 'vertex' is not served; skipped")


def test_warnings_are_logged_once_at_start(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    text = UNSUPPORTED + "  success_callback: [langfuse]\n"
    with caplog.at_level("WARNING", logger="seance.gateway"):
        Deployments(load_settings(write(tmp_path, text), {}))
    messages = [r.getMessage() for r in caplog.records if r.name == "seance.gateway"]
    assert len(messages) == 6
    assert "are ignored: litellm_settings.success_callback" in messages[0]
    assert "model_list[0].litellm_params.aws_region_name" in messages[0]
    with caplog.at_level("WARNING", logger="seance.gateway"):
        caplog.clear()
        Deployments(load_settings(write(tmp_path, text), {}, announce=False))
    assert caplog.records == []


def test_an_unset_variable_only_matters_for_what_is_served(tmp_path: Path) -> None:
    text = "model_list:\n  - model_name: s\n    litellm_params: {model: sagemaker/m, aws_access_key_id: os.environ/AK}"
    text += "\n  - model_name: o\n    litellm_params: {model: openai/m, api_key: os.environ/OPENAI_KEY_2}\n"
    with pytest.raises(ConfigError, match=r"\[1\]\.litellm_params\.api_key: environment variable OPENAI_KEY_2 is not"):
        table(tmp_path, text)
    assert table(tmp_path, text, {"OPENAI_KEY_2": "k"}).lookup("o")[0].target.api_key == "k"


def test_litellm_proxy_server_config_serves_what_it_can(tmp_path: Path) -> None:
    fixture = Path(__file__).parent.parent / "fixtures" / "litellm_configs" / "proxy_server_config.yaml"
    env = {"AZURE_API_KEY": "a", "OPENAI_API_KEY": "o", "ANTHROPIC_API_KEY": "x", "GROQ_API_KEY": "g"}
    deployments = Deployments(load_settings(fixture, env, announce=False))
    assert set(deployments.unsupported) == {"sagemaker-completion-model", "openai-dall-e-3"}
    assert deployments.lookup("gpt-instruct")[0].target.provider == "text-completion-openai"
    assert deployments.lookup("gpt-3.5-turbo-large")[0].timeout == 300
    assert deployments.lookup("gpt-3.5-turbo-large")[0].stream_timeout == 60
    assert len(deployments.lookup("fake-openai-endpoint-3")) == 2


def test_the_real_gateway_answers_501_for_a_provider_it_does_not_serve(gateway: GatewayFactory) -> None:
    served = gateway(
        {
            "model_list": [
                {"model_name": "claude-bedrock", "litellm_params": {"model": "bedrock/anthropic.claude-3-haiku"}},
                {"model_name": "gpt", "litellm_params": {"model": "openai/gpt-4o", "api_key": "sk-never-used"}},
            ]
        },
        args=("--log-format", "json"),
    )
    with pytest.raises(openai.APIStatusError) as caught:
        served.openai().chat.completions.create(model="claude-bedrock", messages=[{"role": "user", "content": "hi"}])
    assert caught.value.status_code == 501
    message = caught.value.body["message"]  # type: ignore[index]
    assert message == (
        "model 'claude-bedrock' is not served by this gateway: "
        "bedrock is a LiteLLM provider that Seance does not serve yet"
    )
    with pytest.raises(anthropic.APIStatusError) as anthropic_caught:
        served.anthropic().messages.create(
            model="claude-bedrock", max_tokens=10, messages=[{"role": "user", "content": "hi"}]
        )
    assert anthropic_caught.value.status_code == 501
    assert "bedrock is a LiteLLM provider" in str(anthropic_caught.value)
    assert [m.id for m in served.openai().models.list()] == ["gpt"]
    with served.http() as http:
        health = http.get("/health").json()
    (unhealthy,) = health["unhealthy_endpoints"]
    assert unhealthy["model_name"] == "claude-bedrock"
    assert unhealthy["model"] == "bedrock/anthropic.claude-3-haiku"
    assert unhealthy["error"] == "bedrock is a LiteLLM provider that Seance does not serve yet"
    (warning,) = [orjson.loads(line) for line in served.output().splitlines() if "not served" in line]
    assert warning["level"] == "WARNING"
    assert warning["message"].endswith("model_list[0] (claude-bedrock): not served, requests answer 501: "
                                       "bedrock is a LiteLLM provider that Seance does not serve yet")  # fmt: skip
