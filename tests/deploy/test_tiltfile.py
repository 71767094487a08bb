"""The Tiltfile, run by a Starlark interpreter against stubs with Tilt's real signatures."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from starlark_go import Starlark, configure_starlark
from tests.deploy.helpers import FLAT, find
from tests.deploy.tilt_stubs import TRIGGER_MODE_MANUAL, TiltStubs

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def tilt(age_files: dict[str, Path], age_key: None) -> TiltStubs:
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    env["SEANCE_SECRETS"] = str(age_files["secrets"])
    stubs = TiltStubs(ROOT, env)
    # Tilt's dialect allows top-level for/if and global reassignment.
    configure_starlark(allow_set=True, allow_global_reassign=True, allow_recursion=True)
    Starlark(globals=stubs.builtins()).exec((ROOT / "Tiltfile").read_text(), filename="Tiltfile")
    return stubs


def test_synthesizes_the_dev_manifest_quietly(tilt: TiltStubs) -> None:
    (local,) = tilt.named("local")
    assert local["quiet"] is True and local["echo_off"] is True  # the output holds the Secret
    (k8s_yaml,) = tilt.named("k8s_yaml")
    documents = list(yaml.safe_load_all(k8s_yaml["yaml"]))
    assert find(documents, "Secret", "seance-secrets")["stringData"] == FLAT
    assert find(documents, "Ingress")["spec"]["rules"][0]["host"] == "backend.dev.localhost"
    watched = {call["file_path"] for call in tilt.named("watch_file")}
    assert {"src/seance/deploy", "secrets"} <= watched


def test_builds_the_image_the_deployment_uses(tilt: TiltStubs) -> None:
    (build,) = tilt.named("custom_build")
    documents = list(yaml.safe_load_all(tilt.named("k8s_yaml")[0]["yaml"]))
    image = find(documents, "Deployment", "litellm")["spec"]["template"]["spec"]["containers"][0]["image"]
    assert image.rsplit(":", 1)[0] == build["ref"]  # Tilt swaps in its build by matching this name
    assert build["command"].startswith("scripts/build-image.sh --tag $EXPECTED_REF")
    assert build["skips_local_docker"] is True
    for dep in build["deps"]:
        assert (ROOT / dep).exists(), dep


def test_forwards_port_4000_and_groups_config_objects(tilt: TiltStubs) -> None:
    resources: dict[str, dict[str, Any]] = {call["workload"]: call for call in tilt.named("k8s_resource")}
    assert set(resources) == {"litellm", "valkey"}
    litellm = resources["litellm"]
    assert litellm["port_forwards"] == ["4000:4000"]
    assert litellm["resource_deps"] == ["valkey"]
    documents = list(yaml.safe_load_all(tilt.named("k8s_yaml")[0]["yaml"]))
    present = {f"{doc['metadata']['name']}:{doc['kind'].lower()}" for doc in documents}
    assert set(litellm["objects"]) <= present
    assert {"seance-secrets:secret", "litellm-config:configmap", "litellm-ingress:ingress"} <= set(
        litellm["objects"]
    )
    assert resources["valkey"]["objects"] == ["valkey:networkpolicy"]
    assert not set(litellm["objects"]) & set(resources["valkey"]["objects"])
    (tests,) = tilt.named("local_resource")
    assert tests["trigger_mode"] == TRIGGER_MODE_MANUAL


def test_a_wrong_keyword_fails_like_tilt(age_files: dict[str, Path], age_key: None) -> None:
    stubs = TiltStubs(ROOT, dict(os.environ))
    with pytest.raises(Exception, match="port_forward"):
        Starlark(globals=stubs.builtins()).exec('k8s_resource("litellm", port_forward = 4000)')


def test_a_litellm_config_through_the_environment(age_files: dict[str, Path], age_key: None, tmp_path: Path) -> None:
    config = tmp_path / "litellm.yaml"
    config.write_text("model_list:\n  - {model_name: gpt-4o, litellm_params: {model: openai/gpt-4o}}\n")
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    env |= {"SEANCE_SECRETS": str(age_files["secrets"]), "SEANCE_GATEWAY_CONFIG": str(config)}
    stubs = TiltStubs(ROOT, env)
    configure_starlark(allow_set=True, allow_global_reassign=True, allow_recursion=True)
    Starlark(globals=stubs.builtins()).exec((ROOT / "Tiltfile").read_text(), filename="Tiltfile")
    documents = list(yaml.safe_load_all(stubs.named("k8s_yaml")[0]["yaml"]))
    assert find(documents, "ConfigMap")["data"]["config.yaml"] == config.read_text()
    assert "deploy" in {call["file_path"] for call in stubs.named("watch_file")}
