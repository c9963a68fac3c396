"""The implementation of `asgi_sse.client` (whose docstring is the user's guide)."""

from __future__ import annotations

import email.utils
import logging
import math
import random
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any, Generic, Literal, TypedDict, TypeVar, overload

import anyio
from pydantic import ValidationError

from .._protocol.errors import SSEError
from .._protocol.events import BaseEvent
from .._protocol.parser import Comment, EventStreamParser, ParsedEvent
from .._protocol.reset import Reset

try:
    import httpx
except ImportError as exc:  # pragma: no cover - the extra is installed in the tests
    raise ImportError("asgi_sse.client needs httpx: pip install 'asgi-sse[client]'") from exc

if TYPE_CHECKING:
    from typing_extensions import Self, Unpack

__all__ = ("EventSource", "EventSourceError", "InvalidEventData", "UnknownEvent")

_log = logging.getLogger("asgi_sse.client")

T = TypeVar("T")
E1 = TypeVar("E1", bound=BaseEvent[Any])
E2 = TypeVar("E2", bound=BaseEvent[Any])
E3 = TypeVar("E3", bound=BaseEvent[Any])
E4 = TypeVar("E4", bound=BaseEvent[Any])
E5 = TypeVar("E5", bound=BaseEvent[Any])

#: The reconnection delay before the server sets one (seconds; browsers use about 3).
DEFAULT_RETRY = 3.0
#: Where consecutive failures start backing off from when the delay is (about) zero.
MIN_BACKOFF = 0.05


class EventSourceError(SSEError):
    """The server answered something that is not an event stream (a status other than
    200 or 204, or another content type): the stream will not reconnect.

    ``response`` is that response (closed), ``body`` the start of its body (up to
    64 KiB)."""

    def __init__(self, message: str, response: httpx.Response, body: bytes = b"") -> None:
        super().__init__(message)
        self.response = response
        self.body = body


class InvalidEventData(SSEError, ValueError):
    """A frame named a known event class but its data does not validate as that class.

    ``event`` is the frame as parsed; ``__cause__`` is pydantic's error."""

    def __init__(self, message: str, event: ParsedEvent) -> None:
        super().__init__(message)
        self.event = event


class UnknownEvent(SSEError):
    """A frame named no event class given (``on_unknown="raise"``); ``event`` is it."""

    def __init__(self, message: str, event: ParsedEvent) -> None:
        super().__init__(message)
        self.event = event


class SourceOptions(TypedDict, total=False):
    """The options of `EventSource` besides the URL and the event classes."""

    client: httpx.AsyncClient | None
    method: str
    headers: Mapping[str, str] | None
    content: bytes | None
    json: Any
    resend: bool
    last_event_id: str
    retry: float
    max_delay: float
    read_timeout: float | None
    connect_timeout: float
    reconnect_on: tuple[int, ...]
    max_retries: int | None
    on_unknown: Literal["raw", "raise"]
    on_invalid: Literal["raise", "raw"]
    sleep: Callable[[float], Awaitable[None]]
    jitter: Callable[[], float]


