"""Run real server processes on 127.0.0.1 for the end-to-end tests (not a test module).

`running(kind, ...)` starts one server as a subprocess, waits until its port accepts
TCP connections (polled under a deadline, never a fixed sleep), and always stops it on
the way out. Each server runs in a session of its own, so its process group holds only
what this module started (hypercorn's CLI forks a worker): teardown signals that group
by the PID it got from `Popen` - SIGTERM, then SIGKILL after a timeout - and nothing
else. The server's stdout and stderr go to a temporary file whose text is attached to
every failure.

Kinds (the command lines a user types):
    demo             python -m asgi_sse.demo --port N    (uvicorn)
    demo-hypercorn   python -m asgi_sse.demo --port N --server hypercorn
    uvicorn          python -m uvicorn APP --port N
    hypercorn        python -m hypercorn APP --bind 127.0.0.1:N
    hypercorn-trio   python -m hypercorn -k trio APP --bind 127.0.0.1:N
    hypercorn-w0, hypercorn-trio-w0   the same with ``-w 0``: no worker process, the
                     server runs in the process we start
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

HOST = "127.0.0.1"
ROOT = Path(__file__).resolve().parents[2]
DEMO_APP = "asgi_sse.demo:app"
#: The demo app with its stats recorded to $ASGI_SSE_TEST_STATS (see tests/support/sse_app.py).
RECORDED_DEMO_APP = "tests.support.sse_app:demo_app"
TEST_APP = "tests.support.sse_app:app"

KINDS = (
    "demo",
    "demo-hypercorn",
    "uvicorn",
    "hypercorn",
    "hypercorn-trio",
    "hypercorn-w0",
    "hypercorn-trio-w0",
)
START_TIMEOUT = 20.0  # a cold interpreter importing pydantic on a loaded 2-core machine
STOP_TIMEOUT = 10.0


class ServerError(AssertionError):
    """A server did not start or stop as expected; the message holds its output."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def command(kind: str, port: int, app: str = DEMO_APP) -> list[str]:
    """The argv that starts ``app`` under the server ``kind`` on ``port``."""
    if kind not in KINDS:
        raise ValueError(f"unknown server kind {kind!r}; one of {KINDS}")
    python = sys.executable
    if kind in ("demo", "demo-hypercorn"):
        # `python -m tests.support.sse_app ARGS` is `python -m asgi_sse.demo ARGS` plus the
        # stats recording (tests/support/sse_app.py).
        modules = {DEMO_APP: "asgi_sse.demo", RECORDED_DEMO_APP: "tests.support.sse_app"}
        assert app in modules, "python -m asgi_sse.demo serves the demo app only"
        server = ["--server", "hypercorn"] if kind == "demo-hypercorn" else []
        return [python, "-m", modules[app], "--port", str(port), *server]
    if kind == "uvicorn":
        return [python, "-m", "uvicorn", app, "--host", HOST, "--port", str(port)]
    worker = ["-k", "trio"] if kind.startswith("hypercorn-trio") else []
    workers = ["-w", "0"] if kind.endswith("-w0") else []
    return [python, "-m", "hypercorn", *worker, *workers, app, "--bind", f"{HOST}:{port}"]


def wait_until(
    condition: Callable[[], object], timeout: float, what: str, interval: float = 0.02
) -> None:
    """Poll ``condition`` until it is true; AssertionError naming ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


class Server:
    """One server process started by `running()`."""

    def __init__(
        self, kind: str, port: int, argv: list[str], log: Path, env: Mapping[str, str]
    ) -> None:
        self.kind = kind
        self.port = port
        self.argv = argv
        self.log = log
        self.env = dict(env)
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        scheme = "https" if "--certfile" in self.argv else "http"  # tests/support/certs.py
        return f"{scheme}://{HOST}:{self.port}"

    def url(self, path: str) -> str:
        return self.base_url + path

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def output(self) -> str:
        """Everything the server printed so far."""
        try:
            return self.log.read_text(errors="replace")
        except OSError:
            return ""

    def describe(self) -> str:
        return f"{' '.join(self.argv)}\n--- server output ---\n{self.output()}---"

    def returncode(self) -> int | None:
        assert self.process is not None
        return self.process.poll()

    def accepts_connections(self) -> bool:
        try:
            with socket.create_connection((HOST, self.port), timeout=0.5):
                return True
        except OSError:
            return False

    def send_signal(self, signum: int, *, group: bool = False) -> None:
        """Signal the server process (``group``: its whole process group, like Ctrl+C in
        a terminal, which also reaches hypercorn's worker process)."""
        assert self.process is not None
        if group:
            os.killpg(self.process.pid, signum)  # our own session: pgid == pid
        else:
            self.process.send_signal(signum)

    def wait_exit(self, timeout: float) -> int:
        """Wait for the process to exit and return its code (ServerError on timeout)."""
        assert self.process is not None
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            raise ServerError(
                f"{self.kind} did not exit within {timeout}s\n{self.describe()}"
            ) from None

    def start(self) -> None:
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=ROOT,
                env=self.env,
                start_new_session=True,
            )
        deadline = time.monotonic() + START_TIMEOUT
        while not self.accepts_connections():
            if self.returncode() is not None:
                raise ServerError(f"{self.kind} exited at startup\n{self.describe()}")
            if time.monotonic() > deadline:
                raise ServerError(f"{self.kind} not up after {START_TIMEOUT}s\n{self.describe()}")
            time.sleep(0.05)

    def stop(self) -> None:
        """Stop the process group we started: SIGTERM, then SIGKILL. Idempotent."""
        process = self.process
        if process is None:
            return
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait(STOP_TIMEOUT)
        else:
            # The leader is gone; make sure no worker it forked outlives it.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, signal.SIGKILL)


@contextlib.contextmanager
def running(
    kind: str, app: str = DEMO_APP, *, env: Mapping[str, str] | None = None
) -> Iterator[Server]:
    """Start ``app`` under server ``kind`` on a free port; stop it when the block ends.

    Failures inside the block get the server's output attached."""
    with launched(kind, lambda port: command(kind, port, app), env=env) as server:
        yield server


@contextlib.contextmanager
def launched(
    kind: str,
    argv: Callable[[int], list[str]],
    *,
    env: Mapping[str, str] | None = None,
    prefix: str = "asgi-sse-server-",
) -> Iterator[Server]:
    """Start the process ``argv(port)`` makes, on a free port, with the checkout on its
    PYTHONPATH; stop it by its PID when the block ends. Failures inside the block get
    the server's output attached."""
    with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
        port = free_port()
        full_env = {
            **os.environ,
            "PYTHONUNBUFFERED": "1",
            "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
            **(env or {}),
        }
        server = Server(kind, port, argv(port), Path(tmp) / "server.log", full_env)
        try:
            server.start()
            yield server
        except AssertionError as exc:
            if isinstance(exc, ServerError):
                raise
            raise AssertionError(f"{exc}\n{server.describe()}") from exc
        finally:
            server.stop()
