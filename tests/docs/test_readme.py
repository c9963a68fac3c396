"""Every ```python block of README.md runs, and the app it defines streams.

Each block is written to a file and imported as a module (as `uvicorn module:app`
would), then its `app` is streamed from in-process and its first events checked. Every
block must match exactly one expectation below, so a new snippet cannot go untested.
Fragments are fenced as ```py and are not run. The ```sh command lines that start a
server (`uvicorn ...`, `hypercorn ...`) are run too, against the Quickstart module.
"""

from __future__ import annotations

import re
import shlex
import signal
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import aclosing
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import anyio
import httpx
import pytest
from anyio.abc import Process
from anyio.streams.buffered import BufferedByteReceiveStream
from httpx_sse import aconnect_sse

from asgi_sse.testing import connect
from tests.support.helpers import load

pytestmark = pytest.mark.anyio

README = Path(__file__).resolve().parents[2] / "README.md"


def fenced_blocks(text: str, language: str) -> list[tuple[int, str]]:
    """(line number, source) of every block fenced exactly as ```language."""
    pattern = re.compile(rf"^```{language}\n(.*?)^```$", re.MULTILINE | re.DOTALL)
    return [(text.count("\n", 0, m.start()) + 1, m.group(1)) for m in pattern.finditer(text)]


TEXT = README.read_text(encoding="utf-8")
PYTHON_BLOCKS = fenced_blocks(TEXT, "python")
SERVER_COMMANDS = [
    line.strip()
    for _, block in fenced_blocks(TEXT, "sh")
    for line in block.splitlines()
    if line.strip().startswith(("uvicorn ", "hypercorn "))
]

# -- checks per block -----------------------------------------------------------------


async def first_event(app: Any, path: str, event_type: Any) -> Any:
    """The first event of a stream, decoded into `event_type`, after checking headers."""
    async with connect(app, path) as stream:
        event = await stream.next_event(event_type)
        assert stream.status == 200
        assert stream.header("content-type") == "text/event-stream"
        assert stream.header("connection") is None
        await stream.disconnect()
    return event


async def plain_page(app: Any, path: str) -> bytes:
    async with connect(app, path) as stream:
        await stream.wait_finished()
    assert stream.status == 200
    return b"".join(m["body"] for m in stream.messages if m["type"] == "http.response.body")


async def check_quickstart(module: ModuleType) -> None:
    echo = await first_event(module.app, "/?message=hi", module.Echo)
    assert echo.data.message == "hi"
    assert echo.id == "0"  # numbered by @event_stream
    echo = await first_event(module.app, "/", module.Echo)
    assert echo.data.message == "hello"


async def check_starlette(module: ModuleType) -> None:
    assert (await first_event(module.app, "/clock?start=5", module.Tick)).data == 5
    assert (await first_event(module.app, "/ticks/?start=7", module.Tick)).data == 7


async def check_fastapi(module: ModuleType) -> None:
    assert (await first_event(module.app, "/clock?start=5", module.Tick)).data == 5
    assert (await first_event(module.app, "/clock?start=-3", module.Tick)).data == 0
    assert (await first_event(module.app, "/ticks/", module.Tick)).data == 0


async def check_quart(module: ModuleType) -> None:
    assert (await first_event(module.app, "/clock", module.Tick)).data == 0
    assert b"Quart pages" in await plain_page(module.app, "/")


async def check_litestar(module: ModuleType) -> None:
    assert (await first_event(module.app, "/clock?start=5", module.Tick)).data == 5
    assert (await first_event(module.app, "/ticks", module.Tick)).data == 0


@dataclass(frozen=True)
class Expectation:
    marker: str  # a line only this block has
    check: Callable[[ModuleType], Awaitable[None]]
    backends: tuple[str, ...] = ("asyncio", "trio")


async def check_hub_app(module: ModuleType) -> None:
    # Imports and holds a hub; tests/integration/test_hub_frameworks.py streams from these apps.
    from asgi_sse import Hub

    assert isinstance(module.hub, Hub)
    assert module.app is not None


EXPECTATIONS = {
    "quickstart": Expectation("app = SSEEndpoint(handler)", check_quickstart),
    "starlette": Expectation('Route("/clock", clock)', check_starlette),
    "fastapi": Expectation("def first_tick(", check_fastapi),
    # Quart runs on asyncio only (it calls asyncio.wait and asyncio.ensure_future).
    "quart": Expectation('routes={"/clock": clock}', check_quart, backends=("asyncio",)),
    "litestar": Expectation("mounted = asgi(", check_litestar),
    "hub-starlette": Expectation(
        "app = Starlette(routes=routes, lifespan=lifespan)", check_hub_app
    ),
    "hub-fastapi": Expectation("app = FastAPI(lifespan=lifespan)", check_hub_app),
    "hub-litestar": Expectation("lifespan=[run_hub]", check_hub_app),
    "hub-quart": Expectation("@app.while_serving", check_hub_app, backends=("asyncio",)),
    "hub-bare": Expectation(
        "app = GracefulShutdown(hub.lifespan(SSEEndpoint(events)))", check_hub_app
    ),
}


