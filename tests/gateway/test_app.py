"""The HTTP surface of the real gateway process: auth, headers, bad input, routing, failures."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator
from importlib import resources
from pathlib import Path

import anyio
import openai
import orjson
import pytest
from tests.gateway.conftest import MASTER_KEY, GatewayFactory, Running, deployment
from tests.wire import ReplayUpstream, Reply, load

from seance.gateway.context import new_request_id

CHAT = load("openai/chat-nonstream.httprr.txt")[0]
MESSAGES = [{"role": "user", "content": "Hello, how are you?"}]


@pytest.fixture(scope="module")
def upstream() -> Iterator[ReplayUpstream]:
    with ReplayUpstream() as server:
        yield server


@pytest.fixture(scope="module")
def served(module_gateway: GatewayFactory, upstream: ReplayUpstream) -> Running:
    config = {
        "model_list": [
            deployment("gpt", "openai/gpt-3.5-turbo", upstream.url + "/v1"),
            deployment("warm", "openai/gpt-3.5-turbo", upstream.url + "/v1", temperature=0.7, max_tokens=9),
            deployment("pair", "openai/gpt-3.5-turbo", upstream.url + "/a/v1"),
            deployment("pair", "openai/gpt-3.5-turbo", upstream.url + "/b/v1"),
            deployment("flaky", "openai/gpt-3.5-turbo", upstream.url + "/flaky/v1"),
            deployment("backup", "openai/gpt-3.5-turbo", upstream.url + "/backup/v1"),
            deployment("long", "openai/gpt-3.5-turbo", upstream.url + "/long/v1"),
            deployment("slow", "openai/gpt-3.5-turbo", upstream.url + "/slow/v1", timeout=0.5),
            deployment("keyed", "openai/gpt-3.5-turbo", upstream.url + "/keyed/v1", api_key="os.environ/UP_KEY"),
            deployment("azure-gpt", "azure/my-deployment", upstream.url, api_version="2024-06-01"),
            {
                **deployment("priced", "openai/gpt-3.5-turbo", upstream.url + "/v1"),
                "model_info": {"input_cost_per_token": 0.5e-6, "output_cost_per_token": 1.5e-6},
            },
            {
                "model_name": "openai/*",
                "litellm_params": {"model": "openai/*", "api_base": upstream.url + "/wild/v1", "api_key": "sk-wild"},
            },
        ],
        "litellm_settings": {
            "num_retries": 1, "fallbacks": [{"flaky": ["backup"]}], "context_window_fallbacks": [{"flaky": ["long"]}],
        },
    }  # fmt: skip
    return module_gateway(config, {"UP_KEY": "sk-from-env"})


def post(served: Running, path: str, body: object, **headers: str) -> tuple[int, dict[str, str], dict[str, object]]:
    with served.http() as http:
        content = body if isinstance(body, bytes) else orjson.dumps(body)
        response = http.post(path, content=content, headers=headers)
        return response.status_code, dict(response.headers), response.json()


def error_of(payload: dict[str, object]) -> dict[str, object]:
    error = payload["error"]
    assert isinstance(error, dict)
    assert set(error) == {"message", "type", "param", "code"}
    return error


# -- health and models --


def test_liveness_and_readiness_need_no_key(served: Running) -> None:
    with served.http() as http:
        http.headers.pop("authorization")
        for path in ("/health/liveliness", "/health/liveness", "/health/readiness"):
            assert http.get(path).status_code == 200
        # (the default store: SQLite seance.db in the working folder)
        assert http.get("/health/readiness").json() == {"status": "healthy", "db": "connected", "cache": None}
        assert http.get("/health").status_code == 401


def test_models_lists_groups_both_with_and_without_v1(served: Running) -> None:
    ids = [m.id for m in served.openai().models.list()]
    assert ids[:3] == ["gpt", "warm", "pair"]
    # the `openai/*` wildcard lists OpenAI's models of the catalogue, as a client names them
    assert {"openai/gpt-4o", "openai/gpt-4o-mini", "openai/text-embedding-3-small"} <= set(ids)
    assert "openai/*" not in ids and not any(i.startswith("openai/ft:") for i in ids)
    with served.http() as http:
        assert http.get("/models").json()["data"][0]["id"] == "gpt"


def test_retrieve_one_model(served: Running) -> None:
    client = served.openai()
    assert client.models.retrieve("warm").id == "warm"
    assert client.models.retrieve("openai/gpt-4.1-mini").id == "openai/gpt-4.1-mini"  # a wildcard match
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("nope")


def test_health_reports_deployments_without_secrets(served: Running) -> None:
    with served.http() as http:
        report = http.get("/health").json()
    assert report["healthy_count"] + report["unhealthy_count"] == 11
    assert "sk-up" not in orjson.dumps(report).decode()
    assert "sk-from-env" not in orjson.dumps(report).decode()


# -- auth --


@pytest.mark.parametrize(
    "headers",
    [{}, {"authorization": "Bearer wrong"}, {"x-api-key": "wrong"}, {"authorization": "Basic " + MASTER_KEY}],
)
def test_bad_or_missing_key_is_401(served: Running, headers: dict[str, str]) -> None:
    with served.http() as http:
        http.headers.pop("authorization")
        response = http.post("/v1/chat/completions", json={"model": "gpt", "messages": MESSAGES}, headers=headers)
    assert response.status_code == 401
    assert error_of(response.json())["type"] == "authentication_error"


def test_x_api_key_header_is_accepted(served: Running, upstream: ReplayUpstream) -> None:
    upstream.add("/v1/chat/completions", CHAT)
    with served.http() as http:
        http.headers.pop("authorization")
        response = http.post(
            "/chat/completions", json={"model": "gpt", "messages": MESSAGES}, headers={"x-api-key": MASTER_KEY}
        )
    assert response.status_code == 200


# -- headers --


def test_request_id_is_echoed_and_model_id_reported(served: Running, upstream: ReplayUpstream) -> None:
    upstream.add("/v1/chat/completions", CHAT)
    status, headers, _ = post(served, "/v1/chat/completions", {"model": "gpt", "messages": MESSAGES},
                              **{"x-request-id": "trace-42"})  # fmt: skip
    assert status == 200
    assert headers["x-request-id"] == headers["x-litellm-call-id"] == "trace-42"
    assert len(headers["x-litellm-model-id"]) == 64
    assert headers["x-litellm-attempted-retries"] == "0"


def test_providers_rate_limit_headers_reach_a_caller_without_limits(served: Running, upstream: ReplayUpstream) -> None:
    """The master key has no rate limits of its own: its answers say what the provider's have left,
    as LiteLLM's proxy does (the recording's own values, OpenAI's names)."""
    upstream.add("/v1/chat/completions", CHAT)
    raw = served.openai().chat.completions.with_raw_response.create(model="gpt", messages=MESSAGES)
    recorded = CHAT.response_headers
    for name in ("limit-requests", "limit-tokens", "remaining-requests", "remaining-tokens", "reset-requests",
                 "reset-tokens"):  # fmt: skip
        assert raw.headers["x-ratelimit-" + name] == recorded["x-ratelimit-" + name]
    stream_exchange = load("openai/chat-stream-tools-include-usage.yaml")[0]
    upstream.add("/v1/chat/completions", stream_exchange)
    body = {**stream_exchange.request_json(), "model": "gpt"}
    with served.http() as http, http.stream("POST", "/v1/chat/completions", json=body) as answer:
        assert answer.status_code == 200
        assert (
            answer.headers["x-ratelimit-remaining-requests"]
            == stream_exchange.response_headers["x-ratelimit-remaining-requests"]
        )
        answer.read()


