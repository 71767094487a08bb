"""What the gateway tells an operator, from the real process: a ready line and a stopped line for
any number of workers, an access log that is off by default and on by flag or level (plain or one
JSON object per line, never a key or a body), and a WARNING for a stream cut by an error."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

import httpx2 as httpx
import orjson
import pytest
from tests.gateway.conftest import BASE_ENV, MASTER_KEY, GatewayFactory, Running, deployment
from tests.wire import ReplayUpstream, load

CHAT = load("openai/chat-nonstream.httprr.txt")[0]
STREAM = load("openai/chat-stream-include-usage.httprr.txt")[0]
MESSAGES = [{"role": "user", "content": "Hello, how are you?"}]
SECRET_WORD = "do-not-log-this-prompt"


def _lines(served: Running, pattern: str, timeout: float = 5.0) -> list[str]:
    deadline = time.monotonic() + timeout
    while True:
        found = [line for line in served.output().splitlines() if re.search(pattern, line)]
        if found or time.monotonic() > deadline:
            return found
        time.sleep(0.05)


@pytest.mark.parametrize("workers", [1, 2])
def test_ready_and_stopped_lines(gateway: GatewayFactory, workers: int) -> None:
    with ReplayUpstream() as upstream:
        config = {"model_list": [deployment("gpt", "openai/gpt-4o", upstream.url + "/v1"),
                                 deployment("gpt", "openai/gpt-4o", upstream.url + "/b/v1")]}  # fmt: skip
        served = gateway(config, args=("--workers", str(workers)))
        (ready,) = _lines(served, "ready on")
        port = served.url.rsplit(":", 1)[1]
        plural = "s" if workers > 1 else ""
        assert f"seance gateway ready on http://127.0.0.1:{port}: 2 deployments in 1 model group, " \
               f"{workers} worker{plural}, config " in ready  # fmt: skip
        served.stop()
        assert _lines(served, "seance gateway stopped")


def test_the_access_log_is_off_by_default(gateway: GatewayFactory) -> None:
    with ReplayUpstream() as upstream:
        served = gateway({"model_list": [deployment("gpt", "openai/gpt-3.5-turbo", upstream.url + "/v1")]})
        upstream.add("/v1/chat/completions", CHAT)
        served.openai().chat.completions.create(model="gpt", messages=MESSAGES)  # type: ignore[arg-type]
        served.stop()
        assert not [line for line in served.output().splitlines() if "/v1/chat/completions" in line]


def test_access_log_plain_one_line_per_request(gateway: GatewayFactory) -> None:
    with ReplayUpstream() as upstream:
        config = {"model_list": [{**deployment("gpt", "openai/gpt-3.5-turbo", upstream.url + "/v1"),
                                  "model_info": {"id": "dep-1"}}]}  # fmt: skip
        served = gateway(config, args=("--access-log",))
        upstream.add("/v1/chat/completions", CHAT)
        messages = [{"role": "user", "content": SECRET_WORD}]
        served.openai().chat.completions.with_raw_response.create(
            model="gpt", messages=messages, extra_headers={"x-request-id": "req-plain"}  # type: ignore[arg-type]
        )
        with served.http() as http:
            assert http.get("/v1/models").status_code == 200
        (line,) = _lines(served, "POST /v1/chat/completions")
        assert re.search(r"POST /v1/chat/completions 200 model=gpt deployment=dep-1 [\d.]+ms id=req-plain$", line)
        assert _lines(served, r"GET /v1/models 200 model=- deployment=- ")
        served.stop()
        output = served.output()
        assert MASTER_KEY not in output and "sk-up" not in output and SECRET_WORD not in output


def test_access_log_json_from_litellm_log_level(gateway: GatewayFactory) -> None:
    with ReplayUpstream() as upstream:
        config = {"model_list": [deployment("gpt", "openai/gpt-3.5-turbo", upstream.url + "/v1")]}
        served = gateway(config, {"LITELLM_LOG": "INFO"}, args=("--log-format", "json"))
        upstream.add("/v1/chat/completions", STREAM)
        stream = served.openai().chat.completions.create(
            model="gpt", messages=MESSAGES, stream=True, stream_options={"include_usage": True},  # type: ignore[arg-type]
            extra_headers={"x-request-id": "req-json"},
        )  # fmt: skip
        for _ in stream:
            pass
        (line,) = _lines(served, '"request_id": ?"req-json"')
        entry = orjson.loads(line)
        assert entry["logger"] == "seance.access" and entry["level"] == "INFO"
        assert (entry["method"], entry["path"], entry["status"], entry["model"]) == (
            "POST", "/v1/chat/completions", 200, "gpt"
        )
        assert entry["stream"] is True and entry["prompt_tokens"] > 0 and entry["completion_tokens"] > 0
        assert entry["duration_ms"] >= entry["ttft_ms"] > 0
        for other in served.output().splitlines():  # every line is JSON, the ready line too
            if other.strip():
                orjson.loads(other)


def test_a_stream_ended_by_an_error_is_a_warning(gateway: GatewayFactory) -> None:
    with ReplayUpstream() as upstream:
        config = {"model_list": [{**deployment("gpt", "openai/gpt-3.5-turbo", upstream.url + "/v1"),
                                  "model_info": {"id": "dep-cut"}}]}  # fmt: skip
        served = gateway(config)
        cut = STREAM.response_body[: len(STREAM.response_body) // 2]
        from tests.wire import Reply

        upstream.add("/v1/chat/completions", Reply(200, {"content-type": "text/event-stream"}, cut))
        with served.http() as http:
            body = {"model": "gpt", "messages": MESSAGES, "stream": True}
            response = http.post("/v1/chat/completions", json=body, headers={"x-request-id": "req-cut"})
            assert response.status_code == 200 and b'"error"' in response.content
        (line,) = _lines(served, "ended with an error event")
        assert "WARNING" in line and "req-cut" in line and "dep-cut" in line


def test_the_ready_line_names_the_port_the_system_chose(tmp_path: Path) -> None:
    with ReplayUpstream() as upstream:
        config_path = tmp_path / "port0.yaml"
        config_path.write_bytes(orjson.dumps({"model_list": [deployment("gpt", "openai/gpt-4o", upstream.url)]}))
        command = [sys.executable, "-m", "seance", "gateway", "--host", "127.0.0.1", "--port", "0",
                   "--config", str(config_path)]  # fmt: skip
        env = {**BASE_ENV, "LITELLM_MASTER_KEY": MASTER_KEY}
        process = subprocess.Popen(command, env=env, stderr=subprocess.PIPE, text=True, cwd=tmp_path)
        try:
            assert process.stderr is not None
            line = process.stderr.readline()
            port = int(re.search(r"ready on http://127\.0\.0\.1:(\d+):", line).group(1))  # type: ignore[union-attr]
            assert port > 0
            assert httpx.get(f"http://127.0.0.1:{port}/health/liveliness", timeout=5).status_code == 200
        finally:
            process.terminate()
            process.wait(timeout=30)
