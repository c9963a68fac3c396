"""The demo: three streams (plain, typed, merged), a chat on a `Hub`, answers of a fake
model run on the hub, and two live pages (one connection each), as one ASGI app.

- ``/sse?message=hello``  plain `ServerSentEvent`s named ``echo``, ids from 0, JSON data
  with ``message`` and ``created_at``, one per second (step one);
- ``/sse2?message=hello`` the same as typed ``Echo`` events (step two);
- ``/sse3?message=hello`` ``echo`` merged with ``reverse_echo``, which starts a second
  later and reverses the message (step three), by `resumable_merge`: each source numbers
  its own events, every event carries a cursor of both as its id, and a reconnect
  resumes each source after its own last id;
- ``/chat?client=<id>``   the chat topic of the demo's hub: a ``connected`` event that
  says which Last-Event-ID this connection resumed from, then every ``chat_message``
  after it - a reconnect gets exactly what it missed. ``client`` (letters, digits,
  ``-`` and ``_``) names the connection so that it can be dropped;
- ``/page?client=<id>``   the page's one connection (`asgi_sse.demo.page`): the three
  streams and the chat merged by `resumable_merge`, after a ``page_connected`` event
  that says how to read its cursors, and a ``chat_ended`` event if the chat's topic
  ends (the streams go on); takes the three streams' query parameters;
- ``POST /chat/publish``  a form or JSON body with ``text``: publishes a
  ``ChatMessage``; 204 with the event's id in ``x-event-id``;
- ``POST /chat/drop?client=<id>`` ends that client's streams now, its ``/chat`` and its
  page connection, in whichever worker they are (204; 404 when the client has none,
  which only a hub of one process can tell): its browser reconnects by itself with
  its Last-Event-ID and resumes with no gap;
- ``POST /answer?tokens=200&interval=0.05`` a form or JSON body with ``text`` (the
  prompt): starts a run of a fake model (`Hub.run`) that streams ``tokens`` tokens, one
  every ``interval`` seconds; 201 with ``{"topic", "stream"}`` and a ``location``;
- ``/answer/<topic>``      the answer: a ``token`` event per token, then ``run_ended``
  (``{"reason": ...}``); a reconnect resumes after its Last-Event-ID, and one that has
  everything gets 204, which stops the browser;
- ``POST /answer/<topic>/drop`` ends this worker's streams of the answer now (204, or
  404): the browser reconnects by itself and resumes with no gap;
- ``POST /answer/<topic>/stop`` cancels the run (204, or 404 when it is not running):
  ``run_ended`` ``cancelled``;
- ``/`` a page that shows the three streams and the chat, all read through one
  EventSource on ``/page`` (browsers open at most six HTTP/1.1 connections to a host,
  for all their tabs together: one connection per tab leaves room for many tabs);
- ``/answer`` a page of its own (one EventSource): a prompt, the answer as it grows, and
  "drop connection" and "stop" buttons;
- ``/stats`` open and finished streams, the Last-Event-ID each reconnect sent, the
  chat's counters, and the ``pid`` of the worker process that answered;
- ``/asyncapi.json`` the AsyncAPI 3.0 document of the typed streams (`asgi_sse.schema`).

Query parameters for trying the three streams out: ``interval`` (seconds between
events, default 1) and ``count`` (end the stream after that many events, so the browser
reconnects and resumes after its Last-Event-ID; on ``/page``, after that many events of
each stream). Run it with ``python -m asgi_sse.demo``.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import time
from collections.abc import AsyncIterable, AsyncIterator, Callable, Mapping
from importlib.resources import files
from typing import Any, TypeVar

import anyio
from pydantic import BaseModel

from asgi_sse import (
    BaseEvent,
    GracefulShutdown,
    Hub,
    HubBackend,
    InvalidEventError,
    Reset,
    ResumableMerge,
    ServerSentEvent,
    SSEEndpoint,
    SSEMiddleware,
    SSERequest,
    TopicClosed,
    __version__,
    resumable_merge,
)
from asgi_sse.schema import asyncapi
from asgi_sse.types import Receive, Scope, Send

from .answer import Answers
from .chat import (
    MAX_BODY,
    ChatMessage,
    ChatRoom,
    ClientLeft,
    Connected,
    HTTPError,
    answer,
    chat_text,
    client_of,
    read_body,
)
from .page import PageStream, page_stream

__all__ = (
    "Echo",
    "EchoPayload",
    "ReverseEcho",
    "app",
    "asyncapi_document",
    "create_app",
    "hub",
    "stats",
)

T = TypeVar("T")


class EchoPayload(BaseModel):
    message: str
    created_at: dt.datetime


class Echo(BaseEvent[EchoPayload]):
    pass


class ReverseEcho(BaseEvent[EchoPayload]):
    pass


#: What the demo saw, for the page and for tests against a real server process.
stats: dict[str, Any] = {"open": 0, "closed": 0, "last_event_ids": []}


# -- the three streams ------------------------------------------------------------------


def _options(request: SSERequest) -> tuple[str, float, int | None]:
    """message, interval, count; a resuming request's Last-Event-ID goes into stats."""
    query = request.query_params
    message = query.get("message", "hello")
    interval = max(0.01, float(query.get("interval", "1")))
    count = int(query["count"]) if "count" in query else None
    if request.last_event_id is not None:
        stats["last_event_ids"].append(request.last_event_id)
    return message, interval, count


