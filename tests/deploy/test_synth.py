from __future__ import annotations

import re
from typing import Any

import kubernetes_validate
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.deploy.helpers import SECRETS, find, synth_documents

from seance.deploy.errors import DeployError
from seance.deploy.settings import MIN_KUBERNETES, MIN_KUBERNETES_WITHOUT_PRE_STOP, load_settings
from seance.deploy.synth import dump_yaml, synthesize

KUBERNETES_VERSION = "1.33.0"
VARIANTS = [
    ("dev", {}),
    ("prod", {}),
    ("dev", {"routing": "both", "valkey": {"mode": "none"}, "tls": {"enabled": False}}),
    ("prod", {"routing": "httproute", "autoscaling": {"enabled": False}, "replicas": 3}),
    ("prod", {"valkey": {"mode": "external"}, "gateway": {"cache": True}}),
]


@pytest.mark.parametrize(("env", "overrides"), VARIANTS)
def test_every_document_passes_strict_schema_validation(env: str, overrides: dict[str, Any]) -> None:
    secrets = {**SECRETS, "REDIS_URL": "rediss://user:pw@redis.example:6380/0"}
    documents = synth_documents(env, secrets, **overrides)
    validated = 0
    for document in documents:
        if document["kind"] == "HTTPRoute":
            continue  # a CRD: asserted on directly below
        kubernetes_validate.validate(document, KUBERNETES_VERSION, strict=True)
        validated += 1
    assert validated >= 7


def test_objects_and_names_match_the_original_troubleshooting_commands(dev_documents: list[Any]) -> None:
    kinds = [(doc["kind"], doc["metadata"]["name"]) for doc in dev_documents]
    assert kinds[0] == ("Namespace", "seance")
    for kind_name in [
        ("Secret", "seance-secrets"),
        ("ConfigMap", "litellm-config"),
        ("Deployment", "litellm"),
        ("Service", "litellm"),
        ("Ingress", "litellm-ingress"),
        ("Deployment", "valkey"),
        ("Service", "valkey"),
        ("NetworkPolicy", "valkey"),
        ("PodDisruptionBudget", "litellm"),
    ]:
        assert kind_name in kinds
    assert all(doc["metadata"].get("namespace") == "seance" for doc in dev_documents[1:])
    # `kubectl logs -n seance -l app=litellm` finds the gateway's pods
    pod_labels = find(dev_documents, "Deployment", "litellm")["spec"]["template"]["metadata"]["labels"]
    assert pod_labels["app"] == "litellm"


def test_secret_holds_every_flattened_key_as_string_data(dev_documents: list[Any]) -> None:
    secret = find(dev_documents, "Secret", "seance-secrets")
    assert secret["type"] == "Opaque"
    assert secret["stringData"] == SECRETS
    assert "data" not in secret


