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
  backend's).

Routes, as in ``hub_app``: ``GET /hub?topic=T[&topic=U][&client=C]`` streams (the
response carries ``x-pid``: which worker serves it), ``POST /hub/publish?topic=T``
publishes the body (UTF-8) as a ``note`` and answers ``{"id": ..., "pid": ...}`` - or
503 when Redis cannot be reached (`HubUnavailable`: never a silent drop), 409 for a
closed topic; ``POST /hub/close?topic=T``, ``POST /hub/drop?client=C``, ``GET
/hub/stats`` (the hub's counters, plus ``pid`` and the backend's ``reconnects`` and
``gaps``).
"""

from __future__ import annotations

import os
from typing import Any

from asgi_sse import (
    EventSourceResponse,
    GracefulShutdown,
    Hub,
    SSEMiddleware,
    SSERequest,
    Subscription,
)
from asgi_sse._util.asgi import ASGIApp
from asgi_sse.redis import RedisStreamsBackend
from tests.support.sse_app import _subscribe, hub_site

__all__ = (
    "BLOCK_ENV",
    "HISTORY",
    "HISTORY_ENV",
    "PING_ENV",
    "PREFIX_ENV",
    "READ_COUNT_ENV",
    "RECONNECT_MAX_ENV",
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
hub = Hub(history=int(_env.get(HISTORY_ENV, str(HISTORY))), backend=backend)
_PID = str(os.getpid())
# client -> its latest subscription, for /hub/drop (a test server lives for a few tests).
_subscriptions: dict[str, Subscription] = {}


def hub_stream(request: SSERequest) -> EventSourceResponse:
    subscription = _subscribe(hub, _subscriptions, request)
    return EventSourceResponse(subscription, headers={"x-pid": _PID}, ping=PING)


def _stats() -> dict[str, Any]:
    """What the publish and stats answers add: which worker, its reader's counters."""
    return {"pid": _PID, "reconnects": backend.reconnects, "gaps": backend.gaps}


app: ASGIApp = GracefulShutdown(
    hub.lifespan(
        SSEMiddleware(
            hub_site(hub, _subscriptions, extra=_stats), routes={"/hub": hub_stream}, ping=PING
        )
    )
)
