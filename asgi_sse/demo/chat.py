"""The demo's chat: one topic of a `Hub`.

A `ChatRoom` hands every ``GET /chat`` a `Connected` event, then the hub subscription's
frames (resumed after the client's Last-Event-ID), and the page's connection the same
frames as one of its merged sources (`ChatRoom.frames`); it publishes `ChatMessage`s;
and it drops a client's streams (`Hub.drop`: each subscription is owned by its client),
which its browser then resumes with no gap. The HTTP helpers parse and check what
``POST /chat/publish`` and ``/chat/drop`` receive.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import parse_qs

import anyio
from pydantic import BaseModel

from asgi_sse import BaseEvent, Hub, SSERequest, Subscription
from asgi_sse.backends import OwnerDrops
from asgi_sse.types import Receive, Send

__all__ = (
    "CHAT_TOPIC",
    "MAX_BODY",
    "MAX_TEXT",
    "RECONNECT_MS",
    "ChatEnded",
    "ChatMessage",
    "ChatPayload",
    "ChatRoom",
    "ClientLeft",
    "Connected",
    "ConnectedInfo",
    "HTTPError",
    "answer",
    "chat_text",
    "client_of",
    "read_body",
)

#: The hub topic of the chat.
CHAT_TOPIC = "chat"
#: A chat message holds at most this many characters (after stripping spaces).
MAX_TEXT = 500
#: A publish request's body holds at most this many bytes.
MAX_BODY = 8 * 1024
#: How long a browser waits before it reconnects (EventSource's ``retry``), in ms.
RECONNECT_MS = 1000

_CLIENT_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")


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


class ChatEnded(BaseEvent[str | None]):
    """The page's last event of the chat, when its topic ended (it was closed, or the
    hub stopped): the data is the id of the chat's last event. It has no id."""


class _ChatStream:
    """One chat connection: a `Connected` event, then the hub subscription's frames as
    they are (the subscription does the resuming).

    It keeps what the response asks of the subscription: `prepare_stream` (a closed
    topic is answered 204, which stops the browser) and `next_nowait` (what is ready
    goes out in one write).
    """

    __slots__ = ("_greeting", "subscription")

    def __init__(self, subscription: Subscription, greeting: bytes) -> None:
        self.subscription = subscription
        self._greeting: bytes | None = greeting

    async def prepare_stream(self) -> bool:
        return await self.subscription.prepare_stream()

    def __aiter__(self) -> _ChatStream:
        return self

    async def __anext__(self) -> bytes:
        greeting = self._take_greeting()
        return greeting if greeting is not None else await self.subscription.__anext__()

    def next_nowait(self) -> bytes:
        greeting = self._take_greeting()
        return greeting if greeting is not None else self.subscription.next_nowait()

    async def aclose(self) -> None:
        await self.subscription.aclose()

    def _take_greeting(self) -> bytes | None:
        greeting, self._greeting = self._greeting, None
        return greeting


class ChatRoom:
    """The demo's chat: one topic of ``hub``. Every stream of it is owned by its client
    (the ``client`` query parameter), so that `drop` can end a client's streams."""

    def __init__(self, hub: Hub, *, topic: str = CHAT_TOPIC) -> None:
        self.hub = hub
        self.topic = topic
        #: Whether the hub's backend is shared by several processes and drops there
        #: too (Redis): a client's streams may then be in another process.
        self.shared = isinstance(hub.backend, OwnerDrops)

    def stream(self, request: SSERequest) -> _ChatStream:
        """The handler of ``GET /chat``: this client's stream of the topic, resumed
        after its Last-Event-ID (``client`` is checked by the app before)."""
        client = request.query_params.get("client")
        last = request.last_event_id
        greeting = Connected(
            data=ConnectedInfo(client=client, last_event_id=last), retry=RECONNECT_MS
        ).encode()
        return _ChatStream(
            self.hub.subscribe(self.topic, last_event_id=last, owner=client), greeting
        )

    async def frames(
        self, client: str | None, last: str | None
    ) -> AsyncIterator[bytes | ChatEnded]:
        """The chat as a source of the page's merged connection: the subscription's
        frames after ``last`` (the chat's own id from the page's cursor), then
        `ChatEnded` if the topic ends."""
        subscription = self.hub.subscribe(self.topic, last_event_id=last, owner=client)
        try:
            async for frame in subscription:
                yield frame
        finally:
            await subscription.aclose()
        # A drop ends the whole response, and with it this task, here: only an end of
        # the topic itself (closed, or the hub stopped) is told to the page.
        await anyio.lowlevel.checkpoint()
        yield ChatEnded(data=self.hub.head(self.topic))

    async def publish(self, text: str) -> str:
        """Publish ``text`` as a `ChatMessage`; returns its id.

        Raises:
            TopicClosed: the topic was closed or the hub stopped.
            InvalidEventError: the text cannot be encoded (a lone surrogate).
        """
        message = ChatPayload(text=text, time=dt.datetime.now(dt.timezone.utc))
        return await self.hub.publish(self.topic, ChatMessage(data=message))

    async def drop(self, client: str) -> int:
        """End every stream ``client`` holds now (`Hub.drop`): its ``/chat`` and its
        page connection, which its browser then resumes; how many it ended in this
        process (with a `shared` hub, the other processes end theirs too)."""
        return await self.hub.drop(client)

    def stats(self) -> dict[str, Any]:
        hub_stats = self.hub.stats()
        return {
            "subscribers": hub_stats.subscribers,
            "published": hub_stats.published,
            "head": self.hub.head(self.topic),
        }


class HTTPError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class ClientLeft(Exception):
    """The client went away while its request body was read."""


async def read_body(receive: Receive, limit: int) -> bytes:
    """The request body; 413 beyond ``limit`` bytes (read no further)."""
    body = bytearray()
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientLeft
        if message["type"] == "http.request":
            body += message.get("body", b"")
            if len(body) > limit:
                raise HTTPError(413, f"the body is larger than {limit} bytes")
            if not message.get("more_body", False):
                return bytes(body)


def chat_text(content_type: str, body: bytes) -> str:
    """The ``text`` of a publish request: a form or a JSON object; checked."""
    media = content_type.partition(";")[0].strip().lower()
    if media == "application/x-www-form-urlencoded":
        form = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True, errors="replace")
        values = form.get("text")
        if not values:
            raise HTTPError(400, "the form has no text field")
        text = values[0]
    elif media == "application/json":
        try:
            data = json.loads(body)
        except ValueError:  # not JSON, or not UTF-8
            raise HTTPError(400, "the body is not JSON") from None
        if not isinstance(data, dict) or not isinstance(data.get("text"), str):
            raise HTTPError(400, 'send a JSON object with a "text" string')
        text = data["text"]
    else:
        raise HTTPError(415, "send text as a form (application/x-www-form-urlencoded) or JSON")
    text = text.strip()
    if not text:
        raise HTTPError(422, "the text is empty")
    if len(text) > MAX_TEXT:
        raise HTTPError(422, f"the text is longer than {MAX_TEXT} characters")
    return text


def client_of(request: SSERequest) -> str | None:
    """The ``client`` query parameter (None if absent); 400 if it is not an id."""
    client = request.query_params.get("client")
    if client is not None and not _CLIENT_ID.fullmatch(client):
        raise HTTPError(400, "a client id is 1 to 64 letters, digits, '-' or '_'")
    return client


async def answer(
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
