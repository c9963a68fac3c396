"""A redis-server process owned by one test (not a test module).

`redis_process(...)` starts ``redis-server`` on a free port of 127.0.0.1 with its
working directory in a temporary directory, waits until it answers PING (polled under a
deadline), and stops it on the way out. The test can `RedisProcess.kill` it (SIGKILL: a
crash, no chance to write anything more) and `RedisProcess.start` it again on the same
port with the same directory, so a persisting server (``appendonly yes``, ``appendfsync
always``) comes back with every write it acknowledged, and one without persistence
comes back empty. `RedisProcess.freeze` (SIGSTOP) makes it hang instead: connections stay
open and nothing answers, as behind a network partition.

Only the process this module started is ever signalled, by the PID `Popen` gave it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from tests.support.servers import HOST, free_port

__all__ = ("REDIS_SERVER", "RedisProcess", "redis_process")

REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"
START_TIMEOUT = 10.0
STOP_TIMEOUT = 5.0


class RedisProcess:
    """One ``redis-server`` on ``port`` keeping its files in ``directory``."""

    def __init__(
        self, port: int, directory: Path, *, appendonly: bool, extra: Sequence[str] = ()
    ) -> None:
        self.port = port
        self.directory = directory
        self.argv = [
            REDIS_SERVER,
            "--port",
            str(port),
            "--bind",
            HOST,
            "--dir",
            str(directory),
            "--save",
            "",
            "--appendonly",
            "yes" if appendonly else "no",
            "--appendfsync",
            "always",
            *extra,
        ]
        self.log = directory / "redis.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def url(self, client_name: str | None = None) -> str:
        query = "" if client_name is None else f"?client_name={client_name}"
        return f"redis://{HOST}:{self.port}/0{query}"

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def output(self) -> str:
        try:
            return self.log.read_text(errors="replace")
        except OSError:
            return ""

    def answers(self) -> bool:
        import redis

        client = redis.Redis(host=HOST, port=self.port, socket_timeout=0.5)
        try:
            return bool(client.ping())
        except redis.RedisError:
            return False
        finally:
            client.close()

    def start(self) -> None:
        """Start (or start again, same port, same directory); return once PING answers."""
        assert not self.running, "redis-server is running already"
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.directory,
                start_new_session=True,
            )
        self.starts += 1
        deadline = time.monotonic() + START_TIMEOUT
        while not self.answers():
            if self.process.poll() is not None:
                raise AssertionError(f"redis-server exited at startup:\n{self.output()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"redis-server not up after {START_TIMEOUT}s")
            time.sleep(0.02)

    def kill(self) -> None:
        """SIGKILL the server (a crash) and wait until it is gone."""
        process = self.process
        assert process is not None, "redis-server was never started"
        assert process.poll() is None, "redis-server is not running"
        process.send_signal(signal.SIGKILL)
        process.wait(STOP_TIMEOUT)

    def freeze(self) -> None:
        """SIGSTOP the server: it hangs (connections open, no answers), as behind a
        network partition."""
        assert self.running, "redis-server is not running"
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)

    def thaw(self) -> None:
        """SIGCONT: a frozen server answers again."""
        if self.running:
            assert self.process is not None
            self.process.send_signal(signal.SIGCONT)

    def stop(self) -> None:
        """Stop the server if it runs (SIGTERM, then SIGKILL). Idempotent."""
        process = self.process
        if process is None or process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGCONT)  # a frozen server cannot act on SIGTERM
            process.send_signal(signal.SIGTERM)
        try:
            process.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGKILL)
            process.wait(STOP_TIMEOUT)


@contextlib.contextmanager
def redis_process(*, appendonly: bool, extra: Sequence[str] = ()) -> Iterator[RedisProcess]:
    """A started redis-server of this test's own; stopped (and its files deleted) after."""
    if not Path(REDIS_SERVER).exists():
        reason = "redis-server is not installed"
        if os.environ.get("ASGI_SSE_REQUIRE_REDIS") == "1":
            pytest.fail(f"{reason} (ASGI_SSE_REQUIRE_REDIS=1: Redis tests must run)")
        pytest.skip(reason)
    with tempfile.TemporaryDirectory(prefix="asgi-sse-redis-") as tmp:
        server = RedisProcess(free_port(), Path(tmp), appendonly=appendonly, extra=extra)
        try:
            server.start()
            yield server
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n--- redis-server log ---\n{server.output()}") from exc
        finally:
            server.stop()
