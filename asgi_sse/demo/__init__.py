"""The demo: three streams (plain, typed, merged), a chat on a `Hub`, and a live page, as
one ASGI app.

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
- ``POST /chat/publish``  a form or JSON body with ``text``: publishes a
  ``ChatMessage``; 204 with the event's id in ``x-event-id``;
- ``POST /chat/drop?client=<id>`` ends that client's stream now (204, or 404): its
  browser reconnects by itself with its Last-Event-ID and resumes with no gap;
- ``/`` a page that opens the three streams and the chat with the browser's EventSource;
- ``/stats`` open and finished streams, the Last-Event-ID each reconnect sent, and the
  chat's counters.

Query parameters for trying the three streams out: ``interval`` (seconds between
events, default 1) and ``count`` (end the stream after that many events, so the browser
reconnects and resumes after its Last-Event-ID). Run it with ``python -m asgi_sse.demo``.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import time
from collections.abc import AsyncIterable, AsyncIterator, Callable
from importlib.resources import files
from typing import Any, TypeVar
from urllib.parse import parse_qs

import anyio
from pydantic import BaseModel

from asgi_sse import (
    BaseEvent,
    GracefulShutdown,
    Hub,
    InvalidEventError,
    ResumableMerge,
    ServerSentEvent,
    SSEEndpoint,
    SSEMiddleware,
    SSERequest,
    Subscription,
    TopicClosed,
    resumable_merge,
)
from asgi_sse.types import Receive, Scope, Send

__all__ = (
    "CHAT_TOPIC",
    "MAX_BODY",
    "MAX_CLIENTS",
    "MAX_TEXT",
    "RECONNECT_MS",
    "ChatMessage",
    "ChatPayload",
    "ChatRoom",
    "Connected",
    "ConnectedInfo",
    "Echo",
    "EchoPayload",
    "ReverseEcho",
    "app",
    "create_app",
    "hub",
    "stats",
)

T = TypeVar("T")

#: The hub topic of the chat.
CHAT_TOPIC = "chat"
#: A chat message holds at most this many characters (after stripping spaces).
MAX_TEXT = 500
#: A publish request's body holds at most this many bytes.
MAX_BODY = 8 * 1024
#: At most this many clients are remembered for `/chat/drop` (the oldest is forgotten).
MAX_CLIENTS = 1000
#: How long a browser waits before it reconnects (EventSource's ``retry``), in ms.
RECONNECT_MS = 1000

_CLIENT_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")


class EchoPayload(BaseModel):
    message: str
    created_at: dt.datetime


class Echo(BaseEvent[EchoPayload]):
    pass


class ReverseEcho(BaseEvent[EchoPayload]):
    pass


class ChatPayload(BaseModel):
    text: str
    time: dt.datetime


class ChatMessage(BaseEvent[ChatPayload]):
    """One chat message (``event: chat_message``); the hub gives it its id."""


class ConnectedInfo(BaseModel):
    client: str | None
    #: The Last-Event-ID this connection resumes after (None on a first connection).
    last_event_id: str | None


class Connected(BaseEvent[ConnectedInfo]):
    """The first event of every chat connection. It has no id, so the browser's
    last event id stays what it sent, and the page learns where it resumed from."""


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


async def sse(request: SSERequest) -> AsyncIterator[ServerSentEvent]:
    """Step one: plain events, data as real JSON (not a Python dict's repr)."""
    message, interval, count = _options(request)
    async for n in _tracked(_ticks(interval, count, _after(request.last_event_id))):
        data = json.dumps({"message": message, "created_at": time.time()})
        yield ServerSentEvent(data, event="echo", id=n)


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


def sse3(request: SSERequest) -> ResumableMerge[Echo | ReverseEcho]:
    """Step three: two typed streams merged; reverse_echo starts a second later.

    Each source numbers its own events from 0, so their ids alone would collide:
    `resumable_merge` sends a cursor of both instead, and on reconnect hands each
    source its own last id back."""
    message, interval, count = _options(request)

    def echo(last: str | None) -> AsyncIterator[Echo]:
        return _tracked(_echoes(message, interval, count, _after(last)))

    def reverse_echo(last: str | None) -> AsyncIterator[ReverseEcho]:
        return _reverse_echoes(message, interval, count, _after(last))

    sources: dict[str, Callable[[str | None], AsyncIterable[Echo | ReverseEcho]]] = {
        "echo": echo,
        "reverse_echo": reverse_echo,
    }
    # Note: return the merge itself (the response enters it); wrapping it in another
    # async generator would run its task group inside that generator - the classic trap.
    return resumable_merge(sources, last_event_id=request.last_event_id)


# -- the chat ---------------------------------------------------------------------------


class _ChatStream:
    """One chat connection: a `Connected` event, then the hub subscription's frames as
    they are (the subscription does the resuming).

    It keeps what the response asks of the subscription - `prepare_stream` (a closed
    topic is answered 204, which stops the browser) and `next_nowait` (what is ready
    goes out in one write) - and it is in the room's registry from the moment it
    streams until the response closes it.
    """

    __slots__ = ("_greeting", "_room", "client", "subscription")

    def __init__(
        self, room: ChatRoom, client: str | None, subscription: Subscription, greeting: bytes
    ) -> None:
        self._room = room
        self.client = client
        self.subscription = subscription
        self._greeting: bytes | None = greeting

    async def prepare_stream(self) -> bool:
        streaming = await self.subscription.prepare_stream()
        if streaming:
            # Registered only once it is sure to stream: a 204 leaves nothing behind.
            self._room._register(self)
        return streaming

    def __aiter__(self) -> _ChatStream:
        return self

    async def __anext__(self) -> bytes:
        greeting = self._take_greeting()
        return greeting if greeting is not None else await self.subscription.__anext__()

    def next_nowait(self) -> bytes:
        greeting = self._take_greeting()
        return greeting if greeting is not None else self.subscription.next_nowait()

    async def aclose(self) -> None:
        self._room._forget(self)
        await self.subscription.aclose()

    def _take_greeting(self) -> bytes | None:
        greeting, self._greeting = self._greeting, None
        return greeting


class ChatRoom:
    """The demo's chat: one topic of ``hub``, plus which client holds which stream, so
    that one client's connection can be dropped (`drop`).

    The registry holds at most ``max_clients`` entries (the one registered longest ago
    is forgotten first: its stream goes on, it just cannot be dropped any more), and an
    entry leaves it when its stream ends.
    """

    def __init__(
        self, hub: Hub, *, topic: str = CHAT_TOPIC, max_clients: int = MAX_CLIENTS
    ) -> None:
        if max_clients < 1:
            raise ValueError(f"max_clients must be at least 1, got {max_clients}")
        self.hub = hub
        self.topic = topic
        self.max_clients = max_clients
        self._clients: dict[str, _ChatStream] = {}

    def stream(self, request: SSERequest) -> _ChatStream:
        """The handler of ``GET /chat``: this client's stream of the topic, resumed
        after its Last-Event-ID (``client`` is checked by the app before)."""
        client = request.query_params.get("client")
        last = request.last_event_id
        greeting = Connected(
            data=ConnectedInfo(client=client, last_event_id=last), retry=RECONNECT_MS
        ).encode()
        subscription = self.hub.subscribe(self.topic, last_event_id=last)
        return _ChatStream(self, client, subscription, greeting)

    async def publish(self, text: str) -> str:
        """Publish ``text`` as a `ChatMessage`; returns its id.

        Raises:
            TopicClosed: the topic was closed or the hub stopped.
            InvalidEventError: the text cannot be encoded (a lone surrogate).
        """
        message = ChatPayload(text=text, time=dt.datetime.now(dt.timezone.utc))
        return await self.hub.publish(self.topic, ChatMessage(data=message))

    def drop(self, client: str) -> bool:
        """End ``client``'s current stream now (it reconnects and resumes); False when
        no stream of that client is registered."""
        stream = self._clients.get(client)
        if stream is None:
            return False
        stream.subscription.drop()
        return True

    def stats(self) -> dict[str, Any]:
        hub_stats = self.hub.stats()
        return {
            "clients": len(self._clients),
            "subscribers": hub_stats.subscribers,
            "published": hub_stats.published,
            "head": self.hub.head(self.topic),
        }

    def _register(self, stream: _ChatStream) -> None:
        client = stream.client
        if client is None:
            return
        # A reconnect replaces the client's entry and moves it to the newest end.
        self._clients.pop(client, None)
        self._clients[client] = stream
        while len(self._clients) > self.max_clients:
            del self._clients[next(iter(self._clients))]

    def _forget(self, stream: _ChatStream) -> None:
        # Only if the entry is still this stream: the client may have reconnected
        # (a new stream took its place) before the old one was closed.
        if stream.client is not None and self._clients.get(stream.client) is stream:
            del self._clients[stream.client]


class _HTTPError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class _ClientLeft(Exception):
    pass


async def _read_body(receive: Receive, limit: int) -> bytes:
    """The request body; 413 beyond ``limit`` bytes (read no further)."""
    body = bytearray()
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise _ClientLeft
        if message["type"] == "http.request":
            body += message.get("body", b"")
            if len(body) > limit:
                raise _HTTPError(413, f"the body is larger than {limit} bytes")
            if not message.get("more_body", False):
                return bytes(body)


def _chat_text(content_type: str, body: bytes) -> str:
    """The ``text`` of a publish request: a form or a JSON object; checked."""
    media = content_type.partition(";")[0].strip().lower()
    if media == "application/x-www-form-urlencoded":
        form = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True, errors="replace")
        values = form.get("text")
        if not values:
            raise _HTTPError(400, "the form has no text field")
        text = values[0]
    elif media == "application/json":
        try:
            data = json.loads(body)
        except ValueError:  # not JSON, or not UTF-8
            raise _HTTPError(400, "the body is not JSON") from None
        if not isinstance(data, dict) or not isinstance(data.get("text"), str):
            raise _HTTPError(400, 'send a JSON object with a "text" string')
        text = data["text"]
    else:
        raise _HTTPError(415, "send text as a form (application/x-www-form-urlencoded) or JSON")
    text = text.strip()
    if not text:
        raise _HTTPError(422, "the text is empty")
    if len(text) > MAX_TEXT:
        raise _HTTPError(422, f"the text is longer than {MAX_TEXT} characters")
    return text


