"""The demo: three streams (plain, typed, merged) and a live page, as one ASGI app.

- ``/sse?message=hello``  plain `ServerSentEvent`s named ``echo``, ids from 0, JSON data
  with ``message`` and ``created_at``, one per second (step one);
- ``/sse2?message=hello`` the same as typed ``Echo`` events (step two);
- ``/sse3?message=hello`` ``echo`` merged with ``reverse_echo``, which starts a second
  later and reverses the message (step three);
- ``/`` a page that opens the three streams with the browser's EventSource;
- ``/stats`` open and finished streams, and the Last-Event-ID each reconnect sent.

Query parameters for trying things out: ``interval`` (seconds between events, default
1) and ``count`` (end the stream after that many events, so the browser reconnects
and resumes after its Last-Event-ID). Run it with ``python -m asgi_sse.demo``.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import AsyncIterator
from importlib.resources import files
from typing import Any

import anyio
from pydantic import BaseModel

from asgi_sse import (
    BaseEvent,
    GracefulShutdown,
    Merged,
    ServerSentEvent,
    SSEMiddleware,
    SSERequest,
    event_stream,
    merge,
)
from asgi_sse.types import Receive, Scope, Send

__all__ = ("Echo", "EchoPayload", "ReverseEcho", "app", "stats")


class EchoPayload(BaseModel):
    message: str
    created_at: dt.datetime


class Echo(BaseEvent[EchoPayload]):
    pass


class ReverseEcho(BaseEvent[EchoPayload]):
    pass


#: What the demo saw, for the page and for tests against a real server process.
stats: dict[str, Any] = {"open": 0, "closed": 0, "last_event_ids": []}


def _options(request: SSERequest) -> tuple[str, float, int | None, int]:
    """message, interval, count, first id (one after the Last-Event-ID, if resuming)."""
    query = request.query_params
    message = query.get("message", "hello")
    interval = max(0.01, float(query.get("interval", "1")))
    count = int(query["count"]) if "count" in query else None
    start = 0
    last = request.last_event_id
    if last is not None:
        stats["last_event_ids"].append(last)
        if last.isdigit():
            start = int(last) + 1
    return message, interval, count, start


async def _tracked(stream: AsyncIterator[Any]) -> AsyncIterator[Any]:
    stats["open"] += 1
    try:
        async for item in stream:
            yield item
    finally:
        stats["open"] -= 1
        stats["closed"] += 1


async def _ticks(interval: float, count: int | None, start: int) -> AsyncIterator[int]:
    n = start
    while count is None or n - start < count:
        yield n
        n += 1
        await anyio.sleep(interval)


async def sse(request: SSERequest) -> AsyncIterator[ServerSentEvent]:
    """Step one: plain events, data as real JSON (not a Python dict's repr)."""
    message, interval, count, start = _options(request)
    async for n in _tracked(_ticks(interval, count, start)):
        data = json.dumps({"message": message, "created_at": time.time()})
        yield ServerSentEvent(data, event="echo", id=n)


async def _echoes(
    message: str, interval: float, count: int | None, start: int
) -> AsyncIterator[Echo]:
    async for n in _ticks(interval, count, start):
        yield Echo(data=EchoPayload(message=message, created_at=dt.datetime.now()), id=str(n))


@event_stream
async def _reverse_echoes(
    message: str, interval: float, count: int | None
) -> AsyncIterator[ReverseEcho]:
    await anyio.sleep(interval)
    async for _ in _ticks(interval, count, 0):
        yield ReverseEcho(data=EchoPayload(message=message[::-1], created_at=dt.datetime.now()))


def sse2(request: SSERequest) -> AsyncIterator[Echo]:
    """Step two: typed events."""
    message, interval, count, start = _options(request)
    return _tracked(_echoes(message, interval, count, start))


def sse3(request: SSERequest) -> Merged[Echo | ReverseEcho]:
    """Step three: two typed streams merged; reverse_echo starts a second later."""
    message, interval, count, start = _options(request)
    # Note: return the merge itself (the response enters it); wrapping it in another
    # async generator would run its task group inside that generator - the classic trap.
    return merge(
        _tracked(_echoes(message, interval, count, start)),
        _reverse_echoes(message, interval, count),
    )


async def _site(scope: Scope, receive: Receive, send: Send) -> None:
    """Everything that is not an event stream: the page, /stats, lifespan, 404."""
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":  # startup, then shutdown
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    if scope["type"] != "http":
        await send({"type": "websocket.close", "code": 1000, "reason": ""})
        return
    if scope["path"] == "/":
        body = files(__package__).joinpath("page.html").read_bytes()
        content_type = b"text/html; charset=utf-8"
        status = 200
    elif scope["path"] == "/stats":
        body = json.dumps(stats).encode()
        content_type = b"application/json"
        status = 200
    else:
        body, content_type, status = b"not found", b"text/plain", 404
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", content_type),
                (b"content-length", str(len(body)).encode()),
            ],
            "trailers": False,
        }
    )
    await send({"type": "http.response.body", "body": body, "more_body": False})


#: The demo app. `GracefulShutdown` makes Ctrl+C end every open stream at once.
app = GracefulShutdown(SSEMiddleware(_site, routes={"/sse": sse, "/sse2": sse2, "/sse3": sse3}))
