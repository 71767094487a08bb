from __future__ import annotations

import stat
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from tests.deploy.helpers import SECRETS, find, kubectl_calls

from seance.cli import main
from seance.deploy import secrets_source

OWN_KEY = "age1yt3tfqlfrwdwx0z0ynwplcr6qxcxfaqycuprpmy89nr83ltx74tqdpszlw"


def fake_secrets(
    monkeypatch: pytest.MonkeyPatch, path: Path, values: dict[str, str], recipients: tuple[str, ...] = (OWN_KEY,)
) -> None:
    """`path` decrypts to `values` for `recipients` (decryption itself is tested in test_secrets_source)."""
    path.write_text("encrypted: elsewhere\n")

    def fake_load(requested: Path) -> secrets_source.SecretsSource:
        assert requested == path
        return secrets_source.SecretsSource(path, dict(values), recipients)

    monkeypatch.setattr(secrets_source, "load_secrets_source", fake_load)


@pytest.fixture
def secrets_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A secrets path whose flattened content is SECRETS, encrypted for an operator's own key."""
    path = tmp_path / "secrets.yaml"
    fake_secrets(monkeypatch, path, SECRETS)
    return path


def test_synth_writes_a_private_manifest(secrets_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "dist" / "seance.k8s.yaml"
    result = CliRunner().invoke(main, ["synth", "--env", "prod", "--secrets", str(secrets_file), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "wrote 11 objects for prod" in result.output
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    documents = list(yaml.safe_load_all(out.read_text()))
    assert find(documents, "Secret")["stringData"] == SECRETS
    assert find(documents, "Ingress")["spec"]["rules"][0]["host"] == "backend.seance.dev"


def test_synth_to_stdout_with_values_and_set(secrets_file: Path, tmp_path: Path) -> None:
    values = tmp_path / "values.yaml"
    values.write_text("routing: both\ngateway:\n  workers: 3\n")
    result = CliRunner().invoke(
        main,
        ["synth", "--secrets", str(secrets_file), "--values", str(values), "--set", "gateway.workers=5", "--out", "-"],
    )
    assert result.exit_code == 0, result.output
    documents = list(yaml.safe_load_all(result.stdout))
    assert find(documents, "HTTPRoute") and find(documents, "Ingress")
    args = find(documents, "Deployment", "litellm")["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args[args.index("--workers") + 1] == "5"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--env", "staging"], "Invalid value for '--env': 'staging' is not one of 'dev', 'prod'"),
        (["--set", "replicas=0"], "Error: invalid setting for dev: replicas: Input should be greater than or equal"),
        (["--set", "replicas"], "Error: --set expects path=value"),
        (["--values", "missing.yaml"], "Error: missing.yaml: cannot read values file"),
    ],
)
def test_synth_errors_write_nothing(secrets_file: Path, tmp_path: Path, args: list[str], message: str) -> None:
    out = tmp_path / "out.yaml"
    result = CliRunner().invoke(main, ["synth", "--secrets", str(secrets_file), "--out", str(out), *args])
    assert result.exit_code != 0
    assert message in result.output
    assert "Traceback" not in result.output
    assert not out.exists()


def test_synth_missing_secrets_file(tmp_path: Path) -> None:
    out = tmp_path / "out.yaml"
    result = CliRunner().invoke(main, ["synth", "--secrets", str(tmp_path / "nope.yaml"), "--out", str(out)])
    assert result.exit_code == 1
    assert "nope.yaml: secrets file not found" in result.output
    assert not out.exists()


def test_synth_missing_master_key_writes_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "secrets.yaml"
    fake_secrets(monkeypatch, path, {"OPENAI_API_KEY": "x"})
    out = tmp_path / "out.yaml"
    result = CliRunner().invoke(main, ["synth", "--secrets", str(path), "--out", str(out)])
    assert result.exit_code == 1
    assert result.output.strip() == (
        f"Error: {path}: missing required secret(s): LITELLM_MASTER_KEY;"
        f" add them to its `litellm:` section with `seance secrets edit {path}`"
    )
    assert not out.exists()


def test_deploy_dry_run_calls(secrets_file: Path, kubectl_log: Path) -> None:
    result = CliRunner().invoke(main, ["deploy", "--env", "prod", "--dry-run", "--secrets", str(secrets_file)])
    assert result.exit_code == 0, result.output
    calls = kubectl_calls(kubectl_log)
    assert [call["argv"] for call in calls] == [
        ["config", "current-context"],
        ["version", "--output=json"],
        ["apply", "--server-side", "--field-manager=seance", "--force-conflicts", "--dry-run=server", "-f", "-"],
        # prod with routing=ingress produces no HTTPRoute: one left from an earlier deploy goes
        ["delete", "httproutes.gateway.networking.k8s.io/litellm", "-n", "seance", "--ignore-not-found",
         "--dry-run=server"],
    ]  # fmt: skip
    manifest = list(yaml.safe_load_all(str(calls[2]["stdin"])))
    assert find(manifest, "Secret")["stringData"] == SECRETS
    assert "context kind-seance" in result.output and "nothing was changed" in result.output
    assert "prod: 11 objects, image localhost/seance-gateway:" in result.output


