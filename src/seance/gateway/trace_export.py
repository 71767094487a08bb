"""Where traces go (`callbacks: ["otel"]`), read from the environment as OpenTelemetry's SDKs and
LiteLLM read it, without importing OpenTelemetry (that happens only when the hook is built).

    endpoint  OTEL_EXPORTER_OTLP_TRACES_ENDPOINT or LiteLLM's OTEL_TRACES_ENDPOINT (the traces URL, as
              is), else OTEL_EXPORTER_OTLP_ENDPOINT or LiteLLM's OTEL_ENDPOINT (a collector's base URL:
              /v1/traces is added, unless it ends so already or is Splunk's /v2/trace/otlp)
    headers   OTEL_EXPORTER_OTLP_TRACES_HEADERS, OTEL_EXPORTER_OTLP_HEADERS or LiteLLM's OTEL_HEADERS:
              `name=value,name=value`, values percent-encoded (`Authorization=Bearer%20xyz`)
    service   OTEL_SERVICE_NAME (default seance); OTEL_ENVIRONMENT_NAME: deployment.environment
    exporter  LiteLLM's OTEL_EXPORTER: otlp_http (the default here) or console (spans printed to
              stdout, for a look without a collector)

Only OTLP/HTTP with protobuf bodies is sent: a gRPC protocol or exporter is warned of (nothing
would arrive at a gRPC port), http/json too (collectors that take OTLP/HTTP take protobuf).
Header values are credentials: they appear in no message.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import unquote

from seance.litellm_config import ConfigError
from seance.litellm_config.suggest import closest

DEFAULT_SERVICE = "seance"
TRACES_PATH = "/v1/traces"
TRACES_URLS = ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_TRACES_ENDPOINT")  # used as they are
ENDPOINTS = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_ENDPOINT")  # base URLs
HEADERS = ("OTEL_EXPORTER_OTLP_TRACES_HEADERS", "OTEL_EXPORTER_OTLP_HEADERS", "OTEL_HEADERS")
PROTOCOLS = ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL")
EXPORTERS = ("otlp_http", "otlp_grpc", "console")


@dataclass(frozen=True)
class TraceExport:
    url: str | None  # the OTLP/HTTP traces URL; None: printed to stdout (OTEL_EXPORTER=console)
    headers: Mapping[str, str] = field(default_factory=dict, repr=False)  # credentials, mostly
    service_name: str = DEFAULT_SERVICE
    environment: str | None = None  # the resource's deployment.environment


def read(env: Mapping[str, str]) -> tuple[TraceExport | None, list[str]]:
    """Where the traces go (None: nowhere is set), and warnings of what is not acted on."""
    warnings = []
    exporter = env.get("OTEL_EXPORTER", "").strip().lower()
    protocol_name = _set(env, PROTOCOLS)
    protocol = env[protocol_name].strip().lower() if protocol_name else ""
    service = env.get("OTEL_SERVICE_NAME", "").strip() or DEFAULT_SERVICE
    environment = env.get("OTEL_ENVIRONMENT_NAME", "").strip() or None
    if exporter == "console":
        return TraceExport(None, {}, service, environment), []
    if exporter and exporter not in EXPORTERS:
        near = closest(exporter, EXPORTERS)
        hint = f"did you mean {near}?" if near else f"one of {', '.join(EXPORTERS)}"
        warnings.append(f"OTEL_EXPORTER {exporter!r} is not an exporter Seance has ({hint}); traces go over OTLP/HTTP")
    grpc = f"{protocol_name}=grpc" if protocol == "grpc" else ""
    if exporter == "otlp_grpc":
        grpc = "OTEL_EXPORTER=otlp_grpc"
    if grpc:
        warnings.append(
            f"{grpc}: Seance sends traces over OTLP/HTTP only; point the endpoint at the collector's "
            "OTLP/HTTP port (4318 by default), not its gRPC one"
        )
    elif protocol == "http/json":
        warnings.append(f"{protocol_name}=http/json: traces are sent as http/protobuf, which OTLP/HTTP collectors take")
    if (named := _set(env, TRACES_URLS)) is not None:
        url = env[named].strip()
    elif (named := _set(env, ENDPOINTS)) is not None:
        url = traces_url(env[named].strip())
    else:
        return None, warnings
    return TraceExport(url, _headers(env), service, environment), warnings


def _set(env: Mapping[str, str], names: tuple[str, ...]) -> str | None:
    """The first of `names` that the environment sets (to more than spaces)."""
    return next((name for name in names if env.get(name, "").strip()), None)


def traces_url(base: str) -> str:
    """A collector's base URL with the traces path the OTLP specification adds to it (not added
    twice: a base that already ends with it is taken as the traces URL, as LiteLLM does; nor to
    Splunk's own traces path)."""
    base = base.rstrip("/")
    return base if base.endswith(TRACES_PATH) or "/v2/trace/otlp" in base else base + TRACES_PATH


def _headers(env: Mapping[str, str]) -> dict[str, str]:
    name = _set(env, HEADERS)
    if name is None:
        return {}
    headers: dict[str, str] = {}
    for number, item in enumerate(env[name].split(","), 1):
        if not item.strip():
            continue
        key, equals, value = item.partition("=")
        if not equals or not key.strip():
            # (the value is a credential: the message names the item, never shows it)
            raise ConfigError(f"{name}: header {number} is not name=value (headers are name=value,name=value)")
        headers[unquote(key.strip())] = unquote(value.strip())
    return headers
