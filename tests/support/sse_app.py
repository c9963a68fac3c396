"""Test-only apps for the real-server tests (test_servers.py, test_browser.py).

- ``tests.support.sse_app:app`` - `GracefulShutdown` around `SSEMiddleware`:
  ``/idle`` sends one ``ready`` event and then nothing (an idle connection);
  ``/tasks`` answers ``{"tasks": len(asyncio.all_tasks())}`` for counting tasks per
  connection; ``/tricky`` streams `TRICKY` (payloads that break naive encoders) and
  ``/tricky.html`` is a page whose EventSource records what the browser dispatched.
- ``tests.support.sse_app:demo_app`` - the demo app itself, whose ``stats`` are also written to
  the file named by ``$ASGI_SSE_TEST_STATS`` on every change, so a test can see that
  each stream's cleanup ran inside a server process that has since exited (even one
  killed by a signal, which runs no atexit hook).
- ``tests.support.sse_app:chat_app`` - the demo app around a hub of its own, plus ``POST /close``
  which closes the chat topic (the public demo never does): what a browser does when
  the topic it follows ends.
- ``tests.support.sse_app:hub_app`` - a bare hub app (`Hub.lifespan` inside `GracefulShutdown`)
  for the real-server hub tests, any topic by name: ``GET /hub?topic=T[&topic=U]
  [&client=C]`` streams (several topics: one composite cursor), ``POST
  /hub/publish?topic=T`` publishes the body (UTF-8) as a ``note`` and answers
  ``{"id": ...}``, ``POST /hub/close?topic=T``, ``POST /hub/drop?client=C`` (204, or
  404), ``GET /hub/stats``. Its logs hold `HUB_HISTORY` events, so that an id falls out
  of them after a few publishes.
- ``python -m tests.support.sse_app [demo options]`` - exactly ``python -m asgi_sse.demo``
  (run through `runpy`, as ``-m`` does), with the same stats file.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import runpy
import sys
from collections.abc import AsyncIterator, Callable
from typing import Any, cast

import anyio

import asgi_sse.demo.chat
from asgi_sse import (
    BaseEvent,
    GracefulShutdown,
    Hub,
    HubUnavailable,
    ServerSentEvent,
    SSEMiddleware,
    SSERequest,
    Subscription,
    TopicClosed,
)
from asgi_sse._util.asgi import ASGIApp, ASGIReceiveCallable, ASGISendCallable, Scope
from asgi_sse._util.lifespan import answer_lifespan

__all__ = (
    "EXPECTED",
    "HUB_HISTORY",
    "TRICKY",
    "app",
    "chat_app",
    "demo_app",
    "hub_app",
    "hub_site",
)

STATS_ENV = "ASGI_SSE_TEST_STATS"


class _RecordedStats(dict[str, Any]):
    """The demo's stats dict, written to a file (atomically) whenever a key is set."""

    def __init__(self, initial: dict[str, Any], path: str) -> None:
        super().__init__(initial)
        self._path = path
        self._write()

    def __setitem__(self, key: str, value: Any) -> None:
        super().__setitem__(key, value)
        self._write()

    def _write(self) -> None:
        tmp = f"{self._path}.{os.getpid()}.tmp"
        with open(tmp, "w") as file:
            json.dump(dict(self), file)
        os.replace(tmp, self._path)


if os.environ.get(STATS_ENV):
    # The demo's streams update `stats` through the module global, so this catches
    # every open and every cleanup; nothing else about the demo changes.
    asgi_sse.demo.stats = _RecordedStats(asgi_sse.demo.stats, os.environ[STATS_ENV])

demo_app = asgi_sse.demo.app


class Note(BaseEvent[str]):
    pass


