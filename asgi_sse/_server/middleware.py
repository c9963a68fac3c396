"""SSEMiddleware: serve event-stream routes in front of any ASGI application.

Pure ASGI middleware in Starlette's shape: `__init__(app, **options)`, and a `__call__`
whose first decision passes every scope that is not one of its routes (other HTTP
paths, websocket, lifespan) to the wrapped app untouched. Stateless: routes are fixed
at construction, per-request state lives in `SSEEndpoint.__call__`'s locals.
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
from .aliases import HeadersLike, PingEvent
from .endpoint import Handler, SSEEndpoint, app_path
from .observer import StreamObserver
from .options import (
    DEFAULT_LAST_EVENT_ID_PARAM,
    DEFAULT_PING,
    DEFAULT_SEND_TIMEOUT,
    StreamOptions,
)

__all__ = ("SSEMiddleware",)


class SSEMiddleware:
    """Serve ``routes`` (exact path -> handler or `SSEEndpoint`) as event streams.

    Paths are matched exactly, relative to the app's `root_path`. Handlers are wrapped
    in `SSEEndpoint` with the given options (``ping``, ``ping_event``, ``send_timeout``,
    ``headers``, ``methods``, ``last_event_id_param``); pass an `SSEEndpoint` to set them
    per route.

    Raises:
        ValueError: at construction, for a route that does not start with "/".
    """

    def __init__(
        self,
        app: ASGIApp,
        routes: Mapping[str, Handler | SSEEndpoint],
        *,
        ping: float | None = DEFAULT_PING,
        ping_event: PingEvent | None = None,
        send_timeout: float | None = DEFAULT_SEND_TIMEOUT,
        headers: HeadersLike | None = None,
        methods: tuple[str, ...] | None = None,
        last_event_id_param: str = DEFAULT_LAST_EVENT_ID_PARAM,
        observer: StreamObserver | None = None,
    ) -> None:
        self.app = app
        options = StreamOptions(
            ping=ping,
            ping_event=ping_event,
            send_timeout=send_timeout,
            headers=headers,
            methods=methods,
            last_event_id_param=last_event_id_param,
            observer=observer,
        )
        self.routes: dict[str, SSEEndpoint] = {}
        for path, target in routes.items():
            if not path.startswith("/"):
                raise ValueError(f"route {path!r} must start with '/'")
            self.routes[path] = (
                target
                if isinstance(target, SSEEndpoint)
                else SSEEndpoint.with_options(target, options)
            )

    async def __call__(self, scope: AnyScope, receive: AnyReceive, send: AnySend) -> None:
        if scope["type"] == "http":
            endpoint = self.routes.get(app_path(cast(Mapping[str, Any], scope)))
            if endpoint is not None:
                await endpoint(scope, receive, send)
                return
        await self.app(scope, receive, send)