def test_response_cost_from_model_info_prices(served: Running, upstream: ReplayUpstream) -> None:
    upstream.add("/v1/chat/completions", CHAT)
    status, headers, _ = post(served, "/v1/chat/completions", {"model": "priced", "messages": MESSAGES})
    usage = CHAT.response_json()["usage"]
    expected = usage["prompt_tokens"] * 0.5e-6 + usage["completion_tokens"] * 1.5e-6
    assert status == 200
    assert float(headers["x-litellm-response-cost"]) == pytest.approx(expected)


def test_response_cost_from_the_catalogue(served: Running, upstream: ReplayUpstream) -> None:
    upstream.add("/v1/chat/completions", CHAT)
    client = served.openai()
    raw = client.chat.completions.with_raw_response.create(model="gpt", messages=MESSAGES)
    shipped = resources.files("seance.gateway.catalogue").joinpath("model_prices_and_context_window.json")
    prices = orjson.loads(shipped.read_bytes())["gpt-3.5-turbo"]  # what "gpt" is, and no price in its entry
    usage = CHAT.response_json()["usage"]
    expected = usage["prompt_tokens"] * prices["input_cost_per_token"]
    expected += usage["completion_tokens"] * prices["output_cost_per_token"]
    assert float(raw.headers["x-litellm-response-cost"]) == pytest.approx(expected, rel=1e-12)


