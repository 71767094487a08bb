"""/model/new, /model/update, PATCH /model/{id}/update, /model/delete, on SQLite and PostgreSQL: a
model added is served at once (and shown by /model/info, /v1/models, /model_group/info as a
`db_model`), an update changes where it goes, a delete makes it unknown; its credential is sealed
in the database and never answered; a typo is a 400 naming the key; a viewer cannot write; the
models of config.yaml stay config.yaml's."""

from __future__ import annotations

import secrets
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import openai
import orjson
import pytest
from tests.gateway.conftest import GatewayFactory, Running
from tests.stack import MASTER, Stack, stack

from seance.gateway.store.models import read_one
from seance.gateway.store.sealing import PREFIX


def _new(name: str, base: str = "http://up.test/v1", **params: Any) -> dict[str, Any]:
    return {"model_name": name, "litellm_params": {"model": "openai/gpt-4o", "api_base": base, **params},
            "model_info": {"input_cost_per_token": 0.001}}  # fmt: skip


def _unique(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(4)}"  # the session's database is shared by the tests


async def _row(s: Stack, model_id: str) -> dict[str, Any] | None:
    return await read_one(s.store.engine, model_id)


async def test_a_model_added_is_served_changed_and_deleted(tmp_path: Path, db_env: dict[str, str]) -> None:
    async with stack(tmp_path, db_env) as s:
        name = _unique("added")
        status, added = await s.admin("POST", "/model/new", _new(name, api_key="sk-literal-upstream-key"))
        assert status == 200, added
        model_id = added["model_id"]
        assert added["model_name"] == name and added["model_info"]["id"] == model_id
        assert added["model_info"]["db_model"] is True and added["created_by"] == "admin"
        assert "api_key" not in added["litellm_params"] and b"sk-literal" not in orjson.dumps(added)

        answer = await s.chat(MASTER, name)
        assert answer.status_code == 200, answer.text
        assert answer.headers["x-litellm-model-id"] == model_id
        sent = s.transport.requests[-1]
        assert sent.url == "http://up.test/v1/chat/completions"
        assert sent.headers["authorization"] == "Bearer sk-literal-upstream-key"

        row = await _row(s, model_id)  # sealed at rest
        assert row is not None and row["litellm_params"]["api_key"].startswith(PREFIX)
        assert b"sk-literal" not in orjson.dumps(row)

        listed = (await s.client.get("/v1/models", headers={"authorization": f"Bearer {MASTER}"})).json()
        assert name in [m["id"] for m in listed["data"]]
        info = (await s.client.get("/model/info", headers={"authorization": f"Bearer {MASTER}"})).json()
        mine = [m for m in info["data"] if m["model_info"]["id"] == model_id]
        assert len(mine) == 1 and mine[0]["model_info"]["db_model"] is True
        assert mine[0]["model_info"]["input_cost_per_token"] == 0.001 and "api_key" not in mine[0]["litellm_params"]
        configured = [m for m in info["data"] if m["model_name"] == "a"]
        assert configured[0]["model_info"]["db_model"] is False
        groups = (await s.client.get("/model_group/info", headers={"authorization": f"Bearer {MASTER}"})).json()
        assert name in [g["model_group"] for g in groups["data"]]

        # /model/update (id in model_info): only what is given changes; the key stays
        status, updated = await s.admin("POST", "/model/update", {
            "model_info": {"id": model_id}, "litellm_params": {"api_base": "http://other.test/v1"},
        })  # fmt: skip
        assert status == 200, updated
        assert updated["litellm_params"]["api_base"] == "http://other.test/v1" and updated["model_name"] == name
        assert (await s.chat(MASTER, name)).status_code == 200
        assert s.transport.requests[-1].url == "http://other.test/v1/chat/completions"
        assert s.transport.requests[-1].headers["authorization"] == "Bearer sk-literal-upstream-key"

        # PATCH /model/{id}/update: a new name
        renamed = _unique("renamed")
        status, patched = await s.admin("PATCH", f"/model/{model_id}/update", {"model_name": renamed})
        assert status == 200 and patched["model_name"] == renamed, patched
        assert (await s.chat(MASTER, renamed)).status_code == 200
        assert (await s.chat(MASTER, name)).status_code == 404

        status, body = await s.admin("POST", "/model/delete", {"id": model_id})
        assert status == 200 and body == {"message": f"Model: {model_id} deleted successfully"}
        gone = await s.chat(MASTER, renamed)
        assert gone.status_code == 404 and f"model '{renamed}' is not served here" in gone.json()["error"]["message"]
        assert await _row(s, model_id) is None
        status, body = await s.admin("POST", "/model/delete", {"id": model_id})
        assert status == 404 and body["error"]["param"] == "id"


