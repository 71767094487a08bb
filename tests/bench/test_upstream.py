import json
from pathlib import Path

from bodies import ANSWER_TEXT, anthropic_messages_sse, openai_chat_sse
from upstream import nginx_config, routes


def test_openai_stream_has_20_chunks_then_done_and_the_whole_text() -> None:
    events = [e for e in openai_chat_sse().split("\n\n") if e]
    assert len(events) == 21 and events[-1] == "data: [DONE]"
    chunks = [json.loads(e.removeprefix("data: ")) for e in events[:-1]]
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])
    assert ANSWER_TEXT.endswith(text) and text.endswith("today?")
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["total_tokens"] > 0


def test_anthropic_stream_has_20_events_in_messages_order() -> None:
    events = [e.split("\n") for e in anthropic_messages_sse().split("\n\n") if e]
    names = [lines[0].removeprefix("event: ") for lines in events]
    assert len(names) == 20
    assert names[:3] == ["message_start", "content_block_start", "ping"]
    assert names[-3:] == ["content_block_stop", "message_delta", "message_stop"]
    assert all(
        json.loads(lines[1].removeprefix("data: "))["type"] == name for name, lines in zip(names, events, strict=True)
    )


def test_every_route_is_in_the_config_and_its_file_written(tmp_path: Path) -> None:
    config = nginx_config(18100, tmp_path)
    for route in routes():
        assert f"location = {route.path} {{" in config
        if route.content_type == "application/json":
            json.loads(route.body)
        if route.flaky:
            assert "if ($bench_flaky = reset) { return 444; }" in config
        if route.delay:
            assert f"echo_exec {route.path.removeprefix('/slow')};" in config
        else:
            assert (tmp_path / "files" / route.path.lstrip("/")).read_text() == route.body


def test_the_flaky_route_fails_a_fifth_of_requests_half_with_500_half_with_a_reset(tmp_path: Path) -> None:
    config = nginx_config(18100, tmp_path)
    assert 'split_clients "${request_id}" $bench_flaky {' in config
    assert "10% fail;" in config and "10% reset;" in config and "* ok;" in config
    assert any(route.flaky and route.path == "/flaky/v1/chat/completions" for route in routes())