def test_model_info_endpoints_over_http(served: Running) -> None:
    with served.http() as http:
        info = http.get("/model/info").json()["data"]
        assert http.get("/model/info", headers={"authorization": "Bearer wrong"}).status_code == 401
        groups = http.get("/model_group/info", params={"model_group": "azure-gpt"}).json()["data"]
        page = http.get("/v2/model/info", params={"size": 3}).json()
    by_name = {item["model_name"]: item for item in info}
    assert by_name["keyed"]["litellm_params"]["model"] == "openai/gpt-3.5-turbo"
    assert "sk-from-env" not in str(info) and "sk-wild" not in str(info)
    assert by_name["priced"]["model_info"]["input_cost_per_token"] == 0.5e-6
    assert by_name["gpt"]["model_info"]["max_input_tokens"] == 16385
    assert [g["providers"] for g in groups] == [["azure"]]
    assert len(page["data"]) == 3 and page["total_count"] == len(info)


def test_request_id_is_generated_when_absent(served: Running) -> None:
    _, headers, _ = post(served, "/v1/chat/completions", b"{")
    assert len(headers["x-request-id"]) == 32


def test_generated_request_ids_are_uuid7_in_time_order() -> None:
    ids = [new_request_id() for _ in range(1000)]  # (past two reads of random bytes: 409 ids each)
    assert all(uuid.UUID(i).version == 7 and uuid.UUID(i).variant == uuid.RFC_4122 for i in ids)
    assert len(set(ids)) == len(ids)
    time.sleep(0.002)
    assert new_request_id()[:12] > ids[0][:12]  # milliseconds first: later ids sort after


def test_a_forked_worker_does_not_repeat_the_ids_of_its_parent() -> None:
    new_request_id()  # the parent holds random bytes it has not used yet
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: the id it would share with its parent without its own bytes
        os.write(write, new_request_id().encode())
        os._exit(0)
    os.close(write)
    os.waitpid(pid, 0)
    child = os.read(read, 64).decode()
    os.close(read)
    assert len(child) == 32 and child[12:] != new_request_id()[12:]  # (after the 48 bits of time)


# -- bad input: a 4xx that says what to fix, never a 500 --


@pytest.mark.parametrize(
    ("body", "status", "needle"),
    [
        (b"{not json", 400, "not valid JSON"),
        (b"", 400, "not valid JSON"),
        (b"[1, 2]", 400, "JSON object"),
        ({"messages": MESSAGES}, 400, "'model' is missing"),
        ({"model": 7, "messages": MESSAGES}, 400, "'model' must be"),
        ({"model": "gpt"}, 400, "'messages' is missing"),
        ({"model": "gpt", "messages": []}, 400, "'messages' must be"),
        ({"model": "gpt", "messages": "hi"}, 400, "'messages' must be"),
        ({"model": "gpt", "messages": ["hi"]}, 400, "every item"),
        ({"model": "gpt", "messages": MESSAGES, "stream": "yes"}, 400, "'stream'"),
        ({"model": "no-such-model", "messages": MESSAGES}, 404, "available models: gpt"),
    ],
)
def test_bad_chat_requests(served: Running, body: object, status: int, needle: str) -> None:
    got, _, payload = post(served, "/v1/chat/completions", body)
    assert got == status
    assert needle in str(error_of(payload)["message"])


def test_bad_embeddings_request_names_the_field(served: Running) -> None:
    status, _, payload = post(served, "/v1/embeddings", {"model": "gpt", "input": 5})
    assert status == 400
    assert error_of(payload)["param"] == "input"