# (item the stream yields, what the browser must dispatch for it: (type, data,
# lastEventId), or None when it dispatches nothing). Written out by hand, from the
# WHATWG rules, not computed with the encoder under test.
TRICKY: list[
    tuple[ServerSentEvent | BaseEvent[Any] | str | bytes, tuple[str, str, str] | None]
] = [
    (ServerSentEvent("plain"), ("message", "plain", "")),
    (ServerSentEvent("crlf\r\nline two", id="1"), ("message", "crlf\nline two", "1")),
    (ServerSentEvent("lone\rcr"), ("message", "lone\ncr", "1")),
    (ServerSentEvent("lf\nthen\r\n\rmixed"), ("message", "lf\nthen\n\nmixed", "1")),
    (ServerSentEvent("  two leading spaces"), ("message", "  two leading spaces", "1")),
    (ServerSentEvent(" one leading space"), ("message", " one leading space", "1")),
    (ServerSentEvent("trailing spaces  "), ("message", "trailing spaces  ", "1")),
    (
        ServerSentEvent("emoji 😀🎉 naïve ünïcödé 中文"),
        ("message", "emoji 😀🎉 naïve ünïcödé 中文", "1"),
    ),
    (ServerSentEvent("u2028\u2028u2029\u2029end"), ("message", "u2028\u2028u2029\u2029end", "1")),
    (
        ServerSentEvent("vt\x0bff\x0cnel\x85fs\x1cend"),
        ("message", "vt\x0bff\x0cnel\x85fs\x1cend", "1"),
    ),
    (ServerSentEvent("nul\x00inside"), ("message", "nul\x00inside", "1")),
    (ServerSentEvent(""), ("message", "", "1")),
    (ServerSentEvent("\n"), ("message", "\n", "1")),
    (ServerSentEvent("ends with newline\n"), ("message", "ends with newline\n", "1")),
    (ServerSentEvent(comment="a comment\nspanning lines\r\nthree of them"), None),
    (ServerSentEvent(comment=""), None),
    (ServerSentEvent("after comments", event="custom"), ("custom", "after comments", "1")),
    (ServerSentEvent(":not a comment"), ("message", ":not a comment", "1")),
    (
        ServerSentEvent("data: forged\n\nevent: evil\nid: 666"),
        ("message", "data: forged\n\nevent: evil\nid: 666", "1"),
    ),
    (ServerSentEvent("spaced name", event="with space"), ("with space", "spaced name", "1")),
    (ServerSentEvent("unicode name", event="ünï-😀"), ("ünï-😀", "unicode name", "1")),
    (
        ServerSentEvent("explicit message", event="message", id="ünï 😀 id"),
        ("message", "explicit message", "ünï 😀 id"),
    ),
    (ServerSentEvent(id="primed"), None),  # no data: not dispatched, but the id sticks
    (ServerSentEvent("after id-only frame"), ("message", "after id-only frame", "primed")),
    (ServerSentEvent("id reset", id=""), ("message", "id reset", "")),
    (ServerSentEvent("with retry", id=7, retry=60000), ("message", "with retry", "7")),
    (Note(data="typed \u2028 😀 \r\n", id="8"), ("note", '"typed \u2028 😀 \\r\\n"', "8")),
    ("a plain str item\rsplit", ("message", "a plain str item\nsplit", "8")),
    (b"event: raw\ndata: pre-encoded bytes\n\n", ("raw", "pre-encoded bytes", "8")),
    (ServerSentEvent("x" * 70_000, id="big"), ("message", "x" * 70_000, "big")),
    (ServerSentEvent("done", event="done"), ("done", "done", "big")),
]
EXPECTED = [expected for _, expected in TRICKY if expected is not None]
_TYPES = sorted({kind for kind, _, _ in EXPECTED})

