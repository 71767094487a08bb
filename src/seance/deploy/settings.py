"""Typed per-environment deploy settings.

Each environment (`dev`, `prod`) is a frozen, validated `Settings` value. Operators change it the way
Helm users expect: a values file (`--values FILE`) and `--set path=value` overrides, both merged onto
the environment's defaults and validated again, so a typo is one clear error and nothing is written.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from seance import __version__
from seance.deploy.errors import DeployError

GATEWAY_PORT = 4000
# The oldest Kubernetes the manifest is for (`seance deploy` checks the cluster before applying):
# the gateway's preStop hook uses the sleep action, beta and on by default since 1.30. Without it
# the newest things used are Pod Security admission labels and autoscaling/v2, GA in 1.25.
MIN_KUBERNETES = (1, 30)
MIN_KUBERNETES_WITHOUT_PRE_STOP = (1, 25)

_QUANTITY = re.compile(r"^[0-9]+(\.[0-9]+)?(m|k|Ki|Mi|Gi|Ti|M|G|T)?$")
_IMAGE = re.compile(r"^[a-z0-9][a-z0-9._:/-]*(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(@sha256:[a-f0-9]{64})?$")
_DNS_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")
# The gateway settings that generate its config.yaml; gateway.config_file replaces all of them.
GENERATED_CONFIG = (
    "models", "num_retries", "request_timeout", "routing_strategy", "cache", "drop_params", "metrics",
    "metrics_require_auth",
)  # fmt: skip


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _quantity(value: str) -> str:
    if not _QUANTITY.match(value):
        raise ValueError(f"{value!r} is not a Kubernetes quantity (e.g. 250m, 512Mi)")
    return value


class Resources(_Model):
    cpu_request: str = "250m"
    memory_request: str = "256Mi"
    # No CPU limit by default: throttling a latency-sensitive proxy hurts more than it protects.
    cpu_limit: str | None = None
    memory_limit: str = "512Mi"

    @field_validator("cpu_request", "memory_request", "memory_limit")
    @classmethod
    def _check_quantity(cls, value: str) -> str:
        return _quantity(value)

    @field_validator("cpu_limit")
    @classmethod
    def _check_optional_quantity(cls, value: str | None) -> str | None:
        return None if value is None else _quantity(value)


class Model(_Model):
    """One `model_list` entry of the gateway's config.yaml."""

    model_name: str = Field(min_length=1)
    model: str = Field(min_length=1, description="provider/name, or a wildcard such as openai/* or *")
    api_base: str | None = None
    api_version: str | None = None
    rpm: int | None = Field(default=None, ge=1)
    tpm: int | None = Field(default=None, ge=1)
    weight: int | None = Field(default=None, ge=1)
    timeout: float | None = Field(default=None, gt=0)

    @field_validator("model")
    @classmethod
    def _provider_prefixed(cls, value: str) -> str:
        if value != "*" and "/" not in value:
            raise ValueError(f"{value!r} must be 'provider/name' (or '*')")
        return value


class Gateway(_Model):
    # A LiteLLM config.yaml (path relative to the current directory) deployed as it is, instead of
    # the one generated from the settings below.
    config_file: str | None = Field(default=None, min_length=1)
    workers: int = Field(default=1, ge=1, le=64)
    # what `kubectl logs` shows: the level (info: start, stop, warnings), the format (json for log
    # collectors) and the access log (one line per request; off: it costs CPU on every request)
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_format: Literal["plain", "json"] = "plain"
    access_log: bool = False
    models: tuple[Model, ...] = (Model(model_name="*", model="*"),)
    num_retries: int = Field(default=2, ge=0, le=10)
    request_timeout: float = Field(default=600, gt=0)
    routing_strategy: Literal["simple-shuffle", "least-busy", "latency-based-routing", "usage-based-routing-v2"] = (
        "simple-shuffle"
    )
    cache: bool = False
    drop_params: bool = True
    # Prometheus metrics on /metrics (litellm_settings.callbacks: [prometheus]); a scrape presents
    # SEANCE_METRICS_KEY from the secrets unless metrics_require_auth is false
    metrics: bool = True
    metrics_require_auth: bool = True


