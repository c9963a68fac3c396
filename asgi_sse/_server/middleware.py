"""SSEMiddleware: serve event-stream routes in front of any ASGI application.

Pure ASGI middleware in Starlette's shape: `__init__(app, **options)`, and a `__call__`
whose first decision passes every scope that is not one of its routes (other HTTP
paths, websocket, lifespan) to the wrapped app untouched. Stateless: routes are fixed
at construction, per-request state lives in `SSEEndpoint.__call__`'s locals.

Imports the endpoint and the options; never a framework.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

from .._util.asgi import (
    AnyReceive,
    AnyScope,
    AnySend,
    ASGIApp,
)
from .._util.compat import Unpack
from .endpoint import Handler, SSEEndpoint, app_path
from .options import EndpointOptions, endpoint_options, spell_out_options

__all__ = ("SSEMiddleware",)


class SSEMiddleware:
    """Serve ``routes`` (exact path -> handler or `SSEEndpoint`) as event streams.

    Paths are matched exactly, relative to the app's `root_path`, for HTTP requests
    only; everything else goes to ``app`` untouched. Handlers are wrapped in
    `SSEEndpoint` with the given options; pass an `SSEEndpoint` to set them per route.

    Args:
        app: The ASGI application behind the routes.
        routes: Exact path (starting with ``/``) -> a handler (see
            `asgi_sse.types.Handler`) or an `SSEEndpoint`.
        **options: The handlers' endpoint options, as declared (with their defaults)
            in `asgi_sse.types.EndpointOptions`.

    Raises:
        ValueError: at construction, for a route that does not start with "/", or
            options that `SSEEndpoint` refuses.
        TypeError: at construction, for a keyword that is not an option, or options
            of the wrong type that `SSEEndpoint` refuses.
    """

    @spell_out_options(EndpointOptions)
    def __init__(
        self,
        app: ASGIApp,
        routes: Mapping[str, Handler | SSEEndpoint],
        **options: Unpack[EndpointOptions],
    ) -> None:
        self.app = app
        """The application behind the routes."""
        shared = endpoint_options(options, type(self))
        self.routes: dict[str, SSEEndpoint] = {}
        """Each route's endpoint, by path."""
        for path, target in routes.items():
            if not path.startswith("/"):
                raise ValueError(f"route {path!r} must start with '/'")
            self.routes[path] = (
                target
                if isinstance(target, SSEEndpoint)
                else SSEEndpoint.with_options(target, shared)
            )

    async def __call__(self, scope: AnyScope, receive: AnyReceive, send: AnySend) -> None:
        if scope["type"] == "http":
            endpoint = self.routes.get(app_path(cast(Mapping[str, Any], scope)))
            if endpoint is not None:
                await endpoint(scope, receive, send)
                return
        await self.app(scope, receive, send)
