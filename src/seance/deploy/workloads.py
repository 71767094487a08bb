"""Workloads: the gateway Deployment (`litellm`), Valkey, the PodDisruptionBudget and the HPA."""

from __future__ import annotations

from typing import Any

from seance.deploy.gateway_config import VALKEY_PORT, VALKEY_SERVICE, pod_env
from seance.deploy.objects import (
    CONFIG_DIR,
    CONFIG_FILE,
    CONFIG_MAP_NAME,
    METRICS_KEY,
    SECRET_NAME,
    Manifest,
    cluster_ip_service,
    labels,
    metadata,
    selector_labels,
)
from seance.deploy.settings import GATEWAY_PORT, Resources, Settings

APP = "litellm"
# The non-root user the image runs as (see Containerfile).
GATEWAY_UID = 10001
# The uid of the `valkey` user in the official Valkey image.
VALKEY_UID = 999


def resources(spec: Resources) -> dict[str, Any]:
    limits = {"memory": spec.memory_limit}
    if spec.cpu_limit:
        limits["cpu"] = spec.cpu_limit
    return {"requests": {"cpu": spec.cpu_request, "memory": spec.memory_request}, "limits": limits}


def pod_security(uid: int) -> dict[str, Any]:
    return {
        "runAsNonRoot": True,
        "runAsUser": uid,
        "runAsGroup": uid,
        "fsGroup": uid,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


CONTAINER_SECURITY: dict[str, Any] = {
    "allowPrivilegeEscalation": False,
    "readOnlyRootFilesystem": True,
    "runAsNonRoot": True,
    "capabilities": {"drop": ["ALL"]},
}


def _http_probe(path: str, period: int, failures: int, timeout: int = 3) -> dict[str, Any]:
    return {
        "httpGet": {"path": path, "port": "http"},
        "periodSeconds": period,
        "timeoutSeconds": timeout,
        "failureThreshold": failures,
    }


def gateway_deployment(
    settings: Settings, config_checksum: str, secret_checksum: str, database: bool = False
) -> Manifest:
    """`database`: the secrets hold a DATABASE_URL (PostgreSQL, shared by the replicas) for virtual
    keys, budgets and spend. Without one the gateway serves with the master key only (--no-db):
    its embedded SQLite file would be one per pod, on a read-only root filesystem at that."""
    env = [{"name": name, "value": value} for name, value in pod_env(settings).items()]
    container: dict[str, Any] = {
        "name": APP,
        "image": settings.image,
        "imagePullPolicy": settings.image_pull_policy,
        "command": ["seance", "gateway"],
        "args": [
            "--config",
            f"{CONFIG_DIR}/{CONFIG_FILE}",
            "--host",
            "0.0.0.0",
            "--port",
            str(GATEWAY_PORT),
            "--workers",
            str(settings.gateway.workers),
            "--graceful-timeout",
            str(settings.drain_seconds),
            "--log-level",
            settings.gateway.log_level,
            "--log-format",
            settings.gateway.log_format,
            "--access-log" if settings.gateway.access_log else "--no-access-log",
            *(() if database else ("--no-db",)),
        ],
        "ports": [{"name": "http", "containerPort": GATEWAY_PORT, "protocol": "TCP"}],
        "envFrom": [{"secretRef": {"name": SECRET_NAME}}],
        "env": env,
        # Startup allows a slow first start (up to 60 s) without a long liveness delay afterwards.
        "startupProbe": _http_probe("/health/liveliness", period=2, failures=30),
        "livenessProbe": _http_probe("/health/liveliness", period=10, failures=3),
        "readinessProbe": _http_probe("/health/readiness", period=5, failures=2),
        "resources": resources(settings.resources),
        "securityContext": CONTAINER_SECURITY,
        "volumeMounts": [
            {"name": "config", "mountPath": CONFIG_DIR, "readOnly": True},
            # The only writable path the gateway needs (temp files, Prometheus multiprocess dir).
            {"name": "tmp", "mountPath": "/tmp"},
        ],
    }
    if settings.pre_stop_sleep_seconds:
        # Keep serving while the endpoint is removed from Services and ingress controllers.
        container["lifecycle"] = {"preStop": {"sleep": {"seconds": settings.pre_stop_sleep_seconds}}}
    pod_spec: dict[str, Any] = {
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "securityContext": pod_security(GATEWAY_UID),
        "terminationGracePeriodSeconds": settings.termination_grace_seconds,
        "containers": [container],
        "volumes": [
            {"name": "config", "configMap": {"name": CONFIG_MAP_NAME}},
            {"name": "tmp", "emptyDir": {"sizeLimit": "256Mi"}},
        ],
    }
    if settings.replicas > 1 or settings.autoscaling.enabled:
        pod_spec["topologySpreadConstraints"] = [
            {
                "maxSkew": 1,
                "topologyKey": "kubernetes.io/hostname",
                "whenUnsatisfiable": "ScheduleAnyway",
                "labelSelector": {"matchLabels": selector_labels(APP)},
            }
        ]
    spec: dict[str, Any] = {
        "revisionHistoryLimit": 5,
        "selector": {"matchLabels": selector_labels(APP)},
        "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
        "template": {
            "metadata": {
                "labels": labels(APP, "gateway", settings, settings.image_version),
                "annotations": {
                    "checksum/config": config_checksum,
                    "checksum/secret": secret_checksum,
                    **scrape_annotations(settings),
                },
            },
            "spec": pod_spec,
        },
    }
    if not settings.autoscaling.enabled:
        # With an HPA the replica count is its to own; applying one here would fight it.
        spec = {"replicas": settings.replicas, **spec}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": metadata(settings, APP, labels(APP, "gateway", settings, settings.image_version)),
        "spec": spec,
    }


