"""The hub's delivery path in one process: CPU per delivered event, next to a broadcaster.

    python benchmarks/hub_profile.py [--subject hub|broadcaster|watching] [--subs N] [--rounds R]
                                     [--batch B] [--profile] [--memory]
    python benchmarks/hub_profile.py --instructions [--subs N] [--batch B]

No sockets, no server, no load generator: N subscribers are ASGI apps called directly on
uvloop, with a `send` that only counts the frames it is given and a `receive` that never
returns (the client never leaves), and one publisher in the same loop.

- ``hub``: every subscriber is ``EventSourceResponse(hub.subscribe("ticks"))``, exactly
  as in the benchmark server (`servers/asgi_sse.py`, `/hub`): the response's pump, its
  connection and its watcher all run. The publisher publishes a typed `Tick` with
  ``await hub.publish(...)``.
- ``broadcaster``: the hand-written reference (`servers/minimal.py`'s `Broadcast`):
  the frame encoded once per publish, a shared `asyncio.Event` per wake-up, whatever
  is ready joined into one `send`; no watcher, no ids, no resume, no accounting.
- ``watching``: the broadcaster plus what a hand-written app needs to notice a client
  that leaves while it idles (the hub's responses do): a second task per connection
  awaiting ``receive()``, which cancels the sender.

A round: the publisher publishes ``--batch`` events (the hub's ``publish`` yields to the
loop after each, as in the server; with ``--batch`` > 1 and ``--no-yield`` they all go
in before any subscriber runs), then waits until every subscriber has been handed every
one of them. ``--warmup`` rounds first (not measured).

What it reports (JSON on stdout):
- ``cpu_us_per_event``: process CPU time of the measured rounds per delivered event
  (noisy on a shared machine: compare instruction counts).
- ``--instructions``: runs itself twice under ``valgrind --tool=cachegrind
  --cache-sim=no`` (``--rounds`` and 4x as many) and reports the difference of the
  instruction counts per delivered event (the setup cancels out), for the hub and for
  the broadcaster, and their ratio. About a minute at 1,000 subscribers.
- ``--profile``: cProfile over the measured rounds; the time per delivered event by
  function and by part of the path (wake-up, cursor, counters and hooks, pump,
  connection, harness and loop). cProfile's own overhead inflates small functions:
  read it as shares, and the instruction counts as the totals.
- ``--memory``: GC-tracked objects and traced bytes (tracemalloc) per parked
  subscriber (N subscribers, before any publish).

Run it against another checkout with ``PYTHONPATH=/path/to/checkout``.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import json
import os
import pstats
import re
import sys
import time
import tracemalloc
from collections.abc import Callable, Coroutine
from typing import Any

import uvloop

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import cachegrind
from cachegrind import SCOPE
from servers._common import make_payload, manual_frame
from servers.minimal import HEADERS, Broadcast

import asgi_sse
from asgi_sse import BaseEvent, EventSourceResponse, Hub

TOPIC = "ticks"


class Tick(BaseEvent[Any]):  # event: tick
    pass


class Counter:
    """What every subscriber's `send` feeds: frames handed out, and who waits for a count."""

    def __init__(self) -> None:
        self.frames = 0
        self.sends = 0
        self.target = 0
        self.reached: asyncio.Future[None] | None = None

    def expect(self, target: int) -> asyncio.Future[None]:
        self.target = target
        self.reached = asyncio.get_running_loop().create_future()
        if self.frames >= target:
            self.reached.set_result(None)
        return self.reached

    async def send(self, message: dict[str, Any]) -> None:
        body = message.get("body")
        if body:
            self.sends += 1
            self.frames += body.count(b"\n\n")
            reached = self.reached
            if self.frames >= self.target and reached is not None and not reached.done():
                reached.set_result(None)


SCOPE = {**SCOPE, "path": "/hub", "raw_path": b"/hub"}


