"""uvicorn's httptools protocol with bounds on a request's head and the time to send it.

httptools (llhttp) bounds neither the size of the headers nor the time a client takes to send
them; uvicorn's keep-alive timer only runs after a response. `bounded_protocol(settings)` adds:

- the request line and headers of one request at most `max_head_bytes` (measured as they are
  parsed, and per read while the head is incomplete: one header sent without end is stopped too)
  and `max_headers` fields: past either, 431;
- the head received within `head_timeout` seconds of the connection (or of the first byte after
  a response): else 408. A connection that sends nothing, or trickles a header, is closed;
- a request answered before its body arrived (a read route, a refused key) closes the
  connection after the answer, so a body dribbled a byte at a time cannot hold it open.

A refused request gets a short plain-text answer with `Connection: close`, then the connection
is closed; the app never sees it.
"""

from __future__ import annotations

import asyncio
from typing import Any, ClassVar

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from horde_model_reference.logs import get_logger
from horde_model_reference.writes.settings import HttpSettings

__all__ = ["bounded_protocol"]

_log = get_logger(__name__)
_REASONS = {408: b"Request Timeout", 431: b"Request Header Fields Too Large"}


class _HeadRefused(Exception):
    """Raised from a parser callback to stop parsing a head past its bounds."""


class _BoundedHttpToolsProtocol(HttpToolsProtocol):
    limits: ClassVar[HttpSettings] = HttpSettings()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._in_head = True
        self._head_bytes = 0
        self._head_fields = 0
        self._parsed_bytes = 0
        self._head_timer: asyncio.TimerHandle | None = None
        self._refusal: tuple[int, str] | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if not self._in_head:
            super().data_received(data)
            return
        self._arm()
        self._head_bytes += len(data)
        super().data_received(data)
        if self._in_head and self._head_bytes > self.limits.max_head_bytes and self._refusal is None:
            self._refuse(431, f"request head over {self.limits.max_head_bytes} bytes")

    def on_url(self, url: bytes) -> None:
        self._parsed_bytes += len(url)
        self._check_parsed()
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._head_fields += 1
        self._parsed_bytes += len(name) + len(value) + 4
        if self._head_fields > self.limits.max_headers:
            self._refusal = (431, f"more than {self.limits.max_headers} header fields")
            raise _HeadRefused
        self._check_parsed()
        super().on_header(name, value)

    def _check_parsed(self) -> None:
        """A head that arrived whole in one read is measured as it is parsed."""
        if self._parsed_bytes > self.limits.max_head_bytes:
            self._refusal = (431, f"request head over {self.limits.max_head_bytes} bytes")
            raise _HeadRefused

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._disarm()
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._in_head, self._head_bytes, self._head_fields, self._parsed_bytes = True, 0, 0, 0

    def on_response_complete(self) -> None:
        cycle = self.cycle
        if cycle is not None and cycle.more_body and not self.transport.is_closing():
            # Answered before its body arrived (a read route, a refused key): a client still
            # sending it could keep the connection open for ever, one byte at a time. Close it.
            _log.info("http_unread_body_closed", client=str(self.client))
            self.server_state.total_requests += 1
            self.transport.close()
            return
        super().on_response_complete()

    def send_400_response(self, msg: str) -> None:
        if self._refusal is not None:  # the parser stopped at our callback's exception
            self._refuse(*self._refusal)
        else:
            super().send_400_response(msg)

    def _arm(self) -> None:
        if self._head_timer is None:
            self._head_timer = self.loop.call_later(self.limits.head_timeout, self._head_timed_out)

    def _disarm(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self._in_head and not self.transport.is_closing():
            self._refuse(408, f"request head not received within {self.limits.head_timeout:g} s")

    def _refuse(self, status: int, message: str) -> None:
        self._refusal = (status, message)
        self._disarm()
        _log.info("http_request_refused", status=status, reason=message, client=str(self.client))
        if self.transport.is_closing():
            return
        body = message.encode()
        self.transport.write(
            b"HTTP/1.1 %d %s\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: %d\r\n"
            b"connection: close\r\n\r\n%s" % (status, _REASONS[status], len(body), body)
        )
        self.transport.close()


def bounded_protocol(settings: HttpSettings) -> type[asyncio.Protocol]:
    """uvicorn's httptools protocol class with the head bounds of `settings` (for `Config(http=...)`)."""
    return type("BoundedHttpToolsProtocol", (_BoundedHttpToolsProtocol,), {"limits": settings})
