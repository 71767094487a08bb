"""The narrow interface every provider adapter implements.

An adapter does no I/O. The gateway's shared HTTP layer (``seance.gateway.upstream``) drives it:

    request = adapter.build(call)                       # the upstream HTTP request
    ── send ──►
    if request.stream and the answer is 2xx:
        translator = adapter.stream(call)
        for each chunk of bytes as it arrives:  client ◄── translator.feed(chunk)
        client ◄── translator.close()
    elif 2xx:
        result = adapter.parse(call, status, body)       # Reply, or a FollowUp request (polling)
    else:
        raise adapter.error(call, status, headers, body)

The gateway speaks OpenAI's format inside: ``call.body`` is an OpenAI request (chat completions,
completions or embeddings), and a ``Reply`` body or translated stream is OpenAI's response format.
A translating adapter converts both ways; the OpenAI-compatible one forwards bytes.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, ClassVar, Literal
from urllib.parse import quote

import orjson

from seance.gateway.errors import (
    CONTENT_POLICY,
    CONTEXT_WINDOW,
    BadRequest,
    GatewayError,
    UpstreamError,
    client_shape,
    upstream_shape,
)
from seance.gateway.formats.openai import Usage
from seance.gateway.upstream import UpstreamRequest

__all__ = [
    "FULL_JSON_CHECK", "NOT_PARSED", "Adapter", "Call", "ErrorKinds", "FollowUp", "Operation", "Reply",
    "StreamTranslator", "Target", "TranslatingStream", "UpstreamRequest", "Usage", "error_kind", "error_message",
    "json_headers", "json_object", "url_path",
]  # fmt: skip

# "messages" is Anthropic's Messages format, offered natively only by adapters that list it in
# `operations`; for every other adapter the /v1/messages front door translates to "chat".
# "count_tokens" is /v1/messages/count_tokens, served only where the upstream offers it.
Operation = Literal["chat", "completion", "embedding", "messages", "count_tokens"]

# How a provider says "the request does not fit the context window" or "refused by its content
# policy": (lower-case text found in its error's message or code, the kind). Only a 4xx is looked
# at; the first match wins. Each adapter keeps its own table next to its error mapping.
ErrorKinds = tuple[tuple[str, str], ...]
# OpenAI's codes (https://platform.openai.com/docs/guides/error-codes), and the wording vLLM,
# DeepSeek, OpenRouter and other OpenAI-compatible servers copied from it
OPENAI_ERROR_KINDS: ErrorKinds = (
    ("context_length_exceeded", CONTEXT_WINDOW),
    ("maximum context length", CONTEXT_WINDOW),
    ("content_policy_violation", CONTENT_POLICY),
    ("content_filter", CONTENT_POLICY),
)


@dataclass(frozen=True, slots=True)
class Target:
    """Where one deployment's requests go, resolved from config and environment at start."""

    provider: str
    model: str  # the upstream's model id, e.g. "gpt-4o-mini" for "openai/gpt-4o-mini"
    api_base: str  # no trailing slash
    api_key: str | None = field(default=None, repr=False)
    api_version: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)  # other litellm_params an adapter may use


@dataclass(slots=True)
class Call:
    """One client request on its way to one deployment."""

    op: Operation
    body: dict[str, Any]  # the client's parsed JSON with the deployment's default params merged in
    raw: bytes  # the client's bytes, for forwarding untouched when nothing needs changing
    stream: bool
    target: Target
    # client headers an adapter may forward (anthropic-version, anthropic-beta), lower-case names
    client_headers: Mapping[str, str] = field(default_factory=dict)
    # scratch space an adapter keeps between build, parse and stream for this call
    state: dict[str, Any] = field(default_factory=dict)

    drop: bool | None = None  # the request's own drop_params, over the deployment's
    # a hook needs the usage of this stream even if the client did not ask for it: an adapter whose
    # provider only reports it on request asks for it, and keeps it out of the client's stream
    want_usage: bool = False

    @property
    def drop_params(self) -> bool:
        """Leave out the OpenAI parameters the provider cannot take, instead of refusing them."""
        return bool(self.target.extra.get("drop_params")) if self.drop is None else self.drop


@dataclass(slots=True, unsafe_hash=True)  # never changed, but not frozen: see formats/openai.py Usage
class Reply:
    """A complete answer for the client, already in the client's format."""

    body: bytes
    usage: Usage | None = None
    content_type: str = "application/json"


