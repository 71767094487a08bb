"""Item 3 of issue 13: a provider that echoes a key in its error text must not show it to the
client, the log or /health; and URLs are never shown with the user:password in them."""

from __future__ import annotations

from collections.abc import Iterator

import orjson
import pytest
from tests.gateway.conftest import MASTER_KEY, GatewayFactory, Running
from tests.wire import ReplayUpstream, Reply

from seance.gateway.errors import Redactor
from seance.gateway.upstream import public_url

KEY = "sk-live-provider-0123456789abcdef"
ENV_KEY = "sk-env-anthropic-fedcba9876543210"
PASSWORD = "basic-auth-pw-1234"
CHAT = {"model": "gpt", "messages": [{"role": "user", "content": "hi"}]}


@pytest.fixture(scope="module")
def upstream() -> Iterator[ReplayUpstream]:
    with ReplayUpstream() as server:
        yield server


@pytest.fixture(scope="module")
def served(module_gateway: GatewayFactory, upstream: ReplayUpstream) -> Running:
    base = upstream.url.replace("http://", f"http://user:{PASSWORD}@")
    config = {
        "model_list": [
            {"model_name": "gpt", "litellm_params": {"model": "openai/gpt-4o", "api_base": upstream.url + "/v1",
                                                     "api_key": KEY}},
            {"model_name": "basic", "litellm_params": {"model": "openai/gpt-4o", "api_base": base + "/basic/v1",
                                                       "api_key": KEY}},
        ],
        "litellm_settings": {"num_retries": 0},
    }  # fmt: skip
    return module_gateway(config, {"ANTHROPIC_API_KEY": ENV_KEY})


def post(served: Running, body: dict[str, object]) -> tuple[int, bytes]:
    with served.http() as http:
        response = http.post("/v1/chat/completions", content=orjson.dumps(body))
        return response.status_code, response.read()


@pytest.mark.parametrize(
    "echo",
    [
        orjson.dumps({"error": {"message": f"Incorrect API key provided: {KEY}.", "type": "invalid_request_error"}}),
        orjson.dumps({"error": {"message": f"you sent {MASTER_KEY} and {ENV_KEY}"}}),
        b"x" * (500 - 20) + KEY.encode(),  # cut where the gateway truncates a text answer
    ],
)
def test_a_key_echoed_in_an_error_is_redacted(served: Running, upstream: ReplayUpstream, echo: bytes) -> None:
    upstream.add("/v1/chat/completions", Reply(401, {"content-type": "application/json"}, echo))
    status, body = post(served, CHAT)
    assert status == 401
    message = orjson.loads(body)["error"]["message"]
    assert "[redacted]" in message
    for secret in (KEY, MASTER_KEY, ENV_KEY, KEY[:12]):
        assert secret not in message


def test_a_key_echoed_in_a_stream_error_event_is_redacted(served: Running, upstream: ReplayUpstream) -> None:
    event = b"data: " + orjson.dumps({"error": {"message": f"bad key {KEY}"}}) + b"\n\n"
    upstream.add("/v1/chat/completions", Reply(200, {"content-type": "text/event-stream"}, chunks=[event]))
    with served.http() as http:
        body = http.post("/v1/chat/completions", content=orjson.dumps({**CHAT, "stream": True})).read()
    assert b"error" in body and KEY.encode() not in body


def test_health_and_the_log_never_show_a_secret(served: Running, upstream: ReplayUpstream) -> None:
    upstream.add("/v1/chat/completions", Reply(500, {}, f"internal: key {KEY} rejected".encode()))
    assert post(served, CHAT)[0] == 502
    with served.http() as http:
        report = http.get("/health").read()
    assert PASSWORD.encode() not in report and KEY.encode() not in report
    assert b'"api_base":"http://127.0.0.1:' in report and b"[redacted]" in report
    log = served.output()
    for secret in (KEY, MASTER_KEY, ENV_KEY, PASSWORD):
        assert secret not in log


def test_the_redactor_and_public_urls() -> None:
    redact = Redactor([KEY, None, "short", ""])
    assert redact(f"a {KEY} b") == "a [redacted] b"
    assert redact("short words stay") == "short words stay"
    assert redact("cut " + KEY[:10]) == "cut [redacted]"
    assert not Redactor([None, "tiny"])
    assert public_url(f"https://u:{PASSWORD}@host:8443/v1?key=abc") == "https://host:8443/v1?…"
    assert public_url("https://host/v1") == "https://host/v1"