class EventSource(Generic[T]):
    """An event stream read as typed events, reconnecting as a browser does.

    Use it as ``async with EventSource(url, events=(A, B)) as source: async for event
    in source: ...``. Events come out as instances of the given `BaseEvent` classes
    (matched by their event name), `Reset` (the hub's), or `ParsedEvent` for a name no
    class has (``on_unknown="raise"``: `UnknownEvent` instead). Data that does not
    validate raises `InvalidEventData` naming the event (``on_invalid="raw"``: the
    `ParsedEvent` comes out instead).

    Options: ``client`` (an ``httpx.AsyncClient``; one is made and closed if None),
    ``method``, ``headers``, ``content`` or ``json`` (a request body: the stream is only
    sent again if ``resend``), ``last_event_id`` (to resume from), ``retry`` (the
    reconnection delay until the server sets one, seconds), ``max_delay`` (the backoff's
    cap), ``read_timeout`` (seconds of silence that mean a dead connection; longer than
    the server's keep-alive; None: never), ``connect_timeout``, ``reconnect_on``
    (statuses that reconnect instead of failing), ``max_retries`` (consecutive failures
    before the last error is raised; None: never give up), and ``sleep`` and ``jitter``
    (the clock and the randomness, for tests).
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
        if not retry >= 0 or not max_delay >= retry:
            raise ValueError(f"need 0 <= retry <= max_delay, got {retry} and {max_delay}")
        if read_timeout is not None and not read_timeout > 0:
            raise ValueError(f"read_timeout must be positive seconds or None, got {read_timeout}")
        if max_retries is not None and max_retries < 0:
            raise ValueError(f"max_retries must be >= 0 or None, got {max_retries}")
        if on_unknown not in ("raw", "raise") or on_invalid not in ("raise", "raw"):
            raise ValueError("on_unknown is 'raw' or 'raise'; on_invalid is 'raise' or 'raw'")
        if content is not None and json is not None:
            raise ValueError("give content or json, not both")
        self.url = httpx.URL(url)
        self._classes: dict[str, type[BaseEvent[Any]]] = {"reset": Reset}
        for cls in events:
            if not (isinstance(cls, type) and issubclass(cls, BaseEvent)):
                raise TypeError(f"events are BaseEvent subclasses, not {cls!r}")
            self._classes[cls.event_name or "message"] = cls
        self._client = client
        self._owns_client = client is None
        self.method = method.upper()
        self._headers = dict(headers or {})
        self._content = content
        self._json = json
        self.resend = resend
        #: The last event id (what the next connection sends as ``Last-Event-ID``).
        self.last_event_id = last_event_id
        #: The reconnection delay in seconds (the server's ``retry:`` once it sent one).
        self.retry = retry
        self.max_delay = max_delay
        self.read_timeout = read_timeout
        self.connect_timeout = connect_timeout
        self.reconnect_on = frozenset(reconnect_on)
        self.max_retries = max_retries
        self.on_unknown = on_unknown
        self.on_invalid = on_invalid
        self._sleep = sleep
        self._jitter = jitter
        #: Connections made so far, and consecutive failures now.
        self.connections = 0
        self.failures = 0
        #: The current (or last) response.
        self.response: httpx.Response | None = None
        self._chunks: Any = None
        self._parser = EventStreamParser(last_event_id)
        self._ready: deque[ParsedEvent] = deque()
        self._wait_before: float | None = None  # seconds to wait before connecting
        self._ended = False
        self._sent_once = False
        self._last_error: BaseException | None = None
        self._interrupted = False  # a read was cancelled from outside

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
        """Close the connection (and the client, if this source made it)."""
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
            if self._ready:
                parsed = self._ready.popleft()
                # The id of the event taken, not of the last one parsed: the consumer
                # may save it and resume from it without a loss.
                self.last_event_id = parsed.id if self._ready else self._parser.last_event_id
                event: T = self._decode(parsed)
                return event
            if self._ended:
                raise StopAsyncIteration
            if self._chunks is None:
                await self._connect()
                continue
            await self._read()

    def _decode(self, parsed: ParsedEvent) -> Any:
        cls = self._classes.get(parsed.event)
        if cls is None:
            if self.on_unknown == "raise":
                raise UnknownEvent(f"an event named {parsed.event!r}: no class given", parsed)
            return parsed
        try:
            return cls.decode(parsed.data, id=parsed.id)
        except ValidationError as exc:
            if self.on_invalid == "raw":
                return parsed
            where = f" (id {parsed.id!r})" if parsed.id else ""
            raise InvalidEventData(
                f"the data of a {parsed.event!r} event{where} is not a valid "
                f"{cls.__name__}: {exc}",
                parsed,
            ) from exc

    # -- one connection -------------------------------------------------------------------

    async def _connect(self) -> None:
        has_body = self._content is not None or self._json is not None
        if self._sent_once and has_body and not self.resend:
            # A request with a body is not sent twice unasked (it may not be
            # idempotent): the stream ends, with the error that ended it if any.
            self._ended = True
            if self._last_error is not None:
                raise self._last_error
            return
        if self._wait_before is not None:
            await self._sleep(self._wait_before)
            self._wait_before = None
        client = self._client
        if client is None:
            raise RuntimeError("use the EventSource as `async with EventSource(...) as source`")
        pairs = [(b"Accept", b"text/event-stream"), (b"Cache-Control", b"no-store")]
        if self.last_event_id:
            # UTF-8, as a browser sends it (httpx would refuse a str that is not ASCII).
            pairs.append((b"Last-Event-ID", self.last_event_id.encode()))
        headers = httpx.Headers(pairs)
        headers.update(self._headers)
        request = client.build_request(
            self.method,
            self.url,
            headers=headers,
            content=self._content,
            json=self._json,
            timeout=httpx.Timeout(self.connect_timeout, read=None),
        )
        self._sent_once = True
        self.connections += 1
        # No response headers in time is a silence too (the connect has its own timeout).
        wait = math.inf if self.read_timeout is None else self.connect_timeout + self.read_timeout
        response: httpx.Response | None = None
        with anyio.move_on_after(wait):
            try:
                response = await client.send(request, stream=True, follow_redirects=True)
            except httpx.TransportError as exc:
                self._failed(exc)
                return
        if response is None:
            self._failed(TimeoutError(f"no response within {wait} s"))
            return
        self.response = response
        if response.status_code == 200 and _is_event_stream(response):
            self._parser = EventStreamParser(self.last_event_id)
            # Decoded: httpx asks for gzip, so a server or a proxy may compress.
            self._chunks = response.aiter_bytes()
            return
        try:
            if response.status_code == 204:
                self._ended = True
                return
            if response.status_code in self.reconnect_on:
                # The error raised if this was the last retry (not a clean end: a 204).
                error = EventSourceError(
                    f"the server answered {response.status_code} {response.reason_phrase} "
                    f"({response.url})",
                    response,
                )
                self._failed(error, retry_after=_retry_after(response))
                return
            body = b""
            with anyio.move_on_after(self.connect_timeout):
                body = await _read_some(response, 65536)
            if response.status_code != 200:
                why = f"the server answered {response.status_code} {response.reason_phrase}"
            else:
                kind = response.headers.get("content-type", "no content type")
                why = f"the server answered {kind}, not text/event-stream"
            self._ended = True
            raise EventSourceError(f"{why} ({response.url}): not an event stream", response, body)
        finally:
            if self._chunks is None:
                await response.aclose()

    async def _read(self) -> None:
        if self._interrupted:
            # The last read was cancelled from outside (a timeout around anext()), which
            # ends httpx's body iterator: reconnect at once, from the last event id, with
            # no failure counted and no wait.
            self._interrupted = False
            await self._disconnect()
            return
        chunk: bytes | None = None
        error: Exception | None = None
        timeout = float("inf") if self.read_timeout is None else self.read_timeout
        with anyio.move_on_after(timeout) as silence:
            try:
                chunk = await self._chunks.__anext__()
            except StopAsyncIteration:
                chunk = b""
            except httpx.TransportError as exc:
                error = exc
            except BaseException:
                self._interrupted = True  # cleared below if it was the read timeout
                raise
        self._interrupted = False
        if silence.cancelled_caught:
            chunk = None
        if chunk:
            items = self._parser.feed(chunk)
            if self._parser.retry is not None:
                self.retry = self._parser.retry / 1000
            for item in items:
                if not isinstance(item, Comment):
                    self._ready.append(item)
            if self._ready:
                self.failures = 0  # an event arrived: the connection is healthy
            else:  # (else it follows the events as they are taken)
                self.last_event_id = self._parser.last_event_id
            return
        # The body ended, the connection failed, or it stayed silent too long: all
        # reconnect (a browser does the same), after the delay.
        await self._disconnect()
        if chunk is None and error is None:
            error = TimeoutError(f"nothing arrived for {self.read_timeout} s")
        self._failed(error)

    async def _disconnect(self) -> None:
        chunks, self._chunks = self._chunks, None
        response = self.response
        with anyio.CancelScope(shield=True):
            if chunks is not None:
                await chunks.aclose()  # not left to the garbage collector (trio warns)
            if response is not None and not response.is_closed:
                await response.aclose()

    def _failed(self, error: BaseException | None, *, retry_after: float | None = None) -> None:
        """Count a failure and choose the wait before the next connection."""
        self._last_error = error
        if self.max_retries is not None and self.failures >= self.max_retries:
            self._ended = True
            if error is not None:
                raise error
            return
        delay = self._delay()
        if retry_after is not None:
            delay = max(delay, retry_after)
        self._wait_before = delay
        self.failures += 1
        _log.info("event stream %s: reconnecting in %.2f s (%s)", self.url, delay, error)

    def _delay(self) -> float:
        """The wait before the next connection: the reconnection delay doubled per
        consecutive failure, capped, minus up to a fifth of jitter."""
        # (2.0 ** failures overflows after ~1000 failures: the cap is long reached.)
        growth = 2.0 ** min(self.failures, 64)
        # A reconnection delay of 0 (``retry: 0``) reconnects at once - once: the
        # failures after it back off from MIN_BACKOFF, never in a tight loop.
        start = self.retry if self.failures == 0 else max(self.retry, MIN_BACKOFF)
        base: float = min(max(self.max_delay, self.retry), start * growth)
        return base * (1 - 0.2 * self._jitter())


def _is_event_stream(response: httpx.Response) -> bool:
    kind: str = response.headers.get("content-type", "")
    return kind.split(";", 1)[0].strip().lower() == "text/event-stream"


def _retry_after(response: httpx.Response) -> float | None:
    """``Retry-After`` in seconds (a number or an HTTP date), or None."""
    value = response.headers.get("retry-after")
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


async def _read_some(response: httpx.Response, limit: int) -> bytes:
    """Up to ``limit`` bytes of an error body (decoded, as httpx decodes it), for the
    exception."""
    body = bytearray()
    chunks: Any = response.aiter_bytes()  # an async generator: closed, not left to the GC
    try:
        async for chunk in chunks:
            body += chunk
            if len(body) >= limit:
                break
    finally:
        await chunks.aclose()
    return bytes(body[:limit])
