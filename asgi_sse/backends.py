"""The hub's backend SPI: what a `Hub` backend implements, and every type it sees.

A backend keeps a hub's events and assigns their ids: `MemoryBackend` (the default)
keeps them in this process, `asgi_sse.redis.RedisStreamsBackend` in Redis Streams for
several processes. To write another, implement `HubBackend` using only the names here
(and `asgi_sse`'s): the hub never asks which backend it holds, and what differs
between backends is declared by the backend (`HubBackend.logs_are_the_store`,
`HubBackend.can_append_nowait`). Optional capabilities are protocols a backend may
also implement: `RunLeases` (runs across processes), `OwnerDrops` (`Hub.drop` across
processes) and `BackendCounters` (reconnect
and gap counters, which `asgi_sse.otel` reports).

The hub keeps one `TopicLog` per topic in each process and fans out from it; a backend
feeds those logs through their methods (`TopicLog.append`, `TopicLog.backfill`,
`TopicLog.lose_history`, `TopicLog.close`, `TopicLog.attach`, `TopicLog.detach`) and
only reads their attributes. `split_at_id` encodes an event as the hub does, for code
that appends to a backend's store without a hub (`asgi_sse.redis.Publisher`).
"""

from ._hub.backend import (
    EARLIEST,
    BackendCounters,
    HubBackend,
    LogBounds,
    OwnerDrops,
    ResumePoint,
    RunLeases,
)
from ._hub.log import NOTHING_LOST, BackfillOutcome, TopicLog
from ._hub.memory import MemoryBackend
from ._protocol.errors import HubUnavailable, TopicClosed
from ._protocol.frames import IdFrame, split_at_id
from ._protocol.reset import ResetReason
from ._protocol.stream import Publishable

__all__ = (
    "EARLIEST",
    "NOTHING_LOST",
    "BackendCounters",
    "BackfillOutcome",
    "HubBackend",
    "HubUnavailable",
    "IdFrame",
    "LogBounds",
    "MemoryBackend",
    "OwnerDrops",
    "Publishable",
    "ResetReason",
    "ResumePoint",
    "RunLeases",
    "TopicClosed",
    "TopicLog",
    "split_at_id",
)
