"""The backend's connection to Redis: its client, whether Redis answers, and how to
wait for it when it does not.

Redis's connection errors become `HubUnavailable` (`RedisLink.errors`) and mark the link
down; whoever waits for Redis (`RedisLink.wait_up`) is let go when a reader's command or
a probe succeeds again (`RedisLink.came_up`). Reconnect attempts back off, doubling with
jitter up to a cap (`RedisLink.pause`).

Imports redis and anyio, and the public SPI's errors; never the hub's internals.
"""

from __future__ import annotations

import contextlib
import logging
import random
from collections.abc import AsyncIterator

import anyio
import anyio.abc
import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from asgi_sse.backends import HubUnavailable

__all__ = ("DOWN", "RedisLink", "client_from_url")

_log = logging.getLogger("asgi_sse.redis")

#: Errors that mean "Redis cannot be reached now" (as opposed to a refused command).
DOWN = (RedisConnectionError, RedisTimeoutError, OSError)


class RedisLink:
    """A Redis client (made from ``url``, or the app's own ``client``), and whether
    Redis answers; ``block``: seconds a blocking read waits."""

    def __init__(
        self,
        url: str | None,
        client: aioredis.Redis,
        *,
        block: float,
        reconnect_min: float,
        reconnect_max: float,
    ) -> None:
        self.url = url
        self.client = client
        self.block = block
        self.reconnect_min = reconnect_min
        self.reconnect_max = reconnect_max
        self.up = anyio.Event()
        #: Reads that succeeded again after failing (the readers count them).
        self.reconnects = 0
        self._probing = False

    def where(self) -> str:
        """Where Redis is, for messages."""
        if self.url is not None:
            return self.url
        kwargs = self.client.connection_pool.connection_kwargs
        return f"{kwargs.get('host', '?')}:{kwargs.get('port', '?')}"

    async def connect(self) -> None:
        """Check that Redis answers (a new ``up``).

        Raises:
            HubUnavailable: it does not.
        """
        self.up = anyio.Event()
        try:
            await self.client.ping()
        except DOWN as exc:
            raise HubUnavailable(f"cannot reach Redis at {self.where()}: {exc}") from exc
        self.up.set()

    async def renew(self) -> None:
        """Close a client made from the URL and make a fresh one (the hub may start
        again); the app's own client is left as it is."""
        if self.url is not None:
            await self.client.aclose()
            self.client = client_from_url(self.url, self.block)

    @contextlib.asynccontextmanager
    async def errors(self) -> AsyncIterator[None]:
        """Redis's connection errors as `HubUnavailable` (and the link marked down)."""
        try:
            yield
        except DOWN as exc:
            self.went_down(exc)
            raise HubUnavailable(f"Redis at {self.where()} is unreachable: {exc}") from exc

    def went_down(self, exc: BaseException) -> None:
        if self.up.is_set():
            _log.warning("Redis at %s is unreachable: %s", self.where(), exc)
            self.up = anyio.Event()

    def came_up(self) -> None:
        if not self.up.is_set():
            _log.warning("Redis at %s answers again", self.where())
            self.up.set()

    def release_waiters(self) -> None:
        """Let go whoever waits for Redis (the hub is stopping)."""
        self.up.set()

    async def pause(self, delay: float) -> float:
        """Wait ``delay`` seconds less up to half of jitter; the next, doubled, capped."""
        await anyio.sleep(delay * random.uniform(0.5, 1.0))
        return min(delay * 2, self.reconnect_max)

    async def wait_up(self, probes: anyio.abc.TaskGroup | None) -> None:
        """Return once Redis answers (at once if it does), probing it in ``probes``
        (None: the backend is not running, and nobody probes)."""
        if self.up.is_set():
            return
        if not self._probing and probes is not None:
            self._probing = True
            probes.start_soon(self._probe)
        await self.up.wait()

    async def _probe(self) -> None:
        delay = self.reconnect_min
        try:
            while not self.up.is_set():
                try:
                    await self.client.ping()
                except DOWN:
                    delay = await self.pause(delay)
                else:
                    self.came_up()
        finally:
            self._probing = False


def client_from_url(url: str, block: float) -> aioredis.Redis:
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
