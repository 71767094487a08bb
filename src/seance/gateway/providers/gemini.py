"""Google's Gemini API (AI Studio): generateContent, streamGenerateContent (`alt=sse`) and
batchEmbedContents. `gemini/<model>` as LiteLLM names it."""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from typing import Any, ClassVar

import orjson

from seance.gateway.errors import CONTEXT_WINDOW, BadRequest, UpstreamError
from seance.gateway.formats import openai as shapes
from seance.gateway.formats.sse import EventSplitter
from seance.gateway.providers._gemini_request import SIGNATURE_MARK, SUPPORTED, to_generate_request
from seance.gateway.providers.base import (
    Adapter,
    Call,
    FollowUp,
    Operation,
    Reply,
    StreamTranslator,
    TranslatingStream,
    UpstreamRequest,
    Usage,
    json_headers,
    url_path,
)
from seance.gateway.providers.completion import completions_through_chat

API_VERSION = "v1beta"
FINISH_REASONS = {
    "STOP": "stop",
    "MAX_TOKENS": "length",
    "SAFETY": "content_filter",
    "RECITATION": "content_filter",
    "BLOCKLIST": "content_filter",
    "PROHIBITED_CONTENT": "content_filter",
    "SPII": "content_filter",
    "IMAGE_SAFETY": "content_filter",
}


@completions_through_chat
class Gemini(Adapter):
    name = "gemini"
    chat_params = SUPPORTED
    # 400 INVALID_ARGUMENT "The input token count (3475108) exceeds the maximum number of tokens allowed (1048576)."
    error_kinds = (("exceeds the maximum number of tokens", CONTEXT_WINDOW),)
    operations: ClassVar[frozenset[Operation]] = frozenset({"chat", "embedding"})
    key_env = ("GEMINI_API_KEY", "GOOGLE_API_KEY")
    base_env = ("GEMINI_API_BASE",)
    default_base = "https://generativelanguage.googleapis.com"
    model_prefixes = ("gemini-", "gemma-")

    def normalize_base(self, base: str) -> str:
        return base.rstrip("/").removesuffix("/" + API_VERSION)

    def _build(self, call: Call) -> UpstreamRequest:
        model = url_path(call.target.model.removeprefix("models/"))
        prefix = f"{call.target.api_base}/{API_VERSION}/models/{model}"
        headers = json_headers(call.target.api_key, "x-goog-api-key", "")
        if call.op == "embedding":
            shapes.check_params(call.body, {"dimensions", "user"}, self.name, call.drop_params)
            request: dict[str, Any] = {"model": f"models/{model}"}
            if call.body.get("dimensions") is not None:
                request["outputDimensionality"] = call.body["dimensions"]
            requests = [{**request, "content": {"parts": [{"text": t}]}} for t in shapes.embedding_inputs(call.body)]
            body = orjson.dumps({"requests": requests})
            return UpstreamRequest("POST", prefix + ":batchEmbedContents", headers, body)
        if call.op != "chat":
            raise BadRequest(f"gemini does not offer the {call.op} operation")
        body = orjson.dumps(to_generate_request(call))
        if call.stream:
            return UpstreamRequest("POST", prefix + ":streamGenerateContent?alt=sse", headers, body, True)
        return UpstreamRequest("POST", prefix + ":generateContent", headers, body)

    def _parse(self, call: Call, status: int, body: bytes) -> Reply | FollowUp:
        data = shapes.loads(body, self.name)
        if not isinstance(data, dict):
            raise UpstreamError("gemini: answered with an unexpected body")
        if call.op == "embedding":
            vectors = [e.get("values") or [] for e in data.get("embeddings") or []]
            return Reply(shapes.embeddings(call.body, vectors, call.target.model, Usage()), Usage())
        state = ResponseState()
        for _ in state.add(data):
            pass
        usage, extra = state.usage()
        candidates = state.candidates or {0: Candidate()}
        answer = {
            "id": state.id or shapes.new_id(), "object": "chat.completion", "created": int(time.time()),
            "model": state.model or call.target.model,
            "choices": [candidates[index].choice(index) for index in sorted(candidates)],
            "usage": {**shapes.usage_dict(usage), **extra},
        }  # fmt: skip
        return Reply(orjson.dumps(answer), usage)

    def stream(self, call: Call) -> StreamTranslator:
        return GeminiStream(call)