def _after(last: str | None) -> int:
    """The first number of a stream that resumes after ``last`` (0 for anything that is
    not one of its numbers). Note: ASCII digits only, and short: ``"²".isdigit()`` is
    true but int() refuses it, and int() refuses thousands of digits."""
    if last and len(last) <= 18 and last.isascii() and last.isdigit():
        return int(last) + 1
    return 0


async def _tracked(stream: AsyncIterator[T]) -> AsyncIterator[T]:
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


async def _plain_echoes(
    message: str, interval: float, count: int | None, start: int
) -> AsyncIterator[ServerSentEvent]:
    async for n in _ticks(interval, count, start):
        data = json.dumps({"message": message, "created_at": time.time()})
        yield ServerSentEvent(data, event="echo", id=n)


def sse(request: SSERequest) -> AsyncIterator[ServerSentEvent]:
    """Step one: plain events, data as real JSON (not a Python dict's repr)."""
    message, interval, count = _options(request)
    return _tracked(_plain_echoes(message, interval, count, _after(request.last_event_id)))


async def _echoes(
    message: str, interval: float, count: int | None, start: int
) -> AsyncIterator[Echo]:
    async for n in _ticks(interval, count, start):
        yield Echo(data=EchoPayload(message=message, created_at=dt.datetime.now()), id=str(n))


async def _reverse_echoes(
    message: str, interval: float, count: int | None, start: int
) -> AsyncIterator[ReverseEcho]:
    await anyio.sleep(interval)
    async for n in _ticks(interval, count, start):
        payload = EchoPayload(message=message[::-1], created_at=dt.datetime.now())
        yield ReverseEcho(data=payload, id=str(n))


def sse2(request: SSERequest) -> AsyncIterator[Echo]:
    """Step two: typed events."""
    message, interval, count = _options(request)
    return _tracked(_echoes(message, interval, count, _after(request.last_event_id)))


def _sse3_sources(
    message: str, interval: float, count: int | None
) -> dict[str, Callable[[str | None], AsyncIterable[Echo | ReverseEcho]]]:
    def echo(last: str | None) -> AsyncIterator[Echo]:
        return _tracked(_echoes(message, interval, count, _after(last)))

    def reverse_echo(last: str | None) -> AsyncIterator[ReverseEcho]:
        return _reverse_echoes(message, interval, count, _after(last))

    return {"echo": echo, "reverse_echo": reverse_echo}


def sse3(request: SSERequest) -> ResumableMerge[Echo | ReverseEcho]:
    """Step three: two typed streams merged; reverse_echo starts a second later.

    Each source numbers its own events from 0, so their ids alone would collide:
    `resumable_merge` sends a cursor of both instead, and on reconnect hands each
    source its own last id back."""
    message, interval, count = _options(request)
    # Note: return the merge itself (the response enters it); wrapping it in another
    # async generator would run its task group inside that generator - the classic trap.
    sources = _sse3_sources(message, interval, count)
    return resumable_merge(sources, last_event_id=request.last_event_id)


def _page_streams(
    request: SSERequest,
) -> Mapping[str, Callable[[str | None], AsyncIterable[ServerSentEvent | Echo | ReverseEcho]]]:
    """The three streams as the page's sources (sse3's two under names of their own)."""
    message, interval, count = _options(request)

    def plain(last: str | None) -> AsyncIterator[ServerSentEvent]:
        return _tracked(_plain_echoes(message, interval, count, _after(last)))

    def typed(last: str | None) -> AsyncIterator[Echo]:
        return _tracked(_echoes(message, interval, count, _after(last)))

    merged = _sse3_sources(message, interval, count)
    return {
        "sse": plain,
        "sse2": typed,
        "sse3_echo": merged["echo"],
        "sse3_reverse_echo": merged["reverse_echo"],
    }


def asyncapi_document() -> dict[str, Any]:
    """The demo's AsyncAPI 3.0 document: its typed streams and the chat."""
    return asyncapi(
        {"/sse2": (Echo,), "/sse3": (Echo, ReverseEcho), "/chat": (Connected, ChatMessage, Reset)},
        title="asgi-sse demo",
        version=__version__,
        description="The demo's typed event streams (`python -m asgi_sse.demo`).",
        servers={"local": "http://127.0.0.1:8000"},
    )


_ASYNCAPI: bytes | None = None


def asyncapi_json() -> bytes:
    global _ASYNCAPI
    if _ASYNCAPI is None:
        _ASYNCAPI = json.dumps(asyncapi_document(), indent=2).encode()
    return _ASYNCAPI


