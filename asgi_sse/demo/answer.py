"""The demo's answers: runs of a fake model on the hub, read by one EventSource each.

``POST /answer`` starts a run (`Hub.run`) of `fake_model`, which yields `Token`s at a
steady pace; the run publishes them to a topic of its own and ends with ``run_ended``.
``GET /answer/<topic>`` streams that topic from its start, or after the Last-Event-ID
of a reconnect; ``POST /answer/<topic>/drop`` ends its streams (their owner is the
topic: `Hub.drop`; the browser reconnects and resumes), ``POST /answer/<topic>/stop``
cancels the run.

Across workers (``--redis URL --workers 2``) the run's events are on Redis, so any
worker streams and stops it, and a drop reaches the streams of every worker.
"""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import AsyncIterator
from typing import Any

import anyio

from asgi_sse import BaseEvent, Hub, HubFull, SSEEndpoint, SSERequest, Subscription
from asgi_sse.backends import OwnerDrops
from asgi_sse.types import Receive, Scope, Send

from .chat import MAX_BODY, HTTPError, answer, chat_text, read_body

__all__ = ("MAX_TOKENS", "RECONNECT_MS", "Answers", "Token", "fake_model", "fake_words")

#: An answer has at most this many tokens (the demo hub's history holds them all).
MAX_TOKENS = 4000
#: How long a browser waits before it reconnects (the stream's first ``retry``), in ms.
RECONNECT_MS = 500
_TOPIC = re.compile(r"answer-[A-Za-z0-9_-]{22}")
_WORDS = ("the", "quick", "brown", "fox", "jumps", "over", "the", "lazy", "dog")


class Token(BaseEvent[str]):
    """One token of an answer (``event: token``, data a JSON string); the hub gives it
    its id."""


def fake_words(prompt: str, count: int) -> list[str]:
    """The ``count`` tokens the fake model answers ``prompt`` with: numbered words."""
    words = [*prompt.split(), *_WORDS]
    return [f"{words[n % len(words)]}#{n} " for n in range(count)]


async def fake_model(prompt: str, count: int, interval: float) -> AsyncIterator[Token]:
    """Stands in for a model: ``count`` tokens, one every ``interval`` seconds."""
    for word in fake_words(prompt, count):
        await anyio.sleep(interval)
        yield Token(data=word)


class Answers:
    """The ``/answer`` routes on ``hub``."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self._endpoint = SSEEndpoint(self._stream, methods=("GET", "HEAD"), retry=RECONNECT_MS)

    async def __call__(
        self, request: SSERequest, scope: Scope, receive: Receive, send: Send
    ) -> None:
        """``POST /answer``, ``GET /answer/<topic>``, ``POST /answer/<topic>/drop`` and
        ``/stop`` (raises `HTTPError`)."""
        path = request.path
        if path == "/answer":
            if request.method != "POST":
                raise HTTPError(405, "POST only")
            await self._start(request, receive, send)
            return
        topic, _, action = path.removeprefix("/answer/").partition("/")
        if not _TOPIC.fullmatch(topic) or action not in ("", "drop", "stop"):
            raise HTTPError(404, "not found")
        if not action:
            await self._endpoint(scope, receive, send)
            return
        if request.method != "POST":
            raise HTTPError(405, "POST only")
        done = await self.drop(topic) if action == "drop" else await self.hub.cancel(topic)
        if not done:
            raise HTTPError(404, f"nothing to {action} on this topic")
        await answer(send, 204)

    async def drop(self, topic: str) -> bool:
        """End the streams of ``topic`` now (the browser resumes); False if this
        process has none and no other process can have any (a hub of this process)."""
        ended = await self.hub.drop(topic)
        # On a hub shared by several processes, one of the others may hold them: no
        # worker alone can tell that nobody streams the topic.
        return bool(ended) or isinstance(self.hub.backend, OwnerDrops)

    async def _start(self, request: SSERequest, receive: Receive, send: Send) -> None:
        query = request.query_params
        try:
            count = int(query.get("tokens", "200"))
            interval = float(query.get("interval", "0.05"))  # 20 tokens a second
        except ValueError:
            raise HTTPError(400, "tokens is an int, interval a number of seconds") from None
        if not 1 <= count <= MAX_TOKENS or not 0.001 <= interval <= 5:
            raise HTTPError(400, f"tokens: 1 to {MAX_TOKENS}; interval: 0.001 to 5 seconds")
        prompt = chat_text(
            request.headers.get("content-type", ""), await read_body(receive, MAX_BODY)
        )
        topic = f"answer-{secrets.token_urlsafe(16)}"
        try:
            await self.hub.run(fake_model(prompt, count, interval), topic=topic)
        except HubFull:
            raise HTTPError(429, "too many answers running") from None
        body: dict[str, Any] = {"topic": topic, "stream": f"/answer/{topic}"}
        headers = [(b"location", f"/answer/{topic}".encode())]
        await answer(send, 201, json.dumps(body).encode(), b"application/json", headers)

    def _stream(self, request: SSERequest) -> Subscription:
        topic = request.path.removeprefix("/answer/")
        # A first visit reads the answer from its start, a reconnect after its last id.
        # The topic is the streams' owner: a drop of the answer ends them all.
        last = request.last_event_id or Hub.EARLIEST
        return self.hub.subscribe(topic, last_event_id=last, owner=topic)
