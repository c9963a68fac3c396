"""The options of a streaming response: declared once, validated once.

`ResponseOptions` (and `EndpointOptions`, which adds what only an endpoint uses) is
the one declaration of the option keywords. Every entry point - `EventSourceResponse`,
`SSEEndpoint`, `SSEMiddleware`, the Starlette adapter - takes them as
``**options: Unpack[...]`` (PEP 692: a type checker sees each keyword with its type)
and forwards them to `response_options` or `endpoint_options`, the one place that
builds the frozen `StreamOptions` (which holds the defaults and the checks) and refuses
a keyword the entry point does not take. A type checker holds both builders'
``StreamOptions(**options)`` to the declaration, and `spell_out_options` puts the
keywords back into each entry point's runtime signature (``help()``, IDEs), so users
see the same signatures as when each entry point spelled them out.

Everything that is the same for every response is done here, at construction: the
headers are checked and encoded, the keep-alive is encoded (or wrapped, when it is a
function), the numbers are checked. A response then only reads the value.

Imports the wire and events layers; nothing async, nothing ASGI.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from typing import TypedDict, TypeVar

from .._protocol.events import BaseEvent
from .._protocol.wire import ServerSentEvent, check_retry

# At run time, not under TYPE_CHECKING: the TypedDicts are public (asgi_sse.types), and
# typing.get_type_hints of them must resolve every option's type.
from .aliases import HeadersLike, PingEvent
from .observer import StreamObserver

__all__ = (
    "DEFAULTS",
    "DEFAULT_HEADERS",
    "DEFAULT_LAST_EVENT_ID_PARAM",
    "DEFAULT_PING",
    "DEFAULT_SEND_TIMEOUT",
    "PING_COMMENT",
    "EndpointOptions",
    "ResponseOptions",
    "StreamOptions",
    "build_headers",
    "endpoint_options",
    "keepalive_body",
    "response_options",
    "spell_out_options",
)

#: Seconds of silence before a keep-alive goes out: under the idle timeouts of common
#: proxies (nginx and Cloud Run 60 s, API Gateway 29 s).
DEFAULT_PING = 15.0
#: Seconds one piece of the body may wait for the client to read before it is dropped.
DEFAULT_SEND_TIMEOUT = 30.0
#: The query parameter that carries a last event id on a first connection.
DEFAULT_LAST_EVENT_ID_PARAM = "lastEventId"

# WHATWG HTML 9.2.7 "Authoring notes": comment lines keep connections alive through
# proxies. One line, no blank line after it: `: ping\n\n` shows up as an empty event in
# some client parsers (httpx-sse#35).
PING_COMMENT = b": ping\n"

DEFAULT_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"content-type", b"text/event-stream"),
    # no-transform: proxies must not compress or otherwise buffer the stream.
    (b"cache-control", b"no-cache, no-transform"),
    # nginx buffers responses unless told not to.
    (b"x-accel-buffering", b"no"),
)
# Note: no `connection: keep-alive` - it is forbidden in HTTP/2 (RFC 9113, 8.2.2), and
# these framing headers are the server's business, never the application's. The
# connection-specific fields of RFC 9113 8.2.2 are all refused: an HTTP/2 message that
# holds one is malformed there.
_SERVER_HEADERS = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"transfer-encoding",
        b"upgrade",
        b"content-length",
    }
)


class ResponseOptions(TypedDict, total=False):
    """The keywords every streaming response takes (all optional): `EventSourceResponse`,
    `SSEEndpoint`, `SSEMiddleware` and `asgi_sse.starlette.EventSourceResponse`."""

    ping: float | None
    """Seconds of silence before a keep-alive goes out (default 15; None: never)."""
    ping_event: PingEvent | None
    """The keep-alive as an event a browser's EventSource sees, or a function returning
    a fresh one each time (default: the ``: ping`` comment, which it does not see)."""
    send_timeout: float | None
    """Seconds the client may go without reading a piece of the body before it is
    dropped (default 30; None: never)."""
    headers: HeadersLike | None
    """Response headers, merged over the event-stream defaults (case-insensitively)."""
    observer: StreamObserver | None
    """A `StreamObserver` told when each response opens and closes (default: none)."""
    retry: int | None
    """Milliseconds a browser waits before it reconnects, sent as the body's first line
    (``retry: N``) before the stream's events, whatever the stream is (a hub
    subscription too); default None: not sent, and browsers wait about 3 s."""


class EndpointOptions(ResponseOptions, total=False):
    """The keywords of `SSEEndpoint` and `SSEMiddleware`: a response's, and two more."""

    methods: tuple[str, ...] | None
    """The HTTP methods that stream, any case (default: every method but OPTIONS);
    others are answered 405, OPTIONS 204, both with an ``Allow`` header."""
    last_event_id_param: str
    """The query parameter read as the last event id when no ``Last-Event-ID`` header
    came (default ``lastEventId``; empty: none)."""