class _Site:
    """Everything that is not one of the three streams: the page, /stats, the chat's
    routes, lifespan, 404."""

    def __init__(self, room: ChatRoom) -> None:
        self.room = room
        self.answers = Answers(room.hub)
        self.chat = SSEEndpoint(room.stream, methods=("GET", "HEAD"))
        self.page = SSEEndpoint(self._page, methods=("GET", "HEAD"))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":  # startup, then shutdown
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        if scope["type"] != "http":
            await send({"type": "websocket.close", "code": 1000, "reason": ""})
            return
        path = scope["path"]
        request = SSERequest(scope, receive)
        try:
            if path == "/":
                page = files(__package__).joinpath("page.html").read_bytes()
                await answer(send, 200, page, b"text/html; charset=utf-8")
            elif path == "/answer" and request.method in ("GET", "HEAD"):
                page = files(__package__).joinpath("answer.html").read_bytes()
                await answer(send, 200, page, b"text/html; charset=utf-8")
            elif path == "/answer" or path.startswith("/answer/"):
                await self.answers(request, scope, receive, send)
            elif path == "/stats":
                # pid: which worker process answered (``--workers``).
                info = {**stats, "chat": self.room.stats(), "pid": os.getpid()}
                await answer(send, 200, json.dumps(info).encode(), b"application/json")
            elif path == "/asyncapi.json":
                await answer(send, 200, asyncapi_json(), b"application/json")
            elif path == "/chat":
                client_of(request)
                await self.chat(scope, receive, send)
            elif path == "/page":
                client_of(request)
                await self.page(scope, receive, send)
            elif path in ("/chat/publish", "/chat/drop"):
                if request.method != "POST":
                    raise HTTPError(405, "POST only")
                if path == "/chat/publish":
                    await self._publish(request, receive, send)
                else:
                    await self._drop(request, send)
            else:
                await answer(send, 404, b"not found")
        except HTTPError as error:
            allow = [(b"allow", b"POST")] if error.status == 405 else []
            await answer(send, error.status, error.message.encode(), headers=allow)
        except ClientLeft:
            pass

    async def _publish(self, request: SSERequest, receive: Receive, send: Send) -> None:
        text = chat_text(
            request.headers.get("content-type", ""), await read_body(receive, MAX_BODY)
        )
        try:
            event_id = await self.room.publish(text)
        except InvalidEventError:  # a lone surrogate, from a JSON "\ud800" escape
            raise HTTPError(422, "the text cannot be encoded as UTF-8") from None
        except TopicClosed:
            raise HTTPError(409, "the chat is closed") from None
        await answer(send, 204, headers=[(b"x-event-id", event_id.encode())])

    def _page(self, request: SSERequest) -> PageStream:
        """The page's one connection: the three streams and the chat, merged."""
        client = request.query_params.get("client")  # checked by __call__
        return page_stream(
            _page_streams(request),
            lambda last: self.room.frames(client, last),
            client=client,
            last_event_id=request.last_event_id,
        )

    async def _drop(self, request: SSERequest, send: Send) -> None:
        client = client_of(request)
        if client is None:
            raise HTTPError(400, "give the client: ?client=<id>")
        ended = await self.room.drop(client)
        # On a hub shared by several processes (Redis, --workers) the client's streams
        # may be in another worker, which ends them within about a second: only this
        # worker's are counted here, so only a hub of one process can answer 404.
        if not ended and not self.room.shared:
            raise HTTPError(404, "no open stream of that client")
        await answer(send, 204)


def create_app(hub: Hub | None = None) -> GracefulShutdown:
    """The demo app, its chat on ``hub`` (a new one if None).

    The hub runs for the life of the server (`Hub.lifespan`), inside `GracefulShutdown`,
    which ends every open stream - chat streams included - on Ctrl+C or SIGTERM.
    """
    hub = Hub() if hub is None else hub
    room = ChatRoom(hub)
    streams = SSEMiddleware(_Site(room), routes={"/sse": sse, "/sse2": sse2, "/sse3": sse3})
    return GracefulShutdown(hub.lifespan(streams))


def _backend() -> HubBackend | None:
    """The Redis backend when ``ASGI_SSE_DEMO_REDIS`` names a Redis URL (what
    ``python -m asgi_sse.demo --redis URL`` sets), for several workers; else memory.
    Its keys start with ``ASGI_SSE_DEMO_REDIS_PREFIX`` (``asgi-sse-demo:``)."""
    url = os.environ.get("ASGI_SSE_DEMO_REDIS")
    if not url:
        return None
    from asgi_sse.redis import RedisStreamsBackend

    return RedisStreamsBackend(
        url, prefix=os.environ.get("ASGI_SSE_DEMO_REDIS_PREFIX", "asgi-sse-demo:")
    )


#: The demo's hub: a topic keeps its last 5,000 events (the chat's messages, a whole
#: answer), for reconnects to resume from; a finished answer stays 10 minutes.
hub = Hub(history=5000, expire_after=600.0, max_running=100, backend=_backend())
#: The demo app. `GracefulShutdown` makes Ctrl+C end every open stream at once.
app = create_app(hub)
