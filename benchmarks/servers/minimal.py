"""The practical limit: a hand-written ASGI app, one pre-encoded frame per `send`.

- `/burst`: the same pre-encoded frame n times, one `send` each.
- `/fanout`: the frame is encoded once per tick by the ticker; every subscriber sends
  the same bytes.
- `/idle`: headers, then it waits on `receive()` for the disconnect.
One task per connection (the server's own), no disconnect watcher while streaming, no
keep-alive: the least any SSE layer can do.
"""

from __future__ import annotations

from ._common import (
    BURST_DEFAULT,
    Receive,
    Scope,
    Send,
    Ticker,
    make_payload,
    manual_frame,
    query_int,
    send_json,
    send_not_found,
    stats_body,
)

__all__ = ("app",)

HEADERS = [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache")]
START = {"type": "http.response.start", "status": 200, "headers": HEADERS}
FRAME = manual_frame(make_payload(0), 0)
ticker = Ticker(encode=manual_frame)


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    path = scope["path"]
    if path == "/burst":
        await send(START)
        for _ in range(query_int(scope, "n", BURST_DEFAULT)):
            await send({"type": "http.response.body", "body": FRAME, "more_body": True})
        await send({"type": "http.response.body", "body": b""})
    elif path == "/fanout":
        await send(START)
        async for frame in ticker.frames():
            await send({"type": "http.response.body", "body": frame, "more_body": True})
    elif path == "/idle":
        await send(START)
        while (await receive())["type"] != "http.disconnect":
            pass
        await send({"type": "http.response.body", "body": b""})
    elif path == "/stats":
        await send_json(send, stats_body())
    else:
        await send_not_found(send)
