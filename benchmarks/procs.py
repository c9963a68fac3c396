"""Processes: start a server pinned to a core, wait until it accepts, stop it by its PID.

Standard library only, so that every script here can import it.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = (
    "CLIENT_CPU",
    "SERVER_CPU",
    "BenchProcessError",
    "RunningServer",
    "free_port",
    "pinned",
    "raise_nofile_limit",
    "run_json",
    "running_server",
    "stop_process",
)

HERE = Path(__file__).resolve().parent
HOST = "127.0.0.1"
SERVER_CPU = 0
CLIENT_CPU = 1
READY_TIMEOUT = 30.0
STOP_TIMEOUT = 5.0
_TASKSET = shutil.which("taskset")


class BenchProcessError(RuntimeError):
    """A server or load generator failed; the message says which and shows its output."""


def raise_nofile_limit() -> int:
    """Raise the soft limit on open files up to the hard limit; return the soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
    if soft != resource.RLIM_INFINITY and soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def pinned(command: Sequence[str], cpu: int) -> list[str]:
    """`command` run on one CPU with taskset, where taskset and that CPU exist."""
    if _TASKSET is None or cpu >= (os.cpu_count() or 1):
        return list(command)
    return [_TASKSET, "-c", str(cpu), *command]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass(frozen=True)
class RunningServer:
    name: str
    port: int
    pid: int
    log: Path


def _wait_ready(process: subprocess.Popen[bytes], port: int, log: Path) -> None:
    """Poll a TCP connect until the server accepts, it exits, or the deadline passes."""
    deadline = time.monotonic() + READY_TIMEOUT
    while True:
        if process.poll() is not None:
            raise BenchProcessError(f"server exited with {process.returncode}:\n{_tail(log)}")
        try:
            with socket.create_connection((HOST, port), timeout=0.5):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise BenchProcessError(
                    f"server not accepting on {port} after {READY_TIMEOUT}s:\n{_tail(log)}"
                ) from None
            time.sleep(0.02)  # poll interval


def stop_process(process: subprocess.Popen[bytes]) -> None:
    """SIGINT (uvicorn's graceful shutdown), then SIGKILL after STOP_TIMEOUT - by PID."""
    if process.poll() is not None:
        return
    os.kill(process.pid, signal.SIGINT)
    try:
        process.wait(timeout=STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=STOP_TIMEOUT)


def _tail(log: Path, lines: int = 30) -> str:
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


@contextmanager
def running_server(
    name: str, script: str, log_dir: Path, env: dict[str, str] | None = None
) -> Iterator[RunningServer]:
    """Start `script <name> <port>` (or `script <port>` for the ceiling) on SERVER_CPU."""
    port = free_port()
    log_dir.mkdir(parents=True, exist_ok=True)
    log = log_dir / f"{name}.log"
    args = [name, str(port)] if script == "launch.py" else [str(port)]
    command = pinned([sys.executable, str(HERE / script), *args], SERVER_CPU)
    with log.open("wb") as log_file:
        process = subprocess.Popen(
            command,
            cwd=HERE.parent,
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
        )
    try:
        _wait_ready(process, port, log)
        yield RunningServer(name, port, process.pid, log)
    finally:
        stop_process(process)


def run_json(command: Sequence[str], timeout: float) -> dict[str, Any]:
    """Run a command pinned to CLIENT_CPU; return the JSON object it prints last."""
    try:
        done = subprocess.run(
            pinned(command, CLIENT_CPU),
            capture_output=True,
            timeout=timeout,
            check=False,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired as exc:
        raise BenchProcessError(f"load generator timed out after {timeout}s") from exc
    stderr = done.stderr.decode(errors="replace").strip()
    if done.returncode != 0:
        tail = "\n".join(stderr.splitlines()[-15:])
        raise BenchProcessError(f"load generator failed ({done.returncode}):\n{tail}")
    lines = done.stdout.decode().strip().splitlines()
    if not lines:
        raise BenchProcessError(f"load generator printed nothing:\n{stderr}")
    result: dict[str, Any] = json.loads(lines[-1])
    return result
