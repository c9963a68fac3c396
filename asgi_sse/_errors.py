"""The exception hierarchy: one base class, a handful of precise subclasses.

Must not import anything from the rest of the package.
"""

from __future__ import annotations

__all__ = ("InvalidEventError", "SSEError")


class SSEError(Exception):
    """Base class of every error raised by asgi-sse."""


class InvalidEventError(SSEError, ValueError):
    """An event field holds a value that cannot go on the wire.

    Raised at construction, never while streaming: a newline in an event name or id
    would let one event forge another (the injection boundary), so it is rejected,
    not stripped.
    """
