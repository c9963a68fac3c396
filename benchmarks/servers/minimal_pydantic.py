"""The limit for typed events: the minimal app, building and dumping the model per event.

Like `minimal`, one `send` per event and one task per connection, but every event is
a fresh `Payload` dumped with `model_dump_json()` into an f-string - in `/fanout` too:
each subscriber dumps the shared tick's payload itself (typed events per subscriber).
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
ticker = Ticker()


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    path = scope["path"]
    if path == "/burst":
        await send(START)
        for i in range(query_int(scope, "n", BURST_DEFAULT)):
            body = manual_frame(make_payload(i), i)
            await send({"type": "http.response.body", "body": body, "more_body": True})
        await send({"type": "http.response.body", "body": b""})
    elif path == "/fanout":
        await send(START)
        async for payload, _ in ticker.subscribe():
            body = manual_frame(payload, payload.seq)
            await send({"type": "http.response.body", "body": body, "more_body": True})
    elif path == "/idle":
        await send(START)
        while (await receive())["type"] != "http.disconnect":
            pass
        await send({"type": "http.response.body", "body": b""})
    elif path == "/stats":
        await send_json(send, stats_body())
    else:
        await send_not_found(send)
