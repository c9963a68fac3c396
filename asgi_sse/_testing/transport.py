"""An httpx transport that runs an ASGI app in-process and streams its response.

httpx's own ``ASGITransport`` collects the whole response body before it returns
(encode/httpx#2186), so an endless event stream never comes back. This one runs each
request's app call in a task of the transport's task group and hands the body to httpx
chunk by chunk, as the app sends it; closing the response (leaving ``client.stream``,
``response.aclose()``) is the client's disconnect: the app's ``receive()`` returns
``http.disconnect``, as under a server. Exported as `asgi_sse.testing.ASGIStreamTransport`.

The only module of the testing layer that imports httpx (loaded only when the name is
used); never the server layer.
"""

from __future__ import annotations

from types import TracebackType
from typing import Any

import anyio
import anyio.abc
import httpx
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from .._util.asgi import ASGIReceiveEvent, ASGISendEvent
from .._util.compat import Self
from .._util.excgroups import BaseExceptionGroup, wraps_only
from .scope import http_scope

__all__ = ("ASGIStreamTransport",)


class _Exchange:
    """One request's app call: what it answered so far, and the body in transit."""

    def __init__(self, body: bytes) -> None:
        self.request_body = body
        self.body_sent = False
        self.status: int | None = None
        self.headers: list[tuple[bytes, bytes]] = []
        self.started = anyio.Event()
        self.disconnected = anyio.Event()
        self.finished = anyio.Event()
        self.error: BaseException | None = None
        self.scope = anyio.CancelScope()
        chunks: tuple[MemoryObjectSendStream[bytes], MemoryObjectReceiveStream[bytes]]
        chunks = anyio.create_memory_object_stream[bytes](16)
        self.to_client, self.from_app = chunks

    async def receive(self) -> ASGIReceiveEvent:
        if not self.body_sent:
            self.body_sent = True
            return {"type": "http.request", "body": self.request_body, "more_body": False}
        await self.disconnected.wait()
        return {"type": "http.disconnect"}

    async def send(self, message: ASGISendEvent) -> None:
        if message["type"] == "http.response.start":
            self.status = message["status"]
            self.headers = [(bytes(k), bytes(v)) for k, v in message.get("headers", [])]
            self.started.set()
        elif message["type"] == "http.response.body":
            body = message.get("body", b"")
            if self.disconnected.is_set():
                return  # the client left: what a server does with a late body
            if body:
                try:
                    await self.to_client.send(body)  # waits while the client does not read
                except (anyio.BrokenResourceError, anyio.ClosedResourceError):
                    return
            if not message.get("more_body", False):
                self.to_client.close()
                # ASGI: once the response is complete, receive() says http.disconnect
                # (as under uvicorn; apps such as Quart wait for it before they return).
                self.disconnected.set()


class _Body(httpx.AsyncByteStream):
    """The response body: the app's chunks as they are sent; closing it disconnects.

    Its own iterator, not an async generator: httpx never closes the iterator of a
    response closed before its end, and trio reports every async generator left so."""

    def __init__(self, exchange: _Exchange, transport: ASGIStreamTransport) -> None:
        self._exchange = exchange
        self._transport = transport

    def __aiter__(self) -> _Body:
        return self

    async def __anext__(self) -> bytes:
        exchange = self._exchange
        try:
            return await exchange.from_app.receive()
        except anyio.EndOfStream:
            pass
        await exchange.finished.wait()  # the app returned (or raised) after its last body
        if exchange.error is not None and self._transport.raise_app_exceptions:
            raise exchange.error
        raise StopAsyncIteration

    async def aclose(self) -> None:
        exchange = self._exchange
        exchange.disconnected.set()
        exchange.from_app.close()
        with anyio.CancelScope(shield=True):
            with anyio.move_on_after(self._transport.finish_timeout):
                await exchange.finished.wait()
            exchange.scope.cancel()  # an app that ignores the disconnect