def _client_of(request: SSERequest) -> str | None:
    """The ``client`` query parameter (None if absent); 400 if it is not an id."""
    client = request.query_params.get("client")
    if client is not None and not _CLIENT_ID.fullmatch(client):
        raise _HTTPError(400, "a client id is 1 to 64 letters, digits, '-' or '_'")
    return client


async def _answer(
    send: Send,
    status: int,
    body: bytes = b"",
    content_type: bytes = b"text/plain; charset=utf-8",
    headers: list[tuple[bytes, bytes]] | None = None,
) -> None:
    """A whole response that is not a stream."""
    head = [(b"content-type", content_type)] if body else []
    if status != 204:  # a 204 has no body, and says nothing about its length (RFC 9110)
        head.append((b"content-length", str(len(body)).encode()))
    head += headers or []
    await send(
        {"type": "http.response.start", "status": status, "headers": head, "trailers": False}
    )
    await send({"type": "http.response.body", "body": body, "more_body": False})


class _Site:
    """Everything that is not one of the three streams: the page, /stats, the chat's
    routes, lifespan, 404."""

    def __init__(self, room: ChatRoom) -> None:
        self.room = room
        self.chat = SSEEndpoint(room.stream, methods=("GET", "HEAD"))

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
                await _answer(send, 200, page, b"text/html; charset=utf-8")
            elif path == "/stats":
                body = json.dumps({**stats, "chat": self.room.stats()}).encode()
                await _answer(send, 200, body, b"application/json")
            elif path == "/chat":
                _client_of(request)
                await self.chat(scope, receive, send)
            elif path in ("/chat/publish", "/chat/drop"):
                if request.method != "POST":
                    raise _HTTPError(405, "POST only")
                if path == "/chat/publish":
                    await self._publish(request, receive, send)
                else:
                    await self._drop(request, send)
            else:
                await _answer(send, 404, b"not found")
        except _HTTPError as error:
            allow = [(b"allow", b"POST")] if error.status == 405 else []
            await _answer(send, error.status, error.message.encode(), headers=allow)
        except _ClientLeft:
            pass

    async def _publish(self, request: SSERequest, receive: Receive, send: Send) -> None:
        text = _chat_text(
            request.headers.get("content-type", ""), await _read_body(receive, MAX_BODY)
        )
        try:
            event_id = await self.room.publish(text)
        except InvalidEventError:  # a lone surrogate, from a JSON "\ud800" escape
            raise _HTTPError(422, "the text cannot be encoded as UTF-8") from None
        except TopicClosed:
            raise _HTTPError(409, "the chat is closed") from None
        await _answer(send, 204, headers=[(b"x-event-id", event_id.encode())])

    async def _drop(self, request: SSERequest, send: Send) -> None:
        client = _client_of(request)
        if client is None:
            raise _HTTPError(400, "give the client: ?client=<id>")
        if not self.room.drop(client):
            raise _HTTPError(404, "no open chat stream of that client")
        await _answer(send, 204)


def create_app(hub: Hub | None = None, *, max_clients: int = MAX_CLIENTS) -> GracefulShutdown:
    """The demo app, its chat on ``hub`` (a new one if None).

    The hub runs for the life of the server (`Hub.lifespan`), inside `GracefulShutdown`,
    which ends every open stream - chat streams included - on Ctrl+C or SIGTERM. Tests
    make one app per test: a hub belongs to the event loop that first used its topics.
    """
    hub = Hub() if hub is None else hub
    room = ChatRoom(hub, max_clients=max_clients)
    streams = SSEMiddleware(_Site(room), routes={"/sse": sse, "/sse2": sse2, "/sse3": sse3})
    return GracefulShutdown(hub.lifespan(streams))


#: The demo's hub: the chat's last 1,000 messages, for reconnects to resume from.
hub = Hub(history=1000)
#: The demo app. `GracefulShutdown` makes Ctrl+C end every open stream at once.
app = create_app(hub)
