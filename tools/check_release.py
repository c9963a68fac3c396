"""The release check: what an index would get, and what a user who installs it gets.

    .venv/bin/pip install build twine && .venv/bin/python tools/check_release.py

1. ``python -m build`` makes the sdist and the wheel (in a temporary folder);
   ``twine check --strict`` passes both; their contents and the wheel's metadata are
   what an index page shows (README as the description, the license, classifiers).
2. The wheel is installed in a fresh virtual environment, used from a folder away from
   the checkout: with the core dependencies only, the core modules import (and import no
   optional extra); with the extras, every public module imports.
3. The demo runs from the installed wheel: started on a free port, ``GET /`` answers the
   page and ``/sse2`` streams typed echoes; then it is stopped by its PID (SIGINT) and
   must exit cleanly.

Needs network access to the package index (the build backend, and the extras'
dependencies in the fresh environment). Exits non-zero with the reason on any failure.
"""

from __future__ import annotations

import email.parser
import http.client
import os
import signal
import socket
import subprocess
import sys
import tarfile
import tempfile
import time
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CORE_MODULES = (
    "asgi_sse",
    "asgi_sse.types",
    "asgi_sse.backends",
    "asgi_sse.testing",
    "asgi_sse.schema",
)
EXTRA_MODULES = (
    "asgi_sse.redis",
    "asgi_sse.client",
    "asgi_sse.otel",
    "asgi_sse.starlette",
    "asgi_sse.demo",
)
OPTIONAL = ("redis", "httpx", "opentelemetry", "starlette", "uvicorn")
TIMEOUT = 30.0


class ReleaseError(Exception):
    pass


def check(condition: bool, message: str) -> None:
    if not condition:
        raise ReleaseError(message)