async def main(args: argparse.Namespace) -> dict[str, Any]:
    counter = Counter()
    never: asyncio.Future[Any] = asyncio.get_running_loop().create_future()

    async def receive() -> dict[str, Any]:
        return await asyncio.shield(never)  # the client never leaves

    loop = asyncio.get_running_loop()
    publish: Callable[[int], Coroutine[Any, Any, None]]
    if args.subject == "hub":
        hub = Hub()
        await hub.__aenter__()

        def app() -> Coroutine[Any, Any, None]:
            return EventSourceResponse(hub.subscribe(TOPIC))(SCOPE, receive, counter.send)

        async def publish_hub(seq: int) -> None:
            if args.no_yield:
                hub.publish_nowait(TOPIC, Tick(data=make_payload(seq)))
            else:
                await hub.publish(TOPIC, Tick(data=make_payload(seq)))

        publish = publish_hub
        per_sub_setup = 1  # the priming frame
    else:
        channel = Broadcast()

        async def broadcast_app() -> None:
            start = len(channel.frames)
            await counter.send({"type": "http.response.start", "status": 200, "headers": HEADERS})
            async for body in channel.follow(start):
                await counter.send({"type": "http.response.body", "body": body, "more_body": True})

        async def watching_app() -> None:
            # What a hand-written app that notices a client leaving while it idles adds:
            # a task of its own awaiting `receive()`, which cancels the sender.
            sender = asyncio.current_task()
            assert sender is not None

            async def watch() -> None:
                while (await receive())["type"] != "http.disconnect":
                    pass
                sender.cancel()

            watcher = loop.create_task(watch())
            try:
                await broadcast_app()
            finally:
                watcher.cancel()

        def app() -> Coroutine[Any, Any, None]:
            return watching_app() if args.subject == "watching" else broadcast_app()

        async def publish_broadcast(seq: int) -> None:
            channel.publish(manual_frame(make_payload(seq), seq))
            if not args.no_yield:
                await asyncio.sleep(0)

        publish = publish_broadcast
        per_sub_setup = 0

    gc.collect()
    objects_before = len(gc.get_objects())
    if args.memory:
        tracemalloc.start()
        traced_before = tracemalloc.get_traced_memory()[0]
    tasks = [loop.create_task(app()) for _ in range(args.subs)]
    await counter.expect(per_sub_setup * args.subs)
    for _ in range(5):
        await asyncio.sleep(0)  # every subscriber parked
    result: dict[str, Any] = {
        "subject": args.subject,
        "asgi_sse": os.path.dirname(asgi_sse.__file__),
        "subs": args.subs,
        "batch": args.batch,
        "rounds": args.rounds,
    }
    if args.memory:
        gc.collect()
        traced = tracemalloc.get_traced_memory()[0] - traced_before
        tracemalloc.stop()
        result["gc_objects_per_sub"] = (len(gc.get_objects()) - objects_before) / args.subs
        result["traced_bytes_per_sub"] = traced / args.subs
    else:
        gc.collect()
        result["gc_objects_per_sub"] = (len(gc.get_objects()) - objects_before) / args.subs

    seq = 0

    async def rounds(count: int) -> None:
        nonlocal seq
        for _ in range(count):
            target = counter.frames + args.batch * args.subs
            for _ in range(args.batch):
                seq += 1
                await publish(seq)
            await counter.expect(target)

    await rounds(args.warmup)
    frames0, sends0 = counter.frames, counter.sends
    profiler = cProfile.Profile() if args.profile else None
    gc_before = [s["collections"] for s in gc.get_stats()]
    cpu0 = time.process_time()
    if profiler is not None:
        profiler.enable()
    await rounds(args.rounds)
    if profiler is not None:
        profiler.disable()
    cpu = time.process_time() - cpu0
    delivered = counter.frames - frames0
    result["delivered"] = delivered
    result["sends_per_event"] = (counter.sends - sends0) / delivered
    result["cpu_us_per_event"] = cpu / delivered * 1e6
    result["gc_collections"] = [
        s["collections"] - b for s, b in zip(gc.get_stats(), gc_before, strict=True)
    ]
    if profiler is not None:
        result["profile"] = breakdown(profiler, delivered, args.top)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    return result


# -- the profile, by part of the path --------------------------------------------------------

