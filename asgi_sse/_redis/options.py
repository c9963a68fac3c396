"""The options of `RedisStreamsBackend`, checked where the backend is made (often when
the app is imported), so that a wrong value fails there rather than at a publish.

Imports redis's client type only.
"""

from __future__ import annotations

import redis.asyncio as aioredis

__all__ = ("check_client", "check_options")


def check_options(
    *,
    page_size: int,
    read_count: int,
    topics_per_reader: int,
    maxlen: int | None,
    expire_after: float | None,
    block: float,
    reconnect_min: float,
    reconnect_max: float,
) -> None:
    """Check the backend's options.

    Raises:
        ValueError: an option out of range (the message names it and its range).
    """
    for name, count in (
        ("page_size", page_size),
        ("read_count", read_count),
        ("topics_per_reader", topics_per_reader),
    ):
        # asgi_sse._util.checks.is_count, written out: this package uses public names only.
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


def check_client(client: aioredis.Redis, block: float) -> None:
    """Check a client for the backend's use.

    Raises:
        ValueError: ``client`` decodes responses (frames are bytes), or its socket
            timeout is not well over ``block`` (a blocking XREAD would time out).
    """
    kwargs = client.connection_pool.connection_kwargs
    if kwargs.get("decode_responses"):
        raise ValueError("pass a client made with decode_responses=False: frames are bytes")
    timeout = kwargs.get("socket_timeout")
    if timeout is not None and block > timeout / 2:
        raise ValueError(
            f"block ({block} s) must be well under the client's socket timeout "
            f"({timeout} s): a blocking XREAD would time out"
        )
