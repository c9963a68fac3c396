"""The options of `EventSource` besides its URL and event classes: their types (for the
constructor's typed overloads) and their checks.

Must not import anyio or any layer of the package; httpx only for the types.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Literal, TypedDict

import httpx

__all__ = ("SourceOptions", "check_options")


class SourceOptions(TypedDict, total=False):
    """The options of `EventSource` besides the URL and the event classes."""

    client: httpx.AsyncClient | None
    method: str
    headers: Mapping[str, str] | None
    content: bytes | None
    json: Any
    resend: bool
    last_event_id: str
    retry: float
    max_delay: float
    read_timeout: float | None
    connect_timeout: float
    reconnect_on: tuple[int, ...]
    max_retries: int | None
    on_unknown: Literal["raw", "raise"]
    on_invalid: Literal["raise", "raw"]
    sleep: Callable[[float], Awaitable[None]]
    jitter: Callable[[], float]


def check_options(
    *,
    retry: float,
    max_delay: float,
    read_timeout: float | None,
    max_retries: int | None,
    on_unknown: str,
    on_invalid: str,
    content: bytes | None,
    json: Any,
) -> None:
    """Refuse values the source could not honour.

    Raises:
        ValueError: ``retry`` negative or above ``max_delay``; ``read_timeout`` not
            positive; ``max_retries`` negative; an unknown ``on_unknown`` or
            ``on_invalid``; both ``content`` and ``json``.
    """
    if not retry >= 0 or not max_delay >= retry:
        raise ValueError(f"need 0 <= retry <= max_delay, got {retry} and {max_delay}")
    if read_timeout is not None and not read_timeout > 0:
        raise ValueError(f"read_timeout must be positive seconds or None, got {read_timeout}")
    if max_retries is not None and max_retries < 0:
        raise ValueError(f"max_retries must be >= 0 or None, got {max_retries}")
    if on_unknown not in ("raw", "raise") or on_invalid not in ("raise", "raw"):
        raise ValueError("on_unknown is 'raw' or 'raise'; on_invalid is 'raise' or 'raw'")
    if content is not None and json is not None:
        raise ValueError("give content or json, not both")
