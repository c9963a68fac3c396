"""Closing what an iteration leaves open: one helper for every layer that iterates a
user's stream (the pump, `merge()`'s sources, `resumable_merge()`'s keyed sources,
`@event_stream`'s inner generator).

Must not import anything from the rest of the package, nor anything async: it only
awaits the stream's own ``aclose``.
"""

from __future__ import annotations

from typing import Any

__all__ = ("close_stream",)


async def close_stream(stream: object) -> None:
    """Close an async generator (or anything with `aclose`) so its finally blocks run.

    An ``async for`` that stops early leaves a generator parked at its ``yield``: its
    cleanup would wait for the garbage collector (and, on trio, be reported as left
    unfinished). Anything without ``aclose`` has nothing to close.
    """
    aclose: Any = getattr(stream, "aclose", None)
    if aclose is not None:
        await aclose()