class Valkey(_Model):
    """Where the gateway's cache and shared limits live.

    `in-cluster` runs a Valkey Deployment and Service; `external` expects `REDIS_URL` among the
    secrets; `none` keeps that state in each gateway process."""

    mode: Literal["in-cluster", "external", "none"] = "in-cluster"
    image: str = "docker.io/valkey/valkey:8.1"
    max_memory: str = "128mb"
    resources: Resources = Resources(cpu_request="50m", memory_request="64Mi", cpu_limit=None, memory_limit="192Mi")


class Autoscaling(_Model):
    enabled: bool = False
    min_replicas: int = Field(default=2, ge=1)
    max_replicas: int = Field(default=6, ge=1)
    target_cpu_utilization: int = Field(default=70, ge=1, le=100)

    @model_validator(mode="after")
    def _bounds(self) -> Autoscaling:
        if self.max_replicas < self.min_replicas:
            raise ValueError("max_replicas must be >= min_replicas")
        return self


class Tls(_Model):
    enabled: bool = True
    secret_name: str = "litellm-tls"
    cluster_issuer: str | None = None


class GatewayRef(_Model):
    """The Gateway API `Gateway` an HTTPRoute attaches to."""

    name: str = "seance-gateway"
    namespace: str | None = None
    section_name: str | None = None


class Settings(_Model):
    environment: Literal["dev", "prod"]
    # dev and prod may share a cluster: give them different namespaces.
    namespace: str = "seance"
    host: str
    # What scripts/build-image.sh tags; push it to your registry and set `image` for a real cluster.
    image: str = f"localhost/seance-gateway:{__version__}"
    image_pull_policy: Literal["Always", "IfNotPresent", "Never"] = "IfNotPresent"
    replicas: int = Field(default=1, ge=1, le=100)
    routing: Literal["ingress", "httproute", "both"] = "ingress"
    ingress_class: str = "nginx"
    gateway_ref: GatewayRef = GatewayRef()
    tls: Tls = Tls()
    gateway: Gateway = Gateway()
    resources: Resources = Resources()
    valkey: Valkey = Valkey()
    autoscaling: Autoscaling = Autoscaling()
    # How Prometheus finds the gateway's /metrics: the prometheus.io/* pod annotations (its
    # kubernetes-pods job), a ServiceMonitor (the Prometheus Operator), or neither
    monitoring: Literal["annotations", "servicemonitor", "none"] = "annotations"
    # Seconds a terminating pod keeps serving while endpoints are removed from load balancers.
    pre_stop_sleep_seconds: int = Field(default=3, ge=0, le=30)
    # Seconds in-flight requests and streams get to finish after SIGTERM (`--graceful-timeout`).
    drain_seconds: int = Field(default=25, ge=1, le=3600)

    @field_validator("namespace")
    @classmethod
    def _dns_label(cls, value: str) -> str:
        if not _DNS_LABEL.fullmatch(value):
            raise ValueError(f"{value!r} is not a namespace name (lower-case letters, digits and -, at most 63)")
        return value

    @field_validator("host")
    @classmethod
    def _dns_host(cls, value: str) -> str:
        if not _DNS_NAME.match(value):
            raise ValueError(f"{value!r} is not a DNS host name")
        return value

    @property
    def min_kubernetes(self) -> tuple[tuple[int, int], str]:
        """The oldest Kubernetes this manifest runs on, and why."""
        if self.pre_stop_sleep_seconds:
            return MIN_KUBERNETES, "the preStop sleep action; set pre_stop_sleep_seconds=0 for older clusters"
        return MIN_KUBERNETES_WITHOUT_PRE_STOP, "Pod Security admission and autoscaling/v2"

    @property
    def termination_grace_seconds(self) -> int:
        # preStop sleep, then the gateway's drain, then a little slack before SIGKILL.
        return self.pre_stop_sleep_seconds + self.drain_seconds + 2

    @field_validator("image")
    @classmethod
    def _image_reference(cls, value: str) -> str:
        if not _IMAGE.match(value):
            raise ValueError(f"{value!r} is not an image reference (e.g. registry.example.com/seance-gateway:0.1.0)")
        return value

    @property
    def image_version(self) -> str:
        """The image's tag (or digest prefix) as a valid label value, for app.kubernetes.io/version."""
        name, _, digest = self.image.partition("@")
        last = name.rsplit("/", 1)[-1]
        version = last.partition(":")[2] or digest.rpartition(":")[2][:12] or "latest"
        return re.sub(r"[^A-Za-z0-9_.-]", "-", version)[:63].strip("-_.") or "latest"


