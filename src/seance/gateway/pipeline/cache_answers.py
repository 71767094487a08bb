"""What the response cache keeps of an answer, and how it gives it back.

An entry is one line of JSON (when it was stored, its usage, when it expires in Redis) then the
answer's body as OpenAI's non-streamed shape (Anthropic's for /v1/messages): the bytes the client
was sent for a non-streamed answer, the assembled answer (content, tool calls, finish reasons,
usage) for a stream — never the stream's bytes, which belong to one provider's chunking. A
streaming request served from the cache gets that answer replayed as OpenAI chunks (Anthropic's
events), so either kind of request can be served from either kind of entry.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, fields
from operator import attrgetter
from typing import Any

import orjson

from seance.gateway.formats.openai import Usage, usage_dict
from seance.gateway.formats.sse import DONE, EventSplitter
from seance.gateway.pipeline import cache_messages


@dataclass(slots=True)
class Entry:
    """One stored answer. Not frozen: a frozen dataclass costs three times as much to make, and
    every miss that is stored makes one."""

    stored_at: float  # wall clock: replicas compare it with their own
    usage: Usage | None
    body: bytes
    # what hits made of it (the cache hook's Answers, by the kind of request), kept with the entry
    # while it lives in this process: a hit on the in-process store builds nothing
    made: dict[Any, Any] | None = None
    # the Redis value it was read from or written as: a later read of the same bytes is this entry
    # again, its answers made (cache_stores.RedisStore)
    raw: bytes | None = field(default=None, compare=False, repr=False)
    # when the in-process store lets it go (its clock): kept here, not in a tuple beside it, so that
    # a stored miss leaves one object less for the garbage collector to track (cache_stores.LocalStore)
    expires: float = field(default=0.0, compare=False, repr=False)
    # when its Redis value expires (wall clock; 0: not known): a copy kept in this process
    # (cache_near.py) ends then too
    until: float = field(default=0.0, compare=False, repr=False)

    def encode(self, until: float = 0.0) -> bytes:
        """The bytes of the entry (a Redis value that expires at `until`): one line of JSON, then
        the body."""
        usage = self.usage
        tokens = None if usage is None else _usage_counts(usage)
        self.until = until
        self.raw = b"%b\n%b" % (orjson.dumps({"t": self.stored_at, "u": tokens, "x": until}), self.body)
        return self.raw

    @classmethod
    def decode(cls, data: bytes) -> Entry | None:
        """None for anything this version cannot read (a foreign or damaged value: a miss)."""
        head, newline, body = data.partition(b"\n")
        if not newline or not body:
            return None
        try:
            meta = orjson.loads(head)
            stored_at = float(meta["t"])
            tokens = meta["u"]
            # USAGE_FIELDS' counts; an older entry has the prompt and completion tokens only
            usage = None if tokens is None else Usage(*map(int, tokens[: len(USAGE_FIELDS)]))
            return cls(stored_at, usage, body, None, data, until=float(meta.get("x") or 0.0))
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, IndexError):
            return None


USAGE_FIELDS = tuple(field.name for field in fields(Usage))
_usage_counts = attrgetter(*USAGE_FIELDS)  # one C call (a getattr per field cost ~4k instructions)


# --- a captured stream into one answer ----------------------------------------------------------


def assemble(endpoint: str, chunks: Sequence[bytes], usage: Usage | None) -> bytes | None:
    """The non-streamed answer a complete OpenAI chunk stream (as the client was sent it) amounts
    to; None when it did not end ([DONE] and a finish reason for every choice) or is not OpenAI's.
    An Anthropic Messages stream: cache_messages.py."""
    splitter = EventSplitter()
    events = [data for part in chunks for _, data in splitter.feed(part)]
    events += [data for _, data in splitter.flush()]
    if endpoint == "messages":
        return cache_messages.assemble(events)
    if not events or events[-1] != b"[DONE]":
        return None
    try:
        parsed = [orjson.loads(data) for data in events[:-1]]
    except orjson.JSONDecodeError:
        return None
    if not parsed or not all(isinstance(chunk, dict) for chunk in parsed):
        return None
    if endpoint == "chat":
        return _chat(parsed, usage)
    if endpoint == "completion":
        return _text(parsed, usage)
    return None


def _usage(parsed: list[dict[str, Any]], usage: Usage | None) -> dict[str, Any] | None:
    for chunk in reversed(parsed):
        if isinstance(chunk.get("usage"), dict):
            return dict(chunk["usage"])
    return None if usage is None else usage_dict(usage)


def _chat(parsed: list[dict[str, Any]], usage: Usage | None) -> bytes | None:
    choices: dict[int, dict[str, Any]] = {}
    for chunk in parsed:
        for choice in chunk.get("choices") or ():
            state = choices.setdefault(
                choice.get("index", 0), {"content": [], "reasoning": [], "tools": {}, "finish": None}
            )
            delta = choice.get("delta") or {}
            if isinstance(delta.get("content"), str):
                state["content"].append(delta["content"])
            if isinstance(delta.get("reasoning_content"), str):
                state["reasoning"].append(delta["reasoning_content"])
            for call in delta.get("tool_calls") or ():
                tool = state["tools"].setdefault(call.get("index", 0), {"id": None, "name": "", "arguments": []})
                tool["id"] = call.get("id") or tool["id"]
                function = call.get("function") or {}
                tool["name"] = function.get("name") or tool["name"]
                if isinstance(function.get("arguments"), str):
                    tool["arguments"].append(function["arguments"])
            if choice.get("finish_reason"):
                state["finish"] = choice["finish_reason"]
    if not choices or any(state["finish"] is None for state in choices.values()):
        return None
    out = []
    for index in sorted(choices):
        state = choices[index]
        message: dict[str, Any] = {"role": "assistant", "content": "".join(state["content"]) or None}
        if state["reasoning"]:
            message["reasoning_content"] = "".join(state["reasoning"])
        if state["tools"]:
            message["tool_calls"] = [
                {
                    "id": t["id"],
                    "type": "function",
                    "function": {"name": t["name"], "arguments": "".join(t["arguments"])},
                }
                for _, t in sorted(state["tools"].items())
            ]
        out.append({"index": index, "message": message, "logprobs": None, "finish_reason": state["finish"]})
    return _answer(parsed, "chat.completion", out, usage)


def _text(parsed: list[dict[str, Any]], usage: Usage | None) -> bytes | None:
    texts: dict[int, list[str]] = {}
    finish: dict[int, str | None] = {}
    for chunk in parsed:
        for choice in chunk.get("choices") or ():
            index = choice.get("index", 0)
            if isinstance(choice.get("text"), str):
                texts.setdefault(index, []).append(choice["text"])
            finish.setdefault(index, None)
            if choice.get("finish_reason"):
                finish[index] = choice["finish_reason"]
    if not finish or any(reason is None for reason in finish.values()):
        return None
    choices = [
        {"index": i, "text": "".join(texts.get(i, ())), "logprobs": None, "finish_reason": finish[i]}
        for i in sorted(finish)
    ]
    return _answer(parsed, "text_completion", choices, usage)


def _answer(parsed: list[dict[str, Any]], kind: str, choices: list[dict[str, Any]], usage: Usage | None) -> bytes:
    """The whole answer a stream adds up to: its first chunk's id, time and model, and the usage."""
    first = parsed[0]
    body: dict[str, Any] = {
        "id": first.get("id"),
        "object": kind,
        "created": first.get("created"),
        "model": first.get("model"),
        "choices": choices,
    }
    if (usage_body := _usage(parsed, usage)) is not None:
        body["usage"] = usage_body
    return orjson.dumps(body)


