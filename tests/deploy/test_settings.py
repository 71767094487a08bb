from __future__ import annotations

import re

import pytest

from seance.deploy.errors import DeployError
from seance.deploy.settings import load_settings, parse_set_option


def test_environments_differ_where_they_should() -> None:
    dev, prod = load_settings("dev"), load_settings("prod")
    assert (dev.host, prod.host) == ("backend.dev.localhost", "backend.seance.dev")
    assert dev.replicas == 1 and prod.autoscaling.enabled and not dev.autoscaling.enabled
    assert dev.termination_grace_seconds == prod.termination_grace_seconds == 30
    assert load_settings("prod", {"drain_seconds": 120}).termination_grace_seconds == 125


def test_unknown_environment() -> None:
    with pytest.raises(DeployError, match=r"unknown environment 'staging' \(known: dev, prod\)"):
        load_settings("staging")


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"replicas": 0}, "replicas: Input should be greater than or equal to 1"),
        ({"routing": "traefik"}, "routing: Input should be 'ingress', 'httproute' or 'both'"),
        ({"replica": 2}, "replica: no such setting (did you mean replicas? valid here: namespace, host, image,"),
        ({"tls": {"isuer": "x"}}, "tls.isuer: no such setting (valid here: enabled, secret_name, cluster_issuer)"),
        (
            {"gateway": {"models": [{"model_name": "m", "model": "a/b", "rmp": 3}]}},
            "models.0.rmp: no such setting (did you mean rpm?",
        ),
        ({"host": "Not A Host"}, "host: 'Not A Host' is not a DNS host name"),
        ({"resources": {"memory_limit": "lots"}}, "resources.memory_limit: 'lots' is not a Kubernetes quantity"),
        ({"gateway": {"models": [{"model_name": "gpt", "model": "gpt-4o"}]}}, "must be 'provider/name'"),
        ({"autoscaling": {"min_replicas": 5, "max_replicas": 2}}, "max_replicas must be >= min_replicas"),
        ({"environment": "prod"}, "environment='prod' but --env is 'dev'"),
    ],
)
def test_invalid_settings_are_one_clear_line(overrides: dict[str, object], message: str) -> None:
    with pytest.raises(DeployError) as caught:
        load_settings("dev", overrides)
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_overrides_merge_deeply() -> None:
    settings = load_settings("prod", {"gateway": {"workers": 4}, "tls": {"cluster_issuer": None}})
    assert settings.gateway.workers == 4
    assert settings.gateway.cache is True  # prod default kept beside the override
    assert settings.tls.cluster_issuer is None and settings.tls.secret_name == "backend-seance-dev-tls"


def test_set_option() -> None:
    assert parse_set_option("gateway.workers=3") == {"gateway": {"workers": 3}}
    assert parse_set_option("routing=httproute") == {"routing": "httproute"}
    assert parse_set_option("tls.enabled=false") == {"tls": {"enabled": False}}
    assert parse_set_option("image=") == {"image": ""}
    for bad in ["replicas", "=3", "a..b=1"]:
        with pytest.raises(DeployError, match="--set expects path=value"):
            parse_set_option(bad)


LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")


@pytest.mark.parametrize(
    ("image", "version"),
    [
        ("localhost/seance-gateway:0.1.0", "0.1.0"),
        ("registry.example.com:5000/team/seance-gateway:v2_rc.1", "v2_rc.1"),
        ("registry.example.com/seance-gateway", "latest"),
        ("registry.example.com/seance-gateway@sha256:" + "ab" * 32, "abababababab"),
        ("registry.example.com/seance-gateway:1.0@sha256:" + "cd" * 32, "1.0"),
        ("registry.example.com/seance-gateway:" + "x" * 100, "x" * 63),
    ],
)
def test_image_version_is_a_valid_label(image: str, version: str) -> None:
    settings = load_settings("dev", {"image": image})
    assert settings.image_version == version
    assert LABEL_VALUE.match(settings.image_version)


@pytest.mark.parametrize("image", ["", "Seance Gateway", "UPPER/case:1", "repo:tag with space"])
def test_bad_image_reference(image: str) -> None:
    with pytest.raises(DeployError, match="is not an image reference"):
        load_settings("dev", {"image": image})
