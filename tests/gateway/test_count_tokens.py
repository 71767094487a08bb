"""POST /v1/messages/count_tokens: forwarded where the upstream offers it, a clear 400 elsewhere."""

from __future__ import annotations

import anthropic
import pytest
from tests.gateway.conftest import GatewayFactory, deployment
from tests.wire import ReplayUpstream, Reply


def test_count_tokens_through_the_anthropic_sdk(gateway: GatewayFactory) -> None:
    with ReplayUpstream() as upstream:
        served = gateway({"model_list": [
            deployment("claude", "anthropic/claude-haiku-4-5", upstream.url),
            deployment("gpt", "openai/gpt-4o-mini", upstream.url + "/v1"),
        ]})  # fmt: skip
        upstream.add("/v1/messages/count_tokens", Reply(200, {"content-type": "application/json"},
                                                        b'{"input_tokens": 14}'))  # fmt: skip
        client = served.anthropic()
        messages = [{"role": "user", "content": "Hello, Claude"}]
        counted = client.messages.count_tokens(model="claude", messages=messages)  # type: ignore[arg-type]
        assert counted.input_tokens == 14
        received = upstream.requests[-1]
        assert received.json() == {"model": "claude-haiku-4-5", "messages": messages}
        assert received.headers["x-api-key"] == "sk-up"
        with pytest.raises(anthropic.BadRequestError) as caught:
            client.messages.count_tokens(model="gpt", messages=messages)  # type: ignore[arg-type]
        assert "not offered by openai" in caught.value.message