def test_deployment_shape(dev_documents: list[Any]) -> None:
    deployment = find(dev_documents, "Deployment", "litellm")
    selector = deployment["spec"]["selector"]["matchLabels"]
    template = deployment["spec"]["template"]
    pod = template["spec"]
    (container,) = pod["containers"]
    assert selector == {"app": "litellm", "app.kubernetes.io/name": "litellm", "app.kubernetes.io/instance": "seance"}
    assert selector.items() <= template["metadata"]["labels"].items()
    assert {"app.kubernetes.io/version", "app.kubernetes.io/component"} <= set(template["metadata"]["labels"])
    assert deployment["spec"]["replicas"] == 1
    assert container["envFrom"] == [{"secretRef": {"name": "seance-secrets"}}]
    assert {"name": "REDIS_URL", "value": "redis://valkey:6379/0"} in container["env"]
    assert container["command"] + container["args"] == [
        "seance", "gateway", "--config", "/etc/seance/config.yaml",
        "--host", "0.0.0.0", "--port", "4000", "--workers", "1", "--graceful-timeout", "25",
        "--log-level", "info", "--log-format", "plain", "--no-access-log", "--no-db",
    ]  # fmt: skip
    assert container["ports"] == [{"name": "http", "containerPort": 4000, "protocol": "TCP"}]
    assert container["startupProbe"]["httpGet"] == {"path": "/health/liveliness", "port": "http"}
    assert container["livenessProbe"]["httpGet"] == {"path": "/health/liveliness", "port": "http"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/health/readiness", "port": "http"}
    assert container["resources"]["requests"] and container["resources"]["limits"]["memory"]
    security = container["securityContext"]
    assert security["readOnlyRootFilesystem"] is True and security["runAsNonRoot"] is True
    assert security["capabilities"] == {"drop": ["ALL"]} and security["allowPrivilegeEscalation"] is False
    assert pod["securityContext"]["runAsUser"] != 0
    mounts = {mount["mountPath"]: mount for mount in container["volumeMounts"]}
    assert mounts["/etc/seance"]["readOnly"] is True
    volumes = {volume["name"]: volume for volume in pod["volumes"]}
    assert volumes[mounts["/tmp"]["name"]]["emptyDir"] is not None
    assert volumes[mounts["/etc/seance"]["name"]]["configMap"] == {"name": "litellm-config"}
    # preStop sleep + the gateway's drain must fit before SIGKILL
    pre_stop = container["lifecycle"]["preStop"]["sleep"]["seconds"]
    drain = int(container["args"][container["args"].index("--graceful-timeout") + 1])
    assert pod["terminationGracePeriodSeconds"] >= pre_stop + drain
    assert pod["terminationGracePeriodSeconds"] == 30


def test_checksums_roll_the_deployment_when_config_or_secrets_change() -> None:
    def annotations(secrets: dict[str, str], **overrides: Any) -> dict[str, str]:
        deployment = find(synth_documents("dev", secrets, **overrides), "Deployment", "litellm")
        result: dict[str, str] = deployment["spec"]["template"]["metadata"]["annotations"]
        return result

    base = annotations(SECRETS)
    assert base == annotations(dict(SECRETS))
    changed_secret = annotations({**SECRETS, "OPENAI_API_KEY": "sk-rotated"})
    assert changed_secret["checksum/secret"] != base["checksum/secret"]
    assert changed_secret["checksum/config"] == base["checksum/config"]
    changed_config = annotations(SECRETS, gateway={"num_retries": 5})
    assert changed_config["checksum/config"] != base["checksum/config"]
    assert changed_config["checksum/secret"] == base["checksum/secret"]


def test_service_and_ingress(dev_documents: list[Any], prod_documents: list[Any]) -> None:
    service = find(dev_documents, "Service", "litellm")
    assert service["spec"]["ports"] == [{"name": "http", "port": 4000, "targetPort": "http", "protocol": "TCP"}]
    assert (
        service["spec"]["selector"] == find(dev_documents, "Deployment", "litellm")["spec"]["selector"]["matchLabels"]
    )
    for documents, host in [(dev_documents, "backend.dev.localhost"), (prod_documents, "backend.seance.dev")]:
        ingress = find(documents, "Ingress", "litellm-ingress")
        annotations = ingress["metadata"]["annotations"]
        assert annotations["nginx.ingress.kubernetes.io/use-regex"] == "true"
        assert annotations["nginx.ingress.kubernetes.io/rewrite-target"] == "/$2"
        assert ingress["spec"]["ingressClassName"] == "nginx"
        (rule,) = ingress["spec"]["rules"]
        assert rule["host"] == host
        (path,) = rule["http"]["paths"]
        assert path == {
            "path": "/litellm(/|$)(.*)",
            "pathType": "ImplementationSpecific",
            "backend": {"service": {"name": "litellm", "port": {"number": 4000}}},
        }
    # prod: cert-manager makes the certificate the Ingress names; dev has none to name
    assert find(prod_documents, "Ingress")["spec"]["tls"] == [
        {"hosts": ["backend.seance.dev"], "secretName": "backend-seance-dev-tls"}
    ]
    assert "tls" not in find(dev_documents, "Ingress")["spec"]


def _nginx_rewrite(ingress: dict[str, Any], uri: str) -> str | None:
    """What ingress-nginx does with use-regex: `location ~* "^<path>"`, then `rewrite ^<path> <target>`."""
    (path,) = ingress["spec"]["rules"][0]["http"]["paths"]
    match = re.match("^" + path["path"], uri, flags=re.IGNORECASE)
    if match is None:
        return None
    target = ingress["metadata"]["annotations"]["nginx.ingress.kubernetes.io/rewrite-target"]
    return re.sub(r"\$(\d)", lambda group: match.group(int(group.group(1))), target)


@pytest.mark.parametrize(
    ("uri", "upstream"),
    [
        ("/litellm/v1/chat/completions", "/v1/chat/completions"),
        ("/litellm/health", "/health"),
        ("/litellm/health/readiness", "/health/readiness"),
        ("/litellm", "/"),
        ("/litellm/", "/"),
        ("/litellmx", None),
        ("/litellmx/v1/models", None),
        ("/other/litellm/v1/models", None),
    ],
)
def test_ingress_rewrite_regex(dev_documents: list[Any], uri: str, upstream: str | None) -> None:
    assert _nginx_rewrite(find(dev_documents, "Ingress", "litellm-ingress"), uri) == upstream


def test_http_route_is_selectable_and_strips_the_prefix() -> None:
    documents = synth_documents("prod", routing="httproute", gateway_ref={"name": "edge", "namespace": "infra"})
    assert not [doc for doc in documents if doc["kind"] == "Ingress"]
    route = find(documents, "HTTPRoute", "litellm")
    assert route["apiVersion"] == "gateway.networking.k8s.io/v1"
    assert route["metadata"]["namespace"] == "seance"
    assert route["spec"]["hostnames"] == ["backend.seance.dev"]
    assert route["spec"]["parentRefs"] == [
        {"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": "edge", "namespace": "infra"}
    ]
    (rule,) = route["spec"]["rules"]
    assert rule["matches"] == [{"path": {"type": "PathPrefix", "value": "/litellm"}}]
    assert rule["filters"] == [
        {"type": "URLRewrite", "urlRewrite": {"path": {"type": "ReplacePrefixMatch", "replacePrefixMatch": "/"}}}
    ]
    assert rule["backendRefs"] == [{"name": "litellm", "port": 4000}]
    both = synth_documents("dev", routing="both")
    assert find(both, "HTTPRoute") and find(both, "Ingress")


def test_prod_autoscales_and_leaves_replicas_to_the_hpa(prod_documents: list[Any]) -> None:
    deployment = find(prod_documents, "Deployment", "litellm")
    assert "replicas" not in deployment["spec"]
    hpa = find(prod_documents, "HorizontalPodAutoscaler", "litellm")
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "litellm"}
    assert hpa["spec"]["minReplicas"] == 2
    pdb = find(prod_documents, "PodDisruptionBudget", "litellm")
    assert pdb["spec"]["selector"]["matchLabels"] == deployment["spec"]["selector"]["matchLabels"]
    args = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args[args.index("--workers") + 1] == "2"
    ingress = find(prod_documents, "Ingress", "litellm-ingress")
    assert ingress["metadata"]["annotations"]["cert-manager.io/cluster-issuer"] == "letsencrypt"