async def test_an_environment_reference_is_stored_as_written(tmp_path: Path, db_env: dict[str, str]) -> None:
    async with stack(tmp_path, {**db_env, "UP_KEY": "sk-from-the-environment"}) as s:
        name = _unique("by-reference")
        status, added = await s.admin("POST", "/model/new", _new(name, api_key="os.environ/UP_KEY"))
        assert status == 200, added
        assert added["litellm_params"]["api_key"] == "os.environ/UP_KEY"
        row = await _row(s, added["model_id"])
        assert row is not None and row["litellm_params"]["api_key"] == "os.environ/UP_KEY"
        status, moved = await s.admin("PATCH", f"/model/{added['model_id']}/update",
                                      {"litellm_params": {"api_base": "http://user:pw-in-url@up.test/v1"}})  # fmt: skip
        assert status == 200 and moved["litellm_params"]["api_base"] == "http://up.test/v1", moved
        assert (await s.chat(MASTER, name)).status_code == 200
        assert s.transport.requests[-1].headers["authorization"] == "Bearer sk-from-the-environment"
        await s.admin("POST", "/model/delete", {"id": added["model_id"]})


async def test_bad_bodies_are_400s_naming_the_key_and_write_nothing(tmp_path: Path, db_env: dict[str, str]) -> None:
    async with stack(tmp_path, db_env) as s:
        name = _unique("bad")
        cases = [
            (_new(name, temprature=0.2), "litellm_params.temprature", "did you mean 'temperature'?"),
            ({**_new(name), "litellm_params": {"model": "opneai/gpt-4o"}}, "litellm_params.model",
             "unknown provider 'opneai'; did you mean 'openai'?"),
            (_new(name, api_key="os.environ/NOT_SET_ANYWHERE"), "litellm_params.api_key",
             "environment variable NOT_SET_ANYWHERE is not set"),
            (_new(name, rpm="many"), "litellm_params.rpm", "valid integer"),
            (_new(name, base="ftp://up.test"), "litellm_params.api_base", "http:// or https:// URL"),
            ({"model_name": name}, "litellm_params", "litellm_params is required"),
            ({"litellm_params": {"model": "openai/x"}}, "model_name", "model_name is required"),
        ]  # fmt: skip
        for body, param, text in cases:
            status, answer = await s.admin("POST", "/model/new", body)
            assert status == 400, (body, answer)
            error = answer["error"]
            assert error["param"] == param and text in error["message"], error
        assert (await s.chat(MASTER, name)).status_code == 404
        status, added = await s.admin("POST", "/model/new", _new(name))
        assert status == 200
        status, answer = await s.admin("POST", "/model/new", {**_new(name), "model_info": {"id": added["model_id"]}})
        assert status == 400 and "exists already" in answer["error"]["message"]
        status, answer = await s.admin("PATCH", f"/model/{added['model_id']}/update",
                                       {"litellm_params": {"max_retires": 2}})  # fmt: skip
        assert status == 400 and "did you mean 'max_retries'?" in answer["error"]["message"]
        status, answer = await s.admin("POST", "/model/update", {"litellm_params": {"rpm": 1}})
        assert status == 400 and answer["error"]["param"] == "model_info.id"
        await s.admin("POST", "/model/delete", {"id": added["model_id"]})


async def test_config_models_stay_the_config_files(tmp_path: Path, db_env: dict[str, str]) -> None:
    async with stack(tmp_path, db_env) as s:
        info = (await s.client.get("/model/info", headers={"authorization": f"Bearer {MASTER}"})).json()
        config_id = next(m["model_info"]["id"] for m in info["data"] if m["model_name"] == "a")
        status, body = await s.admin("POST", "/model/delete", {"id": config_id})
        assert status == 400 and "in the config file" in body["error"]["message"]
        status, body = await s.admin("PATCH", f"/model/{config_id}/update", {"litellm_params": {"rpm": 5}})
        assert status == 400 and "in the config file" in body["error"]["message"]
        status, body = await s.admin("POST", "/model/new", {**_new("a"), "model_info": {"id": config_id}})
        assert status == 400 and "exists already" in body["error"]["message"]
        assert (await s.chat(MASTER, "a")).status_code == 200
        status, body = await s.admin("POST", "/model/delete", {"id": "no-such-model"})
        assert status == 404


