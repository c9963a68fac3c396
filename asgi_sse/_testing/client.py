"""The in-process streaming client: `connect()` and its `TestStream` (the user's guide
is `asgi_sse.testing`'s docstring).

Runs the app in a task of the test's own task group and parses each body as it is
sent. Imports the protocol layer (the parser, typed events) and `_util`; never the
server layer - it tests any ASGI app, not only this package's - and never httpx (the
transport is the only module here that does).
"""

from __future__ import annotations

import json
import math
from collections import deque
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any, TypeVar, overload

import anyio

from .._protocol.errors import StreamClosed
from .._protocol.events import BaseEvent
from .._protocol.parser import Comment, EventStreamParser, ParsedEvent
from .._util.asgi import ASGIReceiveEvent, ASGISendEvent
from .scope import http_scope

__all__ = ("TestStream", "connect")

E = TypeVar("E", bound=BaseEvent[Any])


class TestStream:
    """One streaming response of an app under test. Made by `connect()`.

    ``async for event in stream`` yields the events (`ParsedEvent`) until the response
    ends, with no timeout. Every wait method takes a ``timeout`` in seconds, so that a
    test that waits for what never comes fails instead of hanging.
    """

    __test__ = False  # not a pytest test class

    def __init__(self) -> None:
        self.status: int | None = None
        """The response status, once its headers were sent."""
        self.headers: list[tuple[str, str]] = []
        """The response headers, names lower case, in order (see `header`)."""
        self.messages: list[ASGISendEvent] = []
        """Every ASGI message the app sent, in order."""
        self.comments: list[str] = []
        """The text of every comment line received (keep-alives), in order."""
        self.complete = False
        """The final body (``more_body=False``) was sent."""
        self.finished = False
        """The app returned (or raised)."""
        self.exception: BaseException | None = None
        """What the app raised, if it did."""
        self._items: deque[ParsedEvent | Comment] = deque()
        self._parser = EventStreamParser()
        self._changed = anyio.Event()
        self._disconnect = anyio.Event()
        self._unfrozen = anyio.Event()
        self._unfrozen.set()
        self._done = anyio.Event()

    # -- reading ------------------------------------------------------------------

    def header(self, name: str) -> str | None:
        """The first value of a response header (case-insensitive), or None."""
        name = name.lower()
        return next((value for key, value in self.headers if key == name), None)

    @property
    def last_event_id(self) -> str:
        """The last event id the stream set so far (what a browser would resend)."""
        return self._parser.last_event_id

    async def wait_started(self, timeout: float = 5.0) -> None:
        """Wait for the response headers.

        Raises:
            TimeoutError: when they do not come within ``timeout`` seconds.
            StreamClosed: when the app finished without sending a response.
        """
        await self._wait(lambda: self.status is not None or self.finished, timeout)
        if self.status is None:
            raise StreamClosed("the app finished without sending a response")

    @overload
    async def next_event(
        self, event_type: None = None, *, timeout: float = 5.0
    ) -> ParsedEvent: ...
    @overload
    async def next_event(self, event_type: type[E], *, timeout: float = 5.0) -> E: ...
    async def next_event(
        self, event_type: type[E] | None = None, *, timeout: float = 5.0
    ) -> ParsedEvent | E:
        """The next dispatched event (comments skip into `comments`).

        Args:
            event_type: A `BaseEvent` subclass: the event is checked to carry that
                class's event name and decoded into it. None: the `ParsedEvent`.
            timeout: Seconds to wait for each item at most.

        Raises:
            TimeoutError: when nothing arrives within ``timeout`` seconds.
            StreamClosed: when the response ends first.
            AssertionError: when the event name is not the expected one (raised, not
                asserted: it holds under ``python -O`` too).
            pydantic.ValidationError: when the data does not validate as
                ``event_type``.
        """
        while True:
            item = await self.next_item(timeout=timeout)
            if isinstance(item, ParsedEvent):
                break
        if event_type is None:
            return item
        expected = event_type.event_name or "message"
        if item.event != expected:
            raise AssertionError(f"expected a {expected!r} event, got {item!r}")
        return self._decode(event_type, item)

    def _decode(self, event_type: type[E], item: ParsedEvent) -> E:
        # (One place where a frame becomes a typed event: the suite checks each one
        # against its class's schema here, tests/conftest.py.)
        return event_type.decode(item.data, id=item.id or None)

    async def next_item(self, *, timeout: float = 5.0) -> ParsedEvent | Comment:
        """The next event or comment, in stream order.

        Raises:
            TimeoutError: when nothing arrives within ``timeout`` seconds.
            StreamClosed: when the response ends first.
        """
        await self._wait(lambda: bool(self._items) or self.complete or self.finished, timeout)
        if self._items:
            return self._items.popleft()
        raise StreamClosed(
            "the stream ended" + (f": {self.exception!r}" if self.exception else "")
        )

    async def events(self, count: int, *, timeout: float = 5.0) -> list[ParsedEvent]:
        """The next ``count`` events.

        Raises:
            TimeoutError: when one of them does not arrive within ``timeout`` seconds.
            StreamClosed: when the response ends first.
        """
        return [await self.next_event(timeout=timeout) for _ in range(count)]

    def json(self, event: ParsedEvent) -> Any:
        """``event.data`` parsed as JSON.

        Raises:
            json.JSONDecodeError: (a `ValueError`) when it is not JSON.
        """
        return json.loads(event.data)

    async def __aiter__(self) -> AsyncIterator[ParsedEvent]:
        while True:
            try:
                yield await self.next_event(timeout=math.inf)
            except StreamClosed:
                return

    # -- acting -------------------------------------------------------------------

    async def disconnect(self, *, timeout: float = 5.0) -> None:
        """Leave like a browser closing the tab, and wait for the app to finish: its
        ``receive()`` says ``http.disconnect``, its next ``send`` raises `OSError`
        (ASGI 2.4).

        Raises:
            TimeoutError: when the app does not finish within ``timeout`` seconds.
        """
        self._leave()
        await self.wait_finished(timeout=timeout)

    async def wait_finished(self, *, timeout: float = 5.0) -> None:
        """Wait for the app to return (or raise).

        Raises:
            TimeoutError: when it does not within ``timeout`` seconds.
        """
        await self._wait(lambda: self.finished, timeout)

    def freeze(self) -> None:
        """Stop reading: every further `send` of the app blocks (a frozen client)."""
        self._unfrozen = anyio.Event()

    def unfreeze(self) -> None:
        """Read again: the blocked `send` goes on (undoes `freeze`)."""
        self._unfrozen.set()

    # -- the ASGI side ------------------------------------------------------------

    async def _wait(self, condition: Any, timeout: float) -> None:
        with anyio.fail_after(timeout):
            while not condition():
                changed = self._changed
                await changed.wait()

    def _notify(self) -> None:
        self._changed.set()
        self._changed = anyio.Event()

    def _leave(self) -> None:
        self._disconnect.set()
        self._unfrozen.set()
        self._notify()

    async def _receive_after_request(self) -> ASGIReceiveEvent:
        # ASGI: `http.disconnect` once the client left - or once the response is complete
        # (apps such as Quart wait for it before they return).
        await self._wait(lambda: self._disconnect.is_set() or self.complete, math.inf)
        return {"type": "http.disconnect"}

    async def _send(self, message: ASGISendEvent) -> None:
        await self._unfrozen.wait()
        if self._disconnect.is_set():
            raise OSError("client disconnected")  # ASGI 2.4 behaviour
        self.messages.append(message)
        if message["type"] == "http.response.start":
            self.status = message["status"]
            self.headers = [
                (k.decode("latin-1").lower(), v.decode("latin-1")) for k, v in message["headers"]
            ]
        elif message["type"] == "http.response.body":
            items = self._parser.feed(message["body"])
            if not message.get("more_body", False):
                items += self._parser.close()
                self.complete = True
            for item in items:
                if isinstance(item, Comment):
                    self.comments.append(item.text)
                self._items.append(item)
        self._notify()


