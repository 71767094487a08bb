"""Replicate predictions for language models, `replicate/<owner>/<name>[:<version>]` (or
`replicate/deployments/<owner>/<name>`) as LiteLLM names them.

Create with `Prefer: wait`; a prediction still running is polled (FollowUp with a growing delay)
until it succeeds; a stream reads the prediction's SSE stream URL. Output token arrays are joined.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

import orjson

from seance.gateway.errors import BadRequest, UpstreamError
from seance.gateway.formats import openai as shapes
from seance.gateway.formats.sse import EventSplitter
from seance.gateway.providers.base import (
    Adapter,
    Call,
    FollowUp,
    Reply,
    StreamTranslator,
    TranslatingStream,
    UpstreamRequest,
    Usage,
    json_headers,
    url_path,
)
from seance.gateway.providers.completion import completions_through_chat
from seance.gateway.upstream.transport import origin_of

INPUTS = {
    "temperature": "temperature", "top_p": "top_p", "top_k": "top_k", "seed": "seed",
    "max_tokens": "max_tokens", "max_completion_tokens": "max_tokens",
    "presence_penalty": "presence_penalty", "frequency_penalty": "frequency_penalty",
}  # fmt: skip
SUPPORTED = frozenset({*INPUTS, "stop", "user"})
POLL_DELAYS = (0.2, 0.4, 0.8, 1.0)  # seconds before each successive poll; the last one repeats
RUNNING = ("starting", "processing")
STREAM_HOSTS = (".replicate.com", ".replicate.net")  # where Replicate's own stream URLs point
PREDICTION_ID = re.compile(r"[A-Za-z0-9_-]{1,128}")


@completions_through_chat
class Replicate(Adapter):
    name = "replicate"
    chat_params = SUPPORTED
    key_env = ("REPLICATE_API_TOKEN", "REPLICATE_API_KEY")
    base_env = ("REPLICATE_API_BASE",)
    default_base = "https://api.replicate.com"

    def normalize_base(self, base: str) -> str:
        return base.rstrip("/").removesuffix("/v1")

    def headers(self, call: Call) -> dict[str, str]:
        headers = json_headers(call.target.api_key)
        return headers

    def _build(self, call: Call) -> UpstreamRequest:
        if call.op != "chat":
            raise BadRequest(f"replicate does not offer the {call.op} operation")
        shapes.check_params(call.body, SUPPORTED, self.name, call.drop_params)
        model, _, version = call.target.model.partition(":")
        body: dict[str, Any] = {"input": prediction_input(call.body)}
        kind, path = "models", model
        if model.startswith("deployments/"):
            kind, path = "deployments", model.removeprefix("deployments/")
        if version:
            url = call.target.api_base + "/v1/predictions"
            body["version"] = version
        elif path.count("/") != 1:
            raise BadRequest(f"replicate model names are <owner>/<name>, not {model!r}", param="model")
        else:
            url = f"{call.target.api_base}/v1/{kind}/{url_path(path, slashes=True)}/predictions"
        headers = self.headers(call)
        if call.stream:
            body["stream"] = True
        else:
            headers["prefer"] = "wait"
        return UpstreamRequest("POST", url, headers, orjson.dumps(body))

    def _parse(self, call: Call, status: int, body: bytes) -> Reply | FollowUp:
        prediction = shapes.loads(body, self.name)
        if not isinstance(prediction, dict) or "status" not in prediction:
            raise UpstreamError("replicate: answered with something that is not a prediction")
        state = prediction["status"]
        if state in ("failed", "canceled", "aborted"):
            raise UpstreamError(f"replicate: prediction {state}: {prediction.get('error') or 'no reason given'}")
        stream_url = (prediction.get("urls") or {}).get("stream")
        if state in RUNNING and call.stream and stream_url and self.may_follow(call, stream_url):
            headers = {**self.headers(call), "accept": "text/event-stream", "cache-control": "no-store"}
            headers.pop("content-type")
            return FollowUp("GET", stream_url, headers, None, stream=True)
        if state in RUNNING:
            polls = call.state["polls"] = call.state.get("polls", 0) + 1
            delay = POLL_DELAYS[min(polls - 1, len(POLL_DELAYS) - 1)]
            prediction_id = str(prediction.get("id"))
            if not PREDICTION_ID.fullmatch(prediction_id):
                raise UpstreamError("replicate: answered with a prediction id that cannot be polled")
            url = f"{call.target.api_base}/v1/predictions/{prediction_id}"  # never a URL from the answer body
            headers = self.headers(call)
            headers.pop("content-type")
            return FollowUp("GET", url, headers, None, delay=delay)
        if state != "succeeded":
            raise UpstreamError(f"replicate: prediction in unknown state {state!r}")
        text = output_text(prediction.get("output"))
        usage = read_usage(prediction)
        prediction_id = str(prediction.get("id") or shapes.new_id())
        if call.stream:  # finished before a stream was needed: the whole answer as one stream
            usage_chunk = shapes.include_usage(call.body)
            writer = shapes.ChunkWriter(call.target.model, include_usage=usage_chunk, id=prediction_id)
            stream = writer.start() + writer.text(text) + writer.finish("stop") + writer.end(usage)
            return Reply(stream, usage, "text/event-stream")
        completion = shapes.chat_completion(
            id=prediction_id, model=call.target.model, content=text, finish_reason="stop", usage=usage
        )
        return Reply(completion, usage)

    def stream(self, call: Call) -> StreamTranslator:
        return ReplicateStream(call)

    def may_follow(self, call: Call, url: str) -> bool:
        """Whether the stream URL of an answer may get the Replicate key: only on the deployment's
        own origin, or, for Replicate itself, on its streaming hosts (https://*.replicate.com or
        *.replicate.net). Elsewhere the prediction is polled instead: a key is never sent to a host
        an answer names, and no connection pool is made for it."""
        parts = urlsplit(url)
        if parts.username is not None or parts.password is not None or not parts.hostname:
            return False
        if origin_of(url) == origin_of(call.target.api_base):
            return True
        host = parts.hostname
        return (
            call.target.api_base == self.default_base
            and parts.scheme == "https"
            and parts.port is None
            and host.endswith(STREAM_HOSTS)
        )


def prediction_input(body: dict[str, Any]) -> dict[str, Any]:
    """Replicate's language models take a prompt (and a system prompt), not messages."""
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise BadRequest("messages must be a non-empty list", param="messages")
    system = [shapes.text_of(m.get("content")) for m in messages if m.get("role") in ("system", "developer")]
    turns = [m for m in messages if m.get("role") not in ("system", "developer")]
    if len(turns) == 1 and turns[0].get("role") == "user":
        prompt = shapes.text_of(turns[0].get("content"))
    else:
        lines = [f"{str(m.get('role', 'user')).capitalize()}: {shapes.text_of(m.get('content'))}" for m in turns]
        prompt = "\n".join([*lines, "Assistant:"])
    data: dict[str, Any] = {"prompt": prompt}
    if system:
        data["system_prompt"] = "\n".join(system)
    for openai_name, replicate_name in INPUTS.items():
        if body.get(openai_name) is not None:
            data[replicate_name] = body[openai_name]
    if stops := shapes.stop_list(body.get("stop")):
        data["stop_sequences"] = ",".join(stops)
    return data