PARTS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("counters/hooks", re.compile(r"subscription\.py.*\((_deliver|_lag|delivered)\)|observer")),
    (
        "wake-up",
        re.compile(
            r"log\.py.*\((wake|park|unpark|next_change)\)|subscription\.py.*\(_wait\)|"
            r"_backends/_asyncio\.py.*\((wait|set|is_set|checkpoint)\)|"
            r"anyio/_core/_synchronization|asyncio/locks\.py|asyncio/mixins\.py|"
            r"method 'set_result'|method 'create_future'|method 'done'|"
            r"method 'add_done_callback'|method 'remove'|_get_running_loop|"
            r"method 'append' of 'list'|lowlevel\.py|futures\.py"
        ),
    ),
    ("cursor", re.compile(r"subscription\.py|log\.py|several\.py")),
    ("pump", re.compile(r"pump\.py|closing\.py|response\.py")),
    ("connection", re.compile(r"connection\.py|watch\.py|time\.monotonic")),
    (
        "harness",
        re.compile(r"hub_profile\.py|minimal\.py|_common\.py|hub\.py|pydantic|frames|'count'"),
    ),
)


def part_of(name: str) -> str:
    for part, pattern in PARTS:
        if pattern.search(name):
            return part
    return "loop/other"


def breakdown(profiler: cProfile.Profile, delivered: int, top: int) -> dict[str, Any]:
    stats = pstats.Stats(profiler)
    rows = []
    for (path, line, func), (_cc, calls, tottime, _cum, _callers) in stats.stats.items():  # type: ignore[attr-defined]
        short = "/".join(path.split("/")[-2:]) if path != "~" else ""
        name = f"{short}:{line}({func})" if short else func
        rows.append((name, calls, tottime))
    total = sum(row[2] for row in rows)
    parts: dict[str, float] = {}
    for name, _calls, tottime in rows:
        part = part_of(name)
        parts[part] = parts.get(part, 0.0) + tottime
    rows.sort(key=lambda row: row[2], reverse=True)
    return {
        "profiled_us_per_event": total / delivered * 1e6,
        "parts_share": {
            k: round(v / total, 3) for k, v in sorted(parts.items(), key=lambda i: -i[1])
        },
        "top": [
            {
                "function": name,
                "calls_per_event": round(calls / delivered, 3),
                "us_per_event": round(tottime / delivered * 1e6, 3),
                "part": part_of(name),
            }
            for name, calls, tottime in rows[:top]
        ],
    }


# -- instruction counts under valgrind --------------------------------------------------------


def instructions(argv: list[str], rounds: int) -> tuple[int, int]:
    """Instructions of a run with ``rounds`` measured rounds, and its delivered events."""
    count, stdout = cachegrind.count(__file__, *argv, "--rounds", str(rounds))
    return count, json.loads(stdout)["delivered"]


def instructions_per_event(args: argparse.Namespace) -> dict[str, Any]:
    result: dict[str, Any] = {"subs": args.subs, "batch": args.batch}
    for subject in args.subjects.split(","):
        argv = ["--subject", subject, "--subs", str(args.subs), "--batch", str(args.batch)]
        argv += ["--warmup", str(args.warmup)] + (["--no-yield"] if args.no_yield else [])
        small, small_events = instructions(argv, args.rounds)
        large, large_events = instructions(argv, args.rounds * 4)
        result[subject] = round((large - small) / (large_events - small_events))
    for reference in ("broadcaster", "watching"):
        if "hub" in result and reference in result:
            result[f"ratio_to_{reference}"] = round(result["hub"] / result[reference], 3)
    return result


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subject", choices=("hub", "broadcaster", "watching"), default="hub")
    parser.add_argument("--subs", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--no-yield", action="store_true", help="publish a batch without yielding")
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--memory", action="store_true")
    parser.add_argument("--instructions", action="store_true")
    parser.add_argument("--subjects", default="hub,broadcaster", help="with --instructions")
    return parser.parse_args()


if __name__ == "__main__":
    arguments = parse()
    if arguments.instructions:
        output = instructions_per_event(arguments)
    else:
        output = uvloop.run(main(arguments))
    print(json.dumps(output, indent=1))
