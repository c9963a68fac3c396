"""Typed events through `EventSourceResponse`, in one process: instructions per event.

    python benchmarks/typed_profile.py [--scenarios burst,fanout] [--subs 200]

No sockets, no server: each subject is an ASGI app called directly on uvloop with a
`send` that does nothing (so the server's own cost per `send`, the same for every
subject, is left out), run under ``valgrind --tool=cachegrind --cache-sim=no`` at two
sizes; the difference per event is reported (the setup cancels out), with each
subject's ratio to `minimal_pydantic` (lower is cheaper).

- ``burst``: one stream of N events, each from a fresh `Payload`:
  ``minimal_pydantic`` sends ``manual_frame(make_payload(i), i)`` by hand (the benchmark
  server's `/burst`); ``typed`` is `EventSourceResponse` over a plain generator yielding
  ``Tick(data=make_payload(i), id=i)`` (the `asgi_sse` server's `/burst`); ``frame``
  the same generator yielding ``Tick.frame(make_payload(i), id=i)`` (`asgi_sse_frame`:
  minimal_pydantic's work through the library); ``bytes`` the same pre-encoded frame
  every time (the pump and the connection alone).
- ``fanout``: ``--subs`` subscribers of one ticker, every tick one payload built once:
  ``minimal_pydantic`` dumps it per subscriber by hand; ``typed`` builds
  ``Tick(data=payload, id=seq)`` per subscriber (`asgi_sse_typed`); ``frame`` encodes
  it per subscriber with ``Tick.frame`` (`asgi_sse_frame`); ``bytes`` yields the tick's
  frame encoded once (`asgi_sse`).

Fixed hash seed (PYTHONHASHSEED=0): str hashes move dict probes, and so the counts.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import AsyncIterator
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from cachegrind import SCOPE, count

SUBJECTS = ("minimal_pydantic", "typed", "frame", "bytes")


async def _burst(subject: str, n: int) -> None:
    from servers._common import make_payload, manual_frame
    from servers.asgi_sse import Tick

    from asgi_sse import EventSourceResponse

    async def send(message: dict[str, Any]) -> None:
        pass

    never: asyncio.Future[Any] = asyncio.get_running_loop().create_future()

    async def receive() -> Any:
        return await asyncio.shield(never)  # the client never leaves

    if subject == "minimal_pydantic":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        for i in range(n):
            body = manual_frame(make_payload(i), i)
            await send({"type": "http.response.body", "body": body, "more_body": True})
        await send({"type": "http.response.body", "body": b""})
        return

    async def stream() -> AsyncIterator[Any]:
        if subject == "typed":
            for i in range(n):
                yield Tick(data=make_payload(i), id=i)
        elif subject == "frame":
            for i in range(n):
                yield Tick.frame(make_payload(i), id=i)
        else:
            frame = Tick.frame(make_payload(0), id=0)
            for _ in range(n):
                yield frame

    await EventSourceResponse(stream())(SCOPE, receive, send)


async def _fanout(subject: str, subs: int, rounds: int) -> None:
    from servers._common import Payload, make_payload, manual_frame
    from servers.asgi_sse import Tick

    from asgi_sse import EventSourceResponse

    payloads: list[Payload] = []
    frames: list[bytes] = []
    changed = asyncio.Event()
    delivered = 0
    target = 0
    reached: asyncio.Future[None] | None = None

    async def send(message: dict[str, Any]) -> None:
        nonlocal delivered
        body = message.get("body")
        if body:
            delivered += body.count(b"\n\n")
            if reached is not None and delivered >= target and not reached.done():
                reached.set_result(None)

    never: asyncio.Future[Any] = asyncio.get_running_loop().create_future()

    async def receive() -> Any:
        return await asyncio.shield(never)

    parked = 0
    all_parked = asyncio.Event()

    async def ticks() -> AsyncIterator[int]:
        # Every tick, in order: a subscriber never skips one (the count must add up).
        nonlocal parked
        parked += 1
        if parked == subs:
            all_parked.set()
        seen = len(payloads)
        while True:
            while seen == len(payloads):
                await changed.wait()
            seen += 1
            yield seen - 1

    async def minimal() -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        async for index in ticks():
            payload = payloads[index]
            body = manual_frame(payload, payload.seq)
            await send({"type": "http.response.body", "body": body, "more_body": True})

    async def typed() -> AsyncIterator[Any]:
        async for index in ticks():
            payload = payloads[index]
            yield Tick(data=payload, id=payload.seq)

    async def framed() -> AsyncIterator[Any]:
        async for index in ticks():
            payload = payloads[index]
            yield Tick.frame(payload, id=payload.seq)

    async def encoded_once() -> AsyncIterator[Any]:
        async for index in ticks():
            yield frames[index]

    def app() -> Any:
        if subject == "minimal_pydantic":
            return minimal()
        stream = {"typed": typed, "frame": framed, "bytes": encoded_once}[subject]()
        return EventSourceResponse(stream)(SCOPE, receive, send)

    loop = asyncio.get_running_loop()
    tasks = [loop.create_task(app()) for _ in range(subs)]
    await all_parked.wait()
    for seq in range(rounds):
        payload = make_payload(seq)
        payloads.append(payload)
        frames.append(Tick.frame(payload, id=seq))
        changed.set()
        changed.clear()
        target = delivered + subs
        reached = loop.create_future()
        await reached
    for task in tasks:
        task.cancel()


def _run(scenario: str, subject: str, size: int, subs: int) -> None:
    import uvloop

    if scenario == "burst":
        uvloop.run(_burst(subject, size))
    else:
        uvloop.run(_fanout(subject, subs, size))
    sys.stdout.flush()
    os._exit(0)  # no teardown of the parked streams: not part of what is measured


def _instructions(scenario: str, subject: str, size: int, subs: int) -> int:
    return count(__file__, "--run", scenario, subject, str(size), str(subs))[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenarios", default="burst,fanout")
    parser.add_argument("--subjects", default=",".join(SUBJECTS))
    parser.add_argument("--subs", type=int, default=200, help="fan-out subscribers")
    args = parser.parse_args()
    sizes = {"burst": (1000, 11000), "fanout": (10, 40)}
    output: dict[str, dict[str, Any]] = {}
    for scenario in args.scenarios.split(","):
        small, large = sizes[scenario]
        events = (large - small) * (args.subs if scenario == "fanout" else 1)
        counts = {
            subject: (
                _instructions(scenario, subject, large, args.subs)
                - _instructions(scenario, subject, small, args.subs)
            )
            / events
            for subject in args.subjects.split(",")
        }
        base = counts.get("minimal_pydantic")
        output[scenario] = {
            subject: {
                "instructions_per_event": round(count),
                **({"x_minimal_pydantic": round(count / base, 3)} if base else {}),
            }
            for subject, count in counts.items()
        }
    print(json.dumps(output, indent=2))


if __name__ == "__main__":
    if len(sys.argv) == 6 and sys.argv[1] == "--run":
        _run(sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]))
    else:
        main()
