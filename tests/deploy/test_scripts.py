"""The shell entry points of the old workflow, run for real against a recording fake kubectl."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from tests.deploy.helpers import FLAT, find, kubectl_calls

ROOT = Path(__file__).resolve().parents[2]
SSA = ["--server-side", "--field-manager=seance", "--force-conflicts"]


def _run(script: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env["PATH"] = f"{env['PATH']}{os.pathsep}{Path(sys.executable).parent}"  # `seance` from this venv
    return subprocess.run(
        [str(ROOT / "scripts" / script), *args], capture_output=True, text=True, env=env, timeout=60, check=False
    )


def test_deploy_production_dry_run(age_files: dict[str, Path], age_key: None, kubectl_log: Path) -> None:
    result = _run("deploy-production.sh", "--dry-run", "--secrets", str(age_files["secrets"]))
    assert result.returncode == 0, result.stderr
    calls = kubectl_calls(kubectl_log)
    assert [call["argv"] for call in calls] == [
        ["config", "current-context"],
        ["version", "--output=json"],
        ["apply", *SSA, "--dry-run=server", "-f", "-"],
        ["delete", "httproutes.gateway.networking.k8s.io/litellm", "-n", "seance", "--ignore-not-found",
         "--dry-run=server"],
    ]  # fmt: skip
    manifest = list(yaml.safe_load_all(str(calls[2]["stdin"])))
    assert find(manifest, "Secret")["stringData"] == FLAT
    assert find(manifest, "Ingress")["spec"]["rules"][0]["host"] == "backend.seance.dev"


def test_apply_secrets(age_files: dict[str, Path], age_key: None, kubectl_log: Path) -> None:
    result = _run("apply-secrets.sh", "dev", "--context", "kind-dev", "--secrets", str(age_files["secrets"]))
    assert result.returncode == 0, result.stderr
    calls = kubectl_calls(kubectl_log)
    context = ["--context", "kind-dev"]
    assert [call["argv"] for call in calls] == [
        [*context, "create", "namespace", "seance", "--dry-run=client", "-o", "yaml"],
        [*context, "apply", "-f", "-"],
        [*context, "apply", *SSA, "-l", "app.kubernetes.io/component=secrets", "-f", "-"],
        [*context, "get", "deployment/litellm", "-n", "seance"],
        [*context, "rollout", "restart", "deployment/litellm", "-n", "seance"],
        [*context, "rollout", "status", "deployment/litellm", "-n", "seance", "--timeout=300s"],
    ]
    # kubectl's -l keeps only the objects labelled as secrets: exactly the one Secret
    documents = list(yaml.safe_load_all(str(calls[2]["stdin"])))
    selected = [d for d in documents if d["metadata"]["labels"].get("app.kubernetes.io/component") == "secrets"]
    assert [(d["kind"], d["metadata"]["name"]) for d in selected] == [("Secret", "seance-secrets")]
    assert selected[0]["stringData"] == FLAT


def test_apply_secrets_stops_before_the_cluster_on_bad_secrets(
    age_files: dict[str, Path], age_key: None, kubectl_log: Path
) -> None:
    result = _run("apply-secrets.sh", "--secrets", str(age_files["no_master"]))
    assert result.returncode == 1
    assert f"Error: {age_files['no_master']}: missing required secret(s): LITELLM_MASTER_KEY" in result.stderr
    assert kubectl_calls(kubectl_log) == []


@pytest.mark.parametrize(("fmt", "parse"), [("json", json.loads), ("yaml", yaml.safe_load)])
def test_decrypt_secrets(age_files: dict[str, Path], age_key: None, fmt: str, parse: object) -> None:
    result = _run("decrypt-secrets.sh", "--format", fmt, str(age_files["secrets"]))
    assert result.returncode == 0, result.stderr
    assert callable(parse)
    decrypted = parse(result.stdout)
    assert decrypted["litellm"]["LITELLM_MASTER_KEY"] == FLAT["LITELLM_MASTER_KEY"]
    assert decrypted["stripe"] == {"STRIPE_SECRET_KEY": FLAT["STRIPE_SECRET_KEY"]}


def test_apply_secrets_into_the_namespace_setting(age_files: dict[str, Path], age_key: None, kubectl_log: Path) -> None:
    args = ["dev", "--secrets", str(age_files["secrets"]), "--set", "namespace=seance-dev"]
    result = _run("apply-secrets.sh", *args)
    assert result.returncode == 0, result.stderr
    calls = [call["argv"] for call in kubectl_calls(kubectl_log)]
    assert calls[0] == ["create", "namespace", "seance-dev", "--dry-run=client", "-o", "yaml"]
    assert calls[3:] == [
        ["get", "deployment/litellm", "-n", "seance-dev"],
        ["rollout", "restart", "deployment/litellm", "-n", "seance-dev"],
        ["rollout", "status", "deployment/litellm", "-n", "seance-dev", "--timeout=300s"],
    ]
