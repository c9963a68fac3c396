"""The Starlette `Response` around the core response (the user's guide is
`asgi_sse.starlette`'s docstring).

The only module of the package that imports Starlette; it delegates the streaming to
`_server.response` and takes the options from their one declaration
(`ResponseOptions`).
"""

from __future__ import annotations

from dataclasses import replace

from starlette.background import BackgroundTask
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from .._protocol.stream import EventStream
from .._server.options import ResponseOptions, response_options, spell_out_options
from .._server.response import EventSourceResponse as _CoreResponse
from .._util.compat import Unpack

__all__ = ("EventSourceResponse",)


class EventSourceResponse(Response):
    """`asgi_sse.EventSourceResponse` as a Starlette `Response`.

    The core class's behaviour and options, plus Starlette's ``background``; it takes
    no ``shutdown=`` (`GracefulShutdown`'s signal, which it finds in the scope, still
    ends its stream). The stream is the first argument, named ``content`` as in
    Starlette's `Response`, so the class also works as a FastAPI ``response_class`` of
    an async generator route. Headers added later through ``response.headers`` are sent
    too (FastAPI adds an injected `Response` parameter's headers that way only to
    responses it builds itself, e.g. as a generator route's ``response_class``; a route
    that returns this response passes them on with ``headers=response.headers``).

    Args:
        content: What to send (see `asgi_sse.types.EventStream`).
        status_code: The response status.
        background: Run after the response ended, as Starlette does.
        **options: ``ping``, ``ping_event``, ``send_timeout``, ``headers``, ``retry`` and
            ``observer``, as declared (with their defaults) in
            `asgi_sse.types.ResponseOptions`.

    Raises:
        ValueError: at construction, for headers that cannot be sent, or a ``ping`` or
            ``send_timeout`` that is not a positive number; when called, for headers
            added later that cannot be sent.
        TypeError: at construction, for a keyword that is not an option, a
            ``ping_event`` that is not an event or a function, or a ``ping`` or
            ``send_timeout`` that is not a number.
        RuntimeError: when called with a scope that is not HTTP (a websocket).
    """

    media_type = "text/event-stream"
    """Starlette's: the content type this response sends."""

    @spell_out_options(ResponseOptions)
    def __init__(
        self,
        content: EventStream,
        status_code: int = 200,
        *,
        background: BackgroundTask | None = None,
        **options: Unpack[ResponseOptions],
    ) -> None:
        self.stream = content
        """What the response sends."""
        self.status_code = status_code
        """The response status."""
        self.background = background
        """Starlette's: run after the response ended."""
        self.options = response_options(options, type(self))
        """The options, checked and encoded once."""
        # Starlette's own attribute: code that adds headers after construction edits it.
        self.raw_headers = list(self.options.header_list)
        """Starlette's: the headers as sent, which ``response.headers`` edits."""
        self.body = b""
        """Starlette's: always empty (the body is the stream)."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        options = self.options
        if self.raw_headers != list(options.header_list):  # headers added later
            options = replace(options, headers=self.raw_headers)
        response = _CoreResponse.with_options(self.stream, options, status_code=self.status_code)
        await response(scope, receive, send)
        if self.background is not None:
            await self.background()