def test_unknown_model_with_the_sdk(served: Running) -> None:
    with pytest.raises(openai.NotFoundError) as caught:
        served.openai().chat.completions.create(model="nope", messages=MESSAGES)  # type: ignore[arg-type]
    assert "not served here" in caught.value.message


def test_announced_huge_body_is_413_without_reading_it(served: Running) -> None:
    status, payload = raw_request(served, b"POST", b"/v1/chat/completions", 65 * 1024 * 1024, b"{}")
    assert status == 413
    assert "larger than" in payload["error"]["message"]


def test_huge_body_sent_in_full_is_413(served: Running) -> None:
    body = b'{"model": "gpt", "messages": [{"role": "user", "content": "' + b"x" * (65 * 1024 * 1024) + b'"}]}'
    status, _, _payload = post(served, "/v1/chat/completions", body)
    assert status == 413


def test_unknown_path_and_wrong_method(served: Running) -> None:
    with served.http() as http:
        assert http.get("/v2/nothing").status_code == 404
        response = http.get("/v1/chat/completions")
        assert response.status_code == 405
        assert "accepts POST" in response.json()["error"]["message"]


def raw_request(served: Running, method: bytes, path: bytes, length: int, body: bytes) -> tuple[int, dict]:  # type: ignore[type-arg]
    """A request whose Content-Length we choose (clients refuse to lie about it)."""

    async def go() -> tuple[int, dict]:  # type: ignore[type-arg]
        port = int(served.url.rsplit(":", 1)[1])
        stream = await anyio.connect_tcp("127.0.0.1", port)
        async with stream:
            head = (
                method + b" " + path + b" HTTP/1.1\r\nhost: x\r\nauthorization: Bearer " + MASTER_KEY.encode()
                + b"\r\ncontent-type: application/json\r\ncontent-length: " + str(length).encode() + b"\r\n\r\n"
            )  # fmt: skip
            await stream.send(head + body)
            data = b""
            while b"\r\n\r\n" not in data or len(data.split(b"\r\n\r\n", 1)[1]) < _length(data):
                data += await stream.receive()
        status = int(data.split(b" ", 2)[1])
        return status, orjson.loads(data.split(b"\r\n\r\n", 1)[1])

    return anyio.run(go)


def _length(data: bytes) -> int:
    for line in data.split(b"\r\n\r\n", 1)[0].split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            return int(line.split(b":")[1])
    return 0


# -- routing: defaults, groups, retries, fallbacks, timeouts, wildcards, env keys --


def test_deployment_defaults_fill_in_but_never_override(served: Running, upstream: ReplayUpstream) -> None:
    upstream.add("/v1/chat/completions", CHAT)
    upstream.add("/v1/chat/completions", CHAT)
    client = served.openai()
    client.chat.completions.create(model="warm", messages=MESSAGES)  # type: ignore[arg-type]
    assert upstream.requests[-1].json()["temperature"] == 0.7
    client.chat.completions.create(model="warm", messages=MESSAGES, temperature=0)  # type: ignore[arg-type]
    sent = upstream.requests[-1].json()
    assert sent["temperature"] == 0
    assert sent["max_tokens"] == 9


def test_a_failed_deployment_is_retried_on_the_other_one(served: Running, upstream: ReplayUpstream) -> None:
    boom = Reply(500, {"content-type": "application/json"}, b'{"error": {"message": "overloaded"}}')
    upstream.add("/a/v1/chat/completions", boom)
    upstream.add("/b/v1/chat/completions", boom)
    status, headers, payload = post(served, "/v1/chat/completions", {"model": "pair", "messages": MESSAGES})
    assert status == 502
    assert "overloaded" in str(error_of(payload)["message"])
    assert headers["x-litellm-attempted-retries"] == "1"
    assert not upstream.pending()  # the retry went to the other deployment, not the same one twice


