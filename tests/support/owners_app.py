"""A bare hub app with owners, for the `Hub.drop` tests with real servers (issue 21):
tests/integration/test_owners_server.py (the memory hub, one process) and
tests/integration/test_owners_workers.py (Redis, two processes).

``tests.support.owners_app:app`` runs its hub on `MemoryBackend`, unless the
environment names a Redis (``ASGI_SSE_TEST_REDIS_URL``, as in tests.support.redis_app,
with the same ``ASGI_SSE_TEST_PREFIX``, ``_BLOCK``, ``_RECONNECT_MAX`` and ``_PING``);
then on `RedisStreamsBackend`. ``ASGI_SSE_TEST_HISTORY`` sets the hub's history
(default `HISTORY`: a topic with a long replay fits in it).

Routes:

- ``GET /stream?owner=O&topic=T[&topic=U][&merged=1]``: 403 when ``O`` is revoked,
  else ``O``'s subscription to the topics (``Last-Event-ID`` resumes it), merged with a
  ``tick`` event (no id) every `TICK` seconds when ``merged=1``; the response carries
  ``x-pid``: which process serves it.
- ``POST /drop?owner=O[&revoke=1]``: revokes ``O`` first when asked, then
  ``await hub.drop(O)``; answers ``{"ended": n, "pid": ...}``, or 503 with the text of
  `HubUnavailable` (Redis cannot be reached).
- ``POST /fill?topic=T&count=N&size=B``: publishes ``N`` notes of about ``B`` bytes in a
  row, in the process: ``{"ids": [...]}`` (a long history without N round trips).
- ``tests.support.sse_app.hub_site``'s: ``POST /hub/publish?topic=T`` (``{"id": ...,
  "pid": ...}``), ``POST /hub/close``, ``GET /hub/stats`` (plus ``pid`` and, on Redis,
  ``drops_received``).

Revoked owners are the app's shared state: a Python set in memory; on Redis the set
``<prefix>revoked``, so that the handler of every process sees a revocation made in
any of them. A Redis that cannot be reached makes the stream and the revocation 503.
"""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator
from typing import Any

import anyio
import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from asgi_sse import (
    BaseEvent,
    EventSourceResponse,
    GracefulShutdown,
    Hub,
    HubBackend,
    HubUnavailable,
    SSERequest,
    Subscription,
    merge,
)
from asgi_sse._util.asgi import ASGIApp, ASGIReceiveCallable, ASGISendCallable, Scope
from asgi_sse.redis import RedisStreamsBackend
from tests.support.redis_app import (
    BLOCK_ENV,
    HISTORY_ENV,
    PING_ENV,
    PREFIX_ENV,
    RECONNECT_MAX_ENV,
    URL_ENV,
)
from tests.support.sse_app import Note, _plain, hub_site

__all__ = ("HISTORY", "TICK", "Tick", "app", "hub")

HISTORY = 4000
TICK = 0.1

_env = os.environ
_URL = _env.get(URL_ENV)
_PREFIX = _env.get(PREFIX_ENV, "asgi-sse-test:owners:")
_PING = float(_env.get(PING_ENV, "15"))
_PID = str(os.getpid())

backend: RedisStreamsBackend | None = None
if _URL:
    backend = RedisStreamsBackend(
        _URL,
        prefix=_PREFIX,
        block=float(_env.get(BLOCK_ENV, "2")),
        reconnect_max=float(_env.get(RECONNECT_MAX_ENV, "0.5")),
    )
_hub_backend: HubBackend | None = backend
hub = Hub(history=int(_env.get(HISTORY_ENV, str(HISTORY))), backend=_hub_backend)


class Tick(BaseEvent[int]):
    """What a merged stream adds to the owner's subscription: a counter, with no id (a
    client's last event id stays the hub's)."""


async def _ticks() -> AsyncIterator[Tick]:
    number = 0
    while True:
        await anyio.sleep(TICK)
        yield Tick(data=number)
        number += 1


# -- revoked owners --------------------------------------------------------------------------

_REDIS_DOWN = (RedisConnectionError, RedisTimeoutError, OSError)
_revoked_here: set[str] = set()
_revoked_key = f"{_PREFIX}revoked"
# A client of its own (not the backend's): one retry, as a membership test and a SADD
# may be sent again; short timeouts, so a Redis that is down is a 503 at once.
_store = (
    aioredis.Redis.from_url(
        _URL, socket_timeout=2, socket_connect_timeout=2, retry=Retry(NoBackoff(), 1)
    )
    if _URL
    else None
)


async def _is_revoked(owner: str) -> bool:
    if _store is None:
        return owner in _revoked_here
    return bool(await _store.sismember(_revoked_key, owner))


async def _revoke(owner: str) -> None:
    if _store is None:
        _revoked_here.add(owner)
    else:
        await _store.sadd(_revoked_key, owner)


# -- routes ----------------------------------------------------------------------------------


async def _stream(scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable) -> None:
    request = SSERequest(scope, receive)
    owner = request.query_params.get("owner", "")
    topics = [value for name, value in request.query_list if name == "topic"]
    try:
        revoked = await _is_revoked(owner)
    except _REDIS_DOWN as exc:
        await _plain(send, 503, f"cannot reach Redis: {exc}".encode())
        return
    if revoked:
        await _plain(send, 403, b"revoked")
        return
    subscription: Subscription = hub.subscribe(
        *topics, last_event_id=request.last_event_id, owner=owner
    )
    headers = {"x-pid": _PID}
    if request.query_params.get("merged") == "1":
        merged = merge(subscription, _ticks())
        await EventSourceResponse(merged, headers=headers, ping=_PING)(scope, receive, send)
    else:
        await EventSourceResponse(subscription, headers=headers, ping=_PING)(scope, receive, send)


async def _drop(send: ASGISendCallable, query: dict[str, str]) -> None:
    owner = query.get("owner", "")
    try:
        if query.get("revoke") == "1":
            await _revoke(owner)
        ended = await hub.drop(owner)
    except HubUnavailable as exc:
        await _plain(send, 503, str(exc).encode())
        return
    except _REDIS_DOWN as exc:  # the revocation could not be stored
        await _plain(send, 503, f"cannot reach Redis: {exc}".encode())
        return
    await _plain(
        send, 200, json.dumps({"ended": ended, "pid": _PID}).encode(), b"application/json"
    )


async def _fill(send: ASGISendCallable, query: dict[str, str]) -> None:
    topic, count, size = query["topic"], int(query["count"]), int(query.get("size", "100"))
    ids = []
    for number in range(count):
        text = f"{topic} {number} ".ljust(size, ".")
        ids.append(await hub.publish(topic, Note(data=text)))
    await _plain(send, 200, json.dumps({"ids": ids}).encode(), b"application/json")


def _stats() -> dict[str, Any]:
    extra: dict[str, Any] = {"pid": _PID}
    if backend is not None:
        extra["drops_received"] = backend.drops_received
        extra["reconnects"] = backend.reconnects
    return extra


_hub_site = hub_site(hub, {}, extra=_stats)


async def _site(scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable) -> None:
    if scope["type"] != "http":
        await _hub_site(scope, receive, send)
        return
    path = scope["path"]
    request = SSERequest(scope, receive)
    query = dict(request.query_params)
    if path == "/stream":
        await _stream(scope, receive, send)
    elif path == "/drop" and scope["method"] == "POST":
        await _drop(send, query)
    elif path == "/fill" and scope["method"] == "POST":
        await _fill(send, query)
    else:
        await _hub_site(scope, receive, send)


app: ASGIApp = GracefulShutdown(hub.lifespan(_site))
