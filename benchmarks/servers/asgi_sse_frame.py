"""asgi-sse doing `minimal_pydantic`'s work per event, through the library's hot path.

`minimal_pydantic` dumps a model into an f-string per event: in `/burst` it builds a
fresh `Payload` per event, in `/fanout` every subscriber dumps the shared tick's payload
itself. This server does exactly that work with `Tick.frame(payload, id=...)` (the
typed event's encoder, which validates nothing an exact `Payload` would not need) and a
plain generator, one `send` per event (in fan-out one async generator layer,
`Ticker.encoded`, as `minimal_pydantic` iterates `Ticker.subscribe()`): the same work
as `minimal_pydantic`, so the ratio between them is what the library's response costs.
`asgi_sse` (burst) and `asgi_sse_typed` (fan-out) build the event object as well: one
more pydantic validation per event. Run in burst and fan-out only (`run.py`: ONLY_IN).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from asgi_sse import EventSourceResponse

from ._common import (
    BURST_DEFAULT,
    Receive,
    Scope,
    Send,
    Ticker,
    make_payload,
    query_int,
    send_json,
    send_not_found,
    stats_body,
)
from .asgi_sse import Tick, encode_tick

__all__ = ("app",)

ticker = Ticker()  # no encode: the payload only


async def burst(n: int) -> AsyncIterator[bytes]:
    for i in range(n):
        yield Tick.frame(make_payload(i), id=i)


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    path = scope["path"]
    if path == "/burst":
        stream = burst(query_int(scope, "n", BURST_DEFAULT))
        await EventSourceResponse(stream)(scope, receive, send)
    elif path == "/fanout":
        await EventSourceResponse(ticker.encoded(encode_tick))(scope, receive, send)
    elif path == "/stats":
        await send_json(send, stats_body())
    else:
        await send_not_found(send)