def test_retry_then_fallback_group(served: Running, upstream: ReplayUpstream) -> None:
    boom = Reply(503, {"content-type": "application/json"}, b'{"error": {"message": "try later"}}')
    upstream.add("/flaky/v1/chat/completions", boom)
    upstream.add("/flaky/v1/chat/completions", boom)
    upstream.add("/backup/v1/chat/completions", CHAT)
    status, headers, payload = post(served, "/v1/chat/completions", {"model": "flaky", "messages": MESSAGES})
    assert status == 200
    assert headers["x-litellm-attempted-retries"] == "1"
    assert headers["x-litellm-attempted-fallbacks"] == "1"
    assert payload["id"] == CHAT.response_json()["id"]


def test_a_context_length_error_goes_to_the_context_window_fallback(served: Running, upstream: ReplayUpstream) -> None:
    too_long = orjson.dumps({"error": {
        "message": "This model's maximum context length is 4097 tokens. However, your messages resulted in 5613.",
        "type": "invalid_request_error", "param": "messages", "code": "context_length_exceeded"}})  # fmt: skip
    upstream.add("/flaky/v1/chat/completions", Reply(400, {"content-type": "application/json"}, too_long))
    upstream.add("/long/v1/chat/completions", CHAT)
    raw = served.openai().chat.completions.with_raw_response.create(model="flaky", messages=MESSAGES)  # type: ignore[arg-type]
    assert raw.parse().id == CHAT.response_json()["id"]
    assert raw.headers["x-litellm-attempted-fallbacks"] == "1" and raw.headers["x-litellm-attempted-retries"] == "0"
    assert not upstream.pending()  # not retried on flaky, and not sent to its ordinary fallback


def test_client_errors_are_not_retried(served: Running, upstream: ReplayUpstream) -> None:
    upstream.add("/flaky/v1/chat/completions", Reply(400, {}, b'{"error": {"message": "bad tool"}}'))
    status, _, payload = post(served, "/v1/chat/completions", {"model": "flaky", "messages": MESSAGES})
    assert status == 400
    assert "bad tool" in str(error_of(payload)["message"])
    assert not upstream.pending()


def test_upstream_timeout_is_504(served: Running, upstream: ReplayUpstream) -> None:
    for _ in range(2):  # the first try and its retry
        upstream.add("/slow/v1/chat/completions", Reply(200, {}, CHAT.response_body, delay=3))
    status, _, payload = post(served, "/v1/chat/completions", {"model": "slow", "messages": MESSAGES})
    assert status == 504
    assert error_of(payload)["type"] == "timeout"


def test_upstream_garbage_is_502(served: Running, upstream: ReplayUpstream) -> None:
    for _ in range(2):
        upstream.add("/keyed/v1/chat/completions", Reply(200, {"content-type": "text/html"}, b"<html>oops</html>"))
    status, _, payload = post(served, "/v1/chat/completions", {"model": "keyed", "messages": MESSAGES})
    assert status == 502
    assert "not JSON" in str(error_of(payload)["message"])


def test_the_body_cannot_redirect_the_gateway(served: Running, upstream: ReplayUpstream) -> None:
    upstream.add("/v1/chat/completions", CHAT)
    body = {"model": "gpt", "messages": MESSAGES, "api_base": "http://127.0.0.1:9/steal", "base_url": "http://x",
            "api_key": "sk-attacker"}  # fmt: skip
    status, _, _ = post(served, "/v1/chat/completions", body)
    assert status == 200  # served by the configured upstream, with the configured key
    assert upstream.requests[-1].path == "/v1/chat/completions"
    assert upstream.requests[-1].headers["authorization"] == "Bearer sk-up"
    assert upstream.requests[-1].json() == {"model": "gpt-3.5-turbo", "messages": MESSAGES}


def test_key_from_os_environ_reference(served: Running, upstream: ReplayUpstream) -> None:
    upstream.add("/keyed/v1/chat/completions", CHAT)
    served.openai().chat.completions.create(model="keyed", messages=MESSAGES)  # type: ignore[arg-type]
    assert upstream.requests[-1].headers["authorization"] == "Bearer sk-from-env"


def test_wildcard_group(served: Running, upstream: ReplayUpstream) -> None:
    upstream.add("/wild/v1/chat/completions", CHAT)
    served.openai().chat.completions.create(model="openai/gpt-4.1-nano", messages=MESSAGES)  # type: ignore[arg-type]
    received = upstream.requests[-1]
    assert received.json()["model"] == "gpt-4.1-nano"
    assert received.headers["authorization"] == "Bearer sk-wild"


