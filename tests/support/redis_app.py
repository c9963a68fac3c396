"""A bare hub app on Redis Streams, for the multi-process tests (test_redis_servers.py).

``tests.support.redis_app:app`` is ``tests.support.sse_app:hub_app`` with its hub on
`RedisStreamsBackend`, configured by the environment the test gives the server process:

- ``ASGI_SSE_TEST_REDIS_URL``: the Redis URL (a test names each process's connections
  with ``?client_name=...``, to tell them apart in ``CLIENT LIST``);
- ``ASGI_SSE_TEST_PREFIX``: the key prefix (one per test);
- ``ASGI_SSE_TEST_HISTORY``: the hub's history, which is also each stream's length cap
  (default `HISTORY`);
- ``ASGI_SSE_TEST_BLOCK``: seconds one XREAD blocks (default 2);
- ``ASGI_SSE_TEST_RECONNECT_MAX``: the readers' longest backoff (default 0.5 s, so
  that a test sees Redis come back quickly);
- ``ASGI_SSE_TEST_PING``: the streams' keep-alive interval (default 15 s);
- ``ASGI_SSE_TEST_READ_COUNT``: entries per topic per XREAD (default 1000, the
  backend's);
- ``ASGI_SSE_TEST_RUN_LEASE``: the hub's ``run_lease`` (default 5 s).

Routes, as in ``hub_app``: ``GET /hub?topic=T[&topic=U][&client=C]`` streams (the
response carries ``x-pid``: which worker serves it), ``POST /hub/publish?topic=T``
publishes the body (UTF-8) as a ``note`` and answers ``{"id": ..., "pid": ...}`` - or
503 when Redis cannot be reached (`HubUnavailable`: never a silent drop), 409 for a
closed topic; ``POST /hub/close?topic=T``, ``POST /hub/drop?client=C``, ``GET
/hub/stats`` (the hub's counters, plus ``pid`` and the backend's ``reconnects`` and
``gaps``). Runs (`Hub.run`): ``POST /runs/start?topic=T[&every=S]`` starts a run that
publishes ``tick <n>`` notes every ``S`` seconds (0.05 by default) until cancelled,
answering ``{"topic": ..., "pid": ...}`` or 409 when a run is alive on ``T`` (here or in
another process); ``POST /runs/cancel?topic=T`` answers ``{"cancelled": <bool>}``.
"""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator
from typing import Any

import anyio

from asgi_sse import (
    EventSourceResponse,
    GracefulShutdown,
    Hub,
    SSEMiddleware,
    SSERequest,
    Subscription,
)
from asgi_sse._util.asgi import ASGIApp, ASGIReceiveCallable, ASGISendCallable, Scope
from asgi_sse.redis import RedisStreamsBackend
from tests.support.sse_app import Note, _plain, _subscribe, hub_site

__all__ = (
    "BLOCK_ENV",
    "HISTORY",
    "HISTORY_ENV",
    "PING_ENV",
    "PREFIX_ENV",
    "READ_COUNT_ENV",
    "RECONNECT_MAX_ENV",
    "RUN_LEASE_ENV",
    "URL_ENV",
    "app",
    "backend",
    "hub",
)

URL_ENV = "ASGI_SSE_TEST_REDIS_URL"
PREFIX_ENV = "ASGI_SSE_TEST_PREFIX"
HISTORY_ENV = "ASGI_SSE_TEST_HISTORY"
BLOCK_ENV = "ASGI_SSE_TEST_BLOCK"
RECONNECT_MAX_ENV = "ASGI_SSE_TEST_RECONNECT_MAX"
PING_ENV = "ASGI_SSE_TEST_PING"
READ_COUNT_ENV = "ASGI_SSE_TEST_READ_COUNT"
RUN_LEASE_ENV = "ASGI_SSE_TEST_RUN_LEASE"

HISTORY = 16

_env = os.environ
PING = float(_env.get(PING_ENV, "15"))
backend = RedisStreamsBackend(
    _env.get(URL_ENV, "redis://127.0.0.1:6379/0"),
    prefix=_env.get(PREFIX_ENV, "asgi-sse-test:app:"),
    block=float(_env.get(BLOCK_ENV, "2")),
    reconnect_max=float(_env.get(RECONNECT_MAX_ENV, "0.5")),
    read_count=int(_env.get(READ_COUNT_ENV, "1000")),
)
hub = Hub(
    history=int(_env.get(HISTORY_ENV, str(HISTORY))),
    backend=backend,
    run_lease=float(_env.get(RUN_LEASE_ENV, "5")),
)
_PID = str(os.getpid())
# client -> its latest subscription, for /hub/drop (a test server lives for a few tests).
_subscriptions: dict[str, Subscription] = {}


def hub_stream(request: SSERequest) -> EventSourceResponse:
    subscription = _subscribe(hub, _subscriptions, request)
    return EventSourceResponse(subscription, headers={"x-pid": _PID}, ping=PING)


def _stats() -> dict[str, Any]:
    """What the publish and stats answers add: which worker, its reader's counters."""
    return {"pid": _PID, "reconnects": backend.reconnects, "gaps": backend.gaps}


async def _ticks(every: float) -> AsyncIterator[Note]:
    number = 0
    while True:
        yield Note(data=f"tick {number}")
        number += 1
        await anyio.sleep(every)


def with_runs(site: ASGIApp) -> ASGIApp:
    """``site`` with the ``/runs/start`` and ``/runs/cancel`` routes."""

    async def runs(scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable) -> None:
        if scope["type"] != "http" or not scope["path"].startswith("/runs/"):
            await site(scope, receive, send)
            return
        query = dict(
            pair.split("=", 1) for pair in scope["query_string"].decode().split("&") if pair
        )
        topic = query.get("topic", "")
        if scope["path"] == "/runs/start":
            try:
                await hub.run(_ticks(float(query.get("every", "0.05"))), topic=topic)
            except ValueError as exc:
                await _plain(send, 409, str(exc).encode())
                return
            answer: dict[str, Any] = {"topic": topic, "pid": _PID}
        else:
            answer = {"cancelled": await hub.cancel(topic), "pid": _PID}
        await _plain(send, 200, json.dumps(answer).encode(), b"application/json")

    return runs


app: ASGIApp = GracefulShutdown(
    hub.lifespan(
        SSEMiddleware(
            with_runs(hub_site(hub, _subscriptions, extra=_stats)),
            routes={"/hub": hub_stream},
            ping=PING,
        )
    )
)