def block_for(name: str) -> tuple[int, str]:
    marker = EXPECTATIONS[name].marker
    [block] = [(line, source) for line, source in PYTHON_BLOCKS if marker in source]
    return block


# -- tests ----------------------------------------------------------------------------


def test_every_python_block_has_exactly_one_expectation() -> None:
    assert PYTHON_BLOCKS, "README.md has no ```python block"
    for line, source in PYTHON_BLOCKS:
        matches = [name for name, e in EXPECTATIONS.items() if e.marker in source]
        assert len(matches) == 1, (
            f"README.md line {line}: the ```python block matches {matches or 'no'} "
            "expectation; add one to tests/docs/test_readme.py (or fence a fragment as ```py)"
        )
    for name, expectation in EXPECTATIONS.items():
        found = [line for line, source in PYTHON_BLOCKS if expectation.marker in source]
        assert len(found) == 1, f"expectation {name!r} matches the blocks at lines {found}"


def test_the_server_commands_are_there() -> None:
    programs = {shlex.split(command)[0] for command in SERVER_COMMANDS}
    assert programs == {"uvicorn", "hypercorn"}


@pytest.mark.parametrize(
    ("name", "anyio_backend"),
    [
        pytest.param(name, backend, id=f"{name}-{backend}")
        for name, expectation in EXPECTATIONS.items()
        for backend in expectation.backends
    ],
)
async def test_python_block_runs_and_streams(
    name: str, anyio_backend: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, source = block_for(name)
    module = load(source, f"readme_{name}", tmp_path, monkeypatch)
    with anyio.fail_after(20):
        await EXPECTATIONS[name].check(module)


# -- the command lines ----------------------------------------------------------------


async def wait_for_line(stderr: BufferedByteReceiveStream, needle: bytes) -> list[bytes]:
    """Read the server's log until a line contains ``needle``; all lines read so far."""
    lines: list[bytes] = []
    while not lines or needle not in lines[-1].lower():
        try:
            lines.append(await stderr.receive_until(b"\n", 65536))
        except (anyio.EndOfStream, anyio.IncompleteRead):
            pytest.fail("the server exited:\n" + b"\n".join(lines).decode(errors="replace"))
    return lines


async def read_first_event(socket: Path) -> Any:
    transport = httpx.AsyncHTTPTransport(uds=str(socket))
    async with (
        httpx.AsyncClient(transport=transport, base_url="http://events", timeout=5) as client,
        aconnect_sse(client, "GET", "/?message=cli") as source,
    ):
        assert source.response.status_code == 200
        assert source.response.headers["content-type"] == "text/event-stream"
        assert "connection" not in source.response.headers
        events: AsyncIterator[Any]
        async with aclosing(source.aiter_sse()) as events:
            return await anext(events)


@pytest.fixture
def short_dir() -> Iterator[Path]:
    # Not tmp_path: a unix socket path must stay under ~100 bytes.
    with tempfile.TemporaryDirectory(prefix="sse-") as directory:
        yield Path(directory)


def write_quickstart(directory: Path, module_name: str) -> None:
    _, quickstart = block_for("quickstart")
    (directory / f"{module_name}.py").write_text(quickstart, encoding="utf-8")


# The client's event loop does not matter here: the server's is the one under test,
# and the command line chooses it (hypercorn's --worker-class).
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
@pytest.mark.parametrize("command", SERVER_COMMANDS)
async def test_server_command_serves_the_quickstart(command: str, short_dir: Path) -> None:
    program, target, *options = shlex.split(command)
    module_name = target.partition(":")[0]
    write_quickstart(short_dir, module_name)
    socket = short_dir / "server.sock"
    bind = ["--uds", str(socket)] if program == "uvicorn" else ["--bind", f"unix:{socket}"]
    argv = [sys.executable, "-m", program, target, *options, *bind]
    process: Process = await anyio.open_process(
        argv, cwd=short_dir, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL
    )
    try:
        assert process.stderr is not None
        with anyio.fail_after(20):
            await wait_for_line(BufferedByteReceiveStream(process.stderr), b"running on")
            event = await read_first_event(socket)
            assert event.event == "echo"
            assert event.id == "0"
            assert event.json()["message"] == "cli"
            # The client has gone, so the server stops at once on Ctrl+C.
            process.send_signal(signal.SIGINT)
            assert await process.wait() == 0
    finally:
        if process.returncode is None:
            process.kill()
            with anyio.CancelScope(shield=True):
                await process.wait()
        await process.aclose()
