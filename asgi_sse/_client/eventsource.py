"""`EventSource`: one event stream read as typed events, reconnecting as a browser does.

The loop and its state: connect (the request, the response accepted or refused), read
(chunks into the inbox, a silence timed), take (decoded), and on a failure choose the
wait before the next connection. The rules it applies live beside it: the request and
the response's checks in ``http``, the waits for the head and each chunk in
``connection``, the backoff in ``reconnect``, parsing in ``inbox``, decoding in
``decode``, the options' checks in ``options``. `asgi_sse.client`'s docstring is the
user's guide.

With ``connection``, the only module of the client that uses anyio (for trio and
asyncio alike). Must not import the server, the hub or the test tools.
"""

from __future__ import annotations

import logging
import math
import random
from collections.abc import Awaitable, Callable, Mapping
from types import TracebackType
from typing import Any, Generic, Literal, TypeVar, overload

import anyio
import httpx

from .._protocol.events import BaseEvent
from .._protocol.parser import ParsedEvent
from .._protocol.reset import Reset
from .._util.compat import Self, Unpack
from .connection import Body, send_for_head
from .decode import decode, event_classes
from .http import is_event_stream, read_error_body, refusal, retryable_status, stream_request
from .inbox import Inbox
from .options import SourceOptions, check_options
from .reconnect import DEFAULT_RETRY, backoff_delay, retry_after_seconds

__all__ = ("EventSource",)

_log = logging.getLogger("asgi_sse.client")

T = TypeVar("T")
E1 = TypeVar("E1", bound=BaseEvent[Any])
E2 = TypeVar("E2", bound=BaseEvent[Any])
E3 = TypeVar("E3", bound=BaseEvent[Any])
E4 = TypeVar("E4", bound=BaseEvent[Any])
E5 = TypeVar("E5", bound=BaseEvent[Any])