def run(*argv: str | Path, cwd: Path | None = None) -> str:
    result = subprocess.run(
        [str(arg) for arg in argv],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        env={**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"},
    )
    if result.returncode != 0:
        command = " ".join(str(arg) for arg in argv)
        raise ReleaseError(f"{command} failed:\n{result.stdout}\n{result.stderr}")
    return result.stdout


def step(title: str) -> None:
    print(f"-- {title}", flush=True)


# -- 1. build -----------------------------------------------------------------------------


def build(dist: Path) -> tuple[Path, Path]:
    step("python -m build")
    run(sys.executable, "-m", "build", "--outdir", dist, ROOT)
    [sdist] = dist.glob("*.tar.gz")
    [wheel] = dist.glob("*.whl")
    step("twine check --strict")
    print(run(sys.executable, "-m", "twine", "check", "--strict", sdist, wheel).strip())
    return sdist, wheel


def check_contents(sdist: Path, wheel: Path) -> dict[str, str]:
    step("contents and metadata")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        [metadata_name] = [name for name in names if name.endswith(".dist-info/METADATA")]
        metadata_text = archive.read(metadata_name).decode()
    for needed in ("asgi_sse/py.typed", "asgi_sse/demo/page.html", "asgi_sse/__init__.py"):
        check(needed in names, f"the wheel lacks {needed}")
    check(
        any(name.endswith(".dist-info/licenses/LICENSE") for name in names),
        "the wheel lacks its LICENSE",
    )
    check(not any(name.startswith("tests/") for name in names), "the wheel ships the tests")
    with tarfile.open(sdist) as archive:
        members = {
            Path(name).relative_to(Path(name).parts[0]).as_posix()
            for name in archive.getnames()
            if "/" in name
        }
    for needed in ("LICENSE", "README.md", "pyproject.toml", "asgi_sse/py.typed"):
        check(needed in members, f"the sdist lacks {needed}")

    message = email.parser.Parser().parsestr(metadata_text)
    version = (ROOT / "asgi_sse" / "_version.py").read_text().split('"')[1]
    check(message["Name"] == "asgi-sse", f"Name is {message['Name']!r}")
    check(message["Version"] == version, f"Version {message['Version']} is not {version}")
    check(message["License-Expression"] == "MIT", "no License-Expression: MIT")
    check(message["Description-Content-Type"] == "text/markdown", "the README is not markdown")
    description = str(message.get_payload())
    check(description.startswith("# asgi-sse"), "the description is not README.md")
    check(bool(message["Summary"]), "no Summary")
    check(bool(message["Keywords"]), "no Keywords")
    check(message["Requires-Python"] == ">=3.10", f"Requires-Python {message['Requires-Python']}")
    classifiers = message.get_all("Classifier") or []
    for prefix in ("Operating System ::", "Programming Language :: Python :: 3.", "Typing ::"):
        check(any(c.startswith(prefix) for c in classifiers), f"no {prefix} classifier")
    check(not message.get_all("Project-URL"), "a Project-URL: the project has no address yet")
    print(f"{wheel.name}: {len(names)} files; {sdist.name}: {len(members)} files")
    print(f"Summary: {message['Summary']}")
    print(
        f"License-Expression: MIT; {len(classifiers)} classifiers; Keywords: {message['Keywords']}"
    )
    return {"version": version}


# -- 2. install ---------------------------------------------------------------------------


def importing(python: Path, away: Path, modules: tuple[str, ...], absent: tuple[str, ...]) -> str:
    """Import ``modules`` in the fresh environment, from a folder away from the checkout;
    none of ``absent`` may be imported by them."""
    code = (
        "import importlib, sys\n"
        f"for name in {modules!r}: importlib.import_module(name)\n"
        f"leaked = sorted({{m.split('.')[0] for m in sys.modules}} & set({absent!r}))\n"
        "assert not leaked, f'imported optional packages: {leaked}'\n"
        "import asgi_sse\n"
        f"assert {str(ROOT)!r} not in asgi_sse.__file__, asgi_sse.__file__\n"
        "print(asgi_sse.__version__, asgi_sse.__file__)\n"
    )
    return run(python, "-c", code, cwd=away).strip()


def install(wheel: Path, venv: Path, away: Path) -> Path:
    step("a fresh virtual environment, away from the checkout")
    run(sys.executable, "-m", "venv", venv)
    python = venv / "bin" / "python"
    run(python, "-m", "pip", "install", "-q", wheel, cwd=away)
    print("core:", importing(python, away, CORE_MODULES, OPTIONAL))
    # The extras, and Starlette for the module that adapts to it.
    run(
        python,
        "-m",
        "pip",
        "install",
        "-q",
        f"{wheel}[demo,redis,client,otel]",
        "starlette",
        cwd=away,
    )
    importing(python, away, CORE_MODULES + EXTRA_MODULES, ())
    print(f"every public module imports: {', '.join(CORE_MODULES + EXTRA_MODULES)}")
    return python


# -- 3. the demo --------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        check(process.poll() is None, f"the demo exited with {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise ReleaseError(f"the demo did not listen on {port} within {TIMEOUT} s")


def get(port: int, path: str) -> tuple[int, str, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=TIMEOUT)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, response.getheader("content-type") or "", response.read()
    finally:
        connection.close()


def run_demo(python: Path, away: Path) -> None:
    step("python -m asgi_sse.demo, from the installed wheel")
    port = free_port()
    process = subprocess.Popen(
        [str(python), "-m", "asgi_sse.demo", "--port", str(port)],
        cwd=away,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_for_port(port, process)
        status, content_type, body = get(port, "/")
        check(status == 200 and content_type.startswith("text/html"), f"GET / -> {status}")
        check(b"EventSource" in body, "GET / is not the demo's page")
        print(f"GET / -> {status} {content_type}, {len(body)} bytes")
        # count=2: the stream ends by itself after two events, so read() returns.
        status, content_type, body = get(port, "/sse2?message=release&count=2&interval=0.05")
        check(status == 200, f"GET /sse2 -> {status}")
        check(content_type == "text/event-stream", f"GET /sse2 is {content_type}")
        check(body.startswith(b'event: echo\nid: 0\ndata: {"message":"release"'), repr(body))
        check(body.count(b"event: echo\n") == 2, repr(body))
        print(f"GET /sse2 -> {status} {content_type}: {body.count(b'event: echo')} echo events")
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=TIMEOUT)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
                raise ReleaseError("the demo did not stop on SIGINT") from None
        output = process.stdout.read().decode(errors="replace") if process.stdout else ""
    check(process.returncode == 0, f"the demo exited with {process.returncode}:\n{output}")
    print(f"stopped by PID {process.pid} (SIGINT): exit code 0")


def main() -> int:
    started = time.monotonic()
    try:
        with tempfile.TemporaryDirectory(prefix="asgi-sse-release-") as directory:
            work = Path(directory)
            away = work / "elsewhere"
            away.mkdir()
            sdist, wheel = build(work / "dist")
            check_contents(sdist, wheel)
            python = install(wheel, work / "venv", away)
            run_demo(python, away)
    except ReleaseError as exc:
        print(f"release check FAILED: {exc}", file=sys.stderr)
        return 1
    print(f"release check passed in {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
