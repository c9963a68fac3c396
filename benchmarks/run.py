"""Benchmark asgi-sse against a minimal ASGI app and its peers; print a table.

    .venv/bin/python benchmarks/run.py            # full run (~13 min): RESULTS.md, results.png
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
- hub: asgi-sse's `Hub` (the `asgi_sse` server's `/hub*` routes) beside `minimal`:
  fan-out from one 10 Hz publisher to 1,000 and 5,000 subscribers (and `ceiling`), a
  publisher that publishes as fast as it can to many subscribers, and memory per idle
  subscriber; three tables (hub_fanout, hub_burst, hub_idle).
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
import shutil
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from functools import partial
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
    "asgi_sse_typed",
    "asgi_sse_frame",
    "sse_starlette",
    "fastapi_sse",
    "litestar",
)
CEILING = "ceiling"
#: Servers measured in some scenarios only (the others would repeat another's rows).
ONLY_IN = {
    "asgi_sse_typed": frozenset({"fanout"}),
    "asgi_sse_frame": frozenset({"burst", "fanout"}),
}
SCENARIO_NAMES = ("burst", "fanout", "idle", "encode", "hub")
# Frame separators as each server sends them by default (peers default to CRLF).
SEPARATOR = {"sse_starlette": "crlf", "litestar": "crlf"}
HUB_BURST_EVERY = 1  # hub burst: publishes per turn of the event loop

NOTES = (
    "Keep-alives at each library's default: asgi-sse a `: ping` line after 15 s idle, "
    "sse-starlette a ping every 15 s, FastAPI a comment after 15 s idle, Litestar none, "
    "the minimal apps none. Runs are shorter than 15 s or a ping is at most one extra "
    "frame per connection: they do not move the figures.",
    "Frames as each library writes them by default: sse-starlette and Litestar end lines "
    "with CRLF, the others with LF (the load generator counts the matching separator).",
    "`minimal` sends one pre-encoded frame per `send` (the same bytes every time in "
    "burst); `minimal_pydantic` builds a fresh model and dumps it per event in burst, and "
    "in fan-out dumps the tick's shared model per subscriber (built once per tick). "
    "In the asgi_sse servers the benchmark's ticker encodes each tick once "
    "(`Tick.frame`) and every subscriber's stream yields those bytes: the harness does "
    "the encode-once, with the library's `frame()` and bytes items; the peers build "
    "their event per subscriber.",
    "`asgi_sse_typed` (fan-out only) builds `Tick(data=payload, id=seq)` per subscriber "
    "per tick and the response encodes it: one pydantic validation per event more than "
    "`minimal_pydantic` does. `asgi_sse_frame` (burst and fan-out) does exactly "
    "`minimal_pydantic`'s work through the library: `Tick.frame(payload, id=...)` per "
    "event (a fresh payload per event in burst, per subscriber in fan-out), a plain "
    "generator, one `send` per event.",
    "`asgi_sse` streams a plain generator: one `send` per event. `asgi_sse_buffered` "
    "wraps every stream in `buffered()` (a task of its own, 64 items ahead, ready items "
    "in one `send`): what a producer task buys in burst and costs in fan-out and idle.",
    "The minimal apps have one task per connection and do not watch for disconnects while "
    "streaming; the libraries all do.",
    "Fan-out latency includes the load generator's own scheduling of its sockets; the "
    "`ceiling` row (a raw-socket server writing the same frame to every subscriber) is "
    "its floor.",
)
HUB_NOTES = (
    "Hub tables: `hub` is asgi-sse's `Hub` with its defaults in the `asgi_sse` server, "
    "each stream `EventSourceResponse(hub.subscribe(topic))`. Fan-out: one publisher "
    "task publishes a typed `Tick` (the same payload) every 100 ms with `await "
    "hub.publish(...)`, which encodes it once; `minimal` and `ceiling` are their "
    "fan-out rows of pre-encoded bytes at the same subscriber counts, measured in the "
    "same rounds. The hub's publisher starts once every subscriber is connected (the "
    "others' ticker with the first): a server that cannot keep up runs its event loop "
    "without a pause, and uvloop accepts one connection per turn of the loop. A "
    "publisher in the same loop is slowed down with it, so a hub that cannot keep up "
    "shows as fewer delivered events/s, not as a growing latency. A hub stream first "
    "sends an `id:` frame (no Last-Event-ID), not counted; a subscriber that falls "
    "behind gets every event it missed (in one write), where the shared ticker of "
    "`minimal` skips to the latest.",
    "Hub burst: the subscribers of a fresh topic, then one request publishes the events "
    f"as fast as it can, {HUB_BURST_EVERY} per turn of the event loop (`await "
    "hub.publish` itself never yields), and closes the topic; timed from that request "
    "to the end of the last stream. `minimal` does the same by hand: one list of "
    "pre-encoded frames, a position per subscriber, what is ready joined into one "
    "`send`. Hub idle: subscribers of a topic nobody publishes to, beside `minimal`'s "
    "idle connections.",
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
    hub_conns: tuple[int, ...]  # hub fan-out: subscriber counts
    hub_seconds: float  # hub fan-out: measurement window
    hub_burst_conns: int
    hub_burst_events: int  # events each hub burst subscriber gets

    def describe(self) -> str:
        return ", ".join(f"{key}={value}" for key, value in asdict(self).items())


FULL = Settings(100_000, 1000, 10.0, 5000, 50_000, 5, 3, (1000, 5000), 4.0, 1000, 200)
QUICK = Settings(20_000, 200, 2.0, 500, 5_000, 3, 1, (200, 1000), 1.0, 200, 100)


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
    "hub_fanout": ("server_cpu_us_per_event", "{:.2f} µs CPU/event"),
    "hub_burst": ("delivered_per_s", "{:,.0f} delivered events/s"),
    "hub_idle": ("rss_per_conn", "{:,.0f} B/subscriber"),
}

# The hub scenario: asgi-sse's Hub is the subject `hub` (the asgi_sse server's /hub*
# routes), beside `minimal` (and `ceiling` in fan-out). Its tables, in report.SCENARIOS:
HUB = "hub"
HUB_SERVER = "asgi_sse"
HUB_TABLES = ("hub_fanout", "hub_burst", "hub_idle")


def _hub_fanout(
    server: RunningServer, settings: Settings, conns: int, path: str
) -> dict[str, Any]:
    command = [sys.executable, LOADGEN, "fanout", "--port", str(server.port), "--path", path]
    command += ["--conns", str(conns), "--seconds", str(settings.hub_seconds)]
    command += ["--server-pid", str(server.pid), "--sep", SEPARATOR.get(server.name, "lf")]
    return run_json(command, timeout=settings.hub_seconds + 180)


def _hub_burst(server: RunningServer, settings: Settings, primed: bool) -> dict[str, Any]:
    command = [sys.executable, LOADGEN, "broadcast", "--port", str(server.port)]
    command += ["--conns", str(settings.hub_burst_conns), "--n", str(settings.hub_burst_events)]
    command += ["--every", str(HUB_BURST_EVERY), "--server-pid", str(server.pid)]
    return run_json([*command, *(["--primed"] if primed else [])], timeout=300)


def _hub_idle(server: RunningServer, settings: Settings, path: str) -> dict[str, Any]:
    command = [sys.executable, LOADGEN, "idle", "--port", str(server.port), "--path", path]
    return run_json([*command, "--conns", str(settings.idle_conns)], timeout=240)


@dataclass(frozen=True)
class HubJob:
    table: str  # a scenario of report.SCENARIOS
    subject: str  # its row
    server: str  # the server that runs it
    driver: Callable[[RunningServer, Settings], dict[str, Any]]


def hub_jobs(settings: Settings) -> list[HubJob]:
    """One round of the hub scenario, each reference next to what it is compared with."""
    jobs: list[HubJob] = []
    for conns in settings.hub_conns:
        for subject, server, path in (
            ("minimal", "minimal", "/fanout"),
            # Note: publishing starts once every subscriber is in. A server that cannot
            # keep up (the hub at 5,000 here) runs its event loop without a pause, and
            # uvloop accepts one connection per turn of the loop: the rest would take
            # minutes to connect.
            (HUB, HUB_SERVER, f"/hub?start_after={conns}"),
            (CEILING, CEILING, "/fanout"),
        ):
            driver = partial(_hub_fanout, conns=conns, path=path)
            jobs.append(HubJob("hub_fanout", f"{subject}@{conns}", server, driver))
    jobs.append(HubJob("hub_burst", "minimal", "minimal", partial(_hub_burst, primed=False)))
    jobs.append(HubJob("hub_burst", HUB, HUB_SERVER, partial(_hub_burst, primed=True)))
    jobs.append(HubJob("hub_idle", "minimal", "minimal", partial(_hub_idle, path="/idle")))
    jobs.append(HubJob("hub_idle", HUB, HUB_SERVER, partial(_hub_idle, path="/hub-idle")))
    return jobs


def run_hub(settings: Settings, log_dir: Path, notes: list[str]) -> report.Runs:
    jobs = hub_jobs(settings)
    results: report.Runs = {table: {} for table in HUB_TABLES}
    for job in jobs:
        results[job.table][job.subject] = []
    for round_ in range(settings.repeats):
        for job in jobs:
            result = _measure(
                job.table, round_, settings, job.subject, job.server, job.driver, log_dir, notes
            )
            results[job.table][job.subject].append(result)
    return results


def _progress(scenario: str, round_: int, settings: Settings, subject: str, text: str) -> None:
    print(f"[{scenario} {round_ + 1}/{settings.repeats}] {subject:<18} {text}", flush=True)


def run_network_scenario(
    scenario: str, subjects: list[str], settings: Settings, log_dir: Path, notes: list[str]
) -> dict[str, list[dict[str, Any] | None]]:
    results: dict[str, list[dict[str, Any] | None]] = {name: [] for name in subjects}
    for round_ in range(settings.repeats):
        for name in subjects:
            result = _measure(
                scenario, round_, settings, name, name, DRIVERS[scenario], log_dir, notes
            )
            results[name].append(result)
    return results


def _measure(
    scenario: str,
    round_: int,
    settings: Settings,
    subject: str,
    server_name: str,
    driver: Callable[[RunningServer, Settings], dict[str, Any]],
    log_dir: Path,
    notes: list[str],
) -> dict[str, Any] | None:
    """One run on a fresh server: its measurements, or None (and a note) if it failed."""
    key, fmt = SUMMARY_KEY[scenario]
    started = time.monotonic()
    try:
        with _start(server_name, log_dir / scenario) as server:
            result = driver(server, settings)
    except BenchProcessError as exc:
        first_line = str(exc).splitlines()[0]
        notes.append(f"{scenario} round {round_ + 1}, {subject}: failed ({first_line})")
        _progress(scenario, round_, settings, subject, f"FAILED: {exc}")
        return None
    took = time.monotonic() - started
    _progress(scenario, round_, settings, subject, f"{fmt.format(result[key])} ({took:.1f} s)")
    notes.extend(_warnings(scenario, round_, subject, result))
    return result


def _warnings(scenario: str, round_: int, name: str, result: dict[str, Any]) -> list[str]:
    """Fan-out runs where a server lost connections or could not keep up; hub bursts
    where a subscriber did not get every event."""
    where = f"{scenario} round {round_ + 1}, {name}"
    if scenario == "hub_burst" and result["incomplete"]:
        warning = f"{where}: {result['incomplete']} subscribers did not get every event"
        print(f"note: {warning}", flush=True)
        return [warning]
    if scenario not in ("fanout", "hub_fanout"):
        return []
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
    hub_ran = False
    for scenario in args.scenarios:
        if scenario == "encode":
            runs[scenario] = run_encode(servers, settings, notes)
            continue
        if scenario == "hub":
            if HUB_SERVER in servers and "minimal" in servers:
                runs.update(run_hub(settings, log_dir, notes))
                hub_ran = True
            else:
                notes.append(f"hub skipped: it needs the servers minimal and {HUB_SERVER}")
                print(f"note: {notes[-1]}", flush=True)
            continue
        subjects = [name for name in servers if scenario in ONLY_IN.get(name, (scenario,))]
        if scenario in ("burst", "fanout"):
            subjects.append(CEILING)
        runs[scenario] = run_network_scenario(scenario, subjects, settings, log_dir, notes)

    seconds = time.monotonic() - started
    # Every measurement of every round, for a closer look than the medians.
    (OUT / "last-run.json").write_text(json.dumps(runs, indent=1))
    tables = report.markdown_tables(runs)
    print(f"\n{tables}")
    print(f"wall time {seconds:.0f} s")
    command = shlex.join(["python", "benchmarks/run.py", *sys.argv[1:]])
    chart_path = report_dir / "results.png"
    # None when nothing that is charted ran (the hub alone).
    chart = chart_path if report.write_chart(chart_path, runs) else None
    results = report_dir / "RESULTS.md"
    report.write_results(
        results,
        runs=runs,
        command=command,
        settings=settings.describe(),
        seconds=seconds,
        notes=[*NOTES, *(HUB_NOTES if hub_ran else ()), *notes],
        chart=chart,
    )
    wrote = [results] if chart is None else [results, chart]
    if chart is not None and report_dir == HERE:
        # The docs' performance page shows the same chart (tests/docs checks they match).
        docs_chart = HERE.parent / "docs" / "assets" / "results.png"
        shutil.copyfile(chart, docs_chart)
        wrote.append(docs_chart)
    print("wrote " + " and ".join(str(path.relative_to(HERE.parent)) for path in wrote))
    failed = any(
        r is None for subjects in runs.values() for rounds in subjects.values() for r in rounds
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
