"""A bare hub app on Redis Streams, for the multi-process tests (test_redis_servers.py).

``tests.redis_app:app`` is ``tests.sse_app:hub_app`` with its hub on
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

import dataclasses
import json
import os

from asgi_sse import (
    EventSourceResponse,
    GracefulShutdown,
    Hub,
    HubUnavailable,
    SSEMiddleware,
    SSERequest,
    Subscription,
    TopicClosed,
)
from asgi_sse._lifespan import answer_lifespan
from asgi_sse._types import ASGIApp, ASGIReceiveCallable, ASGISendCallable, Scope
from asgi_sse.redis import RedisStreamsBackend
from tests.sse_app import Note, _plain, _read_body

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
    topics = [value for name, value in request.query_list if name == "topic"]
    subscription = hub.subscribe(*topics, last_event_id=request.last_event_id)
    client = request.query_params.get("client")
    if client is not None:
        _subscriptions[client] = subscription
    return EventSourceResponse(subscription, headers={"x-pid": _PID}, ping=PING)


def _json(value: object) -> bytes:
    return json.dumps(value).encode()


async def _site(scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable) -> None:
    if scope["type"] == "lifespan":
        await answer_lifespan(receive, send)
        return
    assert scope["type"] == "http"
    request = SSERequest(scope, receive)
    topic = request.query_params.get("topic", "")
    path = scope["path"]
    try:
        if path == "/hub/publish":
            text = (await _read_body(receive)).decode()
            try:
                event_id = await hub.publish(topic, Note(data=text))
            except TopicClosed:
                await _plain(send, 409, b"closed")
                return
            body = _json({"id": event_id, "pid": _PID})
            await _plain(send, 200, body, b"application/json")
        elif path == "/hub/close":
            await hub.close(topic)
            await _plain(send, 204)
        elif path == "/hub/drop":
            subscription = _subscriptions.pop(request.query_params.get("client", ""), None)
            if subscription is None:
                await _plain(send, 404, b"no such client")
                return
            subscription.drop()
            await _plain(send, 204)
        elif path == "/hub/stats":
            stats = {
                **dataclasses.asdict(hub.stats()),
                "pid": _PID,
                "reconnects": backend.reconnects,
                "gaps": backend.gaps,
            }
            await _plain(send, 200, _json(stats), b"application/json")
        else:
            await _plain(send, 404, b"not found")
    except HubUnavailable as exc:
        await _plain(send, 503, str(exc).encode())


app: ASGIApp = GracefulShutdown(
    hub.lifespan(SSEMiddleware(_site, routes={"/hub": hub_stream}, ping=PING))
)