def build_headers(headers: HeadersLike | None) -> tuple[tuple[bytes, bytes], ...]:
    """Default SSE headers with the user's merged over them (case-insensitively).

    Raises:
        ValueError: for a header the server owns (content-length and the
            connection-specific connection, keep-alive, proxy-connection,
            transfer-encoding, upgrade), a content-type other than text/event-stream,
            or a name or value containing CR, LF or NUL (header injection).
    """
    if headers is None:
        return DEFAULT_HEADERS  # one shared tuple, not a copy per response
    defaults = dict(DEFAULT_HEADERS)
    extra: list[tuple[bytes, bytes]] = []
    pairs = headers.items() if isinstance(headers, Mapping) else headers
    for raw_name, raw_value in pairs:
        name = (raw_name.encode("latin-1") if isinstance(raw_name, str) else raw_name).lower()
        value = raw_value.encode("latin-1") if isinstance(raw_value, str) else raw_value
        if not name or any(c in name + value for c in (b"\r", b"\n", b"\0")):
            msg = f"header {name!r}: {value!r} contains CR, LF or NUL (or has an empty name)"
            raise ValueError(msg)
        if name in _SERVER_HEADERS:
            msg = f"header {name.decode()!r} is set by the server; remove it from headers="
            raise ValueError(msg)
        if name == b"content-type" and not value.lower().startswith(b"text/event-stream"):
            msg = f"an event stream's content-type must be text/event-stream, got {value!r}"
            raise ValueError(msg)
        if name in defaults:
            defaults[name] = value  # the user's value replaces the default
        else:
            extra.append((name, value))  # repeated names (set-cookie) all go out
    return (*defaults.items(), *extra)


def keepalive_body(ping_event: PingEvent | None) -> bytes | Callable[[], bytes]:
    """The keep-alive to send: the `: ping` comment, an event's frame (encoded once), or
    a function that encodes a fresh event each time.

    Raises:
        TypeError: for anything that is not a `PingEvent`.
    """
    if ping_event is None:
        return PING_COMMENT
    if isinstance(ping_event, (BaseEvent, ServerSentEvent)):
        return ping_event.encode()
    if callable(ping_event):
        make = ping_event

        def encode_ping() -> bytes:
            event = make()
            if not isinstance(event, (BaseEvent, ServerSentEvent)):
                msg = f"ping_event returned {type(event).__name__}, not an event"
                raise TypeError(msg)
            return event.encode()

        return encode_ping
    msg = (
        f"ping_event must be a BaseEvent, a ServerSentEvent or a function returning one, "
        f"got {type(ping_event).__name__}"
    )
    raise TypeError(msg)


def _check_seconds(name: str, value: float | None) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        msg = f"{name} must be a number of seconds or None, not {type(value).__name__}"
        raise TypeError(msg)
    if not value > 0:  # also refuses NaN
        raise ValueError(f"{name} must be a positive number of seconds or None, got {value}")