# --- one answer as a stream ---------------------------------------------------------------------


def replay(endpoint: str, body: bytes, include_usage: bool) -> bytes | None:
    """A stored answer as the OpenAI chunk stream of a streaming request (the usage chunk only if
    the client asked with stream_options.include_usage); None if it cannot be (not OpenAI's shape).
    An Anthropic Messages answer: its events (cache_messages.py; their usage is always in them)."""
    if endpoint == "messages":
        return cache_messages.replay(body)
    try:
        answer = orjson.loads(body)
        choices = answer["choices"]
        head = {"id": answer.get("id"), "object": "", "created": answer.get("created"), "model": answer.get("model")}
        if endpoint == "chat":
            head["object"] = "chat.completion.chunk"
            events = list(_chat_chunks(choices))
        elif endpoint == "completion":
            head["object"] = "text_completion"
            events = list(_text_chunks(choices))
        else:
            return None
    except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError):
        return None
    out = [b"data: " + orjson.dumps({**head, "choices": [choice]}) + b"\n\n" for choice in events]
    usage = answer.get("usage")
    if include_usage and isinstance(usage, dict):
        out.append(b"data: " + orjson.dumps({**head, "choices": [], "usage": usage}) + b"\n\n")
    out.append(DONE)
    return b"".join(out)


def _chat_chunks(choices: Iterable[dict[str, Any]]) -> Iterable[dict[str, Any]]:
    for choice in choices:
        index = choice.get("index", 0)
        message = choice["message"]
        delta: dict[str, Any] = {"role": "assistant", "content": message.get("content") or ""}
        if message.get("reasoning_content"):
            delta["reasoning_content"] = message["reasoning_content"]
        yield {"index": index, "delta": delta, "logprobs": None, "finish_reason": None}
        for position, call in enumerate(message.get("tool_calls") or ()):
            delta = {"tool_calls": [{"index": position, **call}]}
            yield {"index": index, "delta": delta, "logprobs": None, "finish_reason": None}
        yield {"index": index, "delta": {}, "logprobs": None, "finish_reason": choice.get("finish_reason") or "stop"}


def _text_chunks(choices: Iterable[dict[str, Any]]) -> Iterable[dict[str, Any]]:
    for choice in choices:
        index = choice.get("index", 0)
        yield {"index": index, "text": choice.get("text") or "", "logprobs": None, "finish_reason": None}
        yield {"index": index, "text": "", "logprobs": None, "finish_reason": choice.get("finish_reason") or "stop"}
