"""SSEEndpoint: an ASGI app that builds one event stream per request from a handler.

The handler gets a small read-only `SSERequest` (method, path, query, headers,
`last_event_id`, and the body for POST streams) and returns the stream. Everything
per request lives in locals of `__call__`, so one endpoint serves any number of
concurrent requests and can be mounted under any framework's "mount an ASGI app".

Imports the response, the options and the protocol layer; never a framework, the hub
or the client.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Awaitable, Callable, Mapping
from functools import cached_property
from typing import Any, TypeAlias, cast
from urllib.parse import parse_qsl

from .._protocol.errors import ClientDisconnected
from .._protocol.stream import EventStream
from .._protocol.wire import find_forbidden_id_char
from .._util.asgi import (
    AnyReceive,
    AnyScope,
    AnySend,
    ASGIReceiveCallable,
    Scope,
)
from .._util.compat import Unpack
from .._util.lifespan import answer_lifespan
from .options import EndpointOptions, StreamOptions, endpoint_options, spell_out_options
from .response import EventSourceResponse, plain_response

__all__ = ("Handler", "HandlerResult", "SSEEndpoint", "SSERequest", "answer_lifespan", "app_path")

_log = logging.getLogger("asgi_sse")


def app_path(scope: Mapping[str, Any]) -> str:
    """The request path relative to where the app is mounted (`root_path` removed).

    Note: servers and frameworks disagree on whether `path` includes `root_path`
    (uvicorn >= 0.26 and Starlette's Mount include it; older servers do not), so it is
    removed only when present.
    """
    path: str = scope["path"]
    root = scope.get("root_path", "")
    if root and path.startswith(root) and (len(path) == len(root) or path[len(root)] == "/"):
        return path[len(root) :] or "/"
    return path


def _utf8(text: str) -> str:
    return text.encode("latin-1").decode("utf-8", "replace")


class SSERequest:
    """A read-only view of the HTTP request that opened an event stream.

    Made by `SSEEndpoint` for its handler; its query, headers and last event id are
    decoded once, on first use.

    Args:
        scope: The request's ASGI scope.
        receive: The request's ASGI ``receive``, for `body`.
        last_event_id_param: The query parameter `last_event_id` falls back on (empty:
            none).
    """

    __slots__ = ("__dict__", "_last_event_id_param", "_receive", "scope")

    def __init__(
        self, scope: Scope, receive: ASGIReceiveCallable, *, last_event_id_param: str = ""
    ) -> None:
        self.scope = scope
        """The request's ASGI scope, as the server (or the framework) gave it."""
        self._receive = receive
        self._last_event_id_param = last_event_id_param

    @property
    def method(self) -> str:
        """The HTTP method, upper case as ASGI gives it."""
        return cast(str, self.scope.get("method", "GET"))

    @property
    def path(self) -> str:
        """The path relative to the mount point (see `app_path`)."""
        return app_path(cast(Mapping[str, Any], self.scope))

    @cached_property
    def query_params(self) -> Mapping[str, str]:
        """Query parameters; the first value wins for repeated names."""
        params: dict[str, str] = {}
        for name, value in self.query_list:
            params.setdefault(name, value)
        return params

    @cached_property
    def query_list(self) -> list[tuple[str, str]]:
        """Every query parameter in order, repeated names included.

        Percent-escapes and raw bytes are decoded as UTF-8 (URL standard), with U+FFFD
        for bytes that are not UTF-8.
        """
        # latin-1 both ways keeps every byte as it is (raw or percent-escaped); then the
        # bytes are decoded once, as UTF-8.
        raw = cast(bytes, self.scope.get("query_string", b"")).decode("latin-1")
        return [
            (_utf8(name), _utf8(value))
            for name, value in parse_qsl(raw, keep_blank_values=True, encoding="latin-1")
        ]

    @cached_property
    def headers(self) -> Mapping[str, str]:
        """Request headers with lower-case names; repeated headers joined by ", "."""
        result: dict[str, str] = {}
        for raw_name, raw_value in cast(Any, self.scope).get("headers", ()):
            name = raw_name.decode("latin-1").lower()
            value = raw_value.decode("latin-1")
            result[name] = f"{result[name]}, {value}" if name in result else value
        return result

    @cached_property
    def last_event_id(self) -> str | None:
        """The `Last-Event-ID` header a reconnecting browser sends, else the query
        parameter named by the endpoint's `last_event_id_param` (for a first connection
        that resumes, e.g. ``/events?lastEventId=42``), else None.

        The header is decoded as UTF-8, as browsers encode it (WHATWG HTML 9.2.4: "UTF-8
        encode" the last event ID), so any id the server sent comes back intact; bytes
        that are not UTF-8 become U+FFFD. A value holding CR, LF or NUL is None: no
        server can have sent such an id, and echoing it into an event would be refused.
        """
        value: str | None = None
        for name, raw in cast(Any, self.scope).get("headers", ()):
            if name.lower() == b"last-event-id":
                value = bytes(raw).decode("utf-8", "replace")
                break
        else:
            if self._last_event_id_param:
                value = self.query_params.get(self._last_event_id_param)
        if value is not None and find_forbidden_id_char(value):
            _log.debug("asgi_sse: ignored a last event id holding CR, LF or NUL: %r", value)
            return None
        return value

    async def body(self) -> bytes:
        """The whole request body (for streams opened by POST, e.g. MCP).

        Call it once, before the stream starts: it reads the body from ``receive``.

        Raises:
            ClientDisconnected: when the client leaves before the body is complete.
        """
        chunks: list[bytes] = []
        while True:
            message = await self._receive()
            if message["type"] == "http.disconnect":
                raise ClientDisconnected("the client disconnected before sending its body")
            if message["type"] == "http.request":
                # Both keys are optional in the ASGI spec (defaults b"" and False).
                chunks.append(message.get("body", b""))
                if not message.get("more_body", False):
                    return b"".join(chunks)


HandlerResult: TypeAlias = EventStream | EventSourceResponse | None
"""What a handler may return: a stream, a ready response (own status or headers), or
None for "204 No Content", which tells a browser's EventSource to stop reconnecting."""

Handler: TypeAlias = Callable[[SSERequest], HandlerResult | Awaitable[HandlerResult]]
"""An endpoint's handler: called with the request, returns (or awaits) a `HandlerResult`."""


class SSEEndpoint:
    """An ASGI application that streams whatever ``handler(request)`` returns.

    ``handler`` may be an async generator function, a function returning an async
    iterable, or an async function returning one (to read the body or check the
    request first). It may also return an `EventSourceResponse` (own status or
    headers) or None (204 No Content: a browser stops reconnecting). The options are
    those of `EventSourceResponse`, and two more (`asgi_sse.types.EndpointOptions`):
    ``methods`` limits the HTTP methods (405 otherwise); by default every method
    streams but OPTIONS, which is answered with 204 and an `Allow` header and never
    runs the handler (a CORS preflight).

    A handler error before the stream starts is logged and answered with 500, and so
    is a result that is not one of those. Websocket scopes are refused; lifespan
    scopes are answered, so the endpoint also runs standalone under uvicorn or
    hypercorn.

    Args:
        handler: Called once per request with its `SSERequest` (see
            `asgi_sse.types.Handler`).
        **options: A response's options, ``methods`` and ``last_event_id_param``, as
            declared (with their defaults) in `asgi_sse.types.EndpointOptions`.

    Raises:
        ValueError: at construction, for options that `EventSourceResponse` refuses,
            or an empty method name.
        TypeError: at construction, for a keyword that is not an option, or options
            of the wrong type that `EventSourceResponse` refuses.
    """

    __slots__ = ("handler", "options")

    @spell_out_options(EndpointOptions)
    def __init__(self, handler: Handler, **options: Unpack[EndpointOptions]) -> None:
        self.handler = handler
        """The handler, called once per request."""
        self.options = endpoint_options(options, type(self))
        """The options, checked and encoded once for every request."""

    @classmethod
    def with_options(cls, handler: Handler, options: StreamOptions) -> SSEEndpoint:
        """An endpoint with options that were checked already (by a middleware): they
        are shared, not checked again."""
        endpoint = cls(handler)
        endpoint.options = options
        return endpoint

    async def __call__(self, scope: AnyScope, receive: AnyReceive, send: AnySend) -> None:
        if scope["type"] == "lifespan":
            await answer_lifespan(receive, send)
            return
        if scope["type"] != "http":
            await send({"type": "websocket.close", "code": 1000, "reason": ""})
            return
        options = self.options
        method = scope["method"]
        if not options.allows(method):
            allow = [(b"allow", options.allow_header())]
            if method == "OPTIONS":
                await plain_response(send, 204, b"", allow)
            else:
                await plain_response(send, 405, b"Method Not Allowed", allow)
            return
        request = SSERequest(scope, receive, last_event_id_param=options.last_event_id_param)
        try:
            result = self.handler(request)
            if inspect.isawaitable(result):
                result = await result
        except ClientDisconnected:
            return
        except Exception:
            _log.exception("asgi_sse: the handler for %s raised", request.path)
            await plain_response(send, 500, b"Internal Server Error")
            return
        if result is None:
            await plain_response(send, 204, b"")
            return
        if isinstance(result, EventSourceResponse):
            response = result
        elif not hasattr(type(result), "__aiter__"):
            # Found out before the 200 goes out: a 500 makes a browser's EventSource stop,
            # where an empty 200 stream would make it reconnect forever.
            _log.error(
                "asgi_sse: the handler for %s returned %s; return an async iterable "
                "(e.g. an async generator), an EventSourceResponse or None",
                request.path,
                type(result).__name__,
            )
            await plain_response(send, 500, b"Internal Server Error")
            return
        else:
            response = EventSourceResponse.with_options(result, options)
        await response(scope, receive, send)
