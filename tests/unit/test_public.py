"""The public surface is what it claims, and the layers import only what they may."""

from __future__ import annotations

import subprocess
import sys

import asgi_sse

EXPECTED = {
    "BaseEvent",
    "ClientDisconnected",
    "Comment",
    "EventSourceResponse",
    "EventStreamParser",
    "GracefulShutdown",
    "Hub",
    "HubBackend",
    "HubFull",
    "HubObserver",
    "HubStats",
    "HubUnavailable",
    "InvalidEventError",
    "MemoryBackend",
    "Merged",
    "ParsedEvent",
    "Reset",
    "ResetInfo",
    "RunEnded",
    "RunEndedInfo",
    "ResumableMerge",
    "SSEEndpoint",
    "SSEError",
    "SSEMiddleware",
    "SSERequest",
    "ServerSentEvent",
    "ShutdownSignal",
    "StreamClosed",
    "StreamObserver",
    "Subscription",
    "TopicClosed",
    "__version__",
    "buffered",
    "event_stream",
    "merge",
    "resumable_merge",
}


def test_public_names() -> None:
    assert isinstance(asgi_sse.__all__, tuple)
    assert set(asgi_sse.__all__) == EXPECTED
    for name in asgi_sse.__all__:
        assert getattr(asgi_sse, name) is not None
    public_modules = {n for n in dir(asgi_sse) if not n.startswith("_") and n not in EXPECTED}
    # only subpackages/modules meant to be imported by path may show up besides __all__
    assert public_modules <= {
        "demo",
        "testing",
        "starlette",
        "types",
        "backends",
        "redis",
        "client",
        "schema",
        "otel",
    }


def test_public_types_module() -> None:
    import asgi_sse.types as types

    assert isinstance(types.__all__, tuple)
    for name in types.__all__:
        assert getattr(types, name) is not None


def test_the_otel_module_exports_the_types_of_its_options() -> None:
    import asgi_sse.otel as otel

    assert isinstance(otel.__all__, tuple)
    assert set(otel.__all__) == {"Labeler", "RouteLabeler", "SSEMetrics"}


def test_error_hierarchy() -> None:
    assert issubclass(asgi_sse.InvalidEventError, asgi_sse.SSEError)
    assert issubclass(asgi_sse.InvalidEventError, ValueError)
    assert issubclass(asgi_sse.ClientDisconnected, asgi_sse.SSEError)
    assert issubclass(asgi_sse.StreamClosed, asgi_sse.SSEError)
    assert issubclass(asgi_sse.TopicClosed, asgi_sse.SSEError)
    assert issubclass(asgi_sse.HubFull, asgi_sse.SSEError)
    assert issubclass(asgi_sse.HubUnavailable, asgi_sse.SSEError)
    from asgi_sse.testing import StreamClosed

    assert StreamClosed is asgi_sse.StreamClosed


def imported_by(module: str) -> set[str]:
    """Modules loaded by importing `module` alone: a stand-in package object keeps the
    package's __init__ (which imports every layer) out of the measurement."""
    code = (
        "import importlib, importlib.util, sys, types\n"
        "spec = importlib.util.find_spec('asgi_sse')\n"  # locates without running __init__
        "stub = types.ModuleType('asgi_sse')\n"
        "stub.__path__ = list(spec.submodule_search_locations)\n"
        "sys.modules['asgi_sse'] = stub\n"
        f"importlib.import_module('{module}')\n"
        "print('\\n'.join(sorted(sys.modules)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    return set(out.stdout.split())


def test_core_never_imports_a_framework() -> None:
    out = subprocess.run(
        [sys.executable, "-c", "import sys, asgi_sse; print('\\n'.join(sys.modules))"],
        check=True,
        capture_output=True,
        text=True,
    )
    loaded = set(out.stdout.split())
    assert not loaded & {
        "starlette",
        "fastapi",
        "quart",
        "litestar",
        "uvicorn",
        "hypercorn",
        "trio",
        # optional extras: only their own modules may import them
        "httpx",
        "redis",
        "opentelemetry",
    }


def test_events_layer_imports_nothing_async() -> None:
    loaded = imported_by("asgi_sse._protocol.events")
    assert "pydantic" in loaded
    assert not loaded & {"anyio", "asgiref", "trio", "asyncio"}


def test_options_and_items_import_nothing_async() -> None:
    for module in (
        "asgi_sse._server.options",
        "asgi_sse._protocol.stream",
        "asgi_sse._protocol.cursor",
    ):
        loaded = imported_by(module)
        assert not loaded & {"anyio", "asgiref", "trio", "asyncio"}, module


def test_the_hub_never_imports_the_asgi_layer() -> None:
    loaded = imported_by("asgi_sse._hub.hub")
    assert not loaded & {
        "asgi_sse._server.response",
        "asgi_sse._server.pump",
        "asgi_sse._server.connection",
        "asgi_sse._server.watch",
        "asgi_sse._server.endpoint",
    }


def test_the_redis_backend_is_a_hub_backend_and_never_imports_the_asgi_layer() -> None:
    loaded = imported_by("asgi_sse.redis")
    assert "redis" in loaded
    assert not loaded & {
        "asgi_sse._server.response",
        "asgi_sse._server.pump",
        "asgi_sse._server.connection",
        "asgi_sse._server.endpoint",
        "asgi_sse._server.middleware",
    }
    from asgi_sse import HubBackend
    from asgi_sse.redis import RedisStreamsBackend

    backend: HubBackend = RedisStreamsBackend()  # type-checked against the protocol
    assert backend is not None
