"""The implementation of `asgi_sse.starlette` (whose docstring is the user's guide)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

from starlette.background import BackgroundTask
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from .._protocol.stream import EventStream
from .._server.aliases import PingEvent
from .._server.observer import StreamObserver
from .._server.options import DEFAULT_PING, DEFAULT_SEND_TIMEOUT, StreamOptions
from .._server.response import EventSourceResponse as _CoreResponse

__all__ = ("EventSourceResponse",)


class EventSourceResponse(Response):
    """`asgi_sse.EventSourceResponse` as a Starlette `Response`.

    Same arguments and behaviour as the core class, plus Starlette's ``background``. The
    stream is the first argument, named ``content`` as in Starlette's `Response`, so the
    class also works as a FastAPI ``response_class`` of an async generator route.
    Headers added later through ``response.headers`` are sent too (FastAPI adds an
    injected `Response` parameter's headers that way only to responses it builds itself,
    e.g. as a generator route's ``response_class``; a route that returns this response
    passes them on with ``headers=response.headers``).

    Raises:
        ValueError: at construction, for headers that cannot be sent.
    """

    media_type = "text/event-stream"

    def __init__(
        self,
        content: EventStream,
        status_code: int = 200,
        *,
        headers: Mapping[str, str] | None = None,
        ping: float | None = DEFAULT_PING,
        ping_event: PingEvent | None = None,
        send_timeout: float | None = DEFAULT_SEND_TIMEOUT,
        background: BackgroundTask | None = None,
        observer: StreamObserver | None = None,
    ) -> None:
        self.stream = content
        self.status_code = status_code
        self.background = background
        self.options = StreamOptions(
            ping=ping,
            ping_event=ping_event,
            send_timeout=send_timeout,
            headers=headers,
            observer=observer,
        )
        # Starlette's own attribute: code that adds headers after construction edits it.
        self.raw_headers = list(self.options.header_list)
        self.body = b""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        options = self.options
        if self.raw_headers != list(options.header_list):  # headers added later
            options = replace(options, headers=self.raw_headers)
        response = _CoreResponse.with_options(self.stream, options, status_code=self.status_code)
        await response(scope, receive, send)
        if self.background is not None:
            await self.background()
