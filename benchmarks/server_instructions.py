"""The burst through a real server, counted in instructions: what each event costs the
server process (uvicorn, httptools, uvloop, the app), whatever else the machine does.

    python benchmarks/server_instructions.py [--servers minimal_pydantic,asgi_sse_frame]
        [--sizes 2000,22000]

Each server (benchmarks/servers/<name>.py) runs under uvicorn exactly as in `run.py`
(`launch.py`), but inside ``valgrind --tool=cachegrind --cache-sim=no`` (with
PYTHONHASHSEED=0); the load generator, outside valgrind, takes one `/burst` of N events
over a real socket, then the server is stopped (SIGINT) and valgrind's count of the
server process's user-space instructions is read. Two sizes, a fresh server each: the
difference divided by the difference in events is the cost of one event, start-up and
set-up cancelled out. Each server's ratio to the first one listed is printed (> 1: more
instructions than the first).

What it leaves out is the kernel: every subject makes the same one `write` per event
(`strace -c` on the server shows it), and `asgi-sse` adds one turn of the event loop
every ~32 events (its fair share: one `epoll_wait` each). Throughput on a shared
two-core machine moves by ±15 % from one run to the next on the same server; this count
does not.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from cachegrind import VALGRIND, instruction_count
from procs import SERVER_CPU, BenchProcessError, free_port, pinned, run_json
from run import SEPARATOR

HERE = Path(__file__).resolve().parent
READY_TIMEOUT = 120.0  # start-up under valgrind: ~5 s here
STOP_TIMEOUT = 60.0


def _wait_accepting(process: subprocess.Popen[bytes], port: int, log: Path) -> None:
    deadline = time.monotonic() + READY_TIMEOUT
    while process.poll() is None and time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1.0):
                return
        except OSError:
            time.sleep(0.1)  # poll interval
    how = "did not accept in time" if process.poll() is None else f"exited ({process.poll()})"
    tail = "\n".join(log.read_text(errors="replace").splitlines()[-20:])
    raise BenchProcessError(f"the server under valgrind {how}; {log} ends:\n{tail}")


def server_instructions(server: str, n: int, log_dir: Path) -> int:
    """Instructions of the server process that served one burst of ``n`` events."""
    port = free_port()
    log = log_dir / f"{server}-{n}.valgrind.log"
    command = [*VALGRIND, sys.executable, str(HERE / "launch.py"), server, str(port)]
    with log.open("wb") as log_file:
        process = subprocess.Popen(
            pinned(command, SERVER_CPU),
            cwd=HERE.parent,
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONHASHSEED": "0"},
        )
    try:
        _wait_accepting(process, port, log)
        loadgen = [sys.executable, str(HERE / "loadgen.py"), "burst", "--port", str(port)]
        loadgen += ["--sep", SEPARATOR.get(server, "lf")]
        result = run_json([*loadgen, "--n", str(n)], timeout=600)
        if result["events"] != n:
            raise BenchProcessError(f"{server}: {result['events']} of {n} events arrived")
    finally:
        if process.poll() is None:
            os.kill(process.pid, signal.SIGINT)  # the server we started, by its PID
        try:
            process.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            os.kill(process.pid, signal.SIGKILL)
            process.wait(timeout=STOP_TIMEOUT)
    refs = instruction_count(log.read_text(errors="replace"))
    if refs is None:
        raise BenchProcessError(f"no instruction count in {log}")
    return refs


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--servers", default="minimal_pydantic,asgi_sse_frame,asgi_sse")
    parser.add_argument("--sizes", default="2000,22000", help="two burst sizes")
    parser.add_argument("--log-dir", default=str(HERE / "out" / "server_instructions"))
    args = parser.parse_args(argv)
    # `timeout` (CI) sends SIGTERM: exit through the `finally`s, which stop the server
    # and the load generator this script started.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    servers = args.servers.split(",")
    small, large = (int(size) for size in args.sizes.split(","))
    log_dir = Path(args.log_dir)
    log_dir.mkdir(parents=True, exist_ok=True)
    per_event: dict[str, float] = {}
    for server in servers:
        counts = [server_instructions(server, n, log_dir) for n in (small, large)]
        per_event[server] = (counts[1] - counts[0]) / (large - small)
        print(f"{server:<18} {per_event[server]:>9,.0f} instructions/event", file=sys.stderr)
    reference = per_event[servers[0]]
    print(f"\n| server | instructions per event | x {servers[0]} |\n| --- | --- | --- |")
    for server in servers:
        print(f"| `{server}` | {per_event[server]:,.0f} | {per_event[server] / reference:.3f} |")
    print(json.dumps({"sizes": [small, large], "per_event": per_event}))


if __name__ == "__main__":
    main()