class Candidate:
    """What one candidate (one OpenAI choice) of an answer adds up to, over a stream or at once."""

    def __init__(self) -> None:
        self.texts: list[str] = []
        self.thoughts: list[str] = []
        self.tool_calls: list[dict[str, Any]] = []
        self.logprobs: list[dict[str, Any]] = []
        self.finish: str | None = None

    def finish_reason(self) -> str:
        if self.tool_calls and self.finish in (None, "STOP"):
            return "tool_calls"
        return FINISH_REASONS.get(self.finish or "STOP", "stop")

    def choice(self, index: int) -> dict[str, Any]:
        message: dict[str, Any] = {
            "role": "assistant",
            "content": "".join(self.texts) or (None if self.tool_calls else ""),
        }
        if self.tool_calls:
            message["tool_calls"] = self.tool_calls
        if self.thoughts:
            message["reasoning_content"] = "".join(self.thoughts)
        logprobs = {"content": self.logprobs, "refusal": None} if self.logprobs else None
        return {"index": index, "message": message, "logprobs": logprobs, "finish_reason": self.finish_reason()}


class ResponseState:
    """What the GenerateContentResponses of one answer (one, or a stream of them) add up to."""

    def __init__(self) -> None:
        self.candidates: dict[int, Candidate] = {}
        self.metadata: dict[str, Any] = {}
        self.id: str | None = None
        self.model: str | None = None
        self.blocked = False

    def add(self, data: dict[str, Any]) -> Iterator[tuple[int, str, Any]]:
        """Records one response and yields its pieces: (candidate index, kind, value) with kind
        "text" or "thought" (str), "tool" (a tool call), "logprobs" (OpenAI logprobs content)."""
        if isinstance(data.get("error"), dict):
            raise UpstreamError(f"gemini: {data['error'].get('message') or data['error']}")
        self.id = data.get("responseId") or self.id
        self.model = data.get("modelVersion") or self.model
        self.metadata = data.get("usageMetadata") or self.metadata
        candidates = data.get("candidates") or []
        if not candidates and (data.get("promptFeedback") or {}).get("blockReason"):
            self.candidate(0).finish = "SAFETY"
        pieces: list[tuple[int, str, Any]] = []
        for position, raw in enumerate(candidates):
            index = int(raw.get("index", position))
            candidate = self.candidate(index)
            for part in (raw.get("content") or {}).get("parts") or []:
                if "functionCall" in part:
                    pieces.append((index, "tool", self._tool_call(candidate, part)))
                elif part.get("thought") and "text" in part:
                    candidate.thoughts.append(part["text"])
                    pieces.append((index, "thought", part["text"]))
                elif "text" in part:
                    candidate.texts.append(part["text"])
                    pieces.append((index, "text", part["text"]))
            if raw.get("logprobsResult"):
                logprobs = openai_logprobs(raw["logprobsResult"])
                candidate.logprobs += logprobs
                pieces.append((index, "logprobs", logprobs))
            candidate.finish = raw.get("finishReason") or candidate.finish
        return iter(pieces)

    def candidate(self, index: int) -> Candidate:
        if index not in self.candidates:
            self.candidates[index] = Candidate()
        return self.candidates[index]

    def _tool_call(self, candidate: Candidate, part: dict[str, Any]) -> dict[str, Any]:
        function = part["functionCall"]
        call_id = "call_" + secrets.token_hex(12)
        if part.get("thoughtSignature"):
            call_id += SIGNATURE_MARK + part["thoughtSignature"]
        arguments = orjson.dumps(function.get("args") or {}).decode()
        call = shapes.tool_call(call_id, function.get("name", ""), arguments)
        candidate.tool_calls.append(call)
        return call

    def finished(self) -> bool:
        return bool(self.candidates) and all(c.finish is not None for c in self.candidates.values())

    def usage(self) -> tuple[Usage, dict[str, Any]]:
        """Thinking tokens count as completion tokens, as OpenAI counts reasoning tokens."""
        meta = self.metadata
        thoughts = int(meta.get("thoughtsTokenCount") or 0)
        completion = int(meta.get("candidatesTokenCount") or 0) + thoughts
        extra: dict[str, Any] = {"completion_tokens_details": {"reasoning_tokens": thoughts}}
        if meta.get("cachedContentTokenCount"):
            extra["prompt_tokens_details"] = {"cached_tokens": int(meta["cachedContentTokenCount"])}
        # promptTokenCount includes the cached tokens, as OpenAI's prompt_tokens does
        cached = int(meta.get("cachedContentTokenCount") or 0)
        usage = Usage(int(meta.get("promptTokenCount") or 0), completion, cached, reasoning_tokens=thoughts)
        return usage, extra


