"""Where translation errors go: a value of the wrong type deep inside a request is the client's
fault (400), inside an answer the provider's (502); never a 500. And a stream translator that
finds a provider's error after some text hands the text out first."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from seance.gateway.errors import BadRequest, GatewayError, UpstreamError
from seance.gateway.providers.base import Adapter, Call, FollowUp, Reply, StreamTranslator, UpstreamRequest

SHAPE_ERRORS = (KeyError, TypeError, AttributeError, IndexError, ValueError)


@contextmanager
def client_shape(provider: str) -> Iterator[None]:
    try:
        yield
    except SHAPE_ERRORS as exc:
        raise BadRequest(f"{provider}: the request has a value of the wrong type or shape ({exc})") from exc


@contextmanager
def upstream_shape(provider: str) -> Iterator[None]:
    try:
        yield
    except SHAPE_ERRORS as exc:
        raise UpstreamError(f"{provider}: answered in a shape the gateway does not understand ({exc})") from exc


class TranslatingStream(StreamTranslator):
    """A StreamTranslator whose error, found after some output in the same feed, waits one call:
    the client first gets the text that came before the provider's error event, then the error."""

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


class GuardedAdapter(Adapter):
    """An adapter whose translation errors are the sender's: build → 400, parse → 502."""

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
