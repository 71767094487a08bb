"""The config.yaml that synth puts in the ConfigMap must be one the gateway accepts.

(Only this test imports the gateway; `seance.deploy` itself never does.)"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner
from tests.deploy.helpers import SECRETS, find, synth_documents
from tests.deploy.test_cli import fake_secrets

from seance.cli import main
from seance.deploy.errors import DeployError
from seance.deploy.gateway_config import load_config_file
from seance.deploy.settings import load_settings
from seance.deploy.synth import dump_yaml, render_config, synthesize


@pytest.mark.parametrize("env", ["dev", "prod"])
def test_config_map_config_is_accepted_by_the_gateway(env: str, tmp_path: Path) -> None:
    from seance.gateway.config import load_settings as load_gateway_settings

    text = find(synth_documents(env), "ConfigMap", "litellm-config")["data"]["config.yaml"]
    path = tmp_path / "config.yaml"
    path.write_text(text)
    gateway = load_gateway_settings(path, SECRETS)
    assert gateway.master_key == SECRETS["LITELLM_MASTER_KEY"]
    assert [entry.model_name for entry in gateway.file.model_list] == ["*"]


def test_models_cache_and_router_come_from_the_typed_settings() -> None:
    settings = load_settings(
        "prod",
        {
            "gateway": {
                "models": [
                    {"model_name": "gpt-4o", "model": "openai/gpt-4o", "rpm": 600},
                    {"model_name": "gpt-4o", "model": "azure/gpt-4o-eu", "api_base": "https://eu.example", "weight": 2},
                ],
                "routing_strategy": "least-busy",
            }
        },
    )
    config = yaml.safe_load(render_config(settings))
    assert config["model_list"] == [
        {"model_name": "gpt-4o", "litellm_params": {"model": "openai/gpt-4o", "rpm": 600}},
        {
            "model_name": "gpt-4o",
            "litellm_params": {"model": "azure/gpt-4o-eu", "api_base": "https://eu.example", "weight": 2},
        },
    ]
    assert config["router_settings"] == {"routing_strategy": "least-busy", "redis_host": "valkey", "redis_port": 6379}
    assert config["litellm_settings"]["cache"] is True
    assert config["litellm_settings"]["cache_params"] == {"type": "redis"}
    assert config["general_settings"] == {"master_key": "os.environ/LITELLM_MASTER_KEY"}
    no_valkey = load_settings("dev", {"valkey": {"mode": "none"}, "gateway": {"cache": True}})
    local = yaml.safe_load(render_config(no_valkey))
    assert local["litellm_settings"]["cache_params"] == {"type": "local"}
    assert "redis_host" not in local["router_settings"]
    assert SECRETS["LITELLM_MASTER_KEY"] not in render_config(settings)


LITELLM_CONFIG = Path(__file__).resolve().parents[1] / "fixtures" / "litellm" / "config.yaml"
LITELLM_SECRETS = {
    **SECRETS,
    "AZURE_API_KEY": "az-test",
    "AZURE_API_BASE": "https://example-eu.openai.azure.com",
    "ANTHROPIC_API_KEY": "sk-ant-test",
}


def synth_with_config(config: Path, secrets: dict[str, str], env: str = "dev", **overrides: Any) -> list[Any]:
    settings = load_settings(env, {"gateway": {"config_file": str(config)}, **overrides})
    config_file = load_config_file(settings, secrets, "secrets/secrets.yaml")
    return [doc for doc in yaml.safe_load_all(dump_yaml(synthesize(settings, secrets, config_file))) if doc]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.mark.parametrize("config", ["generated", "litellm"])
def test_the_pod_command_starts_the_gateway(tmp_path: Path, config: str) -> None:
    """Run the Deployment's own command and args, with the ConfigMap's file and the Secret's values as
    the pod would get them (only the listen address moved to loopback), and probe it like the kubelet."""
    if config == "generated":
        documents = synth_documents("dev", valkey={"mode": "none"}, gateway={"cache": True})
    else:  # an existing LiteLLM config, deployed as it is
        documents = synth_with_config(LITELLM_CONFIG, LITELLM_SECRETS, valkey={"mode": "none"})
        assert find(documents, "ConfigMap")["data"]["config.yaml"] == LITELLM_CONFIG.read_text()
    config_path = tmp_path / "config.yaml"
    config_path.write_text(find(documents, "ConfigMap")["data"]["config.yaml"])
    (container,) = find(documents, "Deployment", "litellm")["spec"]["template"]["spec"]["containers"]
    argv = container["command"] + container["args"]
    argv[0] = str(Path(sys.executable).parent / argv[0])
    argv[argv.index("--config") + 1] = str(config_path)
    argv[argv.index("--host") + 1] = "127.0.0.1"
    port = free_port()
    argv[argv.index("--port") + 1] = str(port)
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "TMPDIR": str(tmp_path)}
    env |= find(documents, "Secret")["stringData"]
    env |= {item["name"]: item["value"] for item in container["env"]}
    server = subprocess.Popen(argv, env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
            url = f"http://127.0.0.1:{port}{container[probe]['httpGet']['path']}"
            deadline = time.monotonic() + 30
            while True:
                try:
                    with urllib.request.urlopen(url, timeout=2) as response:
                        assert response.status == 200
                        break
                except (urllib.error.URLError, ConnectionError):
                    assert server.poll() is None, server.communicate()[0].decode(errors="replace")[-2000:]
                    assert time.monotonic() < deadline, f"{url} never answered"
                    time.sleep(0.1)
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_synth_deploys_an_existing_litellm_config_as_it_is(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "secrets.yaml"
    fake_secrets(monkeypatch, path, LITELLM_SECRETS)
    out = tmp_path / "out.yaml"
    args = ["synth", "--secrets", str(path), "--gateway-config", str(LITELLM_CONFIG), "--out", str(out)]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    documents = list(yaml.safe_load_all(out.read_text()))
    assert find(documents, "ConfigMap")["data"]["config.yaml"] == LITELLM_CONFIG.read_text()
    assert find(documents, "Secret")["stringData"] == LITELLM_SECRETS
    assert "does not implement" not in result.output  # every setting of this config is implemented


def test_synth_warns_as_the_start_would(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "litellm.yaml"
    text = LITELLM_CONFIG.read_text()
    assert "  cooldown_time: 30\n" in text
    config.write_text(text.replace("  cooldown_time: 30\n", "  cooldown_time: 30\n  disable_cooldowns: true\n", 1))
    secrets = tmp_path / "secrets.yaml"
    fake_secrets(monkeypatch, secrets, LITELLM_SECRETS)
    args = ["synth", "--secrets", str(secrets), "--gateway-config", str(config), "--out", str(tmp_path / "out.yaml")]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    # what the gateway's start would warn about, synth says too
    assert f"warning: {config}: LiteLLM settings that Seance does not implement (yet)" in result.output
    assert "router_settings.disable_cooldowns" in result.output


@pytest.mark.parametrize(
    ("change", "message"),
    [
        # a typo in a key
        (("  num_retries: 2", "  num_retires: 2"), "litellm_settings.num_retires: unknown key; did you mean"),
        # a typo in a value: 6O (letter O) for 60
        (("timeout: 60", "timeout: 6O"), "model_list[1].litellm_params.timeout: input should be a valid number"),
        # a typo in a reference: no such secret, so the pod could never start
        (
            ("api_key: os.environ/ANTHROPIC_API_KEY", "api_key: os.environ/ANTHROPIC_KEY"),
            "model_list[2].litellm_params.api_key: environment variable ANTHROPIC_KEY is not set in the pod,"
            " whose environment is the keys of SECRETS",
        ),
    ],
)
def test_a_typo_in_the_config_fails_synth_not_the_pod(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, change: tuple[str, str], message: str
) -> None:
    config = tmp_path / "litellm.yaml"
    text = LITELLM_CONFIG.read_text()
    assert change[0] in text
    config.write_text(text.replace(change[0], change[1], 1))
    secrets = tmp_path / "secrets.yaml"
    fake_secrets(monkeypatch, secrets, LITELLM_SECRETS)
    out = tmp_path / "out.yaml"
    args = ["synth", "--secrets", str(secrets), "--gateway-config", str(config), "--out", str(out)]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 1 and not out.exists()
    (line,) = result.output.strip().splitlines()
    assert line.startswith(f"Error: {config}: ")
    assert message.replace("SECRETS", str(secrets)) in line


def test_the_config_sees_the_pod_environment_not_the_operator_s(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # set on the operator's machine, but not in the secrets file: the pod will not have it
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-on-my-laptop")
    secrets = {name: value for name, value in LITELLM_SECRETS.items() if name != "ANTHROPIC_API_KEY"}
    with pytest.raises(DeployError, match="environment variable ANTHROPIC_API_KEY is not set in the pod"):
        synth_with_config(LITELLM_CONFIG, secrets)
    # what the Deployment sets itself is there: REDIS_URL with the in-cluster Valkey
    path = tmp_path / "litellm.yaml"
    path.write_text(LITELLM_CONFIG.read_text() + "  CACHE_URL: os.environ/REDIS_URL\n")
    assert synth_with_config(path, LITELLM_SECRETS)
    with pytest.raises(DeployError, match="REDIS_URL is not set"):
        synth_with_config(path, LITELLM_SECRETS, valkey={"mode": "none"})


def test_an_inline_master_key_makes_the_secret_optional(tmp_path: Path) -> None:
    config = tmp_path / "litellm.yaml"
    models = 'model_list:\n  - model_name: "*"\n    litellm_params: {model: "*"}\n'
    config.write_text(models + "general_settings:\n  master_key: sk-inline-key\n")
    documents = synth_with_config(config, {"OPENAI_API_KEY": "sk-o"})
    assert "LITELLM_MASTER_KEY" not in find(documents, "Secret")["stringData"]
    with pytest.raises(DeployError, match=r"missing required secret.*LITELLM_MASTER_KEY"):
        synth_documents("dev", {"OPENAI_API_KEY": "sk-o"})  # the generated config needs it


def test_config_file_and_generated_settings_do_not_mix() -> None:
    with pytest.raises(DeployError, match=r"gateway\.models would be ignored: put that in the config file"):
        load_settings("prod", {"gateway": {"config_file": "c.yaml", "models": [{"model_name": "*", "model": "*"}]}})
    assert load_settings("prod", {"gateway": {"config_file": "c.yaml"}}).gateway.config_file == "c.yaml"


def test_deploy_never_imports_the_gateway() -> None:
    code = (
        "import sys, seance.deploy.cli, seance.deploy.synth, seance.deploy.gateway_config, seance.deploy.kubectl;"
        " sys.exit(any(name.startswith('seance.gateway') for name in sys.modules))"
    )
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0
