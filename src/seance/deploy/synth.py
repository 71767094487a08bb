"""Synthesis: settings + flattened secrets -> the ordered list of Kubernetes objects -> one YAML stream.

Everything here is pure: nothing is read or written, so a bad input fails before any file exists.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterable, Mapping
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.nodes import ScalarNode
from ruamel.yaml.resolver import VersionedResolver
from ruamel.yaml.scalarstring import DoubleQuotedScalarString, LiteralScalarString

from seance.deploy import objects, routing, workloads
from seance.deploy.errors import DeployError
from seance.deploy.gateway_config import ConfigFile, gateway_config
from seance.deploy.objects import METRICS_KEY, Manifest
from seance.deploy.settings import Settings

REQUIRED_SECRETS = ("LITELLM_MASTER_KEY",)
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# kubectl reads manifests with a YAML 1.1 parser, where `no`, `on`, `12:30` or `0777` are not strings.
_YAML_1_1 = VersionedResolver(version=(1, 1))
_STR_TAG = "tag:yaml.org,2002:str"


def check_secrets(
    settings: Settings, secrets: Mapping[str, str], source: str = "the secrets", master_key_required: bool = True
) -> None:
    missing = [name for name in REQUIRED_SECRETS if master_key_required and not secrets.get(name)]
    if settings.valkey.mode == "external" and not secrets.get("REDIS_URL"):
        missing.append("REDIS_URL")
    scraped_with_key = settings.monitoring == "servicemonitor" and settings.gateway.metrics_require_auth
    if scraped_with_key and not secrets.get(METRICS_KEY):
        missing.append(METRICS_KEY)
    if missing:
        reasons = {
            "REDIS_URL": " (valkey.mode is external)",
            METRICS_KEY: " (the ServiceMonitor's scrapes present it; or set gateway.metrics_require_auth=false)",
        }
        reason = reasons.get(missing[-1], "")
        raise DeployError(
            f"{source}: missing required secret(s): {', '.join(missing)}{reason}; add them to its"
            f" `litellm:` section with `seance secrets edit {source}`"
        )
    bad = sorted(name for name in secrets if not _ENV_NAME.fullmatch(name))
    if bad:
        raise DeployError(f"secret name(s) not usable as environment variables: {', '.join(bad)}")
    not_text = sorted(name for name, value in secrets.items() if not isinstance(value, str))
    if not_text:
        raise DeployError(f"secret value(s) must be strings: {', '.join(not_text)}")


# Objects that only some settings produce, as kubectl resource references. When a setting turns one
# off (routing, autoscaling, valkey.mode), `seance deploy` deletes it, as `helm upgrade` would.
OPTIONAL_OBJECTS = {
    ("Deployment", "valkey"): "deployments.apps/valkey",
    ("Service", "valkey"): "services/valkey",
    ("NetworkPolicy", "valkey"): "networkpolicies.networking.k8s.io/valkey",
    ("HorizontalPodAutoscaler", "litellm"): "horizontalpodautoscalers.autoscaling/litellm",
    ("Ingress", routing.INGRESS_NAME): f"ingresses.networking.k8s.io/{routing.INGRESS_NAME}",
    ("HTTPRoute", "litellm"): "httproutes.gateway.networking.k8s.io/litellm",
}


def omitted_objects(documents: Iterable[Manifest]) -> list[str]:
    present = {(document["kind"], document["metadata"]["name"]) for document in documents}
    return [reference for key, reference in OPTIONAL_OBJECTS.items() if key not in present]


def render_config(settings: Settings) -> str:
    return dump_yaml([gateway_config(settings)])


def synthesize(
    settings: Settings,
    secrets: Mapping[str, str],
    config_file: ConfigFile | None = None,
    secrets_source: str = "the secrets",
) -> list[Manifest]:
    """Every object of one environment, in the order `kubectl apply` should create them. The gateway's
    config is `config_file` (the operator's, already validated) or generated from the settings."""
    check_secrets(
        settings, secrets, secrets_source, master_key_required=not (config_file and config_file.sets_master_key)
    )
    config_text = config_file.text if config_file else render_config(settings)
    documents = [
        objects.namespace(settings),
        objects.secret(settings, secrets),
        objects.config_map(settings, config_text),
    ]
    if settings.valkey.mode == "in-cluster":
        documents += [
            workloads.valkey_service(settings),
            workloads.valkey_deployment(settings),
            workloads.valkey_network_policy(settings),
        ]
    # keys and spend need a database the replicas share: PostgreSQL from the secrets or the config
    database = bool(secrets.get("DATABASE_URL") or (config_file is not None and config_file.sets_database))
    documents += [
        routing.service(settings),
        workloads.gateway_deployment(
            settings, objects.checksum(config_text), objects.checksum(dict(secrets)), database
        ),
        workloads.disruption_budget(settings),
    ]
    if settings.autoscaling.enabled:
        documents.append(workloads.autoscaler(settings))
    if settings.routing in ("ingress", "both"):
        documents.append(routing.ingress(settings))
    if settings.routing in ("httproute", "both"):
        documents.append(routing.http_route(settings))
    if settings.monitoring == "servicemonitor":
        # Not among OPTIONAL_OBJECTS: deleting it on every deploy would fail on each cluster without
        # the Prometheus Operator; turning it off later means `kubectl delete servicemonitor litellm`.
        documents.append(workloads.service_monitor(settings))
    return documents


def dump_yaml(documents: Iterable[Any]) -> str:
    yaml = YAML(typ="rt", pure=True)
    yaml.default_flow_style = False
    yaml.width = 4096  # keep long strings (keys, regexes) on one line
    yaml.indent(mapping=2, sequence=4, offset=2)
    buffer = io.StringIO()
    yaml.dump_all([_styled(document) for document in documents], buffer)
    return buffer.getvalue()


def _styled(value: Any) -> Any:
    """Multi-line strings (the embedded config.yaml, PEM keys) as readable `|` blocks, and strings a
    YAML 1.1 reader would take for something else double-quoted."""
    if isinstance(value, dict):
        # Keys too: `ON`, `Y` or `NO` are valid environment variable names and YAML 1.1 booleans.
        return {_styled(key): _styled(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_styled(item) for item in value]
    if not isinstance(value, str):
        return value
    if "\n" in value and _literal_safe(value):
        return LiteralScalarString(value)
    if not value.isprintable() or _YAML_1_1.resolve(ScalarNode, value, (True, False)) != _STR_TAG:
        # Double quotes escape control characters and line separators such as NEL (U+0085).
        return DoubleQuotedScalarString(value)
    return value


def _literal_safe(value: str) -> bool:
    # A `|` block cannot carry trailing spaces, tabs at a line start or control characters faithfully.
    lines = value.split("\n")
    return all(line == line.rstrip() and not line.startswith("\t") for line in lines) and all(
        char.isprintable() or char == "\n" for char in value
    )
