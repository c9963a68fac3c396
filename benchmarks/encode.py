"""The encode scenario: typed events to SSE bytes per second, in-process, no network.

Every encoder builds the payload model and its event object, then encodes it (the
construction is part of the cost), for ids 0, 1, 2...:
- `hand-written`: `f"event: tick\\nid: {i}\\ndata: {Payload(...).model_dump_json()}\\n\\n"`
  `.encode()` - the baseline;
- `asgi_sse`: `Tick(data=Payload(...), id=i).encode()`, and `Tick.frame(Payload(...),
  id=i)` (its hot-path classmethod, no event object);
- `sse_starlette`: `ServerSentEvent(data=Payload(...).model_dump_json(), event=..,
  id=..).encode()`;
- `fastapi_sse`: `ServerSentEvent(data=Payload(...), event=.., id=..)` formatted the
  way FastAPI's routing does it (`model_dump_json()` + `format_sse_event()`);
- `litestar`: `ServerSentEventMessage(data=Payload(...).model_dump_json(), ...).encode()`.
An encoder whose library does not import is left out with a note.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from servers._common import MESSAGE, TAGS, Payload

__all__ = ("BASELINE", "available_encoders", "check_encoders", "measure")

BASELINE = "hand-written"
TS = 12345.678901234

Encoder = Callable[[int], bytes]


def _hand_written() -> Encoder:
    def encode(i: int) -> bytes:
        payload = Payload(seq=i, ts=TS, message=MESSAGE, tags=TAGS)
        return f"event: tick\nid: {i}\ndata: {payload.model_dump_json()}\n\n".encode()

    return encode


def _asgi_sse_tick() -> Encoder:
    from asgi_sse import BaseEvent

    class Tick(BaseEvent[Payload]):
        pass

    def encode(i: int) -> bytes:
        return Tick(data=Payload(seq=i, ts=TS, message=MESSAGE, tags=TAGS), id=i).encode()

    return encode


def _asgi_sse_frame() -> Encoder:
    from asgi_sse import BaseEvent

    class Tick(BaseEvent[Payload]):
        pass

    def encode(i: int) -> bytes:
        return Tick.frame(Payload(seq=i, ts=TS, message=MESSAGE, tags=TAGS), id=i)

    return encode


def _sse_starlette() -> Encoder:
    from sse_starlette import ServerSentEvent

    def encode(i: int) -> bytes:
        payload = Payload(seq=i, ts=TS, message=MESSAGE, tags=TAGS)
        return ServerSentEvent(data=payload.model_dump_json(), event="tick", id=str(i)).encode()

    return encode


def _fastapi_sse() -> Encoder:
    from fastapi.sse import ServerSentEvent, format_sse_event

    def encode(i: int) -> bytes:
        event = ServerSentEvent(
            data=Payload(seq=i, ts=TS, message=MESSAGE, tags=TAGS), event="tick", id=str(i)
        )
        # What fastapi.routing does with a yielded ServerSentEvent whose data is a model.
        return format_sse_event(
            data_str=event.data.model_dump_json(),
            event=event.event,
            id=event.id,
            retry=event.retry,
            comment=event.comment,
        )

    return encode


def _litestar() -> Encoder:
    from litestar.response import ServerSentEventMessage

    def encode(i: int) -> bytes:
        payload = Payload(seq=i, ts=TS, message=MESSAGE, tags=TAGS)
        return ServerSentEventMessage(data=payload.model_dump_json(), event="tick", id=i).encode()

    return encode


_FACTORIES: dict[str, Callable[[], Encoder]] = {
    BASELINE: _hand_written,
    "asgi_sse": _asgi_sse_tick,
    "asgi_sse (frame)": _asgi_sse_frame,
    "sse_starlette": _sse_starlette,
    "fastapi_sse": _fastapi_sse,
    "litestar": _litestar,
}


def available_encoders(servers: list[str]) -> tuple[dict[str, Encoder], list[str]]:
    """The baseline plus the encoders of the selected servers that import; and notes."""
    encoders: dict[str, Encoder] = {}
    notes: list[str] = []
    for name, factory in _FACTORIES.items():
        if name != BASELINE and name.split(" ")[0] not in servers:
            continue
        try:
            encoders[name] = factory()
        except Exception as exc:
            notes.append(f"encode: {name} skipped ({type(exc).__name__}: {exc})")
    return encoders, notes


def check_encoders(encoders: dict[str, Encoder]) -> None:
    """Every encoder must put the same JSON payload on one `data:` line."""
    expected = Payload(seq=7, ts=TS, message=MESSAGE, tags=TAGS).model_dump_json().encode()
    for name, encode in encoders.items():
        frame = encode(7)
        if b"data: " + expected not in frame or not frame.endswith((b"\n\n", b"\r\n\r\n")):
            raise AssertionError(f"encoder {name} produced an unexpected frame: {frame!r}")


def _time_once(encode: Encoder, n: int) -> float:
    started = time.perf_counter()
    for i in range(n):
        encode(i)
    return time.perf_counter() - started


def measure(encode: Encoder, n: int, repeats: int) -> float:
    """Events per second: n encodes per repeat, the best of `repeats` (timeit's way)."""
    encode(0)  # warm caches (per-class codecs, validators)
    return n / min(_time_once(encode, n) for _ in range(repeats))