FollowUp = UpstreamRequest  # parse() may answer with another request to send (Replicate polling)


class StreamTranslator:
    """Turns a provider's stream into OpenAI's SSE stream, chunk by chunk.

    `feed` gets bytes exactly as they came off the socket (any split) and returns the bytes to send
    to the client now (b"" when there is nothing yet). `close` returns what ends the stream
    (normally ``data: [DONE]``). Either raises GatewayError when the provider reports an error or
    the stream is cut short; the gateway then ends the client's stream with an error event.
    """

    usage: Usage | None = None

    def feed(self, data: bytes) -> bytes:
        raise NotImplementedError

    def close(self) -> bytes:
        raise NotImplementedError


class TranslatingStream(StreamTranslator):
    """A StreamTranslator whose error, found after some output in the same feed, waits one call:
    the client first gets the text that came before the provider's error event, then the error.
    A provider event of an unexpected shape is the provider's failure (502), never a 500."""

    _pending: GatewayError | None = None

    def feed(self, data: bytes) -> bytes:
        if self._pending is not None:
            raise self._pending
        out = bytearray()
        try:
            with upstream_shape(type(self).__name__):
                self._feed(data, out)
        except GatewayError as exc:
            if not out:
                raise
            self._pending = exc
        return bytes(out)

    def close(self) -> bytes:
        if self._pending is not None:
            raise self._pending
        with upstream_shape(type(self).__name__):
            return self._close()

    def _feed(self, data: bytes, out: bytearray) -> None:
        raise NotImplementedError

    def _close(self) -> bytes:
        raise NotImplementedError


class Adapter:
    """Base class of provider adapters. Subclasses set the class attributes and implement `_build`,
    `_parse` and `stream`; `error` understands the common error envelopes and rarely needs
    overriding. `build` and `parse` put the blame for a value of the wrong shape where it belongs:
    in the request, the client's (400); in the answer, the provider's (502)."""

    name: ClassVar[str]
    operations: ClassVar[frozenset[Operation]] = frozenset({"chat"})
    key_env: ClassVar[tuple[str, ...]] = ()  # environment variables holding the API key, first wins
    base_env: ClassVar[tuple[str, ...]] = ()  # environment variables overriding the API base
    default_base: ClassVar[str | None] = None  # None: api_base must be configured
    key_required: ClassVar[bool] = True  # False for local servers (Ollama, vLLM)
    # bare model-name prefixes this provider makes, for no-config mode ("gpt-" → openai)
    model_prefixes: ClassVar[tuple[str, ...]] = ()

    # environment variable holding the default api_version (Azure)
    version_env: ClassVar[tuple[str, ...]] = ()
    # LiteLLM's `litellm_provider` names whose entries in the price catalogue are this provider's
    # models, most specific first (default: the adapter's name)
    catalogue: ClassVar[tuple[str, ...]] = ()
    # the OpenAI chat parameters it honours (listed by /model/info as supported_openai_params)
    chat_params: ClassVar[frozenset[str]] = frozenset()

    @property
    def catalogue_names(self) -> tuple[str, ...]:
        return self.catalogue or (self.name,)

    def supported_params(self) -> frozenset[str]:
        return self.chat_params
    error_kinds: ClassVar[ErrorKinds] = ()  # context-window and content-policy refusals

    def normalize_base(self, base: str) -> str:
        """The api_base as requests use it; called once per deployment at start."""
        return base.rstrip("/")

    def build(self, call: Call) -> UpstreamRequest:
        with client_shape(self.name):
            return self._build(call)

    def parse(self, call: Call, status: int, body: bytes) -> Reply | FollowUp:
        with upstream_shape(self.name):
            return self._parse(call, status, body)

    def _build(self, call: Call) -> UpstreamRequest:
        raise NotImplementedError

    def _parse(self, call: Call, status: int, body: bytes) -> Reply | FollowUp:
        raise NotImplementedError

    def stream(self, call: Call) -> StreamTranslator:
        raise NotImplementedError

    def error(self, call: Call, status: int, headers: Mapping[str, str], body: bytes) -> GatewayError:
        message = error_message(body) or f"upstream answered HTTP {status}"
        passed = {k: v for k, v in headers.items() if k.lower() == "retry-after"}
        err = UpstreamError(f"{self.name}: {message}", upstream_status=status, headers=passed, code=str(status))
        err.kind = error_kind(self.error_kinds, status, body)
        return err


