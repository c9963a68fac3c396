"""`RedisStreamsBackend`: the hub on Redis Streams (`asgi_sse.redis`'s docstring is the
user's guide).

Written as a third-party backend would be, against the public SPI (`asgi_sse.backends`)
only: it feeds the hub's logs through their methods and knows nothing else of the hub.
Its parts: its options' checks (`options`), the link to Redis (`link`), the stream's
entry format and the append script (`entries`, `append.lua`), the readers that feed the
logs (`reader`), and the resolution of a client's id (`locate`).

asyncio only: redis's client does not run on trio.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
from collections.abc import Callable
from typing import Any

import anyio
import anyio.abc
import redis.asyncio as aioredis
from redis.exceptions import ResponseError

from asgi_sse.backends import LogBounds, ResumePoint, TopicClosed, TopicLog

from .drops import Drops
from .entries import append_script, is_close_marker, newest_id
from .leases import Leases
from .link import DOWN, RedisLink, client_from_url
from .locate import Locator
from .options import check_client, check_options
from .reader import Reader

__all__ = ("RedisStreamsBackend",)

_log = logging.getLogger("asgi_sse.redis")


class RedisStreamsBackend:
    """A `Hub` backend on Redis Streams, for several workers and hosts.

    asyncio only (redis's client does not run on trio). The options are checked here,
    where the backend is made (often when the app is imported), not at a publish.

    Args:
        redis: A URL (``redis://host:port/db``, ``rediss://`` for TLS,
            ``unix:///path``) or an existing ``redis.asyncio.Redis`` client made with
            ``decode_responses=False``. A client built from a URL never retries a
            command on its own, so an interrupted publish is never appended twice; a
            client you pass keeps its own retry policy.
        prefix: The start of every key (topic ``t`` is stream ``<prefix>t:t``).
        maxlen: The length cap of each stream (approximate trimming); the hub's
            ``history`` by default, so resume and `Reset` follow the same rule as in
            memory.
        expire_after: Seconds after its last publish that an idle topic's stream is
            deleted by Redis (None, the default: never). A client resuming after that
            gets a `Reset`.
        block: Seconds one ``XREAD`` blocks; well under the client's socket timeout.
        page_size: Entries per ``XREVRANGE`` page when a resume reads from Redis.
        read_count: Entries per topic per ``XREAD``.
        topics_per_reader: Topics one blocking connection reads; a process with more
            opens another.
        reconnect_min: The first wait before a reconnect attempt, in seconds (it
            doubles, with jitter, per failed attempt).
        reconnect_max: The cap of that wait.

    Raises:
        ValueError: for an option out of range, a URL redis cannot parse, or a client
            that decodes responses or whose socket timeout is not well over ``block``.
    """

    logs_are_the_store = False
    """False: the logs are this process's copies of the streams, fed from `attach` on."""
    can_append_nowait = False
    """False: every append is a round trip to Redis (`Hub.publish_nowait` refuses)."""

    def __init__(
        self,
        redis: str | aioredis.Redis = "redis://127.0.0.1:6379/0",
        *,
        prefix: str = "asgi-sse:",
        maxlen: int | None = None,
        expire_after: float | None = None,
        block: float = 2.0,
        page_size: int = 500,
        read_count: int = 1000,
        topics_per_reader: int = 500,
        reconnect_min: float = 0.05,
        reconnect_max: float = 5.0,
    ) -> None:
        check_options(
            page_size=page_size,
            read_count=read_count,
            topics_per_reader=topics_per_reader,
            maxlen=maxlen,
            expire_after=expire_after,
            block=block,
            reconnect_min=reconnect_min,
            reconnect_max=reconnect_max,
        )
        url = redis if isinstance(redis, str) else None
        client = client_from_url(redis, block) if isinstance(redis, str) else redis
        check_client(client, block)
        self.prefix = prefix
        """The start of every key."""
        self.maxlen = maxlen
        """The length cap of each stream (None: the hub's ``history``)."""
        self.expire_after = expire_after
        """Seconds after its last publish that an idle stream is deleted (None: never)."""
        self.block = block
        """Seconds one ``XREAD`` blocks."""
        self.page_size = page_size
        """Entries per ``XREVRANGE`` page when a resume reads from Redis."""
        self.read_count = read_count
        """Entries per topic per ``XREAD``, as given (the hub's ``history`` caps it)."""
        self.topics_per_reader = topics_per_reader
        """Topics one blocking connection reads."""
        self.reconnect_min = reconnect_min
        """The first wait before a reconnect attempt, in seconds."""
        self.reconnect_max = reconnect_max
        """The cap of the wait between reconnect attempts, in seconds."""
        self.gaps = 0
        """Gaps met: entries of a topic this process never saw (trimmed, or lost)."""
        self._link = RedisLink(
            url, client, block=block, reconnect_min=reconnect_min, reconnect_max=reconnect_max
        )
        self._locator = Locator(
            self._link, key_of=self._key, page_size=page_size, running=self._is_running
        )
        self._instance = f"{os.getpid()}-{secrets.token_hex(4)}"  # names its wake streams
        # Set by `start`, from the hub's bounds:
        self._append_args = (b"1000", b"0")  # the streams' length cap, expiry in ms
        self._read_count = read_count
        self._script: Any = None
        self._readers: list[Reader] = []
        self._reader_of: dict[bytes, Reader] = {}  # stream key -> who reads it
        self._group: anyio.abc.TaskGroup | None = None  # the readers' and probes' tasks
        self._host: asyncio.Task[None] | None = None  # the task that holds that group
        self._running = False
        self._drops = Drops(self._link, (prefix + "drops").encode(), self._instance)
        self._leases = Leases(
            self._link,
            key_of=lambda kind, name: (self.prefix + kind + name).encode("utf-8", "surrogatepass"),
            append_args=lambda: self._append_args,
        )

    @property
    def reconnects(self) -> int:
        """Reconnects of the readers (after Redis was unreachable)."""
        return self._link.reconnects

    def __repr__(self) -> str:
        link = self._link
        where = link.url if link.url is not None else repr(link.client)
        return f"RedisStreamsBackend({where!r}, prefix={self.prefix!r})"

    # -- lifecycle ------------------------------------------------------------------------

    async def start(self, bounds: LogBounds) -> None:
        """Check that Redis answers and start the readers' task group; the streams are
        capped at ``bounds.max_events`` unless ``maxlen`` is given.

        Raises:
            RuntimeError: not on asyncio.
            HubUnavailable: Redis cannot be reached (the app must not start).
        """
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            raise RuntimeError(
                "RedisStreamsBackend runs on asyncio only (redis's client does not run "
                "on trio): run the app on asyncio"
            ) from None
        maxlen = self.maxlen or bounds.max_events
        expire = 0 if self.expire_after is None else int(self.expire_after * 1000)
        self._append_args = (str(maxlen).encode(), str(expire).encode())
        self._read_count = min(self.read_count, bounds.max_events)
        await self._link.connect()
        await self._drops.start()
        self._script = self._link.client.register_script(append_script())
        self._leases.register()
        self._readers = []
        self._reader_of = {}
        await self._start_group()
        assert self._group is not None
        self._group.start_soon(self._leases.poll)
        self._group.start_soon(self._drops.run, self._group)
        self._running = True

    async def _start_group(self) -> None:
        """The readers' task group, entered and left in a task of its own, so that
        `stop` works from any task and under any cancel scope."""
        started = anyio.Event()

        async def host() -> None:
            async with anyio.create_task_group() as group:
                self._group = group
                started.set()
                await anyio.sleep_forever()

        self._host = asyncio.get_running_loop().create_task(host())
        await started.wait()

    async def stop(self) -> None:
        """Stop the readers, let go whoever waits for Redis, delete this process's wake
        streams, and make a fresh client from the URL (the hub may start again)."""
        self._running = False  # first: a resume waiting for a reader ends
        group, self._group = self._group, None
        host, self._host = self._host, None
        self._script = None
        self._link.release_waiters()
        if group is not None:
            group.cancel_scope.cancel()
        if host is not None:
            with anyio.CancelScope(shield=True):
                await asyncio.wait([host])
        keys = [reader.wake_key for reader in self._readers]
        self._readers = []  # (the hub drops its logs: started again, it reads afresh)
        self._reader_of = {}
        self._leases.forget_all()
        with anyio.move_on_after(1):
            try:
                if keys:
                    await self._link.client.delete(*keys)
            except DOWN:
                pass
        await self._link.renew()

    def _is_running(self) -> bool:
        return self._running

    # -- publishing -----------------------------------------------------------------------

    async def append(self, log: TopicLog, prefix: bytes, suffix: bytes) -> str:
        """Append the event to its topic's stream in one server-side script, which
        returns the new entry's id (see `HubBackend.append`). The event reaches the
        logs of every process that follows the topic through its reader.

        Raises:
            TopicClosed: the topic was closed (in any process).
            HubUnavailable: Redis cannot be reached; nothing was appended.
            RuntimeError: the hub was not entered.
            redis.exceptions.ResponseError: Redis refused the script otherwise (the key
                holds something that is not a stream, for one).
        """
        return await self._run_script(log, prefix, suffix, close=False)

    def append_nowait(self, log: TopicLog, prefix: bytes, suffix: bytes) -> str:
        """Never called: `can_append_nowait` is False.

        Raises:
            NotImplementedError: always; every append is a round trip to Redis.
        """
        raise NotImplementedError("RedisStreamsBackend appends asynchronously only")

    async def close(self, log: TopicLog) -> None:
        """Append the topic's close marker (once: closing a closed topic does nothing);
        every process's log of the topic closes when its reader reads it.

        Raises:
            HubUnavailable: Redis cannot be reached.
            RuntimeError: the hub was not entered.
            redis.exceptions.ResponseError: Redis refused the script otherwise.
        """
        with contextlib.suppress(TopicClosed):
            await self._run_script(log, b"", b"", close=True)

    async def _run_script(
        self, log: TopicLog, prefix: bytes, suffix: bytes, *, close: bool
    ) -> str:
        if self._script is None:
            raise RuntimeError("enter the hub first (async with hub: ...)")
        maxlen, expire = self._append_args
        args = [maxlen, prefix, suffix, b"1" if close else b"0", expire]
        try:
            async with self._link.errors():
                entry_id: bytes = await self._script(keys=[self._key(log)], args=args)
        except ResponseError as exc:
            if str(exc).startswith("CLOSED"):
                raise TopicClosed(f"topic {log.name!r} was closed") from None
            raise
        return entry_id.decode()

    # -- following topics -----------------------------------------------------------------

    async def attach(self, log: TopicLog) -> None:
        """Read the stream's newest id and hand the log to a reader, which feeds it
        every entry after that one.

        Raises:
            HubUnavailable: Redis cannot be reached.
            RuntimeError: the hub was not entered.
        """
        key = self._key(log)
        async with self._link.errors():
            newest: Any = await self._link.client.xrevrange(key, count=1)
        if self._group is None:
            raise RuntimeError("enter the hub first (async with hub: ...)")
        if log.attached:  # attached by another subscriber meanwhile
            return
        after = newest_id(newest)
        log.attach(after=after.decode(), closed=bool(newest) and is_close_marker(newest[0][1]))
        reader = self._reader_with_room()
        self._reader_of[key] = reader
        await reader.add(key, log, after)

    def forget(self, log: TopicLog) -> None:
        """Stop reading the log's stream (its reader drops it) and detach the log."""
        key = self._key(log)
        reader = self._reader_of.pop(key, None)
        if reader is not None:
            reader.remove(key)
        log.detach()

    def _reader_with_room(self) -> Reader:
        for reader in self._readers:
            if len(reader.logs) < self.topics_per_reader:
                return reader
        assert self._group is not None
        wake_key = f"{self.prefix}w:{self._instance}:{len(self._readers)}".encode()
        reader = Reader(
            self._link, wake_key=wake_key, read_count=self._read_count, on_gap=self._on_gap
        )
        self._readers.append(reader)
        self._group.start_soon(reader.run)
        return reader

    def _on_gap(self, log: TopicLog, id_before_next: bytes) -> None:
        self.gaps += 1
        _log.warning(
            "topic %r: events were trimmed or lost before this process read them", log.name
        )
        log.lose_history(id_before_next.decode())

    # -- resuming, faults -------------------------------------------------------------------

    async def locate(self, log: TopicLog, position: str) -> ResumePoint:
        """Where a client at ``position`` resumes: in the log; older, read back from
        Redis into the log, link by link (``gone`` if a link is broken or the log has
        no room); newer than this process's reader, once the reader has it; an id
        Redis never had is ``unknown``, one that is not a Redis id ``malformed``.

        Raises:
            HubUnavailable: Redis cannot be reached, or the hub stopped while waiting
                for the reader.
        """
        return await self._locator.locate(log, position)

    async def available(self) -> None:
        """Return once Redis answers again, probing it with backoff (at once if it
        answers, or if the backend is stopping)."""
        await self._link.wait_up(self._group)

    # -- runs across processes (RunLeases) ---------------------------------------------

    async def claim_run(self, log: TopicLog, lease: float, lost: tuple[bytes, bytes]) -> bool:
        """Claim the run on ``log``'s topic: ``SET <prefix>lease:<topic> <token> NX PX``
        and the ``lost`` frame kept beside it (see `asgi_sse.backends.RunLeases`).

        Raises:
            HubUnavailable: Redis cannot be reached; nothing was claimed.
        """
        return await self._leases.claim(log, lease, lost)

    async def renew_run(self, log: TopicLog, lease: float) -> bool:
        """Extend this process's lease (compared by its token); False when it lapsed,
        and then the topic is ended ``lost`` if nobody did yet.

        Raises:
            HubUnavailable: Redis cannot be reached.
        """
        return await self._leases.renew(log, lease)

    async def release_run(self, log: TopicLog) -> None:
        """Drop this process's lease (compared by its token) and the run's hash."""
        await self._leases.release(log)

    async def request_run_cancel(self, topic: str) -> bool:
        """Flag a cancel request on a live lease; the owning process polls its runs'
        flags every quarter second.

        Raises:
            HubUnavailable: Redis cannot be reached.
        """
        return await self._leases.request_cancel(topic)

    async def run_cancel_requested(self, log: TopicLog) -> None:
        """Return once another process asked to cancel this process's run on ``log``."""
        await self._leases.cancel_requested(log)

    # -- drops across processes (OwnerDrops) -----------------------------------------------

    async def send_drop(self, owner: str) -> None:
        """Add ``owner``'s drop to the ``<prefix>drops`` stream, which every other
        process reads with a blocking ``XREAD`` (see `asgi_sse.backends.OwnerDrops`).

        Raises:
            HubUnavailable: Redis cannot be reached; no other process was told.
            RuntimeError: the hub was not entered.
        """
        if self._script is None:
            raise RuntimeError("enter the hub first (async with hub: ...)")
        await self._drops.send(owner)

    def receive_drops(self, apply: Callable[[str], object]) -> None:
        """Call ``apply(owner)`` for every drop another process sends, while running."""
        self._drops.receive(apply)

    @property
    def drops_received(self) -> int:
        """Drops of other processes applied here."""
        return self._drops.received

    @property
    def lapses(self) -> int:
        """Runs this process ended ``lost`` (their process's lease lapsed)."""
        return self._leases.lapses

    def _key(self, log: TopicLog) -> bytes:
        return (self.prefix + "t:" + log.name).encode("utf-8", "surrogatepass")
