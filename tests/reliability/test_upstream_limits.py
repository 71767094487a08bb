"""Items 7 to 10 of issue 13, against the real gateway process: what an upstream sends is bounded
(a gzip bomb, a huge header, a huge body: 502 naming the limit, memory flat), a 200 that is not
JSON or not the length it says is a 502, the wait for an upstream connection is the gateway's own
503 (never a 504 blaming the provider), and a body nested too deep is a 400."""

from __future__ import annotations

import threading
import time
import zlib
from collections.abc import Iterator

import orjson
import pytest
from tests.gateway.conftest import GatewayFactory, Running
from tests.reliability.raw import OK_JSON, ThreadedRecorder, alive, http_answer, rss_kib

LIMITS = ("--upstream-max-body-bytes", str(2**20), "--upstream-connections", "2", "--upstream-pool-timeout", "0.5")


def gzip_bomb(inflated: int) -> bytes:
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)
    zeros = bytes(2**20)
    return b"".join(packer.compress(zeros) for _ in range(inflated // 2**20)) + packer.flush()


BOMB = gzip_bomb(200 * 2**20)  # ~200 KB on the wire
ANSWERS: dict[bytes, bytes | tuple[float, bytes]] = {
    b"bomb": http_answer(BOMB, headers=b"content-type: application/json\r\ncontent-encoding: gzip\r\n"),
    b"bighead": b"HTTP/1.1 200 OK\r\nx-big: " + b"a" * (20 * 2**20) + b"\r\ncontent-length: 2\r\n\r\n{}",
    b"bigbody": http_answer(b'{"a":"' + b"a" * (3 * 2**20) + b'"}'),
    b"notjson": http_answer(b"{this is not json"),
    b"html": http_answer(b"<html>bad gateway</html>", headers=b"content-type: text/html\r\n"),
    b"long": b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\n" + OK_JSON,
    b"short": b"HTTP/1.1 200 OK\r\ncontent-length: 1000\r\nconnection: close\r\n\r\n" + OK_JSON,
    b"ok": http_answer(OK_JSON),
    b"slow": (2.0, http_answer(OK_JSON)),
}
KINDS = [kind.decode() for kind in ANSWERS]


def answer(head: bytes) -> bytes | tuple[float, bytes]:
    kind = head.split(b" ", 2)[1].split(b"/")[1]
    return ANSWERS[kind]


@pytest.fixture(scope="module")
def served(module_gateway: GatewayFactory) -> Iterator[Running]:
    with ThreadedRecorder(answer) as upstream:
        entries = [
            {"model_name": kind, "litellm_params": {"model": "openai/gpt-4o", "api_base": f"{upstream.url}/{kind}/v1"}}
            for kind in KINDS
        ]
        entries.append({"model_name": "defaults", "litellm_params": {"model": "openai/gpt-4o", "temperature": 0.5,
                                                                     "api_base": f"{upstream.url}/ok/v1"}})  # fmt: skip
        config = {"model_list": entries, "litellm_settings": {"num_retries": 0}}
        yield module_gateway(config, {"OPENAI_API_KEY": "sk-x"}, args=(*LIMITS, "--allow-no-auth"), master_key=None)


def chat(served: Running, model: str, raw_field: bytes = b"", **extra: object) -> tuple[int, dict[str, object]]:
    body = orjson.dumps({"model": model, "messages": [{"role": "user", "content": "hi"}], **extra})
    if raw_field:  # JSON that orjson could not write
        body = body[:-1] + b"," + raw_field + b"}"
    with served.http() as http:
        response = http.post("/v1/chat/completions", content=body)
        return response.status_code, response.json()


def test_a_gzip_bomb_and_huge_answers_are_bounded(served: Running) -> None:
    before = rss_kib(served.process.pid)
    for model, words in (("bomb", "inflates"), ("bighead", "headers are larger"), ("bigbody", "limit of 1048576")):
        started = time.monotonic()
        status, body = chat(served, model)
        assert status == 502 and words in str(body), (model, body)
        assert time.monotonic() - started < 3, model
        assert alive(served.url) < 0.5
    assert rss_kib(served.process.pid) - before < 60_000  # KiB; unbounded, the bomb alone took 200 MB


def test_four_huge_answers_at_once_stay_bounded(served: Running) -> None:
    before = rss_kib(served.process.pid)
    statuses: list[int] = []
    threads = [threading.Thread(target=lambda: statuses.append(chat(served, "bigbody")[0])) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(20)
    assert statuses == [502] * 4
    assert rss_kib(served.process.pid) - before < 40_000


@pytest.mark.parametrize("model", ["notjson", "html", "long", "short"])
def test_a_200_that_is_not_json_or_not_its_length_is_a_502(served: Running, model: str) -> None:
    status, body = chat(served, model)
    assert status == 502, body
    assert chat(served, "ok")[0] == 200  # and the pool is fine afterwards


def test_waiting_for_an_upstream_connection_is_the_gateways_503(served: Running) -> None:
    results: list[tuple[int, dict[str, object]]] = []
    threads = [threading.Thread(target=lambda: results.append(chat(served, "slow"))) for _ in range(3)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
        time.sleep(0.05)
    threads[-1].join(5)
    assert time.monotonic() - started < 1.5  # the third waited 0.5 s for a connection, not 2 s
    for thread in threads:
        thread.join(10)
    statuses = sorted(status for status, _ in results)
    assert statuses == [200, 200, 503], results
    message = next(str(body) for status, body in results if status == 503)
    assert "gateway's limit of 2 concurrent connections" in message and "provider was not asked" in message


@pytest.mark.parametrize("depth", [255, 600, 1000])
def test_a_body_nested_too_deep_is_a_400(served: Running, depth: int) -> None:
    deep = b'"response_format":{"deep":' + b"[" * depth + b'"x"' + b"]" * depth + b"}"
    status, body = chat(served, "defaults", deep)  # re-serialized: default params
    assert status == 400 and "nests deeper" in str(body)


def test_a_body_nested_reasonably_is_served(served: Running) -> None:
    deep = b'"response_format":{"deep":' + b"[" * 150 + b'"x"' + b"]" * 150 + b"}"
    assert chat(served, "defaults", deep)[0] == 200
