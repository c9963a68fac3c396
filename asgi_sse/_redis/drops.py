"""Drops across processes on Redis (`asgi_sse.backends.OwnerDrops`): `Hub.drop` in one
process ends an owner's subscriptions in all of them.

One stream, ``<prefix>drops``, holds the drops: an entry per `Hub.drop` (``o``: the
owner, ``f``: the sending process's instance), capped at `KEEP` entries. Every process
reads it with a blocking ``XREAD`` from the newest entry it saw, in a task of the
backend's group, and ends the owner's subscriptions here for each entry another process
added (its own are ended already, by the caller). A stream rather than Pub/Sub: a
process whose connection dropped reads on from where it was when Redis answers again,
so a drop sent meanwhile is applied late, not lost (as long as the stream holds it).

Uses the link and the public SPI only.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import anyio.abc

from .link import DOWN, RedisLink

__all__ = ("KEEP", "Drops")

_log = logging.getLogger("asgi_sse.redis")

KEEP = 10_000
"""Drops the stream keeps at most (approximate trimming)."""
_OWNER = b"o"
_FROM = b"f"


class Drops:
    """This process's end of the drops stream ``key``; ``instance`` names the process."""

    def __init__(self, link: RedisLink, key: bytes, instance: str) -> None:
        self._link = link
        self._key = key
        self._instance = instance.encode()
        self._apply: Callable[[str], object] | None = None
        self._after = b"0-0"  # the newest entry read (set at `start`)
        self.received = 0
        """Drops of other processes applied here."""

    def receive(self, apply: Callable[[str], object]) -> None:
        """Call ``apply(owner)`` for every drop another process sends."""
        self._apply = apply

    async def start(self) -> None:
        """Read from the stream's newest entry on: the drops sent before this process
        started are not its business.

        Raises:
            HubUnavailable: Redis cannot be reached.
        """
        async with self._link.errors():
            newest: Any = await self._link.client.xrevrange(self._key, count=1)
        self._after = newest[0][0] if newest else b"0-0"

    async def send(self, owner: str) -> None:
        """Add the drop of ``owner`` for the other processes.

        Raises:
            HubUnavailable: Redis cannot be reached; nobody was told.
        """
        fields: dict[Any, Any] = {
            _OWNER: owner.encode("utf-8", "surrogatepass"),
            _FROM: self._instance,
        }
        async with self._link.errors():
            await self._link.client.xadd(self._key, fields, maxlen=KEEP, approximate=True)

    async def run(self, probes: anyio.abc.TaskGroup) -> None:
        """Read the drops of the other processes until cancelled; when Redis cannot be
        reached, wait for it (``probes`` probes it) and read on from where it was."""
        link = self._link
        block_ms = max(1, int(link.block * 1000))
        while True:
            try:
                reply: Any = await link.client.xread(
                    {self._key: self._after}, count=100, block=block_ms
                )
            except DOWN as exc:
                link.went_down(exc)
                await link.wait_up(probes)
                continue
            if reply:
                entries = reply.items() if isinstance(reply, dict) else reply
                for _key, items in entries:
                    self._apply_entries(items)

    def _apply_entries(self, items: list[Any]) -> None:
        for entry_id, fields in items:
            self._after = entry_id
            owner = fields.get(_OWNER)
            if owner is None or fields.get(_FROM) == self._instance or self._apply is None:
                continue
            self.received += 1
            try:
                self._apply(owner.decode("utf-8", "surrogatepass"))
            except Exception:  # never the end of this reader
                _log.exception("applying the drop of %r failed", owner)
