"""Run one benchmark server under uvicorn: `python benchmarks/launch.py <server> <port>`.

The configuration every server gets: one worker, uvloop, httptools, logs off,
127.0.0.1 only. RLIMIT_NOFILE is raised to the hard limit (thousands of connections).
Set BENCH_CPROFILE=<file> to profile the whole server process with cProfile; the
stats are written when the server exits (SIGINT). Set BENCH_NO_GC=1 to run the server
with the garbage collector off (`gc.disable()`): what its pauses cost in latency.
"""

from __future__ import annotations

import argparse
import gc
import os
import sys

import uvicorn
from procs import raise_nofile_limit

# Note: run as a script, this directory is on sys.path: `servers` is importable.
SERVERS_PACKAGE = "servers"


def serve(server: str, port: int) -> None:
    uvicorn.run(
        f"{SERVERS_PACKAGE}.{server}:app",
        host="127.0.0.1",
        port=port,
        workers=1,
        loop="uvloop",
        http="httptools",
        lifespan="off",
        log_level="warning",
        access_log=False,
        # Streams that never end would hold the shutdown forever; the runner closes its
        # connections first, this only bounds the servers that do not notice.
        timeout_graceful_shutdown=1,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("server", help="module name in benchmarks/servers")
    parser.add_argument("port", type=int)
    args = parser.parse_args()
    raise_nofile_limit()
    if os.environ.get("BENCH_NO_GC") == "1":
        gc.disable()
    profile_path = os.environ.get("BENCH_CPROFILE")
    if not profile_path:
        serve(args.server, args.port)
        return
    import cProfile

    profiler = cProfile.Profile()
    profiler.enable()
    try:
        serve(args.server, args.port)
    finally:
        profiler.disable()
        profiler.dump_stats(profile_path)
        print(f"cProfile stats written to {profile_path}", file=sys.stderr)


if __name__ == "__main__":
    main()
