"""How requests reach the gateway: the Service, and `https://<host>/litellm/*` with the prefix
stripped — through an nginx Ingress, a Gateway API HTTPRoute, or both."""

from __future__ import annotations

from typing import Any

from seance.deploy.objects import Manifest, cluster_ip_service, labels, metadata
from seance.deploy.settings import GATEWAY_PORT, Settings
from seance.deploy.workloads import APP

INGRESS_NAME = "litellm-ingress"
PATH_PREFIX = "/litellm"
# ingress-nginx matches this as a case-insensitive regex anchored at the start of the path;
# `/$2` keeps what follows the prefix, so /litellm/v1/models -> /v1/models and /litellmx is no match.
INGRESS_PATH = f"{PATH_PREFIX}(/|$)(.*)"
REWRITE_TARGET = "/$2"


def service(settings: Settings) -> Manifest:
    return cluster_ip_service(APP, "gateway", "http", GATEWAY_PORT, settings)


def ingress(settings: Settings) -> Manifest:
    annotations = {
        "nginx.ingress.kubernetes.io/use-regex": "true",
        "nginx.ingress.kubernetes.io/rewrite-target": REWRITE_TARGET,
        # Streams: forward chunks as they come and let long completions finish.
        "nginx.ingress.kubernetes.io/proxy-buffering": "off",
        "nginx.ingress.kubernetes.io/proxy-read-timeout": str(int(settings.gateway.request_timeout)),
        "nginx.ingress.kubernetes.io/proxy-send-timeout": str(int(settings.gateway.request_timeout)),
        "nginx.ingress.kubernetes.io/proxy-body-size": "32m",
    }
    if settings.tls.enabled and settings.tls.cluster_issuer:
        annotations["cert-manager.io/cluster-issuer"] = settings.tls.cluster_issuer
    spec: dict[str, Any] = {
        "ingressClassName": settings.ingress_class,
        "rules": [
            {
                "host": settings.host,
                "http": {
                    "paths": [
                        {
                            "path": INGRESS_PATH,
                            "pathType": "ImplementationSpecific",
                            "backend": {"service": {"name": APP, "port": {"number": GATEWAY_PORT}}},
                        }
                    ]
                },
            }
        ],
    }
    if settings.tls.enabled:
        spec["tls"] = [{"hosts": [settings.host], "secretName": settings.tls.secret_name}]
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": metadata(settings, INGRESS_NAME, labels(APP, "gateway", settings), annotations=annotations),
        "spec": spec,
    }


def http_route(settings: Settings) -> Manifest:
    parent: dict[str, Any] = {
        "group": "gateway.networking.k8s.io",
        "kind": "Gateway",
        "name": settings.gateway_ref.name,
    }
    if settings.gateway_ref.namespace:
        parent["namespace"] = settings.gateway_ref.namespace
    if settings.gateway_ref.section_name:
        parent["sectionName"] = settings.gateway_ref.section_name
    return {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": metadata(settings, APP, labels(APP, "gateway", settings)),
        "spec": {
            "parentRefs": [parent],
            "hostnames": [settings.host],
            "rules": [
                {
                    "matches": [{"path": {"type": "PathPrefix", "value": PATH_PREFIX}}],
                    "filters": [
                        {
                            "type": "URLRewrite",
                            "urlRewrite": {"path": {"type": "ReplacePrefixMatch", "replacePrefixMatch": "/"}},
                        }
                    ],
                    "backendRefs": [{"name": APP, "port": GATEWAY_PORT}],
                }
            ],
        },
    }
