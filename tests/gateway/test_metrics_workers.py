"""Metrics of the real server with two workers (prometheus_client's multiprocess mode): after N
requests (and each worker's next push, within a second) the request, token and spend counters equal
what was sent, whichever worker served each;
histograms hold every request; the text parses with prometheus_client's parser; a killed worker's
counters stay; the private metrics directory is gone when the gateway stops."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families
from tests.gateway.conftest import GatewayFactory, Running, deployment
from tests.wire import ReplayUpstream, Reply, load

from seance.gateway.metrics import PUSH_INTERVAL

PRICES = {"input_cost_per_token": 0.000001, "output_cost_per_token": 0.000002}
CHAT = load("openai/chat-nonstream.httprr.txt")[0]
STREAM = load("openai/chat-stream-include-usage.httprr.txt")[0]


def usage_of(exchange: Any, stream: bool) -> tuple[int, int]:
    if not stream:
        usage = orjson.loads(exchange.response_body)["usage"]
    else:
        last = [e for e in exchange.response_body.split(b"\n\n") if b'"usage":{' in e][-1]
        usage = orjson.loads(last.removeprefix(b"data: "))["usage"]
    return usage["prompt_tokens"], usage["completion_tokens"]


def scrape(served: Running) -> dict[str, list[Any]]:
    with served.http() as http:
        answer = http.get("/metrics")
    assert answer.status_code == 200, answer.text
    samples: dict[str, list[Any]] = {}
    for family in text_string_to_metric_families(answer.text):
        for sample in family.samples:
            samples.setdefault(sample.name, []).append(sample)
    return samples


def total(samples: dict[str, list[Any]], name: str, **labels: str) -> float:
    return sum(s.value for s in samples.get(name, []) if all(s.labels.get(k) == v for k, v in labels.items()))


def settled(served: Running, check: Callable[[dict[str, list[Any]]], None]) -> dict[str, list[Any]]:
    """A scrape that passes `check` once the other worker pushed its counts (at least once a second)."""
    deadline = time.monotonic() + PUSH_INTERVAL + 5
    while True:
        got = scrape(served)
        try:
            check(got)
            return got
        except AssertionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def workers_of(served: Running) -> list[int]:
    pid = served.process.pid
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return [int(child) for child in children]


@pytest.fixture
def upstream() -> Any:
    with ReplayUpstream() as server:
        yield server


def test_two_workers_count_every_request(gateway: GatewayFactory, upstream: ReplayUpstream, tmp_path: Path) -> None:
    private_tmp = tmp_path / "tmp"
    private_tmp.mkdir()
    config = {
        "model_list": [deployment("gpt", "openai/gpt-3.5-turbo", upstream.url + "/v1", **PRICES)],
        "litellm_settings": {"callbacks": ["prometheus"]},
    }
    served = gateway(config, {"TMPDIR": str(private_tmp)}, args=("--workers", "2"))
    sent, streamed = 16, 8
    for _ in range(sent):
        upstream.add("/v1/chat/completions", CHAT)
    for _ in range(streamed):
        upstream.add("/v1/chat/completions", Reply(200, {"content-type": "text/event-stream"},
                                                   chunks=[STREAM.response_body]))  # fmt: skip
    # the official SDK, a new client (so a new connection) per request: the kernel spreads them over both workers
    for _ in range(sent):
        with served.openai() as client:
            reply = client.chat.completions.create(model="gpt", messages=[{"role": "user", "content": "hi"}])
            assert reply.usage is not None
    for _ in range(streamed):
        with served.openai() as client:
            chunks = list(
                client.chat.completions.create(
                    model="gpt", messages=[{"role": "user", "content": "hi"}], stream=True,
                    stream_options={"include_usage": True},
                )
            )  # fmt: skip
            assert chunks[-1].usage is not None
    (plain_in, plain_out), (stream_in, stream_out) = usage_of(CHAT, False), usage_of(STREAM, True)
    tokens_in = sent * plain_in + streamed * stream_in
    tokens_out = sent * plain_out + streamed * stream_out
    requests = sent + streamed

    def check(got: dict[str, list[Any]]) -> None:
        assert total(got, "litellm_proxy_total_requests_metric_total", requested_model="gpt", status_code="200") == (
            requests
        )
        assert total(got, "litellm_input_tokens_metric_total", model="gpt") == tokens_in
        assert total(got, "litellm_output_tokens_metric_total", model="gpt") == tokens_out
        spend = tokens_in * PRICES["input_cost_per_token"] + tokens_out * PRICES["output_cost_per_token"]
        assert total(got, "litellm_spend_metric_total", model="gpt") == pytest.approx(spend)
        assert total(got, "litellm_request_total_latency_metric_count", requested_model="gpt") == requests
        assert total(got, "litellm_request_total_latency_metric_bucket", requested_model="gpt", le="+Inf") == requests
        assert total(got, "litellm_llm_api_time_to_first_token_metric_count", model="gpt") == streamed

    def pushed(got: dict[str, list[Any]]) -> None:
        check(got)
        assert total(got, "seance_requests_in_flight") == 0

    settled(served, pushed)
    directories = list(private_tmp.glob("seance-metrics-*"))
    assert len(directories) == 1
    writers = {name.stem.rsplit("_", 1)[1] for name in directories[0].glob("counter_*.db")}
    assert len(writers) == 2, "both workers served requests"

    # a worker killed: the parent starts another; what it counted stays counted
    victim = workers_of(served)[0]
    os.kill(victim, signal.SIGKILL)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and (victim in workers_of(served) or len(workers_of(served)) < 2):
        time.sleep(0.1)
    time.sleep(1.0)  # the new worker starts listening
    check(scrape(served))
    assert served.stop() in (0, -signal.SIGTERM)
    assert not list(private_tmp.glob("seance-metrics-*")), "the private metrics directory is removed on exit"


def test_two_workers_show_the_budgets_the_database_has(gateway: GatewayFactory, upstream: ReplayUpstream) -> None:
    """Whichever worker answers a scrape reads the shared database: a key's budget shows at once,
    and is gone from every scrape once the key is deleted (gauges set in the workers' files would
    keep a deleted key's last value until a restart)."""
    config = {
        "model_list": [deployment("gpt", "openai/gpt-3.5-turbo", upstream.url + "/v1", **PRICES)],
        "litellm_settings": {"callbacks": ["prometheus"]},
    }
    served = gateway(config, args=("--workers", "2"))
    with served.http() as http:
        made = http.post("/key/generate", json={"max_budget": 3.0, "key_alias": "budgeted"})
        assert made.status_code == 200, made.text
        key = made.json()["key"]

    def budget() -> list[float]:
        samples = scrape(served).get("litellm_api_key_max_budget_metric", [])  # a new connection: either worker
        return [s.value for s in samples if s.labels["api_key_alias"] == "budgeted"]

    for _ in range(6):
        assert budget() == [3.0]
    with served.http() as http:
        deleted = http.post("/key/delete", json={"keys": [key]})
        assert deleted.status_code == 200, deleted.text
    for _ in range(6):
        assert budget() == []
