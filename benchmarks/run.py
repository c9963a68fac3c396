"""Benchmark asgi-sse against a minimal ASGI app and its peers; print a table.

    .venv/bin/python benchmarks/run.py            # full run (~10 min): RESULTS.md, results.png
    .venv/bin/python benchmarks/run.py --quick    # < 1 min, for CI: writes benchmarks/out/
    .venv/bin/python benchmarks/run.py --only burst --servers minimal,asgi_sse --repeats 5

Each server (benchmarks/servers/<name>.py) runs under uvicorn in its own process, pinned
to CPU 0 and started afresh on a free port for every run; the load generator
(loadgen.py) runs in another process pinned to CPU 1. Scenarios:
- burst: one connection, n events as fast as possible - events/s;
- fanout: many subscribers to one 10 Hz ticker - server CPU per delivered event and
  latency from creation to receipt;
- idle: thousands of streams that send nothing - memory and asyncio tasks per connection;
- encode: in-process, typed event to bytes per second, vs a hand-written f-string.
`ceiling` is a trivial raw-socket server (ceiling.py): what the load generator itself
can take. Only a full, unfiltered run writes benchmarks/RESULTS.md and results.png;
everything else goes to benchmarks/out/ (git-ignored).
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import os
import shlex
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import encode
import report
from procs import (
    CLIENT_CPU,
    BenchProcessError,
    RunningServer,
    raise_nofile_limit,
    run_json,
    running_server,
)

HERE = Path(__file__).resolve().parent
OUT = HERE / "out"
LOADGEN = str(HERE / "loadgen.py")

SERVERS = (
    "minimal",
    "minimal_pydantic",
    "asgi_sse",
    "asgi_sse_buffered",
    "sse_starlette",
    "fastapi_sse",
    "litestar",
)
CEILING = "ceiling"
SCENARIO_NAMES = ("burst", "fanout", "idle", "encode")
# Frame separators as each server sends them by default (peers default to CRLF).
SEPARATOR = {"sse_starlette": "crlf", "litestar": "crlf"}

NOTES = (
    "Keep-alives at each library's default: asgi-sse a `: ping` line after 15 s idle, "
    "sse-starlette a ping every 15 s, FastAPI a comment after 15 s idle, Litestar none, "
    "the minimal apps none. Runs are shorter than 15 s or a ping is at most one extra "
    "frame per connection: they do not move the figures.",
    "Frames as each library writes them by default: sse-starlette and Litestar end lines "
    "with CRLF, the others with LF (the load generator counts the matching separator).",
    "`minimal` sends one pre-encoded frame per `send` (the same bytes every time in "
    "burst); `minimal_pydantic` builds and dumps the model per event - per subscriber in "
    "fan-out. In the asgi_sse servers the benchmark's ticker encodes each tick once "
    "(`Tick.frame`) and every subscriber's stream yields those bytes: the harness does "
    "the encode-once, with the library's `frame()` and bytes items; the peers build "
    "their event per subscriber.",
    "`asgi_sse` streams a plain generator: one `send` per event. `asgi_sse_buffered` "
    "wraps every stream in `buffered()` (a task of its own, 64 items ahead, ready items "
    "in one `send`): what a producer task buys in burst and costs in fan-out and idle.",
    "The minimal apps have one task per connection and do not watch for disconnects while "
    "streaming; the libraries all do.",
    "Fan-out latency includes the load generator's own scheduling of its sockets; the "
    "`ceiling` row (a raw-socket server writing the same frame to every subscriber) is "
    "its floor.",
)


@dataclass(frozen=True)
class Settings:
    burst_events: int
    fanout_conns: int
    fanout_seconds: float
    idle_conns: int
    encode_events: int
    encode_repeats: int  # inner best-of for each encode measurement
    repeats: int  # rounds; each figure is the median over them

    def describe(self) -> str:
        return ", ".join(f"{key}={value}" for key, value in asdict(self).items())


FULL = Settings(100_000, 1000, 10.0, 5000, 50_000, 5, 3)
QUICK = Settings(20_000, 200, 2.0, 500, 5_000, 3, 1)


def _parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="small sizes, one round (CI)")
    parser.add_argument(
        "--only", help=f"comma-separated scenarios, among {','.join(SCENARIO_NAMES)}"
    )
    parser.add_argument("--servers", help=f"comma-separated, among {','.join(SERVERS)}")
    parser.add_argument("--repeats", type=int, help="rounds (default 3, or 1 with --quick)")
    args = parser.parse_args(argv)
    args.scenarios = _pick(args.only, SCENARIO_NAMES, parser, "--only")
    args.server_names = _pick(args.servers, SERVERS, parser, "--servers")
    if "minimal" not in args.server_names:
        args.server_names.insert(0, "minimal")  # the reference of every ratio
    if args.repeats is not None and args.repeats < 1:
        parser.error("--repeats must be at least 1")
    return args


def _pick(
    value: str | None, allowed: tuple[str, ...], parser: argparse.ArgumentParser, flag: str
) -> list[str]:
    if value is None:
        return list(allowed)
    picked = [item.strip() for item in value.split(",") if item.strip()]
    unknown = sorted(set(picked) - set(allowed))
    if unknown:
        parser.error(f"{flag}: unknown {', '.join(unknown)}; choose among {', '.join(allowed)}")
    return [item for item in allowed if item in picked]


def importable_servers(names: list[str]) -> tuple[list[str], list[str]]:
    """The servers whose module (and library) imports; a note for each that does not."""
    ok: list[str] = []
    notes: list[str] = []
    for name in names:
        try:
            importlib.import_module(f"servers.{name}")
        except Exception as exc:
            notes.append(
                f"{name} skipped: its module does not import ({type(exc).__name__}: {exc})"
            )
            print(f"note: {notes[-1]}", flush=True)
        else:
            ok.append(name)
    return ok, notes


def _start(name: str, log_dir: Path) -> Any:
    script = "ceiling.py" if name == CEILING else "launch.py"
    return running_server(name, script, log_dir)


def _burst(server: RunningServer, settings: Settings) -> dict[str, Any]:
    # The ceiling gets ten times the events, or it is over before it can be timed.
    n = settings.burst_events * (10 if server.name == CEILING else 1)
    sep = SEPARATOR.get(server.name, "lf")
    command = [sys.executable, LOADGEN, "burst", "--port", str(server.port), "--n", str(n)]
    return run_json([*command, "--sep", sep], timeout=180)


def _fanout(server: RunningServer, settings: Settings) -> dict[str, Any]:
    command = [sys.executable, LOADGEN, "fanout", "--port", str(server.port)]
    command += ["--conns", str(settings.fanout_conns), "--seconds", str(settings.fanout_seconds)]
    command += ["--server-pid", str(server.pid), "--sep", SEPARATOR.get(server.name, "lf")]
    return run_json(command, timeout=settings.fanout_seconds + 180)


def _idle(server: RunningServer, settings: Settings) -> dict[str, Any]:
    command = [sys.executable, LOADGEN, "idle", "--port", str(server.port)]
    return run_json([*command, "--conns", str(settings.idle_conns)], timeout=240)


DRIVERS: dict[str, Callable[[RunningServer, Settings], dict[str, Any]]] = {
    "burst": _burst,
    "fanout": _fanout,
    "idle": _idle,
}
SUMMARY_KEY = {
    "burst": ("events_per_s", "{:,.0f} events/s"),
    "fanout": ("server_cpu_us_per_event", "{:.2f} µs CPU/event"),
    "idle": ("rss_per_conn", "{:,.0f} B/conn"),
    "encode": ("events_per_s", "{:,.0f} events/s"),
}


def _progress(scenario: str, round_: int, settings: Settings, subject: str, text: str) -> None:
    print(f"[{scenario} {round_ + 1}/{settings.repeats}] {subject:<18} {text}", flush=True)


def run_network_scenario(
    scenario: str, subjects: list[str], settings: Settings, log_dir: Path, notes: list[str]
) -> dict[str, list[dict[str, Any] | None]]:
    results: dict[str, list[dict[str, Any] | None]] = {name: [] for name in subjects}
    key, fmt = SUMMARY_KEY[scenario]
    for round_ in range(settings.repeats):
        for name in subjects:
            started = time.monotonic()
            result: dict[str, Any] | None = None
            try:
                with _start(name, log_dir / scenario) as server:
                    result = DRIVERS[scenario](server, settings)
            except BenchProcessError as exc:
                first_line = str(exc).splitlines()[0]
                notes.append(f"{scenario} round {round_ + 1}, {name}: failed ({first_line})")
                _progress(scenario, round_, settings, name, f"FAILED: {exc}")
            else:
                took = time.monotonic() - started
                _progress(
                    scenario, round_, settings, name, f"{fmt.format(result[key])} ({took:.1f} s)"
                )
                notes.extend(_warnings(scenario, round_, name, result))
            results[name].append(result)
    return results


def _warnings(scenario: str, round_: int, name: str, result: dict[str, Any]) -> list[str]:
    """Fan-out runs where a server lost connections or could not keep up."""
    if scenario != "fanout":
        return []
    where = f"fanout round {round_ + 1}, {name}"
    warnings = []
    if result["dropped_conns"]:
        warnings.append(f"{where}: {result['dropped_conns']} connections closed by the server")
    if result["delivered_per_s"] < 0.98 * result["expected_per_s"]:
        share = result["delivered_per_s"] / result["expected_per_s"]
        warnings.append(f"{where}: delivered {share:.0%} of the events produced (fell behind)")
    for warning in warnings:
        print(f"note: {warning}", flush=True)
    return warnings


def run_encode(
    servers: list[str], settings: Settings, notes: list[str]
) -> dict[str, list[dict[str, Any] | None]]:
    encoders, skipped = encode.available_encoders(servers)
    notes.extend(skipped)
    for note in skipped:
        print(f"note: {note}", flush=True)
    encode.check_encoders(encoders)
    results: dict[str, list[dict[str, Any] | None]] = {name: [] for name in encoders}
    with pinned_here(CLIENT_CPU):
        for round_ in range(settings.repeats):
            for name, encoder in encoders.items():
                rate = encode.measure(encoder, settings.encode_events, settings.encode_repeats)
                results[name].append({"events_per_s": rate})
                _progress("encode", round_, settings, name, f"{rate:,.0f} events/s")
    return results


@contextmanager
def pinned_here(cpu: int) -> Iterator[None]:
    """Run this process on one CPU for a while (where the platform can), then restore."""
    if not hasattr(os, "sched_setaffinity") or cpu >= (os.cpu_count() or 1):
        yield
        return
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {cpu})
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)


# What the script itself needs beyond the standard library (the peers are optional: a
# server whose library does not import is left out with a note).
_TOOLS = ("uvicorn", "uvloop", "httptools", "matplotlib")


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    missing = [name for name in _TOOLS if importlib.util.find_spec(name) is None]
    if missing:
        # Fail now, not after ten minutes of measuring.
        print(
            f"missing {', '.join(missing)}: install the benchmark extras first:\n"
            "    .venv/bin/pip install -e '.[bench]'",
            file=sys.stderr,
        )
        return 2
    settings = QUICK if args.quick else FULL
    if args.repeats is not None:
        settings = replace(settings, repeats=args.repeats)
    official = not args.quick and args.only is None and args.servers is None
    report_dir = HERE if official else OUT
    report_dir.mkdir(parents=True, exist_ok=True)
    log_dir = OUT / "logs"
    raise_nofile_limit()
    started = time.monotonic()
    print(f"settings: {settings.describe()}", flush=True)

    notes: list[str] = []
    servers, skipped = importable_servers(args.server_names)
    notes += skipped
    runs: report.Runs = {}
    for scenario in args.scenarios:
        if scenario == "encode":
            runs[scenario] = run_encode(servers, settings, notes)
            continue
        subjects = [*servers, CEILING] if scenario in ("burst", "fanout") else servers
        runs[scenario] = run_network_scenario(scenario, subjects, settings, log_dir, notes)

    seconds = time.monotonic() - started
    # Every measurement of every round, for a closer look than the medians.
    (OUT / "last-run.json").write_text(json.dumps(runs, indent=1))
    tables = report.markdown_tables(runs)
    print(f"\n{tables}")
    print(f"wall time {seconds:.0f} s")
    command = shlex.join(["python", "benchmarks/run.py", *sys.argv[1:]])
    chart = report_dir / "results.png"
    report.write_chart(chart, runs)
    results = report_dir / "RESULTS.md"
    report.write_results(
        results,
        runs=runs,
        command=command,
        settings=settings.describe(),
        seconds=seconds,
        notes=[*NOTES, *notes],
        chart=chart,
    )
    print(f"wrote {results.relative_to(HERE.parent)} and {chart.relative_to(HERE.parent)}")
    failed = any(
        r is None for subjects in runs.values() for rounds in subjects.values() for r in rounds
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