def json_headers(api_key: str | None, header: str = "authorization", prefix: str = "Bearer ") -> dict[str, str]:
    """A JSON request's headers with the provider key, as most providers take it."""
    headers = {"content-type": "application/json"}
    if api_key:
        headers[header] = prefix + api_key
    return headers


MAX_PATH_INPUT = 512  # characters of client input (a model name) a URL path may take
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def url_path(value: str, *, slashes: bool = False) -> str:
    """Client input (a model name) as path segments of an upstream URL: every byte but the
    unreserved ones percent-encoded, so it can end neither the path (`?`, `#`), nor the request
    line (CR, LF, space), nor climb out of its place (`..`). `slashes`: `/` separates segments
    (Replicate's `owner/name`); else it is encoded too. Raises BadRequest (400): a name no provider
    could take should not cost three tries and a 502."""
    if not value or len(value) > MAX_PATH_INPUT:
        raise BadRequest(f"the model name must have 1 to {MAX_PATH_INPUT} characters", param="model")
    segments = value.split("/") if slashes else [value]
    if any(segment in ("", ".", "..") for segment in segments):
        raise BadRequest("the model name has an empty, '.' or '..' path segment", param="model")
    if _CONTROL.search(value):
        raise BadRequest("the model name has a control character", param="model")
    return "/".join(quote(segment, safe="") for segment in segments)


# A 2xx body relayed as it came must at least be JSON. orjson.loads costs, on this machine: 5-8 us
# for a recorded 0.9 KB chat answer, 27 us for a 5.6 KB embeddings answer, 48 us for 64 KB of
# chat, 3.9 ms for 600 KB of embedding floats. So bodies up to 16 KiB (nearly every chat answer)
# are parsed whole; larger ones only have their first and last bytes checked, which still catches
# an HTML page, a text error or a cut body (the HTTP client already refuses a body shorter or
# longer than its Content-Length).
FULL_JSON_CHECK = 16 * 1024


# What `json_object` returns for a body too large to parse here that looks like a JSON object.
NOT_PARSED: Mapping[str, Any] = MappingProxyType({})


def json_object(body: bytes, full_check: int = FULL_JSON_CHECK) -> Mapping[str, Any] | None:
    """The body as a JSON object when it is at most `full_check` bytes (so its fields are read from
    the one parse that checks it), NOT_PARSED when it is larger and its ends look like one, None
    when it is not a JSON object."""
    if len(body) <= full_check:
        try:
            data = orjson.loads(body)
        except orjson.JSONDecodeError:
            return None
        return data if isinstance(data, dict) else None
    if body[:64].lstrip()[:1] == b"{" and body[-64:].rstrip()[-1:] == b"}":
        return NOT_PARSED
    return None


def error_kind(kinds: ErrorKinds, status: int, body: bytes) -> str | None:
    """The kind of a provider's 4xx refusal (CONTEXT_WINDOW, CONTENT_POLICY), from its message
    and code only: other fields may echo the client's own text (Groq's failed_generation)."""
    if not kinds or not 400 <= status < 500:
        return None
    text = " ".join(filter(None, (error_message(body), _error_code(body)))).lower()
    return next((kind for needle, kind in kinds if needle in text), None)


def _error_code(body: bytes) -> str | None:
    """The machine-readable code of an error body ({"error": {"code"}}, Azure's innererror.code)."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    err = data.get("error") if isinstance(data, dict) else None
    if not isinstance(err, dict):
        return None
    inner = err.get("innererror")
    codes = [err.get("code"), err.get("status"), inner.get("code") if isinstance(inner, dict) else None]
    return " ".join(str(code) for code in codes if isinstance(code, str)) or None


def error_message(body: bytes) -> str | None:
    """The human message inside the error bodies providers send: OpenAI's and Anthropic's
    {"error": {"message"}}, {"error": "..."}, {"message": "..."}, {"detail": "..."}; else the text."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        text = body.decode("utf-8", "replace").strip()
        return text[:500] or None
    if isinstance(data, list) and data:
        data = data[0]
    if not isinstance(data, dict):
        return str(data)[:500]
    err = data.get("error", data)
    if isinstance(err, dict):
        for key in ("message", "detail", "msg", "title"):
            if isinstance(err.get(key), str):
                return str(err[key])
    if isinstance(err, str):
        return err
    for key in ("message", "detail", "title"):
        if isinstance(data.get(key), str):
            return str(data[key])
    return None