@asynccontextmanager
async def connect(
    app: Any,
    path: str = "/",
    *,
    method: str = "GET",
    headers: Mapping[str, str] | Sequence[tuple[str, str]] = (),
    body: bytes = b"",
    last_event_id: str | None = None,
    root_path: str = "",
    scope_extra: Mapping[str, Any] | None = None,
    finish_timeout: float = 5.0,
    raise_app_exceptions: bool = True,
) -> AsyncIterator[TestStream]:
    """Open an event stream to ``app`` in-process and yield a `TestStream`.

    The app runs in a task beside the test (in a task group the block enters), as
    under a server speaking ASGI 3.0 (HTTP spec 2.4) at ``http://testserver``. Leaving
    the block disconnects (if the app still runs) and waits up to ``finish_timeout``
    seconds for the app to return; an exception the app raised is re-raised there
    unless ``raise_app_exceptions`` is false.

    Args:
        app: Any ASGI application.
        path: The path, with its query string if any (``/events?topic=a``).
        method: The HTTP method.
        headers: Request headers (a mapping, or pairs for repeated names).
        body: The whole request body.
        last_event_id: Sent as the ``Last-Event-ID`` header (UTF-8, as a browser
            sends it).
        root_path: Where the app is mounted; the scope's paths include it.
        scope_extra: Keys added to (or replacing) the scope's.
        finish_timeout: Seconds the app has to finish once the block is left.
        raise_app_exceptions: False: what the app raised is only kept, in
            `TestStream.exception`.

    Yields:
        The response, as it streams.

    Raises:
        TimeoutError: when the app does not finish after the disconnect.
        Exception: what the app raised, when the block is left (unless
            ``raise_app_exceptions`` is false); an exception raised in the block
            itself comes out first, as itself.
    """
    scope = _request_scope(path, method, headers, last_event_id, root_path, scope_extra)
    stream = TestStream()
    # Note: errors are kept and raised after the task group, so that a failing assert
    # in the test body comes out as itself, not wrapped in an ExceptionGroup.
    body_error: Exception | None = None
    timed_out = False
    async with anyio.create_task_group() as task_group:
        task_group.start_soon(_run_app, app, scope, body, stream)
        try:
            yield stream
        except Exception as exc:
            body_error = exc
        if not await _leave_and_wait(stream, finish_timeout):
            timed_out = True
            task_group.cancel_scope.cancel()
    if body_error is not None:
        raise body_error
    if timed_out:
        msg = f"the app did not finish within {finish_timeout}s after the client disconnected"
        raise TimeoutError(msg)
    if raise_app_exceptions and stream.exception is not None:
        raise stream.exception


