"""The reconnection policy: how long to wait before the next connection.

A browser waits the reconnection delay (the server's ``retry:``) and tries again
(WHATWG HTML 9.2.3, "reestablish the connection"). Beyond it: consecutive failures back
off exponentially, with jitter, up to a cap, and a ``Retry-After`` is honoured.

Sans-IO: plain functions of numbers and header values. Must not import anyio, httpx or
any other module of the package.
"""

from __future__ import annotations

import email.utils
import time

__all__ = ("DEFAULT_RETRY", "MIN_BACKOFF", "backoff_delay", "retry_after_seconds")

#: The reconnection delay before the server sets one (seconds; browsers use about 3).
DEFAULT_RETRY = 3.0
#: Where consecutive failures start backing off from when the delay is (about) zero.
MIN_BACKOFF = 0.05


def backoff_delay(retry: float, max_delay: float, failures: int, jitter: float) -> float:
    """The wait before the next connection: the reconnection delay ``retry`` doubled per
    consecutive failure, capped at ``max_delay`` (or ``retry`` if it is more), minus up
    to a fifth of it: ``jitter`` (in [0, 1)) says how much."""
    # (2.0 ** failures overflows after ~1000 failures: the cap is long reached.)
    growth = 2.0 ** min(failures, 64)
    # A reconnection delay of 0 (``retry: 0``) reconnects at once - once: the
    # failures after it back off from MIN_BACKOFF, never in a tight loop.
    start = retry if failures == 0 else max(retry, MIN_BACKOFF)
    base: float = min(max(max_delay, retry), start * growth)
    return base * (1 - 0.2 * jitter)


def retry_after_seconds(value: str | None) -> float | None:
    """A ``Retry-After`` header's value in seconds (RFC 9110 10.2.3: a number of
    seconds or an HTTP date), or None when there is none or it is neither."""
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())
