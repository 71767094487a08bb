"""Labels and the configuration objects: Namespace, Secret, ConfigMap."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from seance.deploy.settings import Settings

Manifest = dict[str, Any]

SECRET_NAME = "seance-secrets"
METRICS_KEY = "SEANCE_METRICS_KEY"  # the secret a scrape of /metrics presents (not the master key)
CONFIG_MAP_NAME = "litellm-config"
CONFIG_FILE = "config.yaml"
CONFIG_DIR = "/etc/seance"
PART_OF = "seance"


def selector_labels(app: str) -> dict[str, str]:
    """Labels a selector matches on. They never change: a Deployment's selector is immutable."""
    return {"app": app, "app.kubernetes.io/name": app, "app.kubernetes.io/instance": PART_OF}


def labels(app: str, component: str, settings: Settings, version: str | None = None) -> dict[str, str]:
    result = {
        **selector_labels(app),
        "app.kubernetes.io/component": component,
        "app.kubernetes.io/part-of": PART_OF,
        "app.kubernetes.io/managed-by": "seance-synth",
        "seance.dev/environment": settings.environment,
    }
    if version:
        result["app.kubernetes.io/version"] = version
    return result


def metadata(settings: Settings, name: str, object_labels: Mapping[str, str], **extra: Any) -> dict[str, Any]:
    return {"name": name, "namespace": settings.namespace, "labels": dict(object_labels), **extra}


def cluster_ip_service(name: str, component: str, port_name: str, port: int, settings: Settings) -> Manifest:
    """A Service in front of the pods labelled `app: name`, on one named port."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": metadata(settings, name, labels(name, component, settings)),
        "spec": {
            "type": "ClusterIP",
            "selector": selector_labels(name),
            "ports": [{"name": port_name, "port": port, "targetPort": port_name, "protocol": "TCP"}],
        },
    }


def namespace(settings: Settings) -> Manifest:
    return {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {
            "name": settings.namespace,
            "labels": {
                "app.kubernetes.io/part-of": PART_OF,
                "app.kubernetes.io/managed-by": "seance-synth",
                # Every pod here runs non-root with a read-only root: hold the namespace to it.
                "pod-security.kubernetes.io/enforce": "restricted",
                "pod-security.kubernetes.io/enforce-version": "latest",
            },
        },
    }


def secret(settings: Settings, values: Mapping[str, str]) -> Manifest:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": metadata(settings, SECRET_NAME, labels("litellm", "secrets", settings)),
        "type": "Opaque",
        "stringData": dict(sorted(values.items())),
    }


def config_map(settings: Settings, config_text: str) -> Manifest:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": metadata(settings, CONFIG_MAP_NAME, labels("litellm", "config", settings)),
        "data": {CONFIG_FILE: config_text},
    }


def checksum(value: str | Mapping[str, str]) -> str:
    """A stable digest for the pod template's annotations: a change in input rolls the Deployment."""
    text = value if isinstance(value, str) else json.dumps(dict(value), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()
