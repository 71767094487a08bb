"""Item 2 of issue 13: Replicate's answer names the URL of its stream. The key goes only to the
deployment's own origin or Replicate's own streaming hosts; any other URL is not followed (the
prediction is polled on the deployment's origin instead), so no key and no pool go elsewhere."""

from __future__ import annotations

import orjson
import pytest
from tests.gateway.providers.helpers import make_call

from seance.gateway.errors import UpstreamError
from seance.gateway.providers.base import UpstreamRequest
from seance.gateway.providers.replicate import Replicate

ADAPTER = Replicate()
DEFAULT = "https://api.replicate.com"
MESSAGES = [{"role": "user", "content": "hi"}]


def running(stream_url: str) -> bytes:
    return orjson.dumps({"id": "abc123", "status": "starting", "urls": {"stream": stream_url}})


def follow(base: str, stream_url: str) -> UpstreamRequest:
    call = make_call(
        "chat", {"model": "m", "messages": MESSAGES, "stream": True}, provider="replicate", model="o/m", api_base=base
    )
    request = ADAPTER.parse(call, 201, running(stream_url))
    assert isinstance(request, UpstreamRequest)
    return request


@pytest.mark.parametrize(
    "stream_url",
    [
        "https://streaming-api.svc.us.c.replicate.net/v1/streams/abc",
        "https://stream.replicate.com/v1/streams/abc",
        DEFAULT + "/v1/streams/abc",
    ],
)
def test_replicate_streaming_hosts_are_followed(stream_url: str) -> None:
    request = follow(DEFAULT, stream_url)
    assert request.stream and request.url == stream_url and request.headers["authorization"] == "Bearer test-key"


@pytest.mark.parametrize(
    "stream_url",
    [
        "https://evil.example/v1/streams/abc",
        "https://replicate.net.evil.example/v1/streams/abc",
        "https://evilreplicate.net/v1/streams/abc",
        "http://stream.replicate.com/v1/streams/abc",  # not over TLS
        "https://stream.replicate.com:8443/v1/streams/abc",
        "https://api.replicate.com@evil.example/v1/streams/abc",
        "https://user:pw@stream.replicate.com/v1/streams/abc",
        "/v1/streams/abc",
        "file:///etc/passwd",
    ],
)
def test_other_hosts_are_polled_on_the_deployments_origin_instead(stream_url: str) -> None:
    request = follow(DEFAULT, stream_url)
    assert not request.stream and request.url == DEFAULT + "/v1/predictions/abc123"


def test_a_configured_base_is_the_only_origin_a_stream_is_followed_to() -> None:
    base = "http://127.0.0.1:9999"
    assert follow(base, base + "/v1/streams/abc").stream
    request = follow(base, "https://stream.replicate.com/v1/streams/abc")  # another origin than the configured one
    assert not request.stream and request.url == base + "/v1/predictions/abc123"


def test_a_prediction_id_cannot_steer_the_poll() -> None:
    call = make_call("chat", {"model": "m", "messages": MESSAGES}, provider="replicate", model="o/m", api_base=DEFAULT)
    with pytest.raises(UpstreamError):
        ADAPTER.parse(call, 201, orjson.dumps({"id": "../../v1/account?", "status": "processing"}))
