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

Run alone, it counts instructions instead of timing (load-independent, so comparable
across runs on a shared machine):

    python benchmarks/encode.py --instructions [--encoders asgi_sse,hand-written]

runs each encoder under ``valgrind --tool=cachegrind --cache-sim=no`` twice (1,000 and
11,000 events) and reports the difference per event, and each encoder's speed as the
ratio hand-written instructions / its instructions (the same sense as events/s).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import cachegrind
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


# -- instruction counts under valgrind ------------------------------------------------------


def _loop(name: str, n: int) -> None:
    encode = _FACTORIES[name]()
    encode(0)
    for i in range(n):
        encode(i)


def _instructions(name: str, n: int) -> int:
    return cachegrind.count(__file__, "--loop", name, str(n))[0]


def instructions_per_event(
    names: list[str], small: int = 1000, large: int = 11000
) -> dict[str, float]:
    """Instructions per encoded event for each encoder (the setup cancels out)."""
    return {
        name: (_instructions(name, large) - _instructions(name, small)) / (large - small)
        for name in names
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--instructions", action="store_true", required=True)
    parser.add_argument(
        "--encoders",
        default=f"{BASELINE},asgi_sse,asgi_sse (frame)",
        help=f"comma-separated, among {','.join(_FACTORIES)}",
    )
    args = parser.parse_args()
    names = [name.strip() for name in args.encoders.split(",")]
    if BASELINE not in names:
        names.insert(0, BASELINE)
    counts = instructions_per_event(names)
    base = counts[BASELINE]
    print(
        json.dumps(
            {
                name: {
                    "instructions_per_event": round(count),
                    "x_hand_written": round(base / count, 3),
                }
                for name, count in counts.items()
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--loop":
        _loop(sys.argv[2], int(sys.argv[3]))
    else:
        main()