class EventSource(Generic[T]):
    """An event stream read as typed events, reconnecting as a browser does.

    Use it as ``async with EventSource(url, events=(A, B)) as source: async for event
    in source: ...``. Events come out as instances of the given `BaseEvent` classes
    (matched by their event name), `Reset` (the hub's), or `ParsedEvent` for a name no
    class has (``on_unknown="raise"``: `UnknownEvent` instead). Data that does not
    validate raises `InvalidEventData` naming the event (``on_invalid="raw"``: the
    `ParsedEvent` comes out instead). A 204 No Content ends the iteration cleanly.

    Args:
        url: The stream's URL (relative to the client's ``base_url``, if it has one).
        events: The event classes to decode into, matched by event name.
        client: The ``httpx.AsyncClient`` to send with; None: one is made when the
            source is entered, and closed when it is left.
        method: The HTTP method.
        headers: Request headers, sent on every connection; they override the
            browser's (``Accept``, ``Cache-Control``, ``Last-Event-ID``).
        content: A request body; a stream with a body is sent again only with
            ``resend``.
        json: A request body, as JSON (not with ``content``).
        resend: Send a stream with a body again when it reconnects (a POST may not be
            idempotent: by default the iteration ends instead).
        last_event_id: The id to resume after, sent as ``Last-Event-ID``.
        retry: The reconnection delay in seconds, until the server sets one.
        max_delay: The cap of the backoff between consecutive failures, in seconds.
        read_timeout: Seconds of silence (not even a keep-alive) that mean a dead
            connection, which reconnects; longer than the server's keep-alive. None:
            never.
        connect_timeout: Seconds to connect (and to read a refused response's body).
        reconnect_on: Statuses that reconnect (after their ``Retry-After``) instead of
            failing.
        max_retries: Consecutive failures that reconnect; the next one ends the
            iteration, raising its error (a body that just ended raises nothing).
            None: never give up.
        on_unknown: A frame whose event name no class has: ``"raw"`` gives its
            `ParsedEvent`, ``"raise"`` raises `UnknownEvent`.
        on_invalid: Data that does not validate as its class: ``"raise"`` raises
            `InvalidEventData`, ``"raw"`` gives the `ParsedEvent`.
        sleep: The clock of the reconnection waits (for tests).
        jitter: The randomness of the backoff, a number in [0, 1) (for tests).

    Raises:
        ValueError: at construction, for a ``retry`` that is negative or above
            ``max_delay``, a ``read_timeout`` that is not positive, a negative
            ``max_retries``, an unknown ``on_unknown`` or ``on_invalid``, or both
            ``content`` and ``json``.
        TypeError: at construction, for an ``events`` entry that is not a `BaseEvent`
            subclass.
        EventSourceError: while iterating, when the server answers something that is
            not an event stream (a status other than 200 and 204 that is not in
            ``reconnect_on``, or another content type), or when a ``reconnect_on``
            status was the last failure allowed.
        InvalidEventData: while iterating, for data that does not validate (with
            ``on_invalid="raise"``).
        UnknownEvent: while iterating, for an event name no class has (with
            ``on_unknown="raise"``).
        httpx.TransportError: while iterating, when a network error was the last
            failure allowed (past ``max_retries``, or a stream with a body that is not
            sent again).
        TimeoutError: likewise, when no response, or nothing at all, arrived in time.
        RuntimeError: when iterated without ``async with`` and without a ``client``.
    """

    @overload
    def __init__(
        self: EventSource[Reset | ParsedEvent],
        url: str | httpx.URL,
        *,
        events: tuple[()] = (),
        **options: Unpack[SourceOptions],
    ) -> None: ...
    @overload
    def __init__(
        self: EventSource[E1 | Reset | ParsedEvent],
        url: str | httpx.URL,
        *,
        events: tuple[type[E1]],
        **options: Unpack[SourceOptions],
    ) -> None: ...
    @overload
    def __init__(
        self: EventSource[E1 | E2 | Reset | ParsedEvent],
        url: str | httpx.URL,
        *,
        events: tuple[type[E1], type[E2]],
        **options: Unpack[SourceOptions],
    ) -> None: ...
    @overload
    def __init__(
        self: EventSource[E1 | E2 | E3 | Reset | ParsedEvent],
        url: str | httpx.URL,
        *,
        events: tuple[type[E1], type[E2], type[E3]],
        **options: Unpack[SourceOptions],
    ) -> None: ...
    @overload
    def __init__(
        self: EventSource[E1 | E2 | E3 | E4 | Reset | ParsedEvent],
        url: str | httpx.URL,
        *,
        events: tuple[type[E1], type[E2], type[E3], type[E4]],
        **options: Unpack[SourceOptions],
    ) -> None: ...
    @overload
    def __init__(
        self: EventSource[E1 | E2 | E3 | E4 | E5 | Reset | ParsedEvent],
        url: str | httpx.URL,
        *,
        events: tuple[type[E1], type[E2], type[E3], type[E4], type[E5]],
        **options: Unpack[SourceOptions],
    ) -> None: ...
    @overload
    def __init__(
        self: EventSource[BaseEvent[Any] | ParsedEvent],
        url: str | httpx.URL,
        *,
        events: tuple[type[BaseEvent[Any]], ...],
        **options: Unpack[SourceOptions],
    ) -> None: ...
    def __init__(
        self,
        url: str | httpx.URL,
        *,
        events: tuple[type[BaseEvent[Any]], ...] = (),
        client: httpx.AsyncClient | None = None,
        method: str = "GET",
        headers: Mapping[str, str] | None = None,
        content: bytes | None = None,
        json: Any = None,
        resend: bool = False,
        last_event_id: str = "",
        retry: float = DEFAULT_RETRY,
        max_delay: float = 30.0,
        read_timeout: float | None = 60.0,
        connect_timeout: float = 10.0,
        reconnect_on: tuple[int, ...] = (),
        max_retries: int | None = None,
        on_unknown: Literal["raw", "raise"] = "raw",
        on_invalid: Literal["raise", "raw"] = "raise",
        sleep: Callable[[float], Awaitable[None]] = anyio.sleep,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        check_options(
            retry=retry,
            max_delay=max_delay,
            read_timeout=read_timeout,
            max_retries=max_retries,
            on_unknown=on_unknown,
            on_invalid=on_invalid,
            content=content,
            json=json,
        )
        self.url = httpx.URL(url)
        """The stream's URL."""
        self._classes = event_classes(events)
        self._client = client
        self._owns_client = client is None
        self.method = method.upper()
        """The HTTP method, upper case."""
        self._headers = dict(headers or {})
        self._content = content
        self._json = json
        self.resend = resend
        """Whether a stream with a body is sent again when it reconnects."""
        self.last_event_id = last_event_id
        """The last event id (what the next connection sends as ``Last-Event-ID``): that
        of the last event taken, so a consumer may save it and resume without a loss."""
        self.retry = retry
        """The reconnection delay in seconds (the server's ``retry:`` once it sent one)."""
        self.max_delay = max_delay
        """The cap of the backoff, in seconds."""
        self.read_timeout = read_timeout
        """Seconds of silence that mean a dead connection (None: never)."""
        self.connect_timeout = connect_timeout
        """Seconds to connect."""
        self.reconnect_on = frozenset(reconnect_on)
        """Statuses that reconnect instead of failing."""
        self.max_retries = max_retries
        """Consecutive failures that reconnect (None: no limit)."""
        self.on_unknown = on_unknown
        """What an event name no class has gives: ``raw`` or ``raise``."""
        self.on_invalid = on_invalid
        """What data that does not validate gives: ``raise`` or ``raw``."""
        self._sleep = sleep
        self._jitter = jitter
        self.connections = 0
        """Connections attempted so far."""
        self.failures = 0
        """Consecutive failures now (an event arriving resets it)."""
        self.response: httpx.Response | None = None
        """The current (or last) response; None before the first."""
        self._body: Body | None = None  # the response's, while connected
        self._inbox = Inbox(last_event_id)
        self._wait_before: float | None = None  # seconds to wait before connecting
        self._ended = False
        self._sent_once = False
        self._last_error: BaseException | None = None

    # -- lifecycle ------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        if self._client is None:
            self._client = httpx.AsyncClient()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connection (and the client, if this source made it); no connection
        is made after this (events received already are still handed out). Idempotent."""
        self._ended = True
        await self._disconnect()
        if self._owns_client and self._client is not None:
            client, self._client = self._client, None
            await client.aclose()

    # -- iterating ------------------------------------------------------------------------

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> T:
        while True:
            if self._inbox:
                parsed, self.last_event_id = self._inbox.take()
                event: T = self._decode(parsed)
                return event
            if self._ended:
                raise StopAsyncIteration
            if self._body is None:
                await self._connect()
                continue
            await self._read(self._body)

    def _decode(self, parsed: ParsedEvent) -> Any:
        return decode(
            parsed, self._classes, on_unknown=self.on_unknown, on_invalid=self.on_invalid
        )

    # -- one connection -------------------------------------------------------------------

    async def _connect(self) -> None:
        if self._sent_once and not self._may_send_again():
            # The stream ends, with the error that ended it if any.
            self._ended = True
            if self._last_error is not None:
                raise self._last_error
            return
        await self._wait_for_reconnection_delay()
        client = self._client
        if client is None:
            raise RuntimeError("use the EventSource as `async with EventSource(...) as source`")
        response = await self._send(client, self._request(client))
        if response is None:
            return  # a failure, counted
        self.response = response
        if is_event_stream(response):
            self._start_reading(response)
            return
        try:
            await self._refused(response)
        finally:
            await response.aclose()

    def _may_send_again(self) -> bool:
        # A request with a body is not sent twice unasked (it may not be idempotent).
        has_body = self._content is not None or self._json is not None
        return self.resend or not has_body

    async def _wait_for_reconnection_delay(self) -> None:
        if self._wait_before is not None:
            await self._sleep(self._wait_before)
            self._wait_before = None

    def _request(self, client: httpx.AsyncClient) -> httpx.Request:
        return stream_request(
            client,
            self.method,
            self.url,
            last_event_id=self.last_event_id,
            headers=self._headers,
            content=self._content,
            json=self._json,
            connect_timeout=self.connect_timeout,
        )

    async def _send(
        self, client: httpx.AsyncClient, request: httpx.Request
    ) -> httpx.Response | None:
        """The response's head, or None after a failure (a network error, or no
        response within the connect and read timeouts) was counted."""
        self._sent_once = True
        self.connections += 1
        # No response headers in time is a silence too (the connect has its own timeout).
        wait = math.inf if self.read_timeout is None else self.connect_timeout + self.read_timeout
        try:
            response = await send_for_head(client, request, wait)
        except httpx.TransportError as exc:
            self._failed(exc)
            return None
        if response is None:
            self._failed(TimeoutError(f"no response within {wait} s"))
        return response

    def _start_reading(self, response: httpx.Response) -> None:
        self._inbox.reconnected(self.last_event_id)
        self._body = Body(response)

    async def _refused(self, response: httpx.Response) -> None:
        """Not an event stream: 204 ends the stream; a ``reconnect_on`` status is a
        failure (after its ``Retry-After``); any other answer raises."""
        if response.status_code == 204:
            self._ended = True
            return
        if response.status_code in self.reconnect_on:
            retry_after = retry_after_seconds(response.headers.get("retry-after"))
            self._failed(retryable_status(response), retry_after=retry_after)
            return
        body = b""
        with anyio.move_on_after(self.connect_timeout):
            body = await read_error_body(response)
        self._ended = True
        raise refusal(response, body)

    # -- reading ------------------------------------------------------------------------

    async def _read(self, body: Body) -> None:
        if body.interrupted:
            # The last read was cancelled from outside: reconnect at once, from the last
            # event id, with no failure counted and no wait.
            await self._disconnect()
            return
        error: Exception | None = None
        try:
            chunk = await body.next_chunk(self.read_timeout)
        except httpx.TransportError as exc:
            chunk, error = None, exc
        if chunk:
            self._receive(chunk)
            return
        # The body ended, the connection failed, or it stayed silent too long: all
        # reconnect (a browser does the same), after the delay.
        await self._disconnect()
        if chunk is None and error is None:
            error = TimeoutError(f"nothing arrived for {self.read_timeout} s")
        self._failed(error)

    def _receive(self, chunk: bytes) -> None:
        arrived = self._inbox.feed(chunk)
        if self._inbox.retry is not None:
            self.retry = self._inbox.retry
        if arrived:
            self.failures = 0  # an event arrived: the connection is healthy
        else:  # (else it follows the events as they are taken)
            self.last_event_id = self._inbox.last_event_id

    async def _disconnect(self) -> None:
        body, self._body = self._body, None
        response = self.response
        with anyio.CancelScope(shield=True):
            if body is not None:
                await body.aclose()
            if response is not None and not response.is_closed:
                await response.aclose()

    # -- failures -------------------------------------------------------------------------

    def _failed(self, error: BaseException | None, *, retry_after: float | None = None) -> None:
        """Count a failure and choose the wait before the next connection; past
        ``max_retries``, end the stream with ``error``."""
        self._last_error = error
        if self.max_retries is not None and self.failures >= self.max_retries:
            self._ended = True
            if error is not None:
                raise error
            return
        delay = backoff_delay(self.retry, self.max_delay, self.failures, self._jitter())
        if retry_after is not None:
            delay = max(delay, retry_after)
        self._wait_before = delay
        self.failures += 1
        _log.info("event stream %s: reconnecting in %.2f s (%s)", self.url, delay, error)