def openai_logprobs(result: dict[str, Any]) -> list[dict[str, Any]]:
    """Gemini's logprobsResult (chosenCandidates, and topCandidates when logprobs: k was asked)
    as OpenAI's `logprobs.content`."""
    chosen = result.get("chosenCandidates") or []
    tops = result.get("topCandidates") or []
    content = []
    for position, token in enumerate(chosen):
        alternatives = (tops[position].get("candidates") or []) if position < len(tops) else []
        content.append({**_token(token), "top_logprobs": [_token(t) for t in alternatives]})
    return content


def _token(token: dict[str, Any]) -> dict[str, Any]:
    text = str(token.get("token", ""))
    return {"token": text, "logprob": float(token.get("logProbability") or 0.0), "bytes": list(text.encode())}


class GeminiStream(TranslatingStream):
    """`alt=sse` events (CRLF separated), or the JSON array Gemini streams without it."""

    def __init__(self, call: Call) -> None:
        self.decoder = EventSplitter()
        self.writer = shapes.ChunkWriter(call.target.model, include_usage=shapes.include_usage(call.body))
        self.state = ResponseState()
        self.array: JSONArraySplitter | None = None
        self.mode: str | None = None

    def _feed(self, data: bytes, out: bytearray) -> None:
        if self.mode is None:
            stripped = data.lstrip()
            if not stripped:
                return
            self.mode = "array" if stripped.startswith(b"[") else "sse"
            self.array = JSONArraySplitter() if self.mode == "array" else None
        if self.array is not None:
            items = [shapes.loads(item, "gemini") for item in self.array.feed(data)]
        else:
            items = [shapes.loads(payload, "gemini") for _, payload in self.decoder.feed(data) if payload]
        for item in items:
            out += self._response(item)

    def _response(self, data: dict[str, Any]) -> bytes:
        out = bytearray()
        self.writer.id = data.get("responseId") or self.writer.id
        finished_before = {i for i, c in self.state.candidates.items() if c.finish is not None}
        for choice, kind, value in self.state.add(data):
            candidate = self.state.candidates[choice]
            if kind == "text":
                out += self.writer.text(value, choice)
            elif kind == "thought":
                out += self.writer.reasoning(value, choice)
            elif kind == "logprobs":
                out += self.writer.delta({}, choice=choice, logprobs={"content": value, "refusal": None})
            else:
                function = value["function"]
                tool = len(candidate.tool_calls) - 1
                out += self.writer.tool_start(tool, value["id"], function["name"], function["arguments"], choice)
        for choice, candidate in sorted(self.state.candidates.items()):
            if candidate.finish is not None and choice not in finished_before:
                out += self.writer.start() + self.writer.finish(candidate.finish_reason(), choice)
        return bytes(out)

    def _close(self) -> bytes:
        for _, payload in self.decoder.flush():
            if payload:
                self._response(shapes.loads(payload, "gemini"))
        if not self.state.finished():
            raise UpstreamError("gemini: the stream ended before a finishReason")
        self.usage, extra = self.state.usage()
        return self.writer.end(self.usage, **extra)


class JSONArraySplitter:
    """The top-level objects of a JSON array arriving in pieces: `[{...}\\n,\\n{...}]`."""

    def __init__(self) -> None:
        self.buffer = bytearray()
        self.depth = 0
        self.in_string = False
        self.escaped = False
        self.start = -1
        self.scanned = 0

    def feed(self, data: bytes) -> list[bytes]:
        self.buffer += data
        items: list[bytes] = []
        for position in range(self.scanned, len(self.buffer)):
            char = self.buffer[position]
            if self.in_string:
                if self.escaped:
                    self.escaped = False
                elif char == 0x5C:  # backslash
                    self.escaped = True
                elif char == 0x22:  # quote
                    self.in_string = False
            elif char == 0x22:
                self.in_string = True
            elif char == 0x7B:  # {
                if self.depth == 0:
                    self.start = position
                self.depth += 1
            elif char == 0x7D:  # }
                self.depth -= 1
                if self.depth == 0:
                    items.append(bytes(self.buffer[self.start : position + 1]))
                    self.start = -1
        keep_from = self.start if self.start != -1 else len(self.buffer)
        del self.buffer[:keep_from]
        if self.start != -1:
            self.start = 0
        self.scanned = len(self.buffer)
        return items
