"""The practical limit: a hand-written ASGI app, one pre-encoded frame per `send`.

- `/burst`: the same pre-encoded frame n times, one `send` each.
- `/fanout`: the frame is encoded once per tick by the ticker; every subscriber sends
  the same bytes.
- `/idle`: headers, then it waits on `receive()` for the disconnect.
- `/hub-burst?topic=T`, `/hub-publish?topic=T&n=N&every=E`: the hub scenario's burst
  publisher, by hand: a `Broadcast` (one list of pre-encoded frames, a position per
  subscriber, one shared wake-up, whatever is ready joined into one `send`), lossless
  like the hub but without its bound, ids, resume or accounting.
One task per connection (the server's own), no disconnect watcher while streaming, no
keep-alive: the least any SSE layer can do.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator

from ._common import (
    BURST_DEFAULT,
    Receive,
    Scope,
    Send,
    Ticker,
    make_payload,
    manual_frame,
    query_int,
    query_str,
    send_json,
    send_not_found,
    stats_body,
)

__all__ = ("app",)

HEADERS = [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache")]
START = {"type": "http.response.start", "status": 200, "headers": HEADERS}
FRAME = manual_frame(make_payload(0), 0)
ticker = Ticker(encode=manual_frame)


class Broadcast:
    """A hand-written lossless broadcast of pre-encoded frames (the hub's reference)."""

    def __init__(self) -> None:
        self.frames: list[bytes] = []
        self.closed = False
        self._changed = asyncio.Event()

    def publish(self, frame: bytes) -> None:
        self.frames.append(frame)
        self._wake()

    def close(self) -> None:
        self.closed = True
        self._wake()

    def _wake(self) -> None:
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    async def follow(self, start: int) -> AsyncIterator[bytes]:
        """Every frame from position ``start`` on, what is ready joined, until closed."""
        position = start
        while True:
            frames = self.frames
            if position < len(frames):
                body = (
                    frames[position]
                    if position + 1 == len(frames)
                    else b"".join(frames[position:])
                )
                position = len(frames)
                yield body
            elif self.closed:
                return
            else:
                await self._changed.wait()


channels: dict[str, Broadcast] = {}


async def publish_burst(topic: str, n: int, every: int) -> float:
    """As the asgi_sse server's: N frames as fast as possible, then close; seconds."""
    channel = channels.setdefault(topic, Broadcast())
    started = time.perf_counter()
    for seq in range(1, n + 1):
        channel.publish(manual_frame(make_payload(seq), seq))
        if seq % every == 0:
            await asyncio.sleep(0)
    channel.close()
    return time.perf_counter() - started


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
    elif path == "/hub-burst":
        channel = channels.setdefault(query_str(scope, "topic", "burst"), Broadcast())
        start = len(channel.frames)  # subscribed before the headers go out
        await send(START)
        async for body in channel.follow(start):
            await send({"type": "http.response.body", "body": body, "more_body": True})
        await send({"type": "http.response.body", "body": b""})
    elif path == "/hub-publish":
        n = query_int(scope, "n", 1000)
        seconds = await publish_burst(
            query_str(scope, "topic", "burst"), n, max(1, query_int(scope, "every", 1))
        )
        await send_json(send, json.dumps({"published": n, "seconds": seconds}).encode())
    else:
        await send_not_found(send)
