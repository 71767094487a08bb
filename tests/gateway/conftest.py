"""The gateway under test: the real `seance gateway` process (uvicorn, uvloop, httptools) on
127.0.0.1, started from a config dict, with the official SDKs as clients."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anthropic
import httpx2 as httpx
import openai
import orjson
import pytest

MASTER_KEY = "sk-test-master-0123456789"
# what a subprocess inherits; provider keys from the developer's shell must not leak into tests
BASE_ENV = {k: os.environ[k] for k in ("PATH", "HOME", "LANG", "TMPDIR") if k in os.environ}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Running:
    url: str
    master_key: str | None
    process: subprocess.Popen[bytes]
    log: Path

    def openai(self, **kwargs: Any) -> openai.OpenAI:
        return openai.OpenAI(base_url=self.url + "/v1", api_key=self.master_key or "none", max_retries=0, **kwargs)

    def async_openai(self, **kwargs: Any) -> openai.AsyncOpenAI:
        return openai.AsyncOpenAI(base_url=self.url + "/v1", api_key=self.master_key or "none", max_retries=0, **kwargs)

    def anthropic(self, **kwargs: Any) -> anthropic.Anthropic:
        return anthropic.Anthropic(base_url=self.url, api_key=self.master_key or "none", max_retries=0, **kwargs)

    def http(self) -> httpx.Client:
        headers = {"authorization": f"Bearer {self.master_key}"} if self.master_key else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30)

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode

    def output(self) -> str:
        return self.log.read_text(errors="replace")


class GatewayFactory:
    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.running: list[Running] = []

    def __call__(
        self,
        config: dict[str, Any] | None,
        env: dict[str, str] | None = None,
        *,
        args: tuple[str, ...] = (),
        master_key: str | None = MASTER_KEY,
        wait: bool = True,
        port: int | None = None,
    ) -> Running:
        number = len(self.running)
        port = port or free_port()
        command = [sys.executable, "-m", "seance", "gateway", "--host", "127.0.0.1", "--port", str(port), *args]
        if config is not None:
            path = self.workdir / f"config-{number}.yaml"
            path.write_bytes(orjson.dumps(config))  # JSON is YAML
            command += ["--config", str(path)]
        full_env = {**BASE_ENV, **(env or {})}
        if master_key is not None:
            full_env["LITELLM_MASTER_KEY"] = master_key
        log = self.workdir / f"gateway-{number}.log"
        with log.open("wb") as sink:
            process = subprocess.Popen(command, env=full_env, stdout=sink, stderr=subprocess.STDOUT, cwd=self.workdir)
        running = Running(f"http://127.0.0.1:{port}", master_key, process, log)
        self.running.append(running)
        if wait:
            self._wait_ready(running)
        return running

    @staticmethod
    def _wait_ready(running: Running) -> None:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if running.process.poll() is not None:
                raise AssertionError(f"gateway exited with {running.process.returncode}:\n{running.output()}")
            try:
                if httpx.get(running.url + "/health/liveliness", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise AssertionError(f"gateway did not start in 20 s:\n{running.output()}")

    def close(self) -> None:
        for running in self.running:
            running.stop()


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[GatewayFactory]:
    factory = GatewayFactory(tmp_path)
    yield factory
    factory.close()


@pytest.fixture(scope="module")
def module_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayFactory]:
    factory = GatewayFactory(tmp_path_factory.mktemp("gateway"))
    yield factory
    factory.close()


def deployment(name: str, model: str, api_base: str, **params: Any) -> dict[str, Any]:
    """One model_list entry."""
    return {"model_name": name, "litellm_params": {"model": model, "api_base": api_base, "api_key": "sk-up", **params}}


GatewayStarter = Callable[..., Running]
