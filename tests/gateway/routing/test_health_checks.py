"""Background health checks: one cheap call per configured deployment, feeding /health (with
?model=) and the cooldowns; /health itself never calls a provider; with a shared Redis, one round
per interval for all the gateways, whose /health all show what it found."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import uuid
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import orjson
import pytest
from tests.gateway.asgi_client import deployment, make_app, request
from tests.gateway.conftest import GatewayFactory
from tests.gateway.conftest import deployment as deployment_entry
from tests.gateway.routing.test_bus import REDIS
from tests.gateway.routing.test_router import CHAT, OK, by_host

from seance.gateway.upstream import UpstreamRequest
from seance.gateway.upstream.mock import MockResponse

EMBEDDING = b'{"object":"list","data":[{"object":"embedding","index":0,"embedding":[0.1]}],"model":"e","usage":{"prompt_tokens":1,"total_tokens":1}}'  # noqa: E501


def _config(**general: Any) -> dict[str, Any]:
    return {
        "model_list": [
            deployment("gpt", "openai/gpt-4o", api_base="http://a.test", model_info={"id": "a"}),
            deployment("gpt", "openai/gpt-4o", api_base="http://b.test", model_info={"id": "b"}),
            deployment("embed", "openai/text-embedding-3-small", api_base="http://e.test",
                       model_info={"id": "e", "mode": "embedding"}),
            deployment("cheap", "openai/gpt-4o", api_base="http://c.test",
                       model_info={"id": "c", "health_check_model": "openai/gpt-4o-mini"}),
            {"model_name": "groq/*", "litellm_params": {"model": "groq/*", "api_key": "k"}},
        ],
        "general_settings": {"background_health_checks": True, "health_check_interval": 60, **general},
        "router_settings": {"cooldown_time": 30},
    }  # fmt: skip


def test_one_cheap_call_per_deployment_feeds_health_and_cooldowns(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    answers = {"a.test": MockResponse(503, b'{"error":{"message":"overloaded"}}'), "b.test": MockResponse(200, OK),
               "e.test": MockResponse(200, EMBEDDING), "c.test": MockResponse(200, OK)}  # fmt: skip
    app, transport = make_app(tmp_path, _config(), by_host(answers))
    assert app.router.checks is not None and app.router.checks.interval == 60
    assert request(app, "GET", "/health").json()["unhealthy_count"] == 0 and transport.requests == []
    with caplog.at_level(logging.WARNING, logger="seance.gateway"):
        asyncio.run(app.router.checks.run_once())
    sent = {r.url.split("/")[2]: orjson.loads(r.body or b"") for r in transport.requests}
    assert sorted(sent) == ["a.test", "b.test", "c.test", "e.test"]  # one each; the wildcard is not probed
    assert sent["a.test"] == {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 1}
    assert sent["e.test"] == {"model": "text-embedding-3-small", "input": "hi"}
    assert sent["c.test"]["model"] == "gpt-4o-mini"
    report = request(app, "GET", "/health").json()
    assert [e["model_id"] for e in report["unhealthy_endpoints"]] == ["a"]
    assert "overloaded" in report["unhealthy_endpoints"][0]["error"]
    assert any("health check: deployment a (gpt) failed with HTTP 503" in r.getMessage() for r in caplog.records)
    # a cooled down: every request goes to b without trying a first
    transport.requests.clear()
    for _ in range(6):
        assert request(app, "POST", "/v1/chat/completions", CHAT).headers["x-litellm-model-id"] == "b"
    assert {r.url.split("/")[2] for r in transport.requests} == {"b.test"}
    # filtered by model name
    only = request(app, "GET", "/health?model=embed").json()
    assert [e["model_id"] for e in only["healthy_endpoints"]] == ["e"] and only["unhealthy_count"] == 0


def test_a_probe_refused_as_bad_input_does_not_cool_down(tmp_path: Path) -> None:
    refused = MockResponse(400, b'{"error":{"message":"max_tokens is not supported with this model"}}')
    app, _ = make_app(tmp_path, _config(), lambda r: refused if "a.test" in r.url else MockResponse(200, OK))
    assert app.router.checks is not None
    asyncio.run(app.router.checks.run_once())
    assert not app.router.cooldowns.cooling("a")
    assert request(app, "GET", "/health?model=gpt").json()["unhealthy_count"] == 1  # shown, not acted on


def test_without_the_setting_nothing_is_probed(tmp_path: Path) -> None:
    config = _config()
    del config["general_settings"]
    app, _ = make_app(tmp_path, config, lambda r: MockResponse(200, OK))
    assert app.router.checks is None


async def test_the_checks_run_at_their_interval_until_stopped(tmp_path: Path) -> None:
    calls: list[UpstreamRequest] = []

    def handler(r: UpstreamRequest) -> MockResponse:
        calls.append(r)
        return MockResponse(200, EMBEDDING if "e.test" in r.url else OK)

    config = _config(health_check_interval=0.05)
    app, _ = make_app(tmp_path, config, handler)
    await app.router.start()
    await asyncio.sleep(0.2)
    await app.router.stop()
    rounds = len(calls) / 4
    assert 2 <= rounds <= 6  # at its interval: neither once nor a burst
    stopped = len(calls)
    await asyncio.sleep(0.1)
    assert len(calls) == stopped


class _Counting(BaseHTTPRequestHandler):
    """/bad answers 503, /good 200; probes (max_tokens 1) and requests counted per deployment."""

    probes: dict[str, list[float]]
    requests: Counter[str]

    def do_POST(self) -> None:
        body = orjson.loads(self.rfile.read(int(self.headers["content-length"])))
        name = self.path.split("/")[1]
        if body.get("max_tokens") == 1:
            self.probes.setdefault(name, []).append(time.time())
        else:
            self.requests[name] += 1
        status, answer = (503, b'{"error":{"message":"overloaded"}}') if name == "bad" else (200, OK)
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, *args: Any) -> None:
        pass


def test_two_gateways_on_one_redis_probe_once_per_interval_and_both_report(gateway: GatewayFactory) -> None:
    probes: dict[str, list[float]] = {}
    requests: Counter[str] = Counter()
    server = ThreadingHTTPServer(("127.0.0.1", 0), type("H", (_Counting,), {"probes": probes, "requests": requests}))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    run = uuid.uuid4().hex  # ids of its own: a fleet of its own on the shared Redis
    config = {
        "model_list": [
            {**deployment_entry("gpt", "openai/gpt-4o", base + "/bad"), "model_info": {"id": f"bad-{run}"}},
            {**deployment_entry("gpt", "openai/gpt-4o", base + "/good"), "model_info": {"id": f"good-{run}"}},
        ],
        "general_settings": {"background_health_checks": True, "health_check_interval": 1},
        "router_settings": {"cooldown_time": 60, "num_retries": 0},
    }
    gateways = [gateway(config, {"REDIS_URL": REDIS})]
    first_up = time.time()
    gateways.append(gateway(config, {"REDIS_URL": REDIS}))
    try:
        time.sleep(3.2)
        # One probe a round (interval 1 s) since the first gateway came up, give or take a round at
        # each end; the second probing every round too would add one for each of its 3+ rounds.
        # (Not checked by the second each probe arrived in: on a loaded machine round N's probe
        # arrived at N+1.005 s, beside round N+1's at N+1.015 s, one probe each.)
        rounds = int(time.time()) - int(first_up) + 2
        for name in ("bad", "good"):
            assert 2 <= len(probes[name]) <= rounds, (name, probes, rounds)
        for running in gateways:  # each reports what the round found, whichever gateway probed
            with running.http() as client:
                report = client.get("/health").json()
                assert [e["model_id"] for e in report["unhealthy_endpoints"]] == [f"bad-{run}"]
                assert [e["model_id"] for e in report["healthy_endpoints"]] == [f"good-{run}"]
                assert "overloaded" in report["unhealthy_endpoints"][0]["error"]
                for _ in range(5):  # the failed probe cooled it down on both
                    assert client.post("/v1/chat/completions", json=CHAT).status_code == 200
        assert requests == {"good": 10}
    finally:
        server.shutdown()
        server.server_close()
