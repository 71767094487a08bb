"""Each provider's context-window and content-policy refusals are recognised from its own error
shape (the bodies are the providers' documented and reported ones), and nothing else is."""

from __future__ import annotations

import orjson
import pytest

from seance.gateway.errors import CONTENT_POLICY, CONTEXT_WINDOW
from seance.gateway.providers import load_adapter
from seance.gateway.providers.base import Call, Target


def _call(provider: str) -> Call:
    return Call("chat", {"model": "m", "messages": []}, b"", False, Target(provider, "m", "http://up.test", "k"))


def _kind(provider: str, status: int, body: object) -> str | None:
    adapter = load_adapter(provider)
    assert adapter is not None
    raw = body if isinstance(body, bytes) else orjson.dumps(body)
    return adapter.error(_call(provider), status, {}, raw).kind


REFUSALS = [
    ("openai", {"error": {"message": "This model's maximum context length is 8192 tokens. However, your messages "
                          "resulted in 9000 tokens.", "type": "invalid_request_error", "param": "messages",
                          "code": "context_length_exceeded"}}, CONTEXT_WINDOW),
    ("openai", {"error": {"message": "Your request was rejected as a result of our safety system.",
                          "type": "invalid_request_error", "code": "content_policy_violation"}}, CONTENT_POLICY),
    ("azure", {"error": {"message": "The response was filtered due to the prompt triggering Azure OpenAI's "
                         "content management policy.", "param": "prompt", "code": "content_filter",
                         "innererror": {"code": "ResponsibleAIPolicyViolation"}}}, CONTENT_POLICY),
    ("groq", {"error": {"message": "Please reduce the length of the messages or completion.",
                        "type": "invalid_request_error", "param": "messages"}}, CONTEXT_WINDOW),
    ("mistral", {"object": "error", "message": "Prompt contains 40000 tokens and 0 draft tokens, too large for "
                 "model with 32768 maximum context length", "type": "invalid_request_error"}, CONTEXT_WINDOW),
    ("hosted_vllm", {"object": "error", "message": "This model's maximum context length is 16384 tokens. However, "
                     "you requested 19591 tokens.", "type": "BadRequestError", "code": 400}, CONTEXT_WINDOW),
    ("deepseek", {"error": {"message": "This model's maximum context length is 65536 tokens.",
                            "type": "invalid_request_error"}}, CONTEXT_WINDOW),
    ("together_ai", {"error": {"message": "Input validation error: `inputs` tokens + `max_new_tokens` must be "
                               "<= 8193. Given: 9000 `inputs` tokens and 512 `max_new_tokens`"}}, CONTEXT_WINDOW),
    ("huggingface", {"error": "Input validation error: `inputs` tokens + `max_new_tokens` must be <= 4096",
                     "error_type": "validation"}, CONTEXT_WINDOW),
    ("anthropic", {"type": "error", "error": {"type": "invalid_request_error",
                                              "message": "prompt is too long: 219898 tokens > 200000 maximum"}},
     CONTEXT_WINDOW),
    ("anthropic", {"type": "error", "error": {"type": "invalid_request_error", "message": "input length and "
                   "`max_tokens` exceed context limit: 198981 + 21333 > 200000"}}, CONTEXT_WINDOW),
    ("anthropic", {"type": "error", "error": {"type": "invalid_request_error",
                                              "message": "Output blocked by content filtering policy"}},
     CONTENT_POLICY),
    ("gemini", {"error": {"code": 400, "message": "The input token count (3475108) exceeds the maximum number of "
                          "tokens allowed (1048576).", "status": "INVALID_ARGUMENT"}}, CONTEXT_WINDOW),
    ("cohere", {"message": "too many tokens: total number of tokens in the prompt cannot exceed 4081 - received "
                "4200. Try using a shorter prompt"}, CONTEXT_WINDOW),
    ("ollama_chat", {"error": "the input length exceeds the context length"}, CONTEXT_WINDOW),
]  # fmt: skip


@pytest.mark.parametrize(("provider", "body", "kind"), REFUSALS, ids=[f"{p}-{k}" for p, _, k in REFUSALS])
def test_a_provider_s_refusal_is_recognised(provider: str, body: object, kind: str) -> None:
    assert _kind(provider, 400, body) == kind


@pytest.mark.parametrize(
    ("provider", "status", "body"),
    [
        ("openai", 400, {"error": {"message": "Invalid schema for function f",
                                   "code": "invalid_function_parameters"}}),
        # a 5xx is the provider's trouble, whatever it says
        ("openai", 500, {"error": {"message": "maximum context length", "code": "context_length_exceeded"}}),
        # a field that echoes the model's own output is not read: it may say anything
        ("groq", 400, {"error": {"message": "Failed to call a function.", "code": "tool_use_failed",
                                 "failed_generation": "the maximum context length is exceeded"}}),
        ("anthropic", 429, {"type": "error", "error": {"type": "rate_limit_error", "message": "slow down"}}),
        ("gemini", 400, b"<html>prompt is too long</html>"),  # another provider's wording
    ],
)  # fmt: skip
def test_other_errors_have_no_kind(provider: str, status: int, body: object) -> None:
    assert _kind(provider, status, body) is None