@dataclass(frozen=True, slots=True, eq=False)
class StreamOptions:
    """How responses stream: built and checked once, shared by every response.

    Raises:
        ValueError: for a ping or send_timeout that is not positive, a negative retry,
            unsendable headers (see `build_headers`), or an empty method name.
        TypeError: for a ping_event that is not an event or a function, or numbers of
            the wrong type (a retry that is not an int).
    """

    ping: float | None = DEFAULT_PING
    ping_event: PingEvent | None = None
    send_timeout: float | None = DEFAULT_SEND_TIMEOUT
    headers: HeadersLike | None = None
    #: The methods an endpoint streams for; None: every method but OPTIONS.
    methods: tuple[str, ...] | None = None
    last_event_id_param: str = DEFAULT_LAST_EVENT_ID_PARAM
    #: Told when each response opens and closes (metrics); None costs nothing.
    observer: StreamObserver | None = None
    #: The reconnection delay sent first, in milliseconds; None: none.
    retry: int | None = None
    # Derived once:
    header_list: tuple[tuple[bytes, bytes], ...] = field(init=False, repr=False)
    keepalive: bytes | Callable[[], bytes] = field(init=False, repr=False)
    #: ``retry: N`` and a blank line (no data: a client dispatches no event); or None.
    retry_frame: bytes | None = field(init=False, repr=False)

    def __post_init__(self) -> None:
        _check_seconds("ping", self.ping)
        _check_seconds("send_timeout", self.send_timeout)
        set_ = object.__setattr__  # frozen: derived fields are set once, here
        retry = None if self.retry is None else check_retry(self.retry)
        set_(self, "retry_frame", None if retry is None else b"retry: %d\n\n" % retry)
        set_(self, "header_list", build_headers(self.headers))
        set_(self, "keepalive", keepalive_body(self.ping_event))
        if self.methods is not None:
            methods = tuple(method.upper() for method in self.methods)
            if not all(methods):
                raise ValueError("methods= holds an empty method name")
            set_(self, "methods", methods)

    def allows(self, method: str) -> bool:
        """Whether an endpoint streams for ``method`` (never OPTIONS unless listed)."""
        if self.methods is None:
            return method != "OPTIONS"
        return method in self.methods

    def allow_header(self) -> bytes:
        """The `Allow` header's value for 405 and OPTIONS answers."""
        methods = self.methods or ("GET", "HEAD", "POST")
        return ", ".join(dict.fromkeys((*methods, "OPTIONS"))).encode("latin-1")


#: The options of a response made with no options given (shared, not one per response).
DEFAULTS = StreamOptions()

_RESPONSE_KEYWORDS = frozenset(ResponseOptions.__annotations__)
_ENDPOINT_KEYWORDS = frozenset(EndpointOptions.__annotations__)


def response_options(options: ResponseOptions, owner: type) -> StreamOptions:
    """The `StreamOptions` of a response's keywords: the shared `DEFAULTS` for none.

    Raises:
        TypeError: for a keyword that is not a response's (``methods=`` is an
            endpoint's), as Python would for ``owner.__init__``; and what
            `StreamOptions` raises.
        ValueError: what `StreamOptions` raises.
    """
    if not options:
        return DEFAULTS  # nothing to check or encode per response
    if not _RESPONSE_KEYWORDS.issuperset(options):
        _refuse_unknown(options, _RESPONSE_KEYWORDS, owner)
    return StreamOptions(**options)


def endpoint_options(options: EndpointOptions, owner: type) -> StreamOptions:
    """The `StreamOptions` of an endpoint's (or a middleware's) keywords: the shared
    `DEFAULTS` for none. Raises as `response_options` does."""
    if not options:
        return DEFAULTS
    if not _ENDPOINT_KEYWORDS.issuperset(options):
        _refuse_unknown(options, _ENDPOINT_KEYWORDS, owner)
    return StreamOptions(**options)


def _refuse_unknown(options: Mapping[str, object], known: frozenset[str], owner: type) -> None:
    unknown = sorted(set(options) - known)[0]
    msg = f"{owner.__qualname__}.__init__() got an unexpected keyword argument {unknown!r}"
    raise TypeError(msg)


_Init = TypeVar("_Init", bound=Callable[..., None])


def spell_out_options(
    options: type[ResponseOptions] | type[EndpointOptions],
) -> Callable[[_Init], _Init]:
    """Decorate an ``__init__`` taking ``**options: Unpack[options]``: its runtime
    signature (``help()``, ``inspect.signature``, IDEs) lists the option keywords with
    their defaults in place of ``**options``. Type checkers read them from the TypedDict;
    this only tells the same to everything that reads the signature at run time."""
    defaults = {option.name: option for option in fields(StreamOptions) if option.init}

    def spell_out(init: _Init) -> _Init:
        signature = inspect.signature(init)
        parameters = [
            parameter
            for parameter in signature.parameters.values()
            if parameter.kind is not inspect.Parameter.VAR_KEYWORD
        ]
        parameters += [
            inspect.Parameter(
                name,
                inspect.Parameter.KEYWORD_ONLY,
                default=defaults[name].default,
                annotation=defaults[name].type,
            )
            for name in options.__annotations__
        ]
        init.__signature__ = signature.replace(parameters=parameters)  # type: ignore[attr-defined]
        return init

    return spell_out