def test_valkey_modes() -> None:
    none = synth_documents("dev", valkey={"mode": "none"})
    assert not [doc for doc in none if doc["metadata"]["name"] == "valkey"]
    container = find(none, "Deployment", "litellm")["spec"]["template"]["spec"]["containers"][0]
    assert all(item["name"] != "REDIS_URL" for item in container["env"])
    redis = {**SECRETS, "REDIS_URL": "redis://cache.example:6379"}
    external = synth_documents("prod", redis, valkey={"mode": "external"})
    assert not [doc for doc in external if doc["metadata"]["name"] == "valkey"]
    assert find(external, "Secret")["stringData"]["REDIS_URL"] == "redis://cache.example:6379"
    in_cluster = synth_documents("dev")
    policy = find(in_cluster, "NetworkPolicy", "valkey")["spec"]
    assert policy["podSelector"]["matchLabels"] == find(in_cluster, "Service", "valkey")["spec"]["selector"]
    gateway_pods = find(in_cluster, "Deployment", "litellm")["spec"]["template"]["metadata"]["labels"]
    (rule,) = policy["ingress"]
    assert rule["from"][0]["podSelector"]["matchLabels"].items() <= gateway_pods.items()
    assert rule["ports"] == [{"protocol": "TCP", "port": 6379}]
    valkey = find(in_cluster, "Deployment", "valkey")["spec"]["template"]["spec"]
    assert valkey["containers"][0]["securityContext"]["readOnlyRootFilesystem"] is True
    assert valkey["containers"][0]["args"][:2] == ["--save", ""]


