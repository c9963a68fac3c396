"""`Publisher`: publish to a hub's topics on Redis without a hub - from a Celery task, a
Django or other WSGI view, a thread, a script.

It writes what `RedisStreamsBackend.append` writes: the same script (`append.lua`), the
same key (``<prefix>t:<topic>``), the same frame cut where the id goes
(`asgi_sse.backends.split_at_id`), so the entry's id is the event's id and every hub
on the prefix reads it like its own publishes, resumes across it, and closes the topic
at its close marker.

Uses redis's clients (the sync one for `Publisher.publish`, the asyncio one for
`Publisher.apublish`) and the public names of `asgi_sse` only.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from typing import Any

import redis
import redis.asyncio as aioredis
from redis.asyncio.retry import Retry as AsyncRetry
from redis.backoff import NoBackoff
from redis.exceptions import ResponseError
from redis.retry import Retry

from asgi_sse.backends import HubUnavailable, Publishable, TopicClosed, split_at_id

from .entries import append_script
from .link import DOWN

__all__ = ("Publisher",)


class Publisher:
    """Publishes events to a hub's topics on Redis, from code that has no hub.

    ``Publisher(url, prefix=...)`` with the ``prefix`` (and ``maxlen``, ``expire_after``)
    of the hubs' `RedisStreamsBackend`: an event published here gets the id, and goes
    over the wire as the very bytes, it would have had from `Hub.publish`; subscribers
    on every worker get it, and a client resumes across it. Safe to share between
    threads (`publish` and `close_topic`, on redis's connection pool); `apublish` and
    `aclose_topic` use an asyncio client per event loop, made at their first call on
    it and closed as that loop shuts down (a publisher made at import time serves every
    `asyncio.run()` of a script or a task queue's worker).

    A publish is one round trip and never retried (an interrupted one is not appended
    twice); its return is the acknowledgement, as with the hub.

    Args:
        redis: The Redis URL (``redis://``, ``rediss://``, ``unix://``).
        prefix: The start of every key: the hubs' backend's ``prefix``.
        maxlen: The streams' length cap (approximate trimming): the hubs' ``history``
            (or their backend's ``maxlen``), 1000 by default as theirs.
        expire_after: Seconds after a publish that an idle stream is deleted (None:
            never): the hubs' backend's ``expire_after``.
        timeout: Seconds a command (and a connection) may take.

    Raises:
        ValueError: an option out of range, or a URL redis cannot parse.
    """

    def __init__(
        self,
        redis: str = "redis://127.0.0.1:6379/0",
        *,
        prefix: str = "asgi-sse:",
        maxlen: int = 1000,
        expire_after: float | None = None,
        timeout: float = 5.0,
    ) -> None:
        if isinstance(maxlen, bool) or not isinstance(maxlen, int) or maxlen < 1:
            raise ValueError(f"maxlen must be a positive int, got {maxlen!r}")
        if expire_after is not None and not expire_after > 0:
            raise ValueError(f"expire_after must be positive seconds or None, got {expire_after}")
        if not timeout > 0:
            raise ValueError(f"timeout must be positive seconds, got {timeout}")
        self.url = redis
        """Where Redis is."""
        self.prefix = prefix
        """The start of every key."""
        self.maxlen = maxlen
        """The streams' length cap."""
        self.expire_after = expire_after
        """Seconds after a publish that an idle stream is deleted (None: never)."""
        self.timeout = timeout
        """Seconds a command may take."""
        expire = 0 if expire_after is None else int(expire_after * 1000)
        self._args = (str(maxlen).encode(), str(expire).encode())
        self._sync: Any = _sync_client(redis, timeout)
        self._sync_script: Any = self._sync.register_script(append_script())
        # Per event loop: its asyncio client, the script registered on it, and the
        # async generator that closes the client when the loop shuts down (`_on_loop`).
        self._async: dict[asyncio.AbstractEventLoop, _LoopClient] = {}
        self._async_lock = threading.Lock()  # loops in several threads

    def __repr__(self) -> str:
        return f"Publisher({self.url!r}, prefix={self.prefix!r})"

    # -- synchronous ----------------------------------------------------------------------

    def publish(self, topic: str, event: Publishable) -> str:
        """Append ``event`` to ``topic``, as `Hub.publish` would; blocks for the round
        trip.

        Returns:
            The event's id in its topic.

        Raises:
            TopicClosed: the topic was closed.
            ValueError: ``topic`` is not a non-empty str.
            InvalidEventError: the event has an id, has no data, or cannot be encoded.
            TypeError: ``event`` is not an event or a str.
            HubUnavailable: Redis cannot be reached; nothing was published.
        """
        head, tail = split_at_id(event)
        return self._call(self._sync_script, topic, head, tail, close=False)

    def close_topic(self, topic: str, final_event: Publishable | None = None) -> None:
        """Close ``topic``, as `Hub.close` would: ``final_event`` (if given) is its last
        event; its subscribers everywhere end after it. Closing a closed topic does
        nothing.

        Raises:
            ValueError: ``topic`` is not a non-empty str.
            InvalidEventError: ``final_event`` cannot be published.
            HubUnavailable: Redis cannot be reached.
        """
        if final_event is not None:
            head, tail = split_at_id(final_event)
            try:
                self._call(self._sync_script, topic, head, tail, close=False)
            except TopicClosed:
                return
        with contextlib.suppress(TopicClosed):
            self._call(self._sync_script, topic, b"", b"", close=True)

    def disconnect(self) -> None:
        """Close the synchronous client's connections (made again at the next call)."""
        self._sync.close()

    # -- asyncio ----------------------------------------------------------------------------

    async def apublish(self, topic: str, event: Publishable) -> str:
        """`publish` for asyncio code (any event loop: a client per loop).

        Returns:
            The event's id in its topic.

        Raises:
            TopicClosed: the topic was closed.
            ValueError: ``topic`` is not a non-empty str.
            InvalidEventError: the event has an id, has no data, or cannot be encoded.
            TypeError: ``event`` is not an event or a str.
            HubUnavailable: Redis cannot be reached; nothing was published.
            RuntimeError: not called on an asyncio event loop (on trio, call
                `publish` in a worker thread).
        """
        head, tail = split_at_id(event)
        return await self._acall(topic, head, tail, close=False)

    async def aclose_topic(self, topic: str, final_event: Publishable | None = None) -> None:
        """`close_topic` for asyncio code.

        Raises:
            ValueError: ``topic`` is not a non-empty str.
            InvalidEventError: ``final_event`` cannot be published.
            HubUnavailable: Redis cannot be reached.
        """
        if final_event is not None:
            head, tail = split_at_id(final_event)
            try:
                await self._acall(topic, head, tail, close=False)
            except TopicClosed:
                return
        with contextlib.suppress(TopicClosed):
            await self._acall(topic, b"", b"", close=True)

    async def adisconnect(self) -> None:
        """Close the connections of this event loop's asyncio client (made again at the
        next call). `asyncio.run()` does it itself as the loop shuts down; a loop closed
        without that leaves them to the garbage collector.

        Raises:
            RuntimeError: not called on an asyncio event loop.
        """
        with self._async_lock:
            made = self._async.get(_running_loop())
        if made is not None:
            await made.closer.aclose()  # its finally closes the client

    # -- the script ---------------------------------------------------------------------------

    def _key_and_args(
        self, topic: str, head: bytes, tail: bytes, close: bool
    ) -> tuple[list[bytes], list[bytes]]:
        if type(topic) is not str or not topic:
            raise ValueError(f"a topic is a non-empty str, got {topic!r}")
        key = (self.prefix + "t:" + topic).encode("utf-8", "surrogatepass")
        maxlen, expire = self._args
        return [key], [maxlen, head, tail, b"1" if close else b"0", expire]

    def _call(self, script: Any, topic: str, head: bytes, tail: bytes, *, close: bool) -> str:
        keys, args = self._key_and_args(topic, head, tail, close)
        try:
            entry_id: bytes = script(keys=keys, args=args)
        except ResponseError as exc:
            raise _refused(exc, topic) from None
        except DOWN as exc:
            raise HubUnavailable(f"Redis at {self.url} is unreachable: {exc}") from exc
        return entry_id.decode()

    async def _acall(self, topic: str, head: bytes, tail: bytes, *, close: bool) -> str:
        keys, args = self._key_and_args(topic, head, tail, close)
        script = await self._async_script()
        try:
            entry_id: bytes = await script(keys=keys, args=args)
        except ResponseError as exc:
            raise _refused(exc, topic) from None
        except DOWN as exc:
            raise HubUnavailable(f"Redis at {self.url} is unreachable: {exc}") from exc
        return entry_id.decode()

    async def _async_script(self) -> Any:
        """The append script on the running event loop's client (made on first use)."""
        loop = _running_loop()
        with self._async_lock:
            made = self._async.get(loop)
            new = made is None
            if made is None:
                # A loop closed without shutting down its async generators: its client's
                # connections are left to the garbage collector.
                for closed in [other for other in self._async if other.is_closed()]:
                    del self._async[closed]
                client = _async_client(self.url, self.timeout)
                made = _LoopClient(client, client.register_script(append_script()))
                made.closer = self._on_loop(loop, made)
                self._async[loop] = made
        if new:
            await made.closer.asend(None)  # started: the loop now holds it till shutdown
        return made.script

    async def _on_loop(self, loop: asyncio.AbstractEventLoop, made: _LoopClient) -> Any:
        """Held by ``loop`` (asyncio keeps the async generators started on it) until it
        shuts them down - `asyncio.run()` does before it closes the loop -, or until
        `adisconnect`: then the client is forgotten and its connections closed."""
        try:
            yield
        finally:
            with self._async_lock:
                if self._async.get(loop) is made:
                    del self._async[loop]
            with contextlib.suppress(Exception):
                await asyncio.wait_for(made.client.aclose(), self.timeout)


class _LoopClient:
    """An event loop's asyncio client, its append script, and what closes the client."""

    __slots__ = ("client", "closer", "script")

    def __init__(self, client: Any, script: Any) -> None:
        self.client = client
        self.script = script
        self.closer: Any = None


def _running_loop() -> asyncio.AbstractEventLoop:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        msg = (
            "Publisher's asyncio methods run on an asyncio event loop; elsewhere (trio) "
            "call publish or close_topic in a worker thread"
        )
        raise RuntimeError(msg) from None


def _refused(exc: ResponseError, topic: str) -> Exception:
    if str(exc).startswith("CLOSED"):
        return TopicClosed(f"topic {topic!r} was closed")
    return exc


def _sync_client(url: str, timeout: float) -> redis.Redis:
    try:
        return redis.Redis.from_url(
            url,
            retry=Retry(NoBackoff(), 0),
            protocol=2,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
        )
    except ValueError as exc:
        raise ValueError(f"not a Redis URL: {url!r} ({exc})") from None


def _async_client(url: str, timeout: float) -> aioredis.Redis:
    return aioredis.Redis.from_url(
        url,
        retry=AsyncRetry(NoBackoff(), 0),
        protocol=2,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
    )
