"""Live config reload: SIGHUP and --watch-config swap a valid config in without failing a request
in flight; a bad one is refused with one line naming it, and the old one stays."""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import orjson
import pytest
from tests.gateway.admin.test_model_management import Upstream
from tests.gateway.asgi_client import KEY, deployment, make_app, request
from tests.gateway.conftest import GatewayFactory, Running
from tests.gateway.conftest import deployment as server_deployment
from tests.gateway.routing.test_router import CHAT, OK

from seance.gateway.config import load_settings
from seance.gateway.reload import Reloader
from seance.gateway.upstream.mock import MockResponse


def _write(path: Path, config: dict[str, Any]) -> None:
    path.write_bytes(orjson.dumps(config))


def test_a_reload_swaps_the_models_and_a_bad_one_is_refused(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    first = {"model_list": [deployment("gpt", "openai/gpt-4o")]}
    app, _ = make_app(tmp_path, first, lambda r: MockResponse(200, OK))
    path = tmp_path / "config.yaml"
    reloader = Reloader(lambda: load_settings(path, {"LITELLM_MASTER_KEY": KEY}, announce=False), path)

    async def reload() -> bool:
        reloader.app = app
        return await reloader.reload("test")

    _write(path, {"model_list": [deployment("gpt", "openai/gpt-4o"), deployment("new", "openai/gpt-4o-mini")]})
    with caplog.at_level(logging.INFO, logger="seance.gateway"):
        assert asyncio.run(reload())
    assert request(app, "POST", "/v1/chat/completions", {**CHAT, "model": "new"}).status == 200
    assert "test: config reloaded from" in caplog.text and "2 deployments in 2 model groups" in caplog.text

    _write(path, {"model_list": [{"model_name": "x", "litellm_params": {"model": "nope/x", "api_key": "k"}}]})
    with caplog.at_level(logging.INFO, logger="seance.gateway"):
        assert not asyncio.run(reload())
    refused = [r for r in caplog.records if "refused" in r.getMessage()]
    assert len(refused) == 1 and refused[0].levelno == logging.ERROR
    assert "model_list[0].litellm_params.model: unknown provider 'nope'" in refused[0].getMessage()
    assert request(app, "POST", "/v1/chat/completions", {**CHAT, "model": "new"}).status == 200  # the old stays

    _write(path, {"model_list": [deployment("gpt", "openai/gpt-4o")], "general_settings": {"master_key": "sk-other"}})
    assert not asyncio.run(reload())  # a new master key needs a restart: refused, not half applied
    assert "the master key changed" in caplog.text

    # what the management API would refuse to build (a key policy): refused before anything is swapped
    _write(path, {"model_list": [deployment("gpt", "openai/gpt-4o")],
                  "litellm_settings": {"upperbound_key_generate_params": {"rpm_limt": 5}}})  # fmt: skip
    assert not asyncio.run(reload())
    assert "upperbound_key_generate_params.rpm_limt: not a field with an upper bound" in caplog.text
    assert request(app, "POST", "/v1/chat/completions", {**CHAT, "model": "new"}).status == 200  # the old stays


class _Slow(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["content-length"]))
        time.sleep(0.2)  # long enough to be in flight when the reload comes
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(OK)))
        self.end_headers()
        self.wfile.write(OK)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def slow_upstream() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Slow)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def _config(base: str, *names: str) -> dict[str, Any]:
    return {"model_list": [server_deployment(name, "openai/gpt-4o", base) for name in names]}


def _wait_for(running: Running, model: str, seconds: float = 10) -> None:
    deadline = time.monotonic() + seconds
    with running.http() as client:
        while time.monotonic() < deadline:
            if client.post("/v1/chat/completions", json={**CHAT, "model": model}).status_code == 200:
                return
            time.sleep(0.1)
    raise AssertionError(f"'{model}' not served after {seconds} s:\n{running.output()}")


@pytest.mark.parametrize("workers", [1, 2])
def test_sighup_under_load_fails_no_request(gateway: GatewayFactory, slow_upstream: str, workers: int) -> None:
    running = gateway(_config(slow_upstream, "gpt"), args=("--workers", str(workers)))
    path = gateway.workdir / f"config-{len(gateway.running) - 1}.yaml"

    def one(_: int) -> int:
        with running.http() as client:
            return client.post("/v1/chat/completions", json=CHAT).status_code

    with ThreadPoolExecutor(8) as pool:
        results = pool.map(one, range(40))
        time.sleep(0.3)
        _write(path, _config(slow_upstream, "gpt", "new"))
        running.process.send_signal(signal.SIGHUP)
        statuses = list(results)
    assert statuses == [200] * 40
    _wait_for(running, "new")
    assert running.process.poll() is None

    _write(path, {"model_list": [{"model_name": "x", "litellm_params": {"model": "nope/x", "api_key": "k"}}]})
    running.process.send_signal(signal.SIGHUP)
    refused = "SIGHUP: config reload refused, the running config stays"
    deadline = time.monotonic() + 10
    while running.output().count(refused) < workers and time.monotonic() < deadline:
        time.sleep(0.1)
    assert running.output().count(refused) == workers  # one line per worker
    _wait_for(running, "new")  # still the last good config


def test_watch_config_reloads_a_changed_file(gateway: GatewayFactory, slow_upstream: str) -> None:
    running = gateway(_config(slow_upstream, "gpt"), args=("--watch-config",))
    path = gateway.workdir / "config-0.yaml"
    time.sleep(0.05)
    _write(path, _config(slow_upstream, "gpt", "watched"))
    _wait_for(running, "watched")
    assert "changed: config reloaded from" in running.output()


def test_a_reload_keeps_the_models_added_through_the_api(gateway: GatewayFactory, tmp_path: Path) -> None:
    with Upstream("stored") as upstream:
        env = {"SEANCE_DB": str(tmp_path / "seance.db"), "SEANCE_MODELS_POLL": "0.5"}
        running = gateway(_config(upstream.url, "gpt"), env, args=("--workers", "2"))
        path = gateway.workdir / f"config-{len(gateway.running) - 1}.yaml"
        with running.http() as client:
            added = client.post("/model/new", json={"model_name": "added", "litellm_params": {
                "model": "openai/gpt-4o", "api_base": upstream.url, "api_key": "sk-up"}})  # fmt: skip
        assert added.status_code == 200, added.text
        _served_by_every_worker(running, "added")  # the worker that took it at once, the other after a poll

        _write(path, _config(upstream.url, "gpt", "new"))
        running.process.send_signal(signal.SIGHUP)
        _served_by_every_worker(running, "new")
        _served_by_every_worker(running, "added")  # still, in both workers
        assert running.output().count("SIGHUP: config reloaded") == 2


def _served_by_every_worker(running: Running, model: str, seconds: float = 10) -> None:
    """20 answers in a row, each on a new connection (the workers share the listening socket)."""
    deadline = time.monotonic() + seconds
    in_a_row = 0
    while in_a_row < 20:
        assert time.monotonic() < deadline, f"'{model}' not served by every worker:\n{running.output()}"
        with running.http() as client:
            served = client.post("/v1/chat/completions", json={**CHAT, "model": model}).status_code == 200
        in_a_row = in_a_row + 1 if served else 0
