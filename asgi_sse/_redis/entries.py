"""What a topic's stream holds: the entries `append.lua` writes and the readers read.

Each entry is one event, or the topic's close marker:

* ``p``: the id of the entry before it (``0-0`` for a stream's first), so that a reader
  that finds another id than the last it read knows entries were lost;
* ``h`` and ``t``: the event's frame before and after its ``id:`` line (the entry's own
  id goes between them), or
* ``c``: the close marker, which holds no event.

An entry id is ``<ms>-<seq>``, two unsigned 64-bit numbers; `parse_id` orders them.

Standard library only (and the script, read from this package's files).
"""

from __future__ import annotations

import functools
import re
from importlib import resources
from typing import Any

__all__ = (
    "PREFIX",
    "PREVIOUS",
    "SUFFIX",
    "append_script",
    "is_close_marker",
    "is_stream",
    "newest_id",
    "order",
    "parse_id",
    "published_at",
)

PREVIOUS = b"p"
PREFIX = b"h"
SUFFIX = b"t"

_ID = re.compile(rb"([0-9]{1,20})-([0-9]{1,20})")
_MAX_PART = 2**64 - 1


@functools.cache
def append_script() -> str:
    """The Lua script that appends an event or the close marker (`append.lua`)."""
    return resources.files(__package__).joinpath("append.lua").read_text(encoding="utf-8")


def parse_id(value: bytes) -> tuple[int, int] | None:
    """``(ms, seq)`` of an entry id, or None if it is none (or out of Redis's range)."""
    match = _ID.fullmatch(value)
    if match is None:
        return None
    parsed = int(match.group(1)), int(match.group(2))
    return None if max(parsed) > _MAX_PART else parsed


def order(event_id: str) -> tuple[int, int]:
    """Where an id of this backend falls in its stream (``(0, 0)`` for none)."""
    return parse_id(event_id.encode()) or (0, 0)


def published_at(entry_id: bytes) -> float:
    """When the entry was appended (`time.time()` seconds): its id's first part is the
    Redis server's clock then, in milliseconds."""
    return int(entry_id.split(b"-", 1)[0]) / 1000


def newest_id(newest: Any) -> bytes:
    """The id of an ``XREVRANGE ... COUNT 1`` reply's entry (``0-0``: an empty stream)."""
    return newest[0][0] if newest else b"0-0"


def is_close_marker(fields: dict[bytes, bytes]) -> bool:
    return PREFIX not in fields


def is_stream(kind: bytes | str) -> bool:
    """A key's TYPE that a reader can read: a stream, or no key (yet)."""
    return kind in (b"stream", b"none", "stream", "none")
