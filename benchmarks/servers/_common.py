"""What every benchmarked server shares, so that only the SSE layer differs between them.

- `Payload`: the typed event payload (~100 bytes of JSON) and `make_payload()`.
- `Ticker`: the fan-out source. One producer per process, started by the first
  subscriber, makes ONE payload every 100 ms (`ts` = `time.monotonic()` at creation:
  CLOCK_MONOTONIC is system-wide on Linux, so the load generator computes latency from
  it) and wakes every subscriber through a per-tick `asyncio.Event`. With `encode=` the
  frame is also encoded once per tick, for servers that send the same bytes to everyone.
- `ticks()`: that 100 ms schedule on its own (the hub scenario's publisher uses it).
- `wait_forever()`: what an idle stream awaits.
- `stats_body()`: the `/stats` JSON (live asyncio tasks and process RSS).
- Tiny ASGI helpers for the hand-written apps.

Imports pydantic and the standard library only.
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import parse_qs

from pydantic import BaseModel

__all__ = (
    "BURST_DEFAULT",
    "MESSAGE",
    "TAGS",
    "Payload",
    "Receive",
    "Scope",
    "Send",
    "Ticker",
    "make_payload",
    "manual_frame",
    "query_int",
    "query_str",
    "send_json",
    "send_not_found",
    "stats_body",
    "ticks",
    "wait_forever",
)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

BURST_DEFAULT = 100_000
TICK_SECONDS = 0.1
MESSAGE = "the quick brown fox jumps over"
TAGS = ["alpha", "beta", "gamma"]


class Payload(BaseModel):
    seq: int
    ts: float
    message: str
    tags: list[str]


def make_payload(seq: int) -> Payload:
    return Payload(seq=seq, ts=time.monotonic(), message=MESSAGE, tags=TAGS)


def manual_frame(payload: Payload, event_id: int) -> bytes:
    """The hand-written encoder: the baseline every SSE layer is compared with."""
    return f"event: tick\nid: {event_id}\ndata: {payload.model_dump_json()}\n\n".encode()


class Ticker:
    """One shared producer; subscribers wait on the current tick's `asyncio.Event`."""

    def __init__(self, encode: Callable[[Payload, int], bytes] | None = None) -> None:
        self._encode = encode
        self.payload = make_payload(0)
        self.frame = b""
        self._tick = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def subscribe(self) -> AsyncIterator[tuple[Payload, bytes]]:
        """Yield (payload, frame) once per tick, from the next tick on, forever.

        `frame` is the tick's encoded bytes if the ticker encodes, else b"". A subscriber
        that falls behind skips to the latest tick instead of queueing.
        """
        self._start()
        while True:
            await self._tick.wait()
            yield self.payload, self.frame

    async def frames(self) -> AsyncIterator[bytes]:
        """Like `subscribe()`, but only the encoded frame of each tick (encoding tickers)."""
        self._start()
        while True:
            await self._tick.wait()
            yield self.frame

    async def encoded(self, encode: Callable[[Payload, int], bytes]) -> AsyncIterator[bytes]:
        """Like `frames()`, but each subscriber encodes the tick itself with ``encode``
        (one async generator layer, as `subscribe()` is for the minimal apps)."""
        self._start()
        while True:
            await self._tick.wait()
            payload = self.payload
            yield encode(payload, payload.seq)

    def _start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._produce())

    async def _produce(self) -> None:
        async for seq in ticks():
            self.payload = payload = make_payload(seq)
            if self._encode is not None:
                self.frame = self._encode(payload, seq)
            tick, self._tick = self._tick, asyncio.Event()
            tick.set()


async def ticks() -> AsyncIterator[int]:
    """1, 2, 3... one every TICK_SECONDS, forever."""
    loop = asyncio.get_running_loop()
    due = loop.time()
    seq = 0
    while True:
        # Note: an absolute schedule, so a slow tick does not shift the ones after it.
        due += TICK_SECONDS
        await asyncio.sleep(max(0.0, due - loop.time()))
        seq += 1
        yield seq


_NEVER: asyncio.Event | None = None


async def wait_forever() -> None:
    """Park until cancelled (a shared event that is never set: one future per waiter)."""
    global _NEVER
    if _NEVER is None:
        _NEVER = asyncio.Event()
    await _NEVER.wait()


_PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")


def stats_body() -> bytes:
    """JSON: live asyncio tasks and resident memory of this process, after a GC pass."""
    gc.collect()
    with open("/proc/self/statm", "rb") as statm:
        rss = int(statm.read().split()[1]) * _PAGE_SIZE
    return json.dumps({"tasks": len(asyncio.all_tasks()), "rss": rss}).encode()


def query_int(scope: Scope, name: str, default: int) -> int:
    values = parse_qs(scope.get("query_string", b"").decode("latin-1")).get(name)
    return int(values[0]) if values else default


def query_str(scope: Scope, name: str, default: str) -> str:
    values = parse_qs(scope.get("query_string", b"").decode("latin-1")).get(name)
    return values[0] if values else default


async def send_json(send: Send, body: bytes) -> None:
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def send_not_found(send: Send) -> None:
    await send({"type": "http.response.start", "status": 404, "headers": []})
    await send({"type": "http.response.body", "body": b"not found"})
