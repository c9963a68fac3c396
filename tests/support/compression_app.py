"""tests/support/proxy_app.py's streams behind each common ASGI compression middleware
(not a test module).

``tests.support.compression_app:app`` mounts the same app once per middleware, under
``/<name>``: a request for ``/<name>/events/gated?key=K`` reaches the middleware and
then the app as ``/events/gated``, as if the middleware wrapped the whole app, so path
patterns are written as a user would write them. ``/control/...`` goes straight to the app.

`MIDDLEWARES` names each mount: the middleware with its defaults, and, for those that
have one, with the option that leaves event streams alone.
"""

from __future__ import annotations

from collections.abc import Callable

from asgi_compression import (
    BrotliAlgorithm,
    CompressionMiddleware,
    GzipAlgorithm,
    ZstdAlgorithm,
)
from brotli_asgi import BrotliMiddleware
from starlette.middleware.gzip import GZipMiddleware
from zstd_asgi import ZstdMiddleware  # type: ignore[import-untyped]  # no py.typed

from asgi_sse._util.asgi import ASGIApp, ASGIReceiveCallable, ASGISendCallable, Scope
from asgi_sse._util.lifespan import answer_lifespan
from tests.support.proxy_app import app as site

__all__ = ("MIDDLEWARES", "app")


def _starlette_compress(app: ASGIApp) -> ASGIApp:
    # Python >= 3.11 only (its requires-python); absent on 3.10, where its tests skip.
    from starlette_compress import CompressMiddleware

    return CompressMiddleware(app)


MIDDLEWARES: dict[str, Callable[[ASGIApp], ASGIApp]] = {
    "none": lambda app: app,  # the baseline
    "starlette-gzip": lambda app: GZipMiddleware(app),
    "brotli-asgi": lambda app: BrotliMiddleware(app),
    "brotli-asgi-excluded": lambda app: BrotliMiddleware(
        app,
        excluded_handlers=["^/events/"],
    ),
    "starlette-compress": _starlette_compress,
    "zstd-asgi": lambda app: ZstdMiddleware(app),
    "zstd-asgi-excluded": lambda app: ZstdMiddleware(app, excluded_handlers=["^/events/"]),
    "asgi-compression": lambda app: CompressionMiddleware(
        app,
        algorithms=[ZstdAlgorithm(), BrotliAlgorithm(), GzipAlgorithm()],
    ),
}

_mounts: dict[str, ASGIApp] = {}


def _mount(name: str) -> ASGIApp | None:
    if name not in _mounts and name in MIDDLEWARES:
        _mounts[name] = MIDDLEWARES[name](site)
    return _mounts.get(name)


async def app(scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable) -> None:
    if scope["type"] == "lifespan":
        await answer_lifespan(receive, send)
        return
    assert scope["type"] == "http"
    name, _, rest = scope["path"].partition("/")[2].partition("/")
    mounted = _mount(name) if name != "control" else None
    if mounted is None:
        await site(scope, receive, send)
        return
    # As if the middleware wrapped the whole app: it sees /events/..., as patterns expect.
    inner = {**scope, "path": f"/{rest}", "raw_path": f"/{rest}".encode()}
    await mounted(inner, receive, send)