def output_text(output: Any) -> str:
    if output is None:
        return ""
    if isinstance(output, list):
        return "".join(str(piece) for piece in output)
    return str(output)


def read_usage(prediction: dict[str, Any]) -> Usage | None:
    metrics = prediction.get("metrics") or {}
    if "input_token_count" not in metrics and "output_token_count" not in metrics:
        return None
    return Usage(int(metrics.get("input_token_count") or 0), int(metrics.get("output_token_count") or 0))


class ReplicateStream(TranslatingStream):
    """Replicate's prediction stream: `output` events carry raw text, then `done` (or `error`)."""

    def __init__(self, call: Call) -> None:
        self.decoder = EventSplitter()
        self.writer = shapes.ChunkWriter(call.target.model, include_usage=shapes.include_usage(call.body))
        self.done = False

    def _feed(self, data: bytes, out: bytearray) -> None:
        for name, payload in self.decoder.feed(data):
            if self.done:
                continue
            if name == b"output":
                out += self.writer.text(payload.decode("utf-8", "replace"))
            elif name == b"error":
                detail = payload.decode("utf-8", "replace")
                parsed = shapes.loads(detail, "replicate") if detail.startswith("{") else None
                if isinstance(parsed, dict):
                    detail = str(parsed.get("detail") or parsed.get("error") or detail)
                raise UpstreamError(f"replicate: {detail}")
            elif name == b"done":
                reason = shapes.loads(payload, "replicate").get("reason") if payload.startswith(b"{") else None
                if reason in ("canceled", "error"):
                    raise UpstreamError(f"replicate: prediction {reason}")
                self.done = True
                out += self.writer.start() + self.writer.finish("stop") + self.writer.end(None)

    def _close(self) -> bytes:
        if not self.done:
            raise UpstreamError("replicate: the stream ended before done")
        return b""
