"""The check of a count option (a limit, a buffer, a sampling rate): an int, not a bool
(``True`` is an int to Python, never a count to a user), of at least some minimum.

One helper for the hub, `merge()` and the metrics; each caller words its own error.
The Redis backend keeps its own copy: it imports public names only.

Standard library only.
"""

from __future__ import annotations

from typing import TypeGuard

__all__ = ("is_count",)


def is_count(value: object, *, minimum: int) -> TypeGuard[int]:
    """Whether ``value`` is an int, not a bool, and at least ``minimum``."""
    return isinstance(value, int) and not isinstance(value, bool) and value >= minimum