def scrape_annotations(settings: Settings) -> dict[str, str]:
    """What Prometheus' kubernetes-pods job reads (its documented example's relabelling)."""
    if settings.monitoring != "annotations":
        return {}
    return {"prometheus.io/scrape": "true", "prometheus.io/port": str(GATEWAY_PORT), "prometheus.io/path": "/metrics"}


def service_monitor(settings: Settings) -> Manifest:
    """The Prometheus Operator's scrape of every gateway pod behind the Service; with the metrics
    key from the gateway's Secret unless metrics are open."""
    endpoint: dict[str, Any] = {"port": "http", "path": "/metrics", "interval": "30s", "scheme": "http"}
    if settings.gateway.metrics_require_auth:
        endpoint["authorization"] = {"type": "Bearer", "credentials": {"name": SECRET_NAME, "key": METRICS_KEY}}
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "ServiceMonitor",
        "metadata": metadata(settings, APP, labels(APP, "gateway", settings, settings.image_version)),
        "spec": {
            "selector": {"matchLabels": selector_labels(APP)},
            "namespaceSelector": {"matchNames": [settings.namespace]},
            "endpoints": [endpoint],
        },
    }


def disruption_budget(settings: Settings) -> Manifest:
    # maxUnavailable (not minAvailable) so a single-replica dev install never blocks a node drain.
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": metadata(settings, APP, labels(APP, "gateway", settings)),
        "spec": {"maxUnavailable": 1, "selector": {"matchLabels": selector_labels(APP)}},
    }


def autoscaler(settings: Settings) -> Manifest:
    scaling = settings.autoscaling
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": metadata(settings, APP, labels(APP, "gateway", settings)),
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": APP},
            "minReplicas": scaling.min_replicas,
            "maxReplicas": scaling.max_replicas,
            "metrics": [
                {
                    "type": "Resource",
                    "resource": {
                        "name": "cpu",
                        "target": {"type": "Utilization", "averageUtilization": scaling.target_cpu_utilization},
                    },
                }
            ],
        },
    }


def valkey_deployment(settings: Settings) -> Manifest:
    valkey = settings.valkey
    probe = {"tcpSocket": {"port": "redis"}, "periodSeconds": 10, "timeoutSeconds": 2, "failureThreshold": 3}
    container = {
        "name": VALKEY_SERVICE,
        "image": valkey.image,
        "imagePullPolicy": "IfNotPresent",
        # A cache, not a database: no persistence, evict least-recently-used keys when full.
        "args": [
            "--save",
            "",
            "--appendonly",
            "no",
            "--maxmemory",
            valkey.max_memory,
            "--maxmemory-policy",
            "allkeys-lru",
        ],
        "ports": [{"name": "redis", "containerPort": VALKEY_PORT, "protocol": "TCP"}],
        "readinessProbe": probe,
        "livenessProbe": probe,
        "resources": resources(valkey.resources),
        "securityContext": CONTAINER_SECURITY,
        "volumeMounts": [{"name": "data", "mountPath": "/data"}],
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": metadata(settings, VALKEY_SERVICE, labels(VALKEY_SERVICE, "cache", settings)),
        "spec": {
            "replicas": 1,
            "revisionHistoryLimit": 3,
            "strategy": {"type": "Recreate"},
            "selector": {"matchLabels": selector_labels(VALKEY_SERVICE)},
            "template": {
                "metadata": {"labels": labels(VALKEY_SERVICE, "cache", settings)},
                "spec": {
                    "automountServiceAccountToken": False,
                    "enableServiceLinks": False,
                    "securityContext": pod_security(VALKEY_UID),
                    "containers": [container],
                    "volumes": [{"name": "data", "emptyDir": {}}],
                },
            },
        },
    }


def valkey_service(settings: Settings) -> Manifest:
    return cluster_ip_service(VALKEY_SERVICE, "cache", "redis", VALKEY_PORT, settings)


def valkey_network_policy(settings: Settings) -> Manifest:
    """Only the gateway's pods may reach Valkey: it holds cached responses and has no password."""
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": metadata(settings, VALKEY_SERVICE, labels(VALKEY_SERVICE, "cache", settings)),
        "spec": {
            "podSelector": {"matchLabels": selector_labels(VALKEY_SERVICE)},
            "policyTypes": ["Ingress"],
            "ingress": [
                {
                    "from": [{"podSelector": {"matchLabels": selector_labels(APP)}}],
                    "ports": [{"protocol": "TCP", "port": VALKEY_PORT}],
                }
            ],
        },
    }