def test_azure_deployment_path_version_and_key_header(served: Running, upstream: ReplayUpstream) -> None:
    upstream.add("/openai/deployments/my-deployment/chat/completions", CHAT)
    reply = served.openai().chat.completions.create(model="azure-gpt", messages=MESSAGES)  # type: ignore[arg-type]
    assert reply.id == CHAT.response_json()["id"]
    received = upstream.requests[-1]
    assert received.query == {"api-version": "2024-06-01"}
    assert received.headers["api-key"] == "sk-up"
    assert "authorization" not in received.headers


async def test_async_client_streams(served: Running, upstream: ReplayUpstream) -> None:
    exchange = load("openai/chat-stream-include-usage.httprr.txt")[0]
    upstream.add("/v1/chat/completions", exchange)
    client = served.async_openai()
    stream = await client.chat.completions.create(
        model="gpt", messages=[{"role": "user", "content": "Count from 1 to 5"}], stream=True,
        stream_options={"include_usage": True}, max_completion_tokens=50, temperature=0,
    )  # fmt: skip
    text = ""
    usage = None
    async for chunk in stream:
        if chunk.choices:
            text += chunk.choices[0].delta.content or ""
        usage = chunk.usage or usage
    assert "1" in text and "5" in text
    assert usage is not None and usage.total_tokens > 0
    await client.close()


# -- a bug is still answered in the client's error shape, and a stream still ends with an event --


class _Broken:
    """An adapter stand-in whose parse and stream translation fail as a bug would."""

    def __init__(self, real: object) -> None:
        self.real = real

    def __getattr__(self, name: str) -> object:
        return getattr(self.real, name)

    def parse(self, *args: object) -> object:
        raise KeyError("choices")

    def stream(self, call: object) -> object:
        class Translator:
            usage = None

            def feed(self, data: bytes) -> bytes:
                raise KeyError("delta")

            def close(self) -> bytes:
                return b""

        return Translator()


def drive(app: object, body: dict[str, object]) -> tuple[int, bytes]:
    """One request through the ASGI app in this process."""
    import asyncio

    raw = orjson.dumps(body)
    scope = {"type": "http", "method": "POST", "path": "/v1/chat/completions",
             "headers": [(b"authorization", b"Bearer k"), (b"content-length", str(len(raw)).encode())]}  # fmt: skip
    messages: list[dict[str, object]] = []

    async def go() -> None:
        sent = False
        forever = asyncio.get_running_loop().create_future()

        async def receive() -> dict[str, object]:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": raw, "more_body": False}
            return await forever  # type: ignore[no-any-return]

        async def send(message: dict[str, object]) -> None:
            messages.append(message)

        await app(scope, receive, send)  # type: ignore[operator]
        await app.transport.close()  # type: ignore[attr-defined]

    asyncio.run(go())
    status = messages[0]["status"]
    assert isinstance(status, int)
    return status, b"".join(m.get("body", b"") for m in messages[1:])  # type: ignore[misc]


def test_a_bug_is_a_500_envelope_and_a_stream_ends_with_an_error_event(tmp_path: Path) -> None:
    from seance.gateway.app import Gateway
    from seance.gateway.config import load_settings

    with ReplayUpstream() as upstream:
        path = tmp_path / "config.yaml"
        config = {"model_list": [deployment("gpt", "openai/gpt-3.5-turbo", upstream.url + "/v1")]}
        path.write_bytes(orjson.dumps(config))
        app = Gateway(load_settings(path, {"LITELLM_MASTER_KEY": "k"}))
        (only,) = app.deployments.lookup("gpt")
        object.__setattr__(only, "adapter", _Broken(only.adapter))
        upstream.add("/v1/chat/completions", CHAT)
        status, body = drive(app, {"model": "gpt", "messages": MESSAGES})
        assert status == 500
        assert "internal error" in orjson.loads(body)["error"]["message"]
        upstream.add("/v1/chat/completions", load("openai/chat-stream-include-usage.httprr.txt")[0])
        status, body = drive(app, {"model": "gpt", "messages": MESSAGES, "stream": True})
        assert status == 200
        assert b'"error"' in body and body.endswith(b"data: [DONE]\n\n")
