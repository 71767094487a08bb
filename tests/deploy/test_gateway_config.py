"""The config.yaml that synth puts in the ConfigMap must be one the gateway accepts.

(Only this test imports the gateway; `seance.deploy` itself never does.)"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import yaml
from tests.deploy.helpers import SECRETS, find, synth_documents

from seance.deploy.settings import load_settings
from seance.deploy.synth import render_config


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


def test_the_pod_command_starts_the_gateway(tmp_path: Path) -> None:
    """Run the Deployment's own command and args, with the ConfigMap's file and the Secret's values as
    the pod would get them (only the listen address moved to loopback), and probe it like the kubelet."""
    documents = synth_documents("dev", valkey={"mode": "none"}, gateway={"cache": True})
    config = tmp_path / "config.yaml"
    config.write_text(find(documents, "ConfigMap")["data"]["config.yaml"])
    (container,) = find(documents, "Deployment", "litellm")["spec"]["template"]["spec"]["containers"]
    argv = container["command"] + container["args"]
    argv[0] = str(Path(sys.executable).parent / argv[0])
    argv[argv.index("--config") + 1] = str(config)
    argv[argv.index("--host") + 1] = "127.0.0.1"
    port = 18211
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
