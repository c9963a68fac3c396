"""Fan-out through Redis across two workers, beside the in-memory hub in one worker and
the minimal app: delivered events/s, server CPU per delivered event (summed over the
workers; Redis's and the publisher's own shown apart), p99 latency.

    python benchmarks/redis_fanout.py [--conns 1000] [--seconds 10] [--rounds 3]
                                      [--redis redis://127.0.0.1:6379/0]
                                      [--write benchmarks/RESULTS.md]

Subjects, each with `conns` subscribers of one topic that gets a typed `Tick` every
100 ms (as in run.py's fan-out), read by `loadgen.py fanout` on its own core:

- ``minimal``: the hand-written SSE app, one worker, its own ticker (the reference);
- ``hub``: asgi-sse's in-memory `Hub`, one worker, the publisher inside it;
- ``hub+otel``: the same with `asgi_sse.otel.SSEMetrics` observing the hub and every
  stream (the OpenTelemetry SDK with an in-memory reader): what metrics cost;
- ``hub-redis-2w``: ``uvicorn --workers 2`` of ``servers/asgi_sse_redis.py`` (the hub on
  `RedisStreamsBackend`), the subscribers spread over the two workers by the kernel,
  the events published by a separate process through Redis.

Every server process is pinned to the server core, so CPU per event compares like with
like; Redis and the publisher run where the scheduler puts them and their CPU is
reported apart ("redis+pub"). Talks to 127.0.0.1 only; stops what it started by PID.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from procs import (
    CLIENT_CPU,
    SERVER_CPU,
    BenchProcessError,
    free_port,
    pinned,
    raise_nofile_limit,
    run_json,
    running_server,
    stop_process,
)

HERE = Path(__file__).resolve().parent
HOST = "127.0.0.1"
READY_TIMEOUT = 30.0
TIMES = "\u00d7"  # the ratio sign


def _children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as children:
            return [int(child) for child in children.read().split()]
    except OSError:
        return []


def _accepts(port: int) -> bool:
    import socket

    try:
        with socket.create_connection((HOST, port), timeout=0.5):
            return True
    except OSError:
        return False


@contextmanager
def _process(
    command: list[str], log: Path, env: dict[str, str]
) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("wb") as log_file:
        process = subprocess.Popen(
            command,
            cwd=HERE.parent,
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            env={**os.environ, **env},
        )
    try:
        yield process
    finally:
        stop_process(process)


@contextmanager
def redis_workers(
    url: str, prefix: str, workers: int, log_dir: Path
) -> Iterator[tuple[int, tuple[int, ...]]]:
    """``uvicorn --workers N`` of the Redis hub app, pinned to the server core: (port,
    worker PIDs)."""
    port = free_port()
    command = [
        sys.executable, "-m", "uvicorn", "servers.asgi_sse_redis:app",
        "--app-dir", str(HERE), "--workers", str(workers),
        "--host", HOST, "--port", str(port),
        "--loop", "uvloop", "--http", "httptools", "--lifespan", "on",
        "--log-level", "warning", "--no-access-log", "--timeout-graceful-shutdown", "1",
    ]  # fmt: skip
    env = {"BENCH_REDIS_URL": url, "BENCH_REDIS_PREFIX": prefix}
    log = log_dir / "hub-redis.log"
    with _process(pinned(command, SERVER_CPU), log, env) as process:
        deadline = time.monotonic() + READY_TIMEOUT
        while len(_children(process.pid)) < workers or not _accepts(port):
            if process.poll() is not None or time.monotonic() > deadline:
                raise BenchProcessError(f"the Redis hub app did not start:\n{log.read_text()}")
            time.sleep(0.05)
        yield port, tuple(_children(process.pid))


@contextmanager
def publisher(url: str, prefix: str, log_dir: Path) -> Iterator[int]:
    """The separate publishing process; its PID."""
    command = [sys.executable, str(HERE / "redis_fanout.py"), "publish", "--redis", url]
    command += ["--prefix", prefix]
    with _process(command, log_dir / "publisher.log", {}) as process:
        time.sleep(0.2)  # settling, not synchronisation: the loadgen waits for a tick
        if process.poll() is not None:
            raise BenchProcessError((log_dir / "publisher.log").read_text())
        yield process.pid


def redis_pid(url: str) -> int | None:
    import redis

    client = redis.Redis.from_url(url)
    try:
        pid = int(client.info("server")["process_id"])
    finally:
        client.close()
    return pid if os.path.exists(f"/proc/{pid}") else None


def fanout(
    port: int,
    conns: int,
    seconds: float,
    pids: tuple[int, ...],
    path: str,
    side: tuple[int, ...] = (),
) -> dict[str, Any]:
    command = pinned(
        [sys.executable, str(HERE / "loadgen.py"), "fanout", "--port", str(port)], CLIENT_CPU
    )
    command += ["--conns", str(conns), "--seconds", str(seconds), "--path", path]
    command += ["--server-pid", ",".join(map(str, pids))]
    if side:
        command += ["--side-pid", ",".join(map(str, side))]
    return run_json(command, timeout=seconds + 180)


def one_round(args: argparse.Namespace, log_dir: Path) -> dict[str, dict[str, Any]]:
    results: dict[str, dict[str, Any]] = {}
    with running_server("minimal", "launch.py", log_dir) as server:
        results["minimal"] = fanout(
            server.port, args.conns, args.seconds, (server.pid,), "/fanout"
        )
    path = f"/hub?start_after={args.conns}"
    with running_server("asgi_sse", "launch.py", log_dir) as server:
        results["hub"] = fanout(server.port, args.conns, args.seconds, (server.pid,), path)
    with running_server("asgi_sse", "launch.py", log_dir, env={"BENCH_OTEL": "1"}) as server:
        results["hub+otel"] = fanout(server.port, args.conns, args.seconds, (server.pid,), path)
    prefix = f"asgi-sse-bench:{uuid.uuid4().hex[:8]}:"
    try:
        with redis_workers(args.redis, prefix, 2, log_dir) as (port, workers):
            with publisher(args.redis, prefix, log_dir) as publisher_pid:
                side = (publisher_pid, *filter(None, [redis_pid(args.redis)]))
                results["hub-redis-2w"] = fanout(
                    port, args.conns, args.seconds, workers, "/hub", side
                )
    finally:
        _delete(args.redis, prefix)
    return results


def _delete(url: str, prefix: str) -> None:
    import redis

    client = redis.Redis.from_url(url)
    try:
        keys = list(client.scan_iter(match=prefix + "*"))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


def table(rounds: list[dict[str, dict[str, Any]]]) -> str:
    def median(subject: str, key: str) -> float | None:
        values = [r[subject][key] for r in rounds if r[subject].get(key) is not None]
        return statistics.median(values) if values else None

    lines = [
        "| subject | delivered events/s (expected) | server CPU µs/event | vs minimal "
        "| redis+pub CPU µs/event | p99 ms | vs minimal |",
        "|---|---|---|---|---|---|---|",
    ]
    base_cpu = median("minimal", "server_cpu_us_per_event") or 0.0
    base_p99 = median("minimal", "p99_ms") or 0.0
    for subject in rounds[0]:
        cpu = median(subject, "server_cpu_us_per_event")
        p99 = median(subject, "p99_ms")
        side = median(subject, "side_cpu_us_per_event")
        lines.append(
            f"| {subject} | {median(subject, 'delivered_per_s') or 0:,.0f} "
            f"({rounds[0][subject]['expected_per_s']:,}) "
            f"| {cpu or 0:.2f} | {(cpu or 0) / base_cpu if base_cpu else 0:.2f}{TIMES} "
            f"| {'-' if side is None else f'{side:.2f}'} "
            f"| {p99 or 0:.2f} | {(p99 or 0) / base_p99 if base_p99 else 0:.2f}{TIMES} |"
        )
    return "\n".join(lines)


def publish_main(args: argparse.Namespace) -> None:
    """The publisher process: a `Tick` every 100 ms to `ticks`, through Redis."""
    sys.path.insert(0, str(HERE))
    from servers._common import make_payload, ticks
    from servers.asgi_sse import Tick

    from asgi_sse import Hub
    from asgi_sse.redis import RedisStreamsBackend

    async def run() -> None:
        async with Hub(backend=RedisStreamsBackend(args.redis, prefix=args.prefix)) as hub:
            async for seq in ticks():
                await hub.publish("ticks", Tick(data=make_payload(seq)))

    try:
        import uvloop

        uvloop.run(run())
    except ImportError:
        asyncio.run(run())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("mode", nargs="?", choices=("run", "publish"), default="run")
    parser.add_argument("--conns", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--prefix", default="asgi-sse-bench:")
    parser.add_argument(
        "--write", type=Path, help="also put the table into this RESULTS.md (its own section)"
    )
    args = parser.parse_args(argv)
    if args.mode == "publish":
        with __import__("contextlib").suppress(KeyboardInterrupt):
            publish_main(args)
        return 0
    raise_nofile_limit()
    rounds = []
    with tempfile.TemporaryDirectory(prefix="asgi-sse-redis-bench-") as tmp:
        for index in range(args.rounds):
            result = one_round(args, Path(tmp))
            rounds.append(result)
            print(
                f"round {index + 1}: "
                + json.dumps({k: round(v.get("delivered_per_s", 0)) for k, v in result.items()}),
                file=sys.stderr,
            )
    text = (
        f"Fan-out through Redis: {args.conns} subscribers, a Tick every 100 ms, "
        f"{args.seconds:g} s windows, median of {args.rounds} round(s).\n\n{table(rounds)}\n"
    )
    print(text)
    if args.write is not None:
        from report import _git_revision, write_hub_fanout_section

        write_hub_fanout_section(
            args.write,
            "## Hub fan-out: in memory, with OpenTelemetry, on Redis across two workers\n\n"
            f"`python benchmarks/redis_fanout.py --conns {args.conns} --seconds "
            f"{args.seconds:g} --rounds {args.rounds} --write benchmarks/RESULTS.md`, "
            f"repository at {_git_revision(HERE.parent)}.\n\n"
            f"{text}\n"
            "server CPU: summed over the subject's server processes (both workers for "
            "hub-redis-2w), pinned to one core; redis+pub: the Redis server's and the "
            "publishing process's CPU in the same window, per delivered event. hub+otel: "
            "`asgi_sse.otel.SSEMetrics` observing the hub and every response, on the "
            "OpenTelemetry SDK with an in-memory reader.\n",
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
