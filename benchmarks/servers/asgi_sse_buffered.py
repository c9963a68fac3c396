"""asgi-sse with every stream wrapped in `buffered()`: the stream runs in a task of its
own, up to 64 items ahead, and the response sends what is ready in one `send`.

Same routes and streams as `asgi_sse`; the difference shows what a producer task costs
(idle memory, tasks, fan-out CPU) and buys (bursts).
"""

from __future__ import annotations

from asgi_sse import EventSourceResponse, buffered

from ._common import BURST_DEFAULT, Receive, Scope, Send, query_int, send_json, send_not_found
from ._common import stats_body as _stats_body
from .asgi_sse import burst, idle, ticker

__all__ = ("app",)


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    path = scope["path"]
    if path == "/burst":
        stream = buffered(burst(query_int(scope, "n", BURST_DEFAULT)))
        await EventSourceResponse(stream)(scope, receive, send)
    elif path == "/fanout":
        await EventSourceResponse(buffered(ticker.frames()))(scope, receive, send)
    elif path == "/idle":
        await EventSourceResponse(buffered(idle()))(scope, receive, send)
    elif path == "/stats":
        await send_json(send, _stats_body())
    else:
        await send_not_found(send)
