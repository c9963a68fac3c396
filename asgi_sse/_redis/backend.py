"""The implementation of `asgi_sse.redis` (whose docstring is the user's guide)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import re
import secrets
from bisect import bisect_left
from time import monotonic
from typing import TYPE_CHECKING, Any

import anyio
import anyio.abc

from .._hub.hub import EARLIEST, Hub, TopicLog
from .._protocol.errors import HubUnavailable, TopicClosed
from .._protocol.frames import IdFrame, frame_with_id
from .._protocol.reset import ResetReason

try:
    import redis.asyncio as aioredis
    from redis.asyncio.retry import Retry
    from redis.backoff import NoBackoff
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.exceptions import ResponseError
    from redis.exceptions import TimeoutError as RedisTimeoutError
except ImportError as exc:  # pragma: no cover - the extra is installed in the tests
    raise ImportError(
        "asgi_sse.redis needs the redis package: pip install 'asgi-sse[redis]'"
    ) from exc

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterable

__all__ = ("RedisStreamsBackend",)

_log = logging.getLogger("asgi_sse.redis")

#: Errors that mean "Redis cannot be reached now" (as opposed to a refused command).
_DOWN = (RedisConnectionError, RedisTimeoutError, OSError)

_ID = re.compile(rb"([0-9]{1,20})-([0-9]{1,20})")

# KEYS[1]: the topic's stream. ARGV: maxlen, head, tail, "1" to close, expiry in ms ("0":
# none). Returns the new entry's id; an error "CLOSED" if the topic was closed.
_APPEND = """
local newest = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)
local prev = '0-0'
if newest[1] then
  prev = newest[1][1]
  local fields = newest[1][2]
  for i = 1, #fields, 2 do
    if fields[i] == 'c' then return redis.error_reply('CLOSED topic closed') end
  end
end
local id
if ARGV[4] == '1' then
  id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*', 'p', prev, 'c', '1')
else
  id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*',
                  'p', prev, 'h', ARGV[2], 't', ARGV[3])
end
if ARGV[5] ~= '0' then redis.call('PEXPIRE', KEYS[1], ARGV[5]) end
return id
"""


def _is_stream(kind: bytes | str) -> bool:
    """A key's TYPE that the reader can read: a stream, or no key (yet)."""
    return kind in (b"stream", b"none", "stream", "none")


_MAX_PART = 2**64 - 1  # a Redis stream id is two unsigned 64-bit numbers


def _parse_id(value: bytes) -> tuple[int, int] | None:
    match = _ID.fullmatch(value)
    if match is None:
        return None
    parsed = int(match.group(1)), int(match.group(2))
    return None if max(parsed) > _MAX_PART else parsed


