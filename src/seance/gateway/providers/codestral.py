"""`text-completion-codestral/`: Mistral's fill-in-the-middle endpoint for Codestral, LiteLLM's
prefix and key name. https://docs.mistral.ai/api/ (FIM): `POST /v1/fim/completions` takes `model`,
`prompt`, `suffix`, `temperature`, `top_p`, `max_tokens`, `min_tokens`, `stream`, `stop` and
`random_seed`, and answers in chat's shape (streams too). An OpenAI completions request goes as
such a request; the answer comes back as a `text_completion`."""

from __future__ import annotations

from typing import Any, ClassVar

import orjson

from seance.gateway.errors import BadRequest, UpstreamError
from seance.gateway.formats import openai as shapes
from seance.gateway.providers.base import (
    Adapter,
    Call,
    FollowUp,
    Operation,
    Reply,
    StreamTranslator,
    UpstreamRequest,
    Usage,
    json_headers,
)
from seance.gateway.providers.completion import ChunksToCompletion, text_completion
from seance.gateway.providers.openai_compat import PassThroughStream

FORWARDED = ("suffix", "temperature", "top_p", "max_tokens", "min_tokens", "stop")
RENAMED = {"seed": "random_seed"}
# what the client may send: FIM's fields, and those that ask for nothing from it
SUPPORTED = frozenset({*FORWARDED, *RENAMED, "user"})


class TextCompletionCodestral(Adapter):
    name = "text-completion-codestral"
    catalogue = ("text-completion-codestral", "codestral")
    chat_params = SUPPORTED
    operations: ClassVar[frozenset[Operation]] = frozenset({"completion"})
    key_env = ("CODESTRAL_API_KEY",)
    base_env = ("CODESTRAL_API_BASE",)
    default_base = "https://codestral.mistral.ai/v1"

    def normalize_base(self, base: str) -> str:
        # LiteLLM's examples give the whole endpoint; requests append /fim/completions
        return base.rstrip("/").removesuffix("/fim/completions")

    def _build(self, call: Call) -> UpstreamRequest:
        if call.op != "completion":
            raise BadRequest(f"{self.name} serves text completions (/v1/completions) only")
        body = call.body
        shapes.check_params(body, SUPPORTED, self.name, call.drop_params)
        prompt = body.get("prompt")
        if isinstance(prompt, list) and len(prompt) == 1:
            prompt = prompt[0]
        if not isinstance(prompt, str):
            raise BadRequest(f"{self.name}: prompt must be one string", param="prompt")
        request: dict[str, Any] = {"model": call.target.model, "prompt": prompt, "stream": call.stream}
        for key in FORWARDED:
            if body.get(key) is not None:
                request[key] = body[key]
        for key, renamed in RENAMED.items():
            if body.get(key) is not None:
                request[renamed] = body[key]
        url = call.target.api_base + "/fim/completions"
        return UpstreamRequest("POST", url, json_headers(call.target.api_key), orjson.dumps(request), call.stream)

    def _parse(self, call: Call, status: int, body: bytes) -> Reply | FollowUp:
        chat = shapes.loads(body, self.name)
        if not isinstance(chat, dict):
            raise UpstreamError(f"{self.name}: answered HTTP {status} with something other than an object")
        return Reply(text_completion(chat), Usage.from_openai(chat.get("usage")))

    def stream(self, call: Call) -> StreamTranslator:
        return ChunksToCompletion(PassThroughStream(self.name), self.name)
