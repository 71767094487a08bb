"""Item 1 of issue 13: a model name is client input. Whatever it holds, each adapter either refuses
it (400) or sends exactly one request whose request line and headers are what the adapter meant:
no second request smuggled after a CR LF, no `..` walking out of the provider's path, no query or
fragment cut in, and the HTTP client refuses any target or header that could do that anyway."""

from __future__ import annotations

import re

import pytest
from tests.reliability.raw import Recorder

from seance.gateway.errors import BadRequest, GatewayError
from seance.gateway.providers import REGISTRY, load_adapter
from seance.gateway.providers.base import Call, Target, UpstreamRequest
from seance.gateway.upstream import Timeout
from seance.gateway.upstream.transport import HTTPTransport

HOSTILE = [
    "x HTTP/1.0\r\n\r\nGET /v1/account?",
    "owner/x HTTP/1.1\r\nhost: evil\r\n\r\nGET /v1/account?",
    "../../v1/account",
    "owner/../../v1/account",
    "..",
    "owner/..",
    "a?b=c",
    "owner/a?b=c",
    "a#frag",
    "owner/a%2f..%2f..",
    "a%2fb",
    "nul\x00byte",
    "owner/nul\x00",
    "tab\there",
    "space here",
    "x" * 5000,
    "owner/" + "y" * 5000,
    "модель/名前",
    "🙂/🙃",
    "owner//name",
]
PREFIXES = sorted(REGISTRY)
# a request target: the path and query characters of RFC 3986, nothing else
TARGET = re.compile(rb"/[A-Za-z0-9\-._~%!$&'()*+,;=:@/]*(\?[A-Za-z0-9\-._~%!$&'()*+,;=:@/?]*)?")


def call_for(prefix: str, model: str, base: str) -> Call:
    adapter = load_adapter(prefix)
    assert adapter is not None
    op = "chat" if "chat" in adapter.operations else sorted(adapter.operations)[0]
    body = {"model": model, "messages": [{"role": "user", "content": "hi"}], "input": "hi", "prompt": "hi"}
    target = Target(prefix, model, adapter.normalize_base(base), "sk-secret-key", "2024-06-01")
    return Call(op, body, b"", False, target)  # type: ignore[arg-type]


@pytest.mark.parametrize("prefix", PREFIXES)
async def test_hostile_model_names_never_leave_their_path_segment(prefix: str) -> None:
    recorder = await Recorder().start()
    transport = HTTPTransport()
    adapter = load_adapter(prefix)
    assert adapter is not None
    sent = 0
    try:
        for model in HOSTILE:
            call = call_for(prefix, model, recorder.url + "/base")
            try:
                request = adapter.build(call)
            except BadRequest as exc:
                assert exc.status == 400
                continue
            before = len(recorder.heads)
            try:
                response = await transport.send(request, Timeout(connect=2, total=5), prefix)
                await transport.read(response, prefix)
            except GatewayError as exc:  # refused by the HTTP client: nothing went out
                assert exc.status == 400, (model, exc.message)
                assert len(recorder.heads) == before
                continue
            sent += 1
            assert len(recorder.heads) == before + 1, (model, recorder.heads[before:])
            line, *header_lines = recorder.heads[-1].removesuffix(b"\r\n\r\n").split(b"\r\n")
            method, target, version = line.split(b" ")
            assert (method, version) == (request.method.encode(), b"HTTP/1.1")
            assert TARGET.fullmatch(target), (model, target)
            path = target.partition(b"?")[0]
            assert path.startswith(b"/base/"), (model, target)
            assert not {b"..", b"."} & set(path.split(b"/")), (model, target)
            names = {h.partition(b":")[0].lower() for h in header_lines}
            expected = {k.lower().encode() for k in request.headers} | {b"host", b"accept-encoding"}
            assert names - {b"content-length"} == expected - {b"content-length"}, model
    finally:
        await transport.close()
        await recorder.stop()
    # every received byte came as one of the requests counted above
    assert sum(r.count(b" HTTP/1.1\r\n") for r in recorder.received) == sent


@pytest.mark.parametrize(
    "url, headers",
    [
        ("/v1/x HTTP/1.1\r\nhost: evil\r\n\r\nGET /v1/account", {}),
        ("/v1/a b", {}),
        ("/v1/nul\x00", {}),
        ("/v1/frag#x", {}),
        ("/v1/ok", {"x-evil": "a\r\nhost: evil"}),
        ("/v1/ok", {"x-evil": "nul\x00"}),
        ("/v1/ok", {"bad name": "x"}),
        ("/v1/ok", {"x-wide": "é€"}),
    ],
)
async def test_the_http_client_refuses_what_would_split_a_request(url: str, headers: dict[str, str]) -> None:
    recorder = await Recorder().start()
    transport = HTTPTransport()
    try:
        request = UpstreamRequest("POST", recorder.url + url, headers, b"{}")
        with pytest.raises(BadRequest):
            await transport.send(request, Timeout(connect=2, total=5), "openai")
        assert recorder.received == []
    finally:
        await transport.close()
        await recorder.stop()