class _Reader:
    """One blocking ``XREAD`` over a group of topics, and its wake stream."""

    def __init__(self, backend: RedisStreamsBackend, index: int) -> None:
        self.backend = backend
        self.logs: dict[bytes, TopicLog] = {}
        self.read: dict[bytes, bytes] = {}  # stream key -> the last id read
        self.wake_key = f"{backend.prefix}w:{backend._instance}:{index}".encode()
        self.wake_id = b"0-0"
        # Keys that hold something else than a stream: left out of the XREAD (so the
        # other topics are read on) until they are a stream again, looked at once per
        # `block` seconds.
        self.broken: set[bytes] = set()
        self.looked = 0.0

    async def add(self, key: bytes, log: TopicLog, newest: bytes) -> None:
        self.logs[key] = log
        self.read[key] = newest
        # The reader may be blocked in an XREAD without this key: an entry on its wake
        # stream ends that XREAD (or the next one at once, if it is not sent yet).
        async with self.backend._errors():
            pipe = self.backend._client.pipeline(transaction=False)
            pipe.xadd(self.wake_key, {b"w": b"1"}, maxlen=1, approximate=False)
            pipe.pexpire(self.wake_key, 86_400_000)
            await pipe.execute()

    def remove(self, key: bytes) -> None:
        self.logs.pop(key, None)
        self.read.pop(key, None)
        self.broken.discard(key)

    async def run(self) -> None:
        backend = self.backend
        delay = backend.reconnect_min
        failed = False
        while True:
            try:
                if failed:
                    await self.recheck()
                if self.broken and monotonic() - self.looked >= backend.block:
                    await self.look_again()
                streams: dict[Any, Any] = dict(self.read)
                for key in self.broken:
                    del streams[key]
                streams[self.wake_key] = self.wake_id
                # The logs this XREAD reads for: a topic forgotten and followed again
                # meanwhile has a new log, which this reply is not for.
                logs = dict(self.logs)
                reply = await backend._client.xread(
                    streams, count=backend._read_count, block=backend._block_ms
                )
            except Exception as exc:
                if isinstance(exc, _DOWN):
                    backend._went_down(exc)
                else:  # a refused command (a topic's key of another type...): go on
                    _log.exception("reading the topics' streams failed")
                    with contextlib.suppress(Exception):
                        await self.isolate()
                failed = True
                delay = await backend._pause(delay)
                continue
            if failed:
                backend.reconnects += 1
                failed = False
                delay = backend.reconnect_min
            backend._came_up()
            if reply:
                self.feed(reply.items() if isinstance(reply, dict) else reply, logs)

    def feed(self, reply: Iterable[Any], logs: dict[bytes, TopicLog] | None = None) -> None:
        hub = self.backend._hub
        observer = None if hub is None else hub.observer
        every = 0 if observer is None else observer.lag_every
        for key, entries in reply:
            if key == self.wake_key:
                self.wake_id = entries[-1][0]
                continue
            log = self.logs.get(key)
            if log is None or (logs is not None and logs.get(key) is not log):
                continue  # forgotten meanwhile (and maybe followed again, afresh)
            last = self.read[key]
            size = 0
            for count, (entry_id, fields) in enumerate(entries):
                frame_size = len(fields.get(b"h", b"")) + len(fields.get(b"t", b""))
                frame_size += len(entry_id) + 5  # its "id: ...\n" line
                if count and (count == log.limit or size + frame_size > log.limit_bytes):
                    # More than the log holds in one batch would push out subscribers
                    # that keep up: the rest comes with the next read, after their turn.
                    break
                size += frame_size
                previous = fields.get(b"p", b"")
                if previous != last:
                    self.backend._lost(log, previous)
                last = entry_id
                head = fields.get(b"h")
                if head is None:  # the close marker
                    log.closed = True
                    log.wake()
                    continue
                tail = fields.get(b"t", b"")
                log.append(entry_id.decode(), head, tail)
                if every and log.head % every == 0:
                    # The id's first part is the Redis server's clock at the append, ms.
                    log.sampled[log.head] = int(entry_id.split(b"-", 1)[0]) / 1000
            self.read[key] = last

    async def isolate(self) -> None:
        """Leave the keys that are no streams (nor absent) out of the XREAD: their
        topics get a `Reset` (what they held is gone), the reader's other topics are
        read on; once such a key is a stream again, it is read from its start."""
        keys = [key for key in self.read if key not in self.broken]
        for key, kind in await self.types(keys):
            if _is_stream(kind):
                continue
            _log.error("key %r holds a %s, not a stream: left unread until it is one", key, kind)
            self.broken.add(key)
            self.looked = monotonic()
            self.read[key] = b"0-0"
            log = self.logs.get(key)
            if log is not None:
                self.backend._lost(log, b"0-0")

    async def look_again(self) -> None:
        """The broken keys that are a stream (or absent) again are read again."""
        self.looked = monotonic()
        for key, kind in await self.types(list(self.broken)):
            if _is_stream(kind):
                _log.warning("key %r is a stream again: read from its start", key)
                self.broken.discard(key)

    async def types(self, keys: list[bytes]) -> list[tuple[bytes, Any]]:
        """(key, TYPE) of each key, in one round trip."""
        pipe = self.backend._client.pipeline(transaction=False)
        for key in keys:
            pipe.type(key)
        return list(zip(keys, await pipe.execute(), strict=True))

    async def recheck(self) -> None:
        """After a reconnect: a stream that lost what this reader read (Redis restarted
        without its data) is a gap now, not at its next publish."""
        keys = [key for key in self.read if key not in self.broken]
        if not keys:
            return
        pipe = self.backend._client.pipeline(transaction=False)
        for key in keys:
            pipe.xrevrange(key, count=1)
        replies = await pipe.execute()
        for key, newest in zip(keys, replies, strict=True):
            log = self.logs.get(key)
            if log is None:
                continue
            now = newest[0][0] if newest else b"0-0"
            read = _parse_id(self.read[key]) or (0, 0)
            if (_parse_id(now) or (0, 0)) < read:
                self.backend._lost(log, now)
                self.read[key] = now