def test_external_valkey_requires_redis_url() -> None:
    with pytest.raises(DeployError, match="REDIS_URL"):
        synthesize(load_settings("prod", {"valkey": {"mode": "external"}}), SECRETS)


@pytest.mark.parametrize(
    ("secrets", "message"),
    [
        ({"OPENAI_API_KEY": "x"}, "missing required secret.*LITELLM_MASTER_KEY"),
        ({"LITELLM_MASTER_KEY": ""}, "LITELLM_MASTER_KEY"),
        ({"LITELLM_MASTER_KEY": "k", "BAD-NAME": "x"}, "BAD-NAME"),
        ({"LITELLM_MASTER_KEY": "k", "PORT": 4000}, "must be strings: PORT"),
    ],
)
def test_bad_secrets_are_one_clear_error(secrets: dict[str, Any], message: str) -> None:
    with pytest.raises(DeployError, match=message):
        synthesize(load_settings("dev"), secrets)


def test_yaml_1_1_lookalikes_stay_strings_for_kubectl() -> None:
    tricky = {"LITELLM_MASTER_KEY": "no", "ON": "on", "Y": "y", "B": "12:30", "C": "0777", "D": "", "E": "null"}
    secret = find(synth_documents("dev", tricky), "Secret")
    assert secret["stringData"] == tricky


@settings(max_examples=60, deadline=None)
@given(
    st.dictionaries(
        st.from_regex(r"[A-Z_][A-Z0-9_]{0,20}", fullmatch=True),
        st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=40),
        max_size=6,
    )
)
def test_any_secret_value_survives_the_yaml_round_trip(extra: dict[str, str]) -> None:
    secrets = {**extra, "LITELLM_MASTER_KEY": "sk-test"}
    text = dump_yaml(synthesize(load_settings("dev"), secrets))
    parsed = [doc for doc in yaml.safe_load_all(text) if doc]
    assert find(parsed, "Secret")["stringData"] == secrets


@pytest.mark.parametrize(
    ("overrides", "version"),
    [({}, MIN_KUBERNETES), ({"pre_stop_sleep_seconds": 0}, MIN_KUBERNETES_WITHOUT_PRE_STOP)],
)
def test_the_manifest_is_valid_for_the_oldest_kubernetes_it_claims(overrides: dict[str, Any], version: Any) -> None:
    settings = load_settings("prod", overrides)
    assert settings.min_kubernetes[0] == version
    for document in synth_documents("prod", **overrides):
        kubernetes_validate.validate(document, "{}.{}.0".format(*version), strict=True)
    if overrides:
        deployment = find(synth_documents("prod", **overrides), "Deployment", "litellm")
        assert "lifecycle" not in deployment["spec"]["template"]["spec"]["containers"][0]


def test_dev_and_prod_can_share_a_cluster() -> None:
    dev = synth_documents("dev", namespace="seance-dev")
    assert find(dev, "Namespace")["metadata"]["name"] == "seance-dev"
    assert {doc["metadata"]["namespace"] for doc in dev[1:]} == {"seance-dev"}
    with pytest.raises(DeployError, match="namespace: 'Seance_Dev' is not a namespace name"):
        load_settings("dev", {"namespace": "Seance_Dev"})