ENVIRONMENTS: dict[str, dict[str, Any]] = {
    "dev": {
        "environment": "dev",
        "host": "backend.dev.localhost",
        "replicas": 1,
        # No certificate exists for the dev host (Tilt reaches the gateway through a port-forward):
        # an Ingress naming a TLS secret nobody creates would only get the controller's fake one.
        "tls": {"enabled": False, "secret_name": "litellm-dev-tls"},
    },
    "prod": {
        "environment": "prod",
        "host": "backend.seance.dev",
        "replicas": 2,
        "gateway": {"workers": 2, "cache": True},
        "resources": {"cpu_request": "500m", "memory_request": "384Mi", "memory_limit": "1Gi"},
        "tls": {"enabled": True, "secret_name": "backend-seance-dev-tls", "cluster_issuer": "letsencrypt"},
        "autoscaling": {"enabled": True, "min_replicas": 2, "max_replicas": 8},
    },
}


def load_settings(env: str, overrides: Mapping[str, Any] | None = None) -> Settings:
    """The validated settings of `env`, with `overrides` (values file, then --set) merged on top."""
    if env not in ENVIRONMENTS:
        raise DeployError(f"unknown environment {env!r} (known: {', '.join(sorted(ENVIRONMENTS))})")
    overrides = dict(overrides or {})
    merged = deep_merge(ENVIRONMENTS[env], overrides)
    if merged.get("environment", env) != env:
        raise DeployError(f"the values set environment={merged['environment']!r} but --env is {env!r}")
    gateway = overrides.get("gateway")
    if isinstance(gateway, Mapping) and gateway.get("config_file"):
        generated = [f"gateway.{name}" for name in GENERATED_CONFIG if name in gateway]
        if generated:
            raise DeployError(
                f"gateway.config_file is deployed as it is, so {', '.join(generated)} would be ignored:"
                " put that in the config file instead"
            )
    try:
        return Settings.model_validate(merged)
    except ValidationError as exc:
        raise DeployError(f"invalid setting for {env}: {_describe(exc)}") from None


def deep_merge(base: Mapping[str, Any], overlay: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in overlay.items():
        current = merged.get(key)
        if isinstance(current, Mapping) and isinstance(value, Mapping):
            merged[key] = deep_merge(current, value)
        else:
            merged[key] = value
    return merged


def parse_set_option(assignment: str) -> dict[str, Any]:
    """`a.b.c=value` -> {"a": {"b": {"c": value}}}; the value is read as YAML (so 3 is an int)."""
    from ruamel.yaml import YAML

    path, sep, raw = assignment.partition("=")
    if not sep or not path or any(not part for part in path.split(".")):
        raise DeployError(f"--set expects path=value (e.g. replicas=3), got {assignment!r}")
    value: Any = YAML(typ="safe", pure=True).load(raw) if raw else ""
    for part in reversed(path.split(".")):
        value = {part: value}
    result: dict[str, Any] = value
    return result


def _describe(exc: ValidationError) -> str:
    parts = []
    for error in exc.errors():
        where = ".".join(str(item) for item in error["loc"]) or "(top level)"
        if error["type"] == "extra_forbidden":
            message = _unknown_setting(error["loc"])
        else:
            message = error["msg"].removeprefix("Value error, ")
        parts.append(f"{where}: {message}")
    return "; ".join(parts)


def _unknown_setting(loc: tuple[int | str, ...]) -> str:
    """'no such setting', with the closest valid name and every valid name at that level."""
    model: type[BaseModel] = Settings
    for part in loc[:-1]:
        if isinstance(part, str) and part in model.model_fields:
            model = _model_in(model.model_fields[part].annotation) or model
    valid = [name for name in model.model_fields if name != "environment"]
    close = difflib.get_close_matches(str(loc[-1]), valid, n=1)
    hint = f"did you mean {close[0]}? " if close else ""
    return f"no such setting ({hint}valid here: {', '.join(valid)})"


def _model_in(annotation: Any) -> type[BaseModel] | None:
    """The settings model inside a field's type (Gateway, tuple[Model, ...], Tls | None, …)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for argument in get_args(annotation):
        found = _model_in(argument)
        if found is not None:
            return found
    return None
