"""asgi-sse with a typed event built per subscriber in fan-out, as `minimal_pydantic` does.

`/fanout`: every subscriber's stream yields `Tick(data=payload, id=seq)` for each tick
of the shared ticker (which does not encode): one event object and one encode per
subscriber per tick - the cost a user pays who does not encode once. Run in the
fan-out scenario only (`run.py`: ONLY_IN); `/burst` and `/idle` are `asgi_sse`'s.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from asgi_sse import EventSourceResponse

from ._common import Receive, Scope, Send, Ticker, send_json, send_not_found
from ._common import stats_body as _stats_body
from .asgi_sse import Tick

__all__ = ("app",)

ticker = Ticker()  # no encode: the payload only


async def typed_ticks() -> AsyncIterator[Tick]:
    async for payload, _ in ticker.subscribe():
        yield Tick(data=payload, id=payload.seq)


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    path = scope["path"]
    if path == "/fanout":
        await EventSourceResponse(typed_ticks())(scope, receive, send)
    elif path == "/stats":
        await send_json(send, _stats_body())
    else:
        await send_not_found(send)