def test_deploy_applies_then_waits_for_rollouts(secrets_file: Path, kubectl_log: Path) -> None:
    args = ["deploy", "--env", "prod", "--secrets", str(secrets_file), "--context", "prod-eu", "--timeout", "120"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert [call["argv"] for call in kubectl_calls(kubectl_log)] == [
        ["--context", "prod-eu", "version", "--output=json"],
        ["--context", "prod-eu", "apply", "--server-side", "--field-manager=seance", "--force-conflicts", "-f", "-"],
        ["--context", "prod-eu", "delete", "httproutes.gateway.networking.k8s.io/litellm", "-n", "seance",
         "--ignore-not-found"],
        ["--context", "prod-eu", "rollout", "status", "deployment/valkey", "-n", "seance", "--timeout=120s"],
        ["--context", "prod-eu", "rollout", "status", "deployment/litellm", "-n", "seance", "--timeout=120s"],
    ]  # fmt: skip
    assert "==> deployed" in result.output


def test_deploy_reports_a_failed_rollout(
    secrets_file: Path, kubectl_log: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_KUBECTL_ROLLOUT_FAILS", "1")
    result = CliRunner().invoke(main, ["deploy", "--env", "prod", "--secrets", str(secrets_file)])
    assert result.exit_code == 1
    assert "Error: kubectl rollout status failed (exit 1)" in result.output
    assert len(kubectl_calls(kubectl_log)) == 5  # context, version, apply, delete, first rollout


def test_deploy_without_kubectl(secrets_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    result = CliRunner().invoke(main, ["deploy", "--env", "prod", "--secrets", str(secrets_file)])
    assert result.exit_code == 1
    assert "Error: 'kubectl' not found on PATH" in result.output


def test_deploy_requires_an_environment(secrets_file: Path) -> None:
    result = CliRunner().invoke(main, ["deploy", "--secrets", str(secrets_file)])
    assert result.exit_code == 2
    assert "Missing option '--env'" in result.output


def test_deploy_removes_what_the_settings_turned_off(
    secrets_file: Path, kubectl_log: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The Gateway API CRDs are not installed: deleting an HTTPRoute fails, and that is fine.
    monkeypatch.setenv("FAKE_KUBECTL_FAILS", "delete httproutes.gateway.networking.k8s.io/litellm")
    args = ["deploy", "--env", "prod", "--secrets", str(secrets_file)]
    args += ["--set", "autoscaling.enabled=false", "--set", "valkey.mode=none", "--set", "routing=httproute"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    deletes = [call["argv"][1] for call in kubectl_calls(kubectl_log) if call["argv"][0] == "delete"]
    assert deletes == [
        "deployments.apps/valkey",
        "services/valkey",
        "networkpolicies.networking.k8s.io/valkey",
        "horizontalpodautoscalers.autoscaling/litellm",
        "ingresses.networking.k8s.io/litellm-ingress",
    ]
    rollouts = [call["argv"][2] for call in kubectl_calls(kubectl_log) if call["argv"][0] == "rollout"]
    assert rollouts == ["deployment/litellm"]


def test_only_a_missing_gateway_api_is_forgiven_on_delete(
    secrets_file: Path, kubectl_log: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_KUBECTL_FAILS", "delete httproutes.gateway.networking.k8s.io/litellm")
    result = CliRunner().invoke(main, ["deploy", "--env", "prod", "--secrets", str(secrets_file)])
    assert result.exit_code == 0, result.output
    assert "skipped httproutes.gateway.networking.k8s.io/litellm" in result.output
    monkeypatch.setenv("FAKE_KUBECTL_FAILS", "delete ingresses.networking.k8s.io/litellm-ingress")
    args = ["deploy", "--env", "prod", "--secrets", str(secrets_file), "--set", "routing=httproute"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 1
    assert "Error: kubectl delete ingresses.networking.k8s.io/litellm-ingress failed (exit 1)" in result.output


EXAMPLE_KEY = "age1arz9jrl0vef5ajc74thlvzu4yc5mawz0el0g6hq5pa5wzswe7vyseymznu"  # secrets/dev-age-key.txt's


@pytest.mark.parametrize(
    ("values", "recipients", "refusal"),
    [
        (SECRETS, (EXAMPLE_KEY,), "is encrypted for the repository's public development key"),
        (SECRETS, (OWN_KEY, EXAMPLE_KEY), "is encrypted for the repository's public development key"),
        ({**SECRETS, "LITELLM_MASTER_KEY": "sk-seance-dev-master-key"}, (OWN_KEY,), "holds the example master key"),
    ],
)
@pytest.mark.parametrize("command", ["synth", "deploy"])
def test_prod_refuses_the_example_secrets(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    kubectl_log: Path,
    values: dict[str, str],
    recipients: tuple[str, ...],
    refusal: str,
    command: str,
) -> None:
    path = tmp_path / "secrets.yaml"
    fake_secrets(monkeypatch, path, values, recipients)
    args = [command, "--env", "prod", "--secrets", str(path)] + (
        ["--out", str(tmp_path / "o.yaml")] * (command == "synth")
    )
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 1
    (line,) = result.output.strip().splitlines()
    assert line.startswith(f"Error: {path} ") and refusal in line and "--allow-example-secrets" in line
    assert kubectl_calls(kubectl_log) == [] and not (tmp_path / "o.yaml").exists()
    assert CliRunner().invoke(main, [*args, "--allow-example-secrets"]).exit_code == 0
    dev = [command, "--env", "dev", "--secrets", str(path)] + (
        ["--out", str(tmp_path / "d.yaml")] * (command == "synth")
    )
    assert CliRunner().invoke(main, dev).exit_code == 0  # dev is what the example is for


def test_prod_warns_about_settings_left_at_the_example_values(secrets_file: Path, tmp_path: Path) -> None:
    out = str(tmp_path / "o.yaml")
    result = CliRunner().invoke(main, ["synth", "--env", "prod", "--secrets", str(secrets_file), "--out", out])
    assert result.exit_code == 0
    warnings = [line for line in result.output.splitlines() if line.startswith("warning: ")]
    assert [line.split()[1] for line in warnings] == ["host", "image", "tls.cluster_issuer"]
    own = ["--set", "host=llm.example.com", "--set", "image=registry.example.com/seance-gateway:0.1.0"]
    own += ["--set", "tls.cluster_issuer=acme-prod"]
    result = CliRunner().invoke(main, ["synth", "--env", "prod", "--secrets", str(secrets_file), "--out", out, *own])
    assert result.exit_code == 0 and "warning" not in result.output
    dev = CliRunner().invoke(main, ["synth", "--secrets", str(secrets_file), "--out", out])
    assert "warning" not in dev.output


def test_deploy_uses_the_namespace_setting(secrets_file: Path, kubectl_log: Path) -> None:
    args = ["deploy", "--env", "prod", "--secrets", str(secrets_file), "--set", "namespace=seance-prod"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    calls = kubectl_calls(kubectl_log)
    assert {call["argv"][call["argv"].index("-n") + 1] for call in calls if "-n" in call["argv"]} == {"seance-prod"}
    manifest = list(yaml.safe_load_all(str(calls[2]["stdin"])))
    assert find(manifest, "Namespace")["metadata"]["name"] == "seance-prod"
    assert {doc["metadata"].get("namespace") for doc in manifest[1:]} == {"seance-prod"}
    assert "namespace seance-prod, context kind-seance (Kubernetes 1.31)" in result.output


@pytest.mark.parametrize(
    ("server", "settings", "ok"),
    [
        ("v1.30.0", [], True),
        ("v1.31.1-gke.1146000", [], True),
        ("v1.29.3+k3s1", [], False),
        ("v1.29.3+k3s1", ["--set", "pre_stop_sleep_seconds=0"], True),
        ("v1.24.17", ["--set", "pre_stop_sleep_seconds=0"], False),
    ],
)
def test_deploy_checks_the_cluster_s_kubernetes_version(
    secrets_file: Path, kubectl_log: Path, monkeypatch: pytest.MonkeyPatch, server: str, settings: list[str], ok: bool
) -> None:
    monkeypatch.setenv("FAKE_KUBECTL_VERSION", server)
    result = CliRunner().invoke(
        main, ["deploy", "--env", "prod", "--dry-run", "--secrets", str(secrets_file), *settings]
    )
    assert (result.exit_code == 0) == ok, result.output
    if not ok:
        line = result.output.strip().splitlines()[-1]  # after the warnings about example settings
        assert "Error: the cluster of context kind-seance runs Kubernetes 1." in line and "or later" in line
        assert [call["argv"][0] for call in kubectl_calls(kubectl_log)] == ["config", "version"]  # nothing applied
