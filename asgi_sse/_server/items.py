"""What a stream may yield, turned into bytes: one function, used by the pump.

Imports the wire and events layers; nothing async.
"""

from __future__ import annotations

from .._protocol.events import BaseEvent
from .._protocol.wire import ServerSentEvent, encode_data

__all__ = ("encode_item",)


def encode_item(item: object) -> bytes:
    """The bytes of one stream item (see `asgi_sse.types.Item`).

    Raises:
        TypeError: for anything that is not an item.
        InvalidEventError: for an event whose value cannot be encoded (a lone surrogate
            in a typed event's data, for one).
    """
    if isinstance(item, (BaseEvent, ServerSentEvent)):
        return item.encode()
    if isinstance(item, str):
        return encode_data(item) + b"\n"
    if isinstance(item, (bytes, bytearray, memoryview)):
        return item if type(item) is bytes else bytes(item)
    msg = (
        f"an event stream yielded {type(item).__name__!r}; yield a BaseEvent, a "
        "ServerSentEvent, a str (sent as data) or bytes holding complete SSE frames"
    )
    raise TypeError(msg)
