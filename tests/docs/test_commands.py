"""Every server command on the pages runs, and serves the stream its block opens.

A ```sh block that starts a server (``uvicorn module:app ...``, ``hypercorn module:app
...``) is run as written, from the folder of that example file, on a unix socket
instead of port 8000; the block's first ``curl -N`` (its method, body and headers) is
then sent to it, and the answer must be a 200 event stream whose first bytes arrive.
Then Ctrl+C (SIGINT) must stop the server cleanly. The Redis example needs a Redis
server (tests/support/redisutil.py).
"""

from __future__ import annotations

import itertools
import os
import shlex
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import anyio
import httpx
import pytest
from anyio.abc import Process
from anyio.streams.buffered import BufferedByteReceiveStream

from tests.docs.source import README, ServerCommand, blocks, example_path, pages, server_commands
from tests.support.redisutil import REDIS_URL, require_redis

COMMANDS = {
    command.argv: command
    for page in [*pages(), README]
    for block in blocks(page)
    for command in server_commands(block)
}
NEEDS_REDIS = {"redis_news"}


@pytest.fixture
def short_dir() -> Iterator[Path]:
    # Not tmp_path: a unix socket's path must stay under ~100 bytes.
    with tempfile.TemporaryDirectory(prefix="sse-") as directory:
        yield Path(directory)


def curl_request(command: ServerCommand) -> tuple[str, dict[str, str], bytes]:
    """Method, headers and body of the block's first ``curl -N`` line (GET / if none)."""
    for line in command.block.source.splitlines():
        if line.strip().startswith("curl -N "):
            words = shlex.split(line)
            break
    else:
        return "GET", {}, b""
    method, headers, body = "GET", {}, b""
    for flag, value in itertools.pairwise(words):
        if flag == "-d":
            method, body = "POST", value.encode()
        elif flag == "-X":
            method = value
        elif flag == "-H":
            name, _, header = value.partition(":")
            headers[name.strip()] = header.strip()
    return method, headers, body


async def wait_for_line(stderr: BufferedByteReceiveStream, needle: bytes) -> None:
    lines: list[bytes] = []
    while not lines or needle not in lines[-1].lower():
        try:
            lines.append(await stderr.receive_until(b"\n", 65536))
        except (anyio.EndOfStream, anyio.IncompleteRead):
            pytest.fail("the server exited:\n" + b"\n".join(lines).decode(errors="replace"))


async def first_bytes(socket: Path, command: ServerCommand) -> bytes:
    method, headers, body = curl_request(command)
    transport = httpx.AsyncHTTPTransport(uds=str(socket))
    async with (
        httpx.AsyncClient(transport=transport, base_url="http://docs", timeout=10) as client,
        client.stream(method, command.path, headers=headers, content=body) as response,
    ):
        assert response.status_code == 200, await response.aread()
        assert response.headers["content-type"] == "text/event-stream"
        async for chunk in response.aiter_raw():
            if chunk:
                return chunk
    pytest.fail("the stream ended without a byte")


# The client's event loop does not matter: the server's is the one under test, and the
# command line chooses it (hypercorn's --worker-class).
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
@pytest.mark.parametrize("argv", list(COMMANDS), ids=" ".join)
@pytest.mark.timeout(60)
@pytest.mark.anyio
async def test_the_command_serves_its_stream(argv: tuple[str, ...], short_dir: Path) -> None:
    command = COMMANDS[argv]
    program, target, *options = argv
    env = dict(os.environ)
    if command.module in NEEDS_REDIS:
        require_redis()
        env["REDIS_URL"] = REDIS_URL
    socket = short_dir / "server.sock"
    bind = ["--uds", str(socket)] if program == "uvicorn" else ["--bind", f"unix:{socket}"]
    process: Process = await anyio.open_process(
        [sys.executable, "-m", program, target, *options, *bind],
        cwd=example_path(command.module).parent,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
    )
    try:
        assert process.stderr is not None
        with anyio.fail_after(30):
            # uvicorn's workers (--workers) listen only once their app has started.
            ready = b"application startup complete" if program == "uvicorn" else b"running on"
            await wait_for_line(BufferedByteReceiveStream(process.stderr), ready)
            assert await first_bytes(socket, command)
            process.send_signal(signal.SIGINT)  # Ctrl+C
            assert await process.wait() == 0
    finally:
        if process.returncode is None:
            process.kill()
            with anyio.CancelScope(shield=True):
                await process.wait()
        await process.aclose()
