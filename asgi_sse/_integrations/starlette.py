"""The Starlette `Response` around the core response (the user's guide is
`asgi_sse.starlette`'s docstring).

The only module of the package that imports Starlette; it delegates the streaming to
`_server.response` and takes the options from their one declaration
(`ResponseOptions`).
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from starlette.background import BackgroundTask
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from .._protocol.stream import EventStream
from .._server.options import ResponseOptions, response_options, spell_out_options
from .._server.response import EventSourceResponse as _CoreResponse

if TYPE_CHECKING:
    from typing_extensions import Unpack

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
        self.status_code = status_code
        self.background = background
        self.options = response_options(options, type(self))
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