_TRICKY_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>tricky</title></head><body>
<script>
"use strict";
window.received = [];
window.finished = false;
const source = new EventSource("/tricky");
const record = (event) => {
  window.received.push({type: event.type, data: event.data, lastEventId: event.lastEventId});
  if (event.type === "done") { source.close(); window.finished = true; }
};
for (const type of TYPES) source.addEventListener(type, record);
</script></body></html>
"""


async def idle(request: SSERequest) -> AsyncIterator[ServerSentEvent]:
    yield ServerSentEvent("ready", event="ready")
    await anyio.sleep_forever()


async def tricky(request: SSERequest) -> AsyncIterator[Any]:
    for item, _ in TRICKY:
        yield item


async def _site(scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable) -> None:
    if scope["type"] == "lifespan":
        await answer_lifespan(receive, send)
        return
    assert scope["type"] == "http"
    if scope["path"] == "/tasks":
        try:
            tasks: int | None = len(asyncio.all_tasks())
        except RuntimeError:  # not on asyncio
            tasks = None
        body = json.dumps({"tasks": tasks}).encode()
        content_type = b"application/json"
    elif scope["path"] == "/tricky.html":
        page = _TRICKY_PAGE.replace("TYPES", json.dumps(_TYPES))
        body = page.encode()
        content_type = b"text/html; charset=utf-8"
    else:
        body, content_type = b"not found", b"text/plain"
    await send(
        {
            "type": "http.response.start",
            "status": 404 if content_type == b"text/plain" else 200,
            "headers": [
                (b"content-type", content_type),
                (b"content-length", str(len(body)).encode()),
            ],
            "trailers": False,
        }
    )
    await send({"type": "http.response.body", "body": body, "more_body": False})


app = GracefulShutdown(SSEMiddleware(_site, routes={"/idle": idle, "/tricky": tricky}))


async def _plain(
    send: ASGISendCallable, status: int, body: bytes = b"", content_type: bytes = b"text/plain"
) -> None:
    headers = [(b"content-type", content_type), (b"content-length", str(len(body)).encode())]
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": headers if status != 204 else [],
            "trailers": False,
        }
    )
    await send({"type": "http.response.body", "body": body, "more_body": False})


# -- the demo, with a way to end its chat -----------------------------------------------

chat_hub = Hub()
_demo_with_chat_hub = asgi_sse.demo.create_app(chat_hub)


async def chat_app(scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable) -> None:
    """The demo (its own hub), plus ``POST /close``: the chat topic ends for good."""
    if scope["type"] == "http" and scope["path"] == "/close" and scope["method"] == "POST":
        await chat_hub.close(asgi_sse.demo.chat.CHAT_TOPIC)
        await _plain(send, 204)
        return
    await _demo_with_chat_hub(scope, receive, send)


# -- a bare hub app ------------------------------------------------------------------------

HUB_HISTORY = 16
hub = Hub(history=HUB_HISTORY)
# client -> its latest subscription, for /hub/drop. Never pruned: a test server lives
# for one test module and its few clients.
_subscriptions: dict[str, Subscription] = {}


def hub_stream(request: SSERequest) -> Subscription:
    return _subscribe(hub, _subscriptions, request)


def _subscribe(
    target: Hub, subscriptions: dict[str, Subscription], request: SSERequest
) -> Subscription:
    """The subscription to the ``topic`` parameters, kept under ``client`` (for drop)."""
    topics = [value for name, value in request.query_list if name == "topic"]
    subscription = target.subscribe(*topics, last_event_id=request.last_event_id)
    client = request.query_params.get("client")
    if client is not None:
        subscriptions[client] = subscription
    return subscription


async def _read_body(receive: ASGIReceiveCallable) -> bytes:
    body = b""
    while True:
        message = await receive()
        if message["type"] == "http.request":
            body += message.get("body", b"")
            if not message.get("more_body", False):
                return body
        elif message["type"] == "http.disconnect":
            return body


def hub_site(
    target: Hub,
    subscriptions: dict[str, Subscription],
    *,
    extra: Callable[[], dict[str, Any]] = dict,
) -> ASGIApp:
    """The hub test apps' routes besides the stream: ``POST /hub/publish?topic=`` (the
    body as a `Note`; its id, 409 for a closed topic, 503 naming the backend when it
    cannot be reached), ``POST /hub/close``, ``POST /hub/drop?client=``, ``GET
    /hub/stats``. ``extra()`` adds to the publish and stats answers (a process id...)."""

    def answer(value: dict[str, Any]) -> bytes:
        return json.dumps({**value, **extra()}).encode()

    async def site(scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable) -> None:
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
                    event_id = await target.publish(topic, Note(data=text))
                except TopicClosed:
                    await _plain(send, 409, b"closed")
                    return
                await _plain(send, 200, answer({"id": event_id}), b"application/json")
            elif path == "/hub/close":
                await target.close(topic)
                await _plain(send, 204)
            elif path == "/hub/drop":
                subscription = subscriptions.pop(request.query_params.get("client", ""), None)
                if subscription is None:
                    await _plain(send, 404, b"no such client")
                    return
                subscription.drop()
                await _plain(send, 204)
            elif path == "/hub/stats":
                stats = answer(dataclasses.asdict(target.stats()))
                await _plain(send, 200, stats, b"application/json")
            else:
                await _plain(send, 404, b"not found")
        except HubUnavailable as exc:
            await _plain(send, 503, str(exc).encode())

    return cast(ASGIApp, site)


hub_app: ASGIApp = GracefulShutdown(
    hub.lifespan(SSEMiddleware(hub_site(hub, _subscriptions), routes={"/hub": hub_stream}))
)


def _main() -> None:
    # `python -m asgi_sse.demo ARGS`, run the way -m runs it, in this process (so the
    # stats recording above is in place when the demo starts).
    sys.argv = ["asgi_sse.demo", *sys.argv[1:]]
    runpy.run_module("asgi_sse.demo", run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    _main()
