"""`seance check`: the start's validation, offline, and what would be served."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from tests.gateway.conftest import BASE_ENV

from seance.gateway.check import report
from seance.gateway.config import load_settings
from seance.gateway.routing.deployments import Deployments

ROOT = Path(__file__).parent.parent.parent
EXAMPLE = ROOT / "examples" / "config.yaml"
FIXTURES = ROOT / "tests" / "fixtures" / "litellm_configs"


def check(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "seance", "check", *args],
        env={**BASE_ENV, **env}, capture_output=True, text=True, timeout=60, cwd=ROOT,
    )  # fmt: skip


def test_the_example_config() -> None:
    env = {"LITELLM_MASTER_KEY": "sk-master-secret", "OPENAI_API_KEY": "sk-openai-secret"}
    result = check(["--config", "examples/config.yaml"], env)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert result.stdout == (
        "config: examples/config.yaml\n"
        "master key: LITELLM_MASTER_KEY (config: os.environ/LITELLM_MASTER_KEY)\n"
        "\n"
        "models:\n"
        "  gpt-4o-mini\n"
        "    openai/gpt-4o-mini  https://api.openai.com/v1  key: OPENAI_API_KEY (environment)\n"
        "  claude-haiku\n"
        "    anthropic/claude-haiku-4-5  https://api.anthropic.com  key: MISSING (set ANTHROPIC_API_KEY)\n"
        "  *  (wildcard)\n"
        "    any <provider>/<model> (or gpt-…, claude-…) of a provider with a key: openai (OPENAI_API_KEY), "
        "text-completion-openai (OPENAI_API_KEY)\n"
        "\n"
        "routing:\n"
        "  num_retries 2, timeout 600 s, stream timeout 600 s, drop_params false, strategy simple-shuffle\n"
        "\n"
        "warnings:\n"
        "  model_list[1] (claude-haiku): anthropic has no API key: set ANTHROPIC_API_KEY, or litellm_params.api_key\n"
    )
    assert "secret" not in result.stdout  # names of variables, never their values


def test_with_the_secrets_file_as_the_gateway_reads_it() -> None:
    env = {"SOPS_AGE_KEY_FILE": str(ROOT / "secrets" / "dev-age-key.txt")}
    result = check(["--config", "examples/config.yaml", "--secrets", "secrets/secrets.yaml"], env)
    assert result.returncode == 0, result.stderr
    assert "environment: the process's, and the secrets file secrets/secrets.yaml\n" in result.stdout
    assert "anthropic/claude-haiku-4-5  https://api.anthropic.com  key: ANTHROPIC_API_KEY (environment)\n" in (
        result.stdout
    )


@pytest.mark.parametrize(
    ("config", "env", "error"),
    [
        ("model_lst: []\n", {"LITELLM_MASTER_KEY": "k"}, "model_lst: unknown key; did you mean 'model_list'?"),
        ("model_list: []\n", {"LITELLM_MASTER_KEY": "k"}, "model_list: no models; "),
        ("model_list: [{model_name: a, litellm_params: {model: openai/x}}]\n", {},
         "no master key: set LITELLM_MASTER_KEY"),
        ("model_list: [{model_name: a, litellm_params: {model: openai/x}}]\n"
         "litellm_settings: {cache: true, cache_params: {type: redis}}\n", {"LITELLM_MASTER_KEY": "k"},
         "litellm_settings.cache_params.type is redis, but no Redis is configured"),
    ],
)  # fmt: skip
def test_a_bad_setup_is_one_line_and_a_failure(tmp_path: Path, config: str, env: dict[str, str], error: str) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(config)
    result = check(["--config", str(path)], env)
    assert result.returncode == 1
    assert result.stdout == ""
    (line,) = result.stderr.splitlines()
    assert line.startswith("Error: ") and error in line


def test_litellm_proxy_server_config_report() -> None:
    env = {"AZURE_API_KEY": "a", "OPENAI_API_KEY": "o", "ANTHROPIC_API_KEY": "x", "GROQ_API_KEY": "g"}
    settings = load_settings(FIXTURES / "proxy_server_config.yaml", env, announce=False)
    text = report(settings, Deployments(settings))
    assert "master key: config (general_settings.master_key)\n" in text
    line = "openai/gpt-3.5-turbo-1106  https://api.openai.com/v1  key: OPENAI_API_KEY (config: os.environ/"
    assert f"  gpt-3.5-turbo-large\n    {line}OPENAI_API_KEY)\n" in text
    assert "  groq/*  (wildcard)\n    groq/*  key: GROQ_API_KEY (config: os.environ/GROQ_API_KEY)\n" in text
    assert "strategy usage-based-routing-v2\n" in text
    assert "model_list[5] (sagemaker-completion-model): not served, requests answer 501: sagemaker is a LiteLLM" in text
    assert "router_settings.routing_strategy" not in text  # a strategy Seance implements
    assert "fake-key" not in text and "my-fake-key" not in text


def test_a_caching_group_of_a_name_that_is_not_served_is_warned_of(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(
        "model_list:\n"
        "  - {model_name: gpt-4o, litellm_params: {model: openai/gpt-4o, api_key: k}}\n"
        "  - {model_name: azure-gpt-4o, litellm_params: {model: openai/gpt-4o, api_key: k}}\n"
        "router_settings: {caching_groups: [[gpt-4o, azure-gpt4o]]}\n"
        "litellm_settings: {cache: true}\n"
    )
    done = check(["--config", str(config)], {"LITELLM_MASTER_KEY": "sk-1"})
    assert done.returncode == 0, done.stderr
    assert "caching_groups[0]: 'azure-gpt4o' is not a model group; did you mean 'azure-gpt-4o'?" in done.stdout