class RedisStreamsBackend:
    """A `Hub` backend on Redis Streams, for several workers and hosts.

    ``redis`` is a URL (``redis://host:port/db``, ``rediss://`` for TLS,
    ``unix:///path``) or an existing ``redis.asyncio.Redis`` client made with
    ``decode_responses=False``. A client built from a URL never retries a command on
    its own, so an interrupted publish is never appended twice; a client you pass
    keeps its own retry policy.

    Options:

    * ``prefix``: the start of every key (topic ``t`` is stream ``<prefix>t:t``).
    * ``maxlen``: the length cap of each stream (approximate trimming); the hub's
      ``history`` by default, so resume and `Reset` follow the same rule as in memory.
    * ``expire_after``: seconds after its last publish that an idle topic's stream is
      deleted by Redis (None, the default: never). A client resuming after that gets
      a `Reset`.
    * ``block``: seconds one ``XREAD`` blocks; well under the client's socket timeout.
    * ``page_size``: entries per ``XREVRANGE`` page when a resume reads from Redis.
    * ``read_count``: entries per topic per ``XREAD``.
    * ``topics_per_reader``: topics one blocking connection reads; a process with
      more opens another.
    * ``reconnect_min``, ``reconnect_max``: the backoff between reconnect attempts
      (doubling, with jitter, capped).

    Raises:
        ValueError: for an option out of range, or a client that decodes responses.
    """

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
        for name, count in (
            ("page_size", page_size),
            ("read_count", read_count),
            ("topics_per_reader", topics_per_reader),
        ):
            if isinstance(count, bool) or not isinstance(count, int) or count < 1:
                raise ValueError(f"{name} must be a positive int, got {count!r}")
        if maxlen is not None and (not isinstance(maxlen, int) or maxlen < 1):
            raise ValueError(f"maxlen must be a positive int or None, got {maxlen!r}")
        if expire_after is not None and not expire_after > 0:
            raise ValueError(f"expire_after must be positive seconds or None, got {expire_after}")
        if not 0 < block <= 60:
            raise ValueError(f"block must be between 0 and 60 seconds, got {block}")
        if not 0 < reconnect_min <= reconnect_max:
            raise ValueError("reconnect_min and reconnect_max: 0 < min <= max")
        if isinstance(redis, str):
            self._url: str | None = redis
            client = _from_url(redis, block)
        else:
            self._url = None
            client = redis
        kwargs = client.connection_pool.connection_kwargs
        if kwargs.get("decode_responses"):
            raise ValueError("pass a client made with decode_responses=False: frames are bytes")
        timeout = kwargs.get("socket_timeout")
        if timeout is not None and block > timeout / 2:
            raise ValueError(
                f"block ({block} s) must be well under the client's socket timeout "
                f"({timeout} s): a blocking XREAD would time out"
            )
        self._client = client
        self.prefix = prefix
        self.maxlen = maxlen
        self.expire_after = expire_after
        self.block = block
        self._block_ms = max(1, int(block * 1000))
        self.page_size = page_size
        self.read_count = read_count
        self.topics_per_reader = topics_per_reader
        self.reconnect_min = reconnect_min
        self.reconnect_max = reconnect_max
        #: Counters: reconnects of the readers, gaps met (entries this process never saw).
        self.reconnects = 0
        self.gaps = 0
        self._instance = f"{os.getpid()}-{secrets.token_hex(4)}"
        self._hub: Hub | None = None
        self._maxlen = b"1000"
        self._read_count = read_count
        self._expire = b"0"
        self._script: Any = None
        self._readers: list[_Reader] = []
        self._where: dict[bytes, _Reader] = {}
        self._group: anyio.abc.TaskGroup | None = None
        self._host: asyncio.Task[None] | None = None
        self._up = anyio.Event()
        self._probing = False

    def __repr__(self) -> str:
        where = self._url if self._url is not None else repr(self._client)
        return f"RedisStreamsBackend({where!r}, prefix={self.prefix!r})"

    # -- lifecycle ------------------------------------------------------------------------

    async def start(self, hub: Hub) -> None:
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            raise RuntimeError(
                "RedisStreamsBackend runs on asyncio only (redis's client does not run "
                "on trio): run the app on asyncio"
            ) from None
        self._hub = hub
        self._maxlen = str(self.maxlen or hub.history).encode()
        self._read_count = min(self.read_count, hub.history)
        self._expire = (
            b"0" if self.expire_after is None else str(int(self.expire_after * 1000)).encode()
        )
        self._up = anyio.Event()
        try:
            await self._client.ping()
        except _DOWN as exc:
            raise HubUnavailable(f"cannot reach Redis at {self._where_text()}: {exc}") from exc
        self._up.set()
        self._script = self._client.register_script(_APPEND)
        self._readers = []
        self._where = {}
        started = anyio.Event()

        async def host() -> None:  # the readers' task group, entered and left in here
            async with anyio.create_task_group() as group:
                self._group = group
                started.set()
                await anyio.sleep_forever()

        self._host = asyncio.get_running_loop().create_task(host())
        await started.wait()

    async def stop(self) -> None:
        group, self._group = self._group, None
        host, self._host = self._host, None
        self._script = None
        self._up.set()  # whoever waits for Redis: the hub is stopping
        if group is not None:
            group.cancel_scope.cancel()
        if host is not None:
            with anyio.CancelScope(shield=True):
                await asyncio.wait([host])
        keys = [reader.wake_key for reader in self._readers]
        self._readers = []  # (the hub drops its logs: started again, it reads afresh)
        self._where = {}
        with anyio.move_on_after(1):
            try:
                if keys:
                    await self._client.delete(*keys)
            except _DOWN:
                pass
        if self._url is not None:
            await self._client.aclose()
            self._client = _from_url(self._url, self.block)

    # -- publishing -----------------------------------------------------------------------

    async def append(self, log: TopicLog, head: bytes, tail: bytes) -> str:
        return await self._run(log, head, tail, close=False)

    async def close(self, log: TopicLog) -> None:
        with contextlib.suppress(TopicClosed):
            await self._run(log, b"", b"", close=True)

    async def _run(self, log: TopicLog, head: bytes, tail: bytes, *, close: bool) -> str:
        if self._script is None:
            raise RuntimeError("enter the hub first (async with hub: ...)")
        args = [self._maxlen, head, tail, b"1" if close else b"0", self._expire]
        try:
            async with self._errors():
                entry_id: bytes = await self._script(keys=[self._key(log)], args=args)
        except ResponseError as exc:
            if str(exc).startswith("CLOSED"):
                raise TopicClosed(f"topic {log.name!r} was closed") from None
            raise
        return entry_id.decode()

    # -- following topics -----------------------------------------------------------------

    async def attach(self, log: TopicLog) -> None:
        key = self._key(log)
        async with self._errors():
            newest: Any = await self._client.xrevrange(key, count=1)
        if self._group is None:
            raise RuntimeError("enter the hub first (async with hub: ...)")
        if log.attached:
            return
        reader = self._reader_for()
        newest_id = newest[0][0] if newest else b"0-0"
        log.floor = newest_id.decode()
        log.closed = bool(newest) and b"h" not in newest[0][1]
        log.attached = True
        self._where[key] = reader
        await reader.add(key, log, newest_id)

    def forget(self, log: TopicLog) -> None:
        key = self._key(log)
        reader = self._where.pop(key, None)
        if reader is not None:
            reader.remove(key)
        log.attached = False

    def _reader_for(self) -> _Reader:
        for reader in self._readers:
            if len(reader.logs) < self.topics_per_reader:
                return reader
        assert self._group is not None
        reader = _Reader(self, len(self._readers))
        self._readers.append(reader)
        self._group.start_soon(reader.run)
        return reader

    # -- resuming ------------------------------------------------------------------------

    async def locate(self, log: TopicLog, position: str) -> tuple[int, ResetReason | None]:
        try:
            return await self._locate(log, position)
        except ResponseError:  # Redis refused the id after all: not an id of its
            _log.warning("topic %r: Redis refused the client's id %r", log.name, position)
            return log.head + 1, "malformed"

    async def _locate(self, log: TopicLog, position: str) -> tuple[int, ResetReason | None]:
        if position == EARLIEST:
            for _ in range(8):
                result = await self._backfill(log, None)
                if result is not None:
                    return log.first, None
            return log.first, None
        wanted = _parse_id(position.encode())
        if wanted is None:
            return log.head + 1, "malformed"
        for _ in range(8):  # the log may move while Redis answers: look again
            head = _parse_id(log.head_id().encode()) or (0, 0)
            floor = _parse_id(log.position(log.first - 1).encode()) or (0, 0)
            if wanted == head:
                return log.head + 1, None
            if floor <= wanted < head:
                return self._find(log, wanted)
            if wanted > head:
                if not await self._exists(log, position):
                    return log.head + 1, "unknown"
                if (_parse_id(log.head_id().encode()) or (0, 0)) >= wanted:
                    continue  # the reader got there meanwhile: look again
                if log.closed:  # read up to the close marker, which is the client's id
                    return log.head + 1, None
                await self._caught_up(log, wanted)
                continue
            result = await self._backfill(log, position)
            if result is not None:
                return result
        return log.head + 1, "gone"

    def _find(self, log: TopicLog, wanted: tuple[int, int]) -> tuple[int, ResetReason | None]:
        """The sequence after ``wanted`` in the local log (floor <= wanted < head)."""

        def id_at(sequence: int) -> tuple[int, int]:
            return _parse_id(log.position(sequence).encode()) or (0, 0)

        sequences = range(log.first - 1, log.head + 1)
        index = bisect_left(sequences, wanted, key=id_at)
        if index < len(sequences) and id_at(sequences[index]) == wanted:
            return sequences[index] + 1, None
        return log.head + 1, "unknown"

    async def _exists(self, log: TopicLog, position: str) -> bool:
        async with self._errors():
            found = await self._client.xrange(self._key(log), position, position, count=1)
        return bool(found)

    async def _caught_up(self, log: TopicLog, wanted: tuple[int, int]) -> None:
        """Wait until this process's reader has read ``wanted`` (it exists in Redis)."""
        hub = self._hub
        while (_parse_id(log.head_id().encode()) or (0, 0)) < wanted:
            if log.closed:
                return  # read up to its close marker: locate answers
            if hub is None or hub._stopped:
                raise HubUnavailable("the hub stopped")
            await log.wait().wait()

    async def _backfill(
        self, log: TopicLog, position: str | None
    ) -> tuple[int, ResetReason | None] | None:
        """Read the entries after ``position`` (None: the oldest Redis holds) up to the
        log's floor from Redis into the log (they are older than what it holds); None
        if the log moved meanwhile."""
        floor, first, gap = log.floor, log.first, log.gap
        room = min(log.limit - len(log.frames), first - 1 - gap)
        if floor is None or room <= 0 or floor == "0-0":
            return (log.first, None) if position is None else (log.head + 1, "gone")
        key = self._key(log)
        entries: list[tuple[bytes, dict[bytes, bytes]]] = []  # newest first
        upper = floor.encode()
        lower = b"-" if position is None else b"(" + position.encode()
        while len(entries) < room:
            count = min(self.page_size, room - len(entries))
            async with self._errors():
                page: Any = await self._client.xrevrange(key, upper, lower, count=count)
            entries.extend(page)
            if len(page) < count:
                break
            upper = b"(" + page[-1][0]
        if log.floor != floor or log.first != first or log.gap != gap:
            return None
        if not entries or entries[0][0] != floor.encode():
            return (log.first, None) if position is None else (log.head + 1, "gone")
        # Link by link from the floor back: a broken link is where events were lost.
        for index in range(len(entries) - 1):
            if entries[index][1].get(b"p") != entries[index + 1][0]:
                if position is not None:
                    return log.head + 1, "gone"
                del entries[index + 1 :]  # the earliest: what follows the break
                break
        if position is not None and entries[-1][1].get(b"p") != position.encode():
            return log.head + 1, "gone"
        frames: list[IdFrame] = []
        size = 0
        oldest_previous = b""  # the "p" of the oldest entry kept
        for entry_id, fields in entries:  # newest first, for extendleft
            head = fields.get(b"h")
            if head is None:  # a close marker holds no frame
                continue
            stored = frame_with_id(head, entry_id.decode(), fields.get(b"t", b""))
            frame_size = len(stored[0])
            if log.size + size + frame_size > log.limit_bytes and len(log.frames) + len(frames):
                if position is not None:
                    return log.head + 1, "gone"
                break  # the earliest: as much as the log's bytes allow
            frames.append(stored)
            size += frame_size
            oldest_previous = fields.get(b"p", b"0-0")
        if not frames:
            return log.first, None
        if len(log.frames) + len(frames) > log.limit:
            # The reader appended while Redis answered (the log had room then): these
            # would overfill it, and the next append would trim what was just read.
            return None
        log.frames.extendleft(frames)
        log.size += size
        log.first -= len(frames)
        log.floor = oldest_previous.decode()
        return log.first, None

    # -- faults ---------------------------------------------------------------------------

    async def available(self) -> None:
        if self._up.is_set():
            return
        if not self._probing and self._group is not None:
            self._probing = True
            self._group.start_soon(self._probe)
        await self._up.wait()

    async def _probe(self) -> None:
        delay = self.reconnect_min
        try:
            while not self._up.is_set():
                try:
                    await self._client.ping()
                except _DOWN:
                    delay = await self._pause(delay)
                else:
                    self._came_up()
        finally:
            self._probing = False

    @contextlib.asynccontextmanager
    async def _errors(self) -> AsyncIterator[None]:
        """Redis's connection errors as `HubUnavailable` (and the backend marked down)."""
        try:
            yield
        except _DOWN as exc:
            self._went_down(exc)
            raise HubUnavailable(f"Redis at {self._where_text()} is unreachable: {exc}") from exc

    async def _pause(self, delay: float) -> float:
        """Wait ``delay`` seconds less up to half of jitter; the next, doubled, capped."""
        await anyio.sleep(delay * random.uniform(0.5, 1.0))
        return min(delay * 2, self.reconnect_max)

    def _went_down(self, exc: BaseException) -> None:
        if self._up.is_set():
            _log.warning("Redis at %s is unreachable: %s", self._where_text(), exc)
            self._up = anyio.Event()

    def _came_up(self) -> None:
        if not self._up.is_set():
            _log.warning("Redis at %s answers again", self._where_text())
            self._up.set()

    def _lost(self, log: TopicLog, floor: bytes) -> None:
        self.gaps += 1
        _log.warning(
            "topic %r: events were trimmed or lost before this process read them", log.name
        )
        log.lose(floor.decode())

    def _key(self, log: TopicLog) -> bytes:
        return (self.prefix + "t:" + log.name).encode("utf-8", "surrogatepass")

    def _where_text(self) -> str:
        if self._url is not None:
            return self._url
        kwargs = self._client.connection_pool.connection_kwargs
        return f"{kwargs.get('host', '?')}:{kwargs.get('port', '?')}"


def _from_url(url: str, block: float) -> aioredis.Redis:
    """The backend's own client: no retries (an interrupted publish is not appended
    twice) and socket timeouts on every redis-py version (a hung Redis is an error in
    seconds, not a wait forever); the URL's own options win."""
    return aioredis.Redis.from_url(
        url,
        retry=Retry(NoBackoff(), 0),
        protocol=2,
        socket_timeout=max(5.0, 3 * block),
        socket_connect_timeout=5.0,
    )