def _request_scope(
    path: str,
    method: str,
    headers: Mapping[str, str] | Sequence[tuple[str, str]],
    last_event_id: str | None,
    root_path: str,
    scope_extra: Mapping[str, Any] | None,
) -> dict[str, Any]:
    """The scope of ``path`` (with its query) as a browser at testserver asks for it."""
    raw_path, _, query = path.partition("?")
    pairs = [
        (name.lower().encode("latin-1"), value.encode("latin-1"))
        for name, value in (headers.items() if isinstance(headers, Mapping) else headers)
    ]
    if last_event_id is not None:
        # As a browser sends it: UTF-8 encoded (WHATWG HTML 9.2.4).
        pairs.append((b"last-event-id", last_event_id.encode("utf-8")))
    pairs.append((b"host", b"testserver"))
    scope = http_scope(
        method=method.upper(),
        path=raw_path,
        raw_path=raw_path.encode(),
        query_string=query.encode(),
        headers=pairs,
        root_path=root_path,
        scheme="http",
        client=("127.0.0.1", 50000),
        server=("testserver", 80),
    )
    scope.update(scope_extra or {})
    return scope


async def _run_app(app: Any, scope: dict[str, Any], body: bytes, stream: TestStream) -> None:
    """Call the app with ``body`` as the whole request; keep what it raised."""
    body_sent = False

    async def receive() -> ASGIReceiveEvent:
        nonlocal body_sent
        if not body_sent:
            body_sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await stream._receive_after_request()

    try:
        await app(scope, receive, stream._send)
    except BaseException as exc:
        stream.exception = exc
        if not isinstance(exc, Exception):
            raise
    finally:
        stream.finished = True
        stream._notify()


async def _leave_and_wait(stream: TestStream, finish_timeout: float) -> bool:
    """Disconnect unless the app finished, and wait for it; False if it did not finish
    within ``finish_timeout`` seconds."""
    if stream.finished:
        return True
    stream._leave()
    with anyio.move_on_after(finish_timeout):
        while not stream.finished:
            await stream._changed.wait()
    return stream.finished
