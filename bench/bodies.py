"""Static upstream answers and client requests, shaped like the real recordings.

The shapes follow tests/fixtures/wire/openai/chat-nonstream.httprr.txt,
chat-stream-include-usage.resp0.txt, embeddings-float-dimensions.httprr.txt and
anthropic/messages-nonstream.yaml, messages-stream-text.resp0.txt. Every answer is built once
at start-up and served verbatim by nginx, so the fake upstream does no work per request.
"""

from __future__ import annotations

import json
import random

# The assistant text every chat answer carries; the check on each response looks for its tail.
ANSWER_TOKENS = [
    "Hello", "!", " I", " am", " a", " computer", " program", ",", " so", " I", " am", " here",
    " to", " help", ".", " How", " can", " I", " assist", " you", " today?",
]  # fmt: skip
ANSWER_TEXT = "".join(ANSWER_TOKENS)
ANSWER_TAIL = "assist you today?"
LAST_TOKEN = "today?"

_CHAT_ID = "chatcmpl-C6bjxzOr3Oz1rTiafksd6himIit3q"
_MSG_ID = "msg_011CeCGmD8uwD58unxgBN8Qx"
_CREATED = 1755691077
_OPENAI_MODEL = "gpt-4o-mini-2024-07-18"
_ANTHROPIC_MODEL = "claude-haiku-4-5-20251001"
_OBFUSCATION_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"

OPENAI_STREAM_CHUNKS = 20
ANTHROPIC_STREAM_EVENTS = 20


def _compact(value: object) -> str:
    return json.dumps(value, separators=(",", ":"))


def _openai_usage(prompt: int, completion: int) -> dict[str, object]:
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": 0,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


def openai_chat_json() -> str:
    """A non-streamed chat completion, pretty-printed like OpenAI's own answers."""
    body = {
        "id": _CHAT_ID,
        "object": "chat.completion",
        "created": _CREATED,
        "model": _OPENAI_MODEL,
        "choices": [
            {
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": ANSWER_TEXT,
                    "refusal": None,
                    "annotations": [],
                },
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": _openai_usage(13, len(ANSWER_TOKENS)),
        "service_tier": "default",
        "system_fingerprint": "fp_560af6e559",
    }
    return json.dumps(body, indent=2) + "\n"


def openai_chat_sse() -> str:
    """A 20-chunk stream: role chunk, content chunks, finish chunk, usage chunk, then [DONE]."""
    rng = random.Random(7)
    content_chunks = OPENAI_STREAM_CHUNKS - 3
    tokens = ANSWER_TOKENS[-content_chunks:]
    deltas: list[tuple[dict[str, object], str | None]] = [({"role": "assistant", "content": "", "refusal": None}, None)]
    deltas += [({"content": token}, None) for token in tokens]
    deltas.append(({}, "stop"))

    def chunk(choices: list[dict[str, object]], usage: dict[str, object] | None) -> str:
        obfuscation = "".join(rng.choice(_OBFUSCATION_ALPHABET) for _ in range(rng.randint(4, 10)))
        body = {
            "id": _CHAT_ID,
            "object": "chat.completion.chunk",
            "created": _CREATED,
            "model": _OPENAI_MODEL,
            "service_tier": "default",
            "system_fingerprint": "fp_560af6e559",
            "choices": choices,
            "usage": usage,
            "obfuscation": obfuscation,
        }
        return f"data: {_compact(body)}\n\n"

    events = [
        chunk([{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}], None)
        for delta, finish in deltas
    ]
    events.append(chunk([], _openai_usage(14, len(tokens))))
    assert len(events) == OPENAI_STREAM_CHUNKS
    return "".join(events) + "data: [DONE]\n\n"


def openai_embeddings_json(dimensions: int = 256) -> str:
    """One 256-dimension float embedding, as text-embedding-3-small answers with `dimensions`."""
    rng = random.Random(11)
    vector = [round(rng.uniform(-0.1, 0.1), 9) for _ in range(dimensions)]
    body = {
        "object": "list",
        "data": [{"object": "embedding", "index": 0, "embedding": vector}],
        "model": "text-embedding-3-small",
        "usage": {"prompt_tokens": 9, "total_tokens": 9},
    }
    return json.dumps(body, indent=2) + "\n"


def _anthropic_usage(output_tokens: int) -> dict[str, object]:
    return {
        "input_tokens": 16,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
        "cache_creation": {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 0},
        "output_tokens": output_tokens,
        "service_tier": "standard",
        "inference_geo": "not_available",
    }


def anthropic_messages_json() -> str:
    body = {
        "model": _ANTHROPIC_MODEL,
        "id": _MSG_ID,
        "type": "message",
        "role": "assistant",
        "content": [{"type": "text", "text": ANSWER_TEXT}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "stop_details": None,
        "usage": _anthropic_usage(len(ANSWER_TOKENS)),
    }
    return _compact(body)


def anthropic_messages_sse() -> str:
    """A 20-event Messages stream: start, block start, ping, text deltas, block stop, delta, stop."""
    text_deltas = ANTHROPIC_STREAM_EVENTS - 6
    tokens = ANSWER_TOKENS[-text_deltas:]
    start_message: dict[str, object] = {
        "model": _ANTHROPIC_MODEL,
        "id": _MSG_ID,
        "type": "message",
        "role": "assistant",
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "stop_details": None,
        "usage": _anthropic_usage(2),
    }
    events: list[tuple[str, dict[str, object]]] = [
        ("message_start", {"type": "message_start", "message": start_message}),
        (
            "content_block_start",
            {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        ),
        ("ping", {"type": "ping"}),
    ]
    events += [
        (
            "content_block_delta",
            {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": token}},
        )
        for token in tokens
    ]
    final_usage = _anthropic_usage(len(tokens))
    del final_usage["cache_creation"], final_usage["service_tier"], final_usage["inference_geo"]
    events += [
        ("content_block_stop", {"type": "content_block_stop", "index": 0}),
        (
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": "end_turn", "stop_sequence": None, "stop_details": None},
                "usage": final_usage,
            },
        ),
        ("message_stop", {"type": "message_stop"}),
    ]
    assert len(events) == ANTHROPIC_STREAM_EVENTS
    return "".join(f"event: {name}\ndata: {_compact(data)}\n\n" for name, data in events)


def chat_request(model: str, *, stream: bool) -> str:
    body: dict[str, object] = {
        "model": model,
        "messages": [{"role": "user", "content": "Hello, how are you?"}],
        "max_completion_tokens": 50,
        "temperature": 0,
    }
    if stream:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    return _compact(body)


def embeddings_request(model: str) -> str:
    return _compact(
        {
            "model": model,
            "input": "The food was delicious and the waiter was very friendly.",
            "encoding_format": "float",
        }
    )


def anthropic_request(model: str, *, stream: bool) -> str:
    """The Messages request the direct target sends straight to the fake Anthropic upstream."""
    body: dict[str, object] = {
        "model": model,
        "max_tokens": 1024,
        "messages": [{"role": "user", "content": [{"type": "text", "text": "Hello, how are you?"}]}],
    }
    if stream:
        body["stream"] = True
    return _compact(body)