class ASGIStreamTransport(httpx.AsyncBaseTransport):
    """An httpx transport to an ASGI app in this process, whose response bodies stream.

    Use the client as an async context manager: the apps run in the transport's task
    group, which lives as long as the client. Closing a response is the client's
    disconnect; an app that still runs ``finish_timeout`` seconds after it is
    cancelled. An exception the app raised is raised from the request (before the
    response started) or at the end of the body (after), unless
    ``raise_app_exceptions`` is false. No lifespan is run: enter your app's resources
    (a `Hub`) yourself.

    Args:
        app: Any ASGI application.
        root_path: Where the app is mounted; the scope's paths include it.
        client: The ``(host, port)`` the app sees as its client.
        raise_app_exceptions: False: an app's exception is not raised; a request
            whose app raised before answering gets a 500 instead.
        finish_timeout: Seconds an app has to finish once its client left (or the
            transport closes) before it is cancelled.

    Example:
        ```python
        transport = ASGIStreamTransport(app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            async with c.stream("GET", "/events") as response:
                async for line in response.aiter_lines():  # endless, in-process
                    ...
        ```
    """

    def __init__(
        self,
        app: Any,
        *,
        root_path: str = "",
        client: tuple[str, int] = ("127.0.0.1", 123),
        raise_app_exceptions: bool = True,
        finish_timeout: float = 5.0,
    ) -> None:
        self.app = app
        """The application the requests go to."""
        self.root_path = root_path
        """Where the app is mounted."""
        self.client = client
        """The ``(host, port)`` the app sees as its client."""
        self.raise_app_exceptions = raise_app_exceptions
        """Whether an app's exception is raised to the client code."""
        self.finish_timeout = finish_timeout
        """Seconds an app has to finish once its client left."""
        self._group: anyio.abc.TaskGroup | None = None
        self._running: set[_Exchange] = set()

    async def __aenter__(self) -> Self:
        group = anyio.create_task_group()
        await group.__aenter__()
        self._group = group
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None = None,
        exc: BaseException | None = None,
        traceback: TracebackType | None = None,
    ) -> None:
        group, self._group = self._group, None
        if group is None:
            return
        for exchange in list(self._running):  # responses never closed: their clients leave
            exchange.disconnected.set()
            exchange.from_app.close()
        with anyio.move_on_after(self.finish_timeout):
            for exchange in list(self._running):
                await exchange.finished.wait()
        group.cancel_scope.cancel()
        try:
            await group.__aexit__(exc_type, exc, traceback)
        except BaseExceptionGroup as errors:
            # The apps' errors are kept per exchange, so a group here holds the client
            # code's own exception (and maybe a cancellation): let it propagate as itself,
            # not wrapped (a failing assert, `pytest.raises` around the client).
            if wraps_only(errors, exc):
                return
            raise

    async def aclose(self) -> None:
        """Disconnect every response still open, give their apps ``finish_timeout``
        seconds to finish, cancel the rest (httpx calls it when the client closes)."""
        await self.__aexit__()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Start the app on ``request`` and return the response once its headers came
        (httpx calls it); the body streams as the app sends it.

        Raises:
            RuntimeError: the client was not entered (``async with``), so the
                transport has no task group to run the app in.
            Exception: what the app raised before it answered (unless
                ``raise_app_exceptions`` is false).
        """
        group = self._group
        if group is None:
            raise RuntimeError(
                "ASGIStreamTransport runs apps in a task group: use the client as "
                "`async with httpx.AsyncClient(transport=...) as client`"
            )
        body = b"".join([chunk async for chunk in request.stream])  # type: ignore[union-attr]
        exchange = _Exchange(body)
        group.start_soon(self._run, exchange, self._scope_of(request))
        try:
            await exchange.started.wait()
        except BaseException:
            # Cancelled before the response started: the client left.
            exchange.disconnected.set()
            exchange.from_app.close()
            raise
        if exchange.status is None:
            if exchange.error is not None and self.raise_app_exceptions:
                exchange.from_app.close()
                raise exchange.error
            exchange.status, exchange.headers = 500, []
        return httpx.Response(
            exchange.status,
            headers=exchange.headers,
            stream=_Body(exchange, self),
            request=request,
        )

    def _scope_of(self, request: httpx.Request) -> dict[str, Any]:
        url = request.url
        # The path as sent, decoded once by `http_scope` (as uvicorn does): httpx's
        # ``url.path`` is decoded already, and decoding it again would turn ``%2520``
        # into a space.
        raw_path = url.raw_path.split(b"?", 1)[0]
        return http_scope(
            method=request.method,
            path=raw_path.decode("ascii"),
            raw_path=raw_path,
            query_string=url.query,
            headers=[(key.lower(), value) for key, value in request.headers.raw],
            root_path=self.root_path,
            scheme=url.scheme,
            client=self.client,
            server=(url.host, url.port or (443 if url.scheme == "https" else 80)),
        )

    async def _run(self, exchange: _Exchange, scope: dict[str, Any]) -> None:
        """One app call, in the transport's task group; what it raised is kept."""
        self._running.add(exchange)
        try:
            with exchange.scope:
                await self.app(scope, exchange.receive, exchange.send)
        except Exception as exc:
            exchange.error = exc
        finally:
            self._running.discard(exchange)
            exchange.finished.set()
            exchange.to_client.close()
            exchange.started.set()
