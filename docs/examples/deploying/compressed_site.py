"""Compressed pages, uncompressed event streams: two ways with brotli-asgi."""

import itertools
from collections.abc import AsyncIterator

import anyio
from brotli_asgi import BrotliMiddleware
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Mount, Route

from asgi_sse import ServerSentEvent, SSEEndpoint, SSERequest


async def ticks(request: SSERequest) -> AsyncIterator[ServerSentEvent]:
    for n in itertools.count():
        yield ServerSentEvent(str(n), event="tick")
        await anyio.sleep(1)


async def home(request: Request) -> PlainTextResponse:
    return PlainTextResponse("Hello! " * 200)


# --8<-- [start:outside]
# 1. The streams mounted beside the compressed part of the site, not inside it
#    (works with any middleware):
pages = BrotliMiddleware(Starlette(routes=[Route("/", home)]))
app = Starlette(routes=[Mount("/events", SSEEndpoint(ticks)), Mount("/", pages)])
# --8<-- [end:outside]

# --8<-- [start:excluded]
# 2. The middleware around everything, told to leave the streams' paths alone (an
#    option of brotli-asgi and zstd-asgi; starlette-compress has none):
site = Starlette(routes=[Route("/", home), Mount("/events", SSEEndpoint(ticks))])
excluding = BrotliMiddleware(site, excluded_handlers=["^/events/"])
# --8<-- [end:excluded]