async def test_only_a_proxy_admin_writes_models(tmp_path: Path, db_env: dict[str, str]) -> None:
    async with stack(tmp_path, db_env) as s:
        status, user = await s.admin("POST", "/user/new", {"user_id": _unique("viewer"),
                                                          "user_role": "proxy_admin_viewer"})  # fmt: skip
        assert status == 200, user
        viewer = user["key"]
        name = _unique("not-by-a-viewer")
        status, body = await s.admin("POST", "/model/new", _new(name), as_key=viewer)
        assert status == 403 and "proxy_admin_viewer" in body["error"]["message"]
        status, added = await s.admin("POST", "/model/new", _new(name))
        model_id = added["model_id"]
        assert (await s.admin("PATCH", f"/model/{model_id}/update", {"model_name": "x"}, as_key=viewer))[0] == 403
        assert (await s.admin("POST", "/model/delete", {"id": model_id}, as_key=viewer))[0] == 403
        info = await s.client.get("/model/info", headers={"authorization": f"Bearer {viewer}"})
        assert info.status_code == 200 and model_id in [m["model_info"]["id"] for m in info.json()["data"]]
        assert (await s.admin("POST", "/model/new", _new(name), as_key="sk-nobody"))[0] == 401
        await s.admin("POST", "/model/delete", {"id": model_id})


# -- the real server: two gateways sharing PostgreSQL, the openai SDK as the client --

PORTS = range(19300, 19400)  # this suite's share of the machine's ports


def range_port() -> int:
    """A free port of PORTS."""
    for port in PORTS:
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise AssertionError(f"no free port in {PORTS}")


class Upstream:
    """An OpenAI-compatible loopback upstream whose answers say its name, and the keys it was sent."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.keys: list[str] = []
        answer = orjson.dumps({
            "id": "c1", "object": "chat.completion", "model": "m", "created": 1,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": name}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
        })  # fmt: skip
        upstream = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers["content-length"]))
                upstream.keys.append(self.headers.get("authorization", ""))
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", range_port()), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self) -> Upstream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@pytest.fixture
def upstreams() -> Iterator[tuple[Upstream, Upstream]]:
    with Upstream("first") as first, Upstream("second") as second:
        yield first, second


def answered_by(running: Running, model: str) -> str | None:
    """Which upstream answered a chat request for `model` (None: the gateway does not know it)."""
    try:
        answer = running.openai().chat.completions.create(model=model, messages=[{"role": "user", "content": "hi"}])
    except openai.NotFoundError:
        return None
    return answer.choices[0].message.content


def wait_for(running: Running, model: str, upstream: str | None, within: float) -> float:
    """Seconds until `model` is answered by `upstream` (None: until it is unknown); fails after `within`."""
    start = time.monotonic()
    while (seen := answered_by(running, model)) != upstream:
        assert time.monotonic() - start < within, f"{model}: {seen!r}, not {upstream!r}, after {within} s"
        time.sleep(0.05)
    return time.monotonic() - start


POLL = 0.5  # SEANCE_MODELS_POLL of these gateways
CONFIG = {"model_list": [{"model_name": "configured", "litellm_params": {"model": "openai/gpt-4o",
          "api_base": "http://127.0.0.1:9/v1", "api_key": "sk-never-called"}}]}  # fmt: skip


def test_two_gateways_on_one_postgres_serve_what_either_added(
    gateway: GatewayFactory, pg_database: str, upstreams: tuple[Upstream, Upstream]
) -> None:
    first, second = upstreams
    env = {"DATABASE_URL": pg_database, "SEANCE_MODELS_POLL": str(POLL), "UPSTREAM_KEY": "sk-upstream-env"}
    one = gateway(CONFIG, env, port=range_port())
    other = gateway(CONFIG, env, port=range_port())
    name = _unique("shared")
    with one.http() as client:
        added = client.post("/model/new", json={"model_name": name, "litellm_params": {
            "model": "openai/gpt-4o", "api_base": first.url, "api_key": "os.environ/UPSTREAM_KEY"}})  # fmt: skip
    assert added.status_code == 200, added.text
    model_id = added.json()["model_id"]
    assert answered_by(one, name) == "first"  # at once where it was written
    assert first.keys[-1] == "Bearer sk-upstream-env"
    wait_for(other, name, "first", within=POLL + 3)  # the other within the poll delay (and a request)

    with other.http() as client:
        moved = client.patch(f"/model/{model_id}/update", json={"litellm_params": {"api_base": second.url}})
    assert moved.status_code == 200, moved.text
    assert answered_by(other, name) == "second"
    wait_for(one, name, "second", within=POLL + 3)

    with one.http() as client:
        assert client.post("/model/delete", json={"id": model_id}).status_code == 200
        listed = client.get("/v1/models").json()["data"]
    assert name not in [m["id"] for m in listed]
    assert answered_by(one, name) is None
    wait_for(other, name, None, within=POLL + 3)
    with other.http() as client:
        assert "configured" in [m["id"] for m in client.get("/v1/models").json()["data"]]
    for running in (one, other):
        assert "sk-upstream-env" not in running.output()