def test_the_gateway_s_logging_is_a_setting() -> None:
    from seance.deploy.settings import load_settings as load_deploy_settings
    from seance.deploy.workloads import gateway_deployment

    logging = {"log_level": "debug", "log_format": "json", "access_log": True}
    settings = load_deploy_settings("prod", {"gateway": logging})
    args = gateway_deployment(settings, "c", "s")["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args[args.index("--log-level") + 1] == "debug" and args[args.index("--log-format") + 1] == "json"
    assert "--access-log" in args and "--no-access-log" not in args


def test_prometheus_scrapes_the_pods_through_their_annotations_by_default(dev_documents: list[Any]) -> None:
    annotations = find(dev_documents, "Deployment", "litellm")["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/port"] == "4000" and annotations["prometheus.io/path"] == "/metrics"
    config = yaml.safe_load(find(dev_documents, "ConfigMap")["data"]["config.yaml"])
    assert config["litellm_settings"]["callbacks"] == ["prometheus"]
    assert "require_auth_for_metrics_endpoint" not in config["litellm_settings"]  # a key by default
    assert not [doc for doc in dev_documents if doc["kind"] == "ServiceMonitor"]


def test_a_service_monitor_scrapes_with_the_metrics_key() -> None:
    secrets = {**SECRETS, "SEANCE_METRICS_KEY": "mk-test"}
    documents = synth_documents("prod", secrets, monitoring="servicemonitor")
    monitor = find(documents, "ServiceMonitor", "litellm")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    service = find(documents, "Service", "litellm")
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["spec"]["selector"].items()
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": [service["metadata"]["namespace"]]}
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["port"] == service["spec"]["ports"][0]["name"] and endpoint["path"] == "/metrics"
    assert endpoint["authorization"] == {
        "type": "Bearer", "credentials": {"name": "seance-secrets", "key": "SEANCE_METRICS_KEY"},
    }  # fmt: skip
    annotations = find(documents, "Deployment", "litellm")["spec"]["template"]["metadata"]["annotations"]
    assert "prometheus.io/scrape" not in annotations
    for document in documents:
        if document["kind"] not in ("HTTPRoute", "ServiceMonitor"):  # CRDs
            kubernetes_validate.validate(document, KUBERNETES_VERSION, strict=True)


def test_a_service_monitor_needs_the_metrics_key_unless_metrics_are_open() -> None:
    with pytest.raises(DeployError, match="SEANCE_METRICS_KEY"):
        synth_documents("prod", monitoring="servicemonitor")
    documents = synth_documents("prod", monitoring="servicemonitor", gateway={"metrics_require_auth": False})
    (endpoint,) = find(documents, "ServiceMonitor")["spec"]["endpoints"]
    assert "authorization" not in endpoint
    config = yaml.safe_load(find(documents, "ConfigMap")["data"]["config.yaml"])
    assert config["litellm_settings"]["require_auth_for_metrics_endpoint"] is False


def test_monitoring_and_metrics_can_be_off() -> None:
    documents = synth_documents("dev", monitoring="none", gateway={"metrics": False})
    annotations = find(documents, "Deployment", "litellm")["spec"]["template"]["metadata"]["annotations"]
    assert not any(name.startswith("prometheus.io/") for name in annotations)
    config = yaml.safe_load(find(documents, "ConfigMap")["data"]["config.yaml"])
    assert "callbacks" not in config["litellm_settings"]


def test_the_gateway_serves_keys_only_with_a_shared_database() -> None:
    """Without a DATABASE_URL the pods run --no-db (an SQLite file per pod, on a read-only root
    filesystem, would be neither writable nor shared); with one, keys and spend are on."""
    plain = find(synth_documents("prod", SECRETS), "Deployment", "litellm")
    assert "--no-db" in plain["spec"]["template"]["spec"]["containers"][0]["args"]
    with_db = {**SECRETS, "DATABASE_URL": "postgresql://u:p@db:5432/seance"}
    shared = find(synth_documents("prod", with_db), "Deployment", "litellm")
    assert "--no-db" not in shared["spec"]["template"]["spec"]["containers"][0]["args"]
