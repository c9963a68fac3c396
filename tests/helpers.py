"""Streams several test modules share."""

from __future__ import annotations

from collections.abc import AsyncIterator

import anyio

__all__ = ("first_then_forever",)


async def first_then_forever(cleaned: anyio.Event) -> AsyncIterator[str]:
    """Yield "first", then wait until cancelled; `cleaned` is set when it is closed."""
    try:
        yield "first"
        await anyio.sleep_forever()
        yield "never"  # pragma: no cover
    finally:
        cleaned.set()
