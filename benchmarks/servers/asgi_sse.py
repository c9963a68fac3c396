"""asgi-sse: `EventSourceResponse` called as a plain ASGI app, typed `Tick` events.

- `/burst`: a generator yielding `Tick(data=Payload(...), id=i)` (built per event).
- `/fanout`: the tick is encoded once (`Tick.frame`) and every subscriber's stream
  yields the same bytes - the library's encode-once broadcast.
- `/idle`: a stream that never yields; keep-alives at the default (15 s).
Routing is the same hand-written dispatch as `minimal`, so only the SSE layer differs.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from asgi_sse import BaseEvent, EventSourceResponse

from ._common import (
    BURST_DEFAULT,
    Payload,
    Receive,
    Scope,
    Send,
    Ticker,
    make_payload,
    query_int,
    send_json,
    send_not_found,
    stats_body,
    wait_forever,
)

__all__ = ("app",)


class Tick(BaseEvent[Payload]):  # event: tick
    pass


def encode_tick(payload: Payload, seq: int) -> bytes:
    return Tick.frame(payload, id=seq)


ticker = Ticker(encode=encode_tick)


async def burst(n: int) -> AsyncIterator[Tick]:
    for i in range(n):
        yield Tick(data=make_payload(i), id=i)


async def idle() -> AsyncIterator[bytes]:
    await wait_forever()
    yield b""  # never reached


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    path = scope["path"]
    if path == "/burst":
        await EventSourceResponse(burst(query_int(scope, "n", BURST_DEFAULT)))(
            scope, receive, send
        )
    elif path == "/fanout":
        # The ticker's own iterator of encoded frames: one async generator layer, as
        # in `minimal`.
        await EventSourceResponse(ticker.frames())(scope, receive, send)
    elif path == "/idle":
        await EventSourceResponse(idle())(scope, receive, send)
    elif path == "/stats":
        await send_json(send, stats_body())
    else:
        await send_not_found(send)
