"""Sans-IO encoder: event values in, UTF-8 bytes out.

Must not import anything async, ASGI or pydantic: standard library and `errors` only.

Strategy (WHATWG HTML, 9.2 "Server-sent events", 9.2.6 "Interpreting an event
stream"): a client splits the stream into lines at CRLF, CR or LF, removes ONE space
after a field's colon, and treats a blank line as "dispatch".  So the encoder

* validates at construction and raises instead of stripping: CR or LF in `event` or
  `id` would let one event forge another, and a client ignores an `id` holding NUL;
* writes every field as ``name: value`` with exactly one space, so a value that starts
  with a space survives the client's stripping;
* splits `data` (and a comment) on CRLF, CR and LF only - the spec's line ends - never
  with `str.splitlines()`, which also splits on VT, FF, U+0085, U+2028 and more;
* writes fields in a fixed order (comment, event, id, data, retry) and ends a frame
  with one blank line, except a comment-only frame: keep-alives are a single comment
  line, because some clients turn ``: ping\\n\\n`` into phantom empty events.

A frame is encoded once, in the constructor, and `encode()` returns the cached bytes:
faster than encoding lazily for construct + encode, and text that UTF-8 cannot encode
(a lone surrogate) fails at construction too.
"""

from __future__ import annotations

import re
from functools import partial
from typing import Any, NoReturn

from .errors import InvalidEventError

__all__ = (
    "ID_FORBIDDEN",
    "ID_PATTERN",
    "ServerSentEvent",
    "check_event_name",
    "check_id",
    "check_retry",
    "encode_comment",
    "encode_data",
    "find_forbidden_id_char",
)

#: The one rule for event ids, used by `ServerSentEvent`, `BaseEvent` and
#: `BaseEvent.frame`: CR or LF would end the `id:` line and start a forged field, and a
#: client ignores an id that holds NUL (WHATWG HTML 9.2.6, "If the field name is id").
#: `check_id` and `frame` test it as ``"\n" in id or "\r" in id or "\0" in id`` (three
#: C scans, cheaper than a regex search); a test holds every checker to this string.
ID_FORBIDDEN = "\r\n\0"
_ID_CLASS = "".join(f"\\x{ord(char):02x}" for char in ID_FORBIDDEN)
#: The same rule as a regular expression (pydantic checks it in pydantic-core).
ID_PATTERN = f"^[^{_ID_CLASS}]*$"
#: `find_forbidden_id_char(value)` is a match (truthy) when `value` breaks the rule.
find_forbidden_id_char = re.compile(f"[{_ID_CLASS}]").search

_DATA_HINT = " (decode bytes, or json.dumps other values)"
_INJECTION_HINT = (
    "a newline would start a new field on the wire; encode the value (e.g. JSON or base64) instead"
)


def _as_str(value: object, what: str, hint: str) -> str:
    """`value` as an exact str (a str subclass such as a StrEnum member gives its value)."""
    if isinstance(value, str):
        return str.__str__(value)
    raise TypeError(f"{what} must be a str{hint}, not {type(value).__name__}")


def _check_utf8(value: str, what: str) -> None:
    # Only text that holds a lone surrogate (e.g. from json.loads('"\\ud800"')) fails.
    try:
        value.encode()
    except UnicodeEncodeError as exc:
        raise InvalidEventError(
            f"{what} holds {value[exc.start : exc.end]!r} at index {exc.start}, a lone "
            "surrogate that UTF-8 cannot encode; fix the source text, or replace it with "
            "text.encode('utf-8', 'replace').decode()"
        ) from exc


def check_event_name(value: str) -> str:
    """Validate an event name (the ``event:`` field) and return it as a str.

    Raises:
        TypeError: `value` is not a str.
        InvalidEventError: it contains CR or LF, or a lone surrogate.
    """
    if type(value) is not str:
        value = _as_str(value, "event name", "")
    if "\n" in value or "\r" in value:
        raise InvalidEventError(
            f"event name must not contain CR or LF (got {value!r}): {_INJECTION_HINT}"
        )
    if not value.isascii():
        _check_utf8(value, "event name")
    return value


def check_id(value: str | int) -> str:
    """Validate an event id and return its str form (an int gives its decimal digits).

    Raises:
        TypeError: `value` is neither a str nor an int (bool is rejected).
        InvalidEventError: it contains CR, LF or NUL, or a lone surrogate.
    """
    if type(value) is not str:
        if type(value) is int:
            return str(value)
        if isinstance(value, int) and not isinstance(value, bool):
            return "%d" % value  # noqa: UP031 - an IntEnum's str() is not its digits on 3.10
        value = _as_str(value, "event id", " or an int")
    # Three scans of a C loop each: cheaper than a regex search for the ids people use.
    if "\n" in value or "\r" in value or "\0" in value:
        bad = find_forbidden_id_char(value)  # the first one, for the message
        if bad is not None and bad.group() == "\0":
            raise InvalidEventError(
                f"event id must not contain NUL (got {value!r}): clients ignore such an id, "
                "so Last-Event-ID would silently not advance; encode the value instead"
            )
        raise InvalidEventError(
            f"event id must not contain CR or LF (got {value!r}): {_INJECTION_HINT}"
        )
    if not value.isascii():
        _check_utf8(value, "event id")
    return value


def check_retry(value: int) -> int:
    """Validate a reconnection time in milliseconds and return it as an int.

    Raises:
        TypeError: `value` is not an int (bool and float are rejected).
        InvalidEventError: it is negative.
    """
    if type(value) is not int:
        if not isinstance(value, int) or isinstance(value, bool):
            raise TypeError(
                f"retry must be an int number of milliseconds, not {type(value).__name__}"
                + (f"; use int({value!r})" if isinstance(value, float) else "")
            )
        value = int(value)
    if value < 0:
        # 9.2.6: clients accept only ASCII digits, so a minus sign voids the field.
        raise InvalidEventError(
            f"retry must be >= 0 milliseconds (got {value}): clients ignore a negative retry"
        )
    return value


def _data_lines(data: str) -> str:
    # Normalise the spec's three line ends to LF, then prefix every line; no loop in Python.
    if "\r" in data:
        data = data.replace("\r\n", "\n").replace("\r", "\n")
    return "data: " + data.replace("\n", "\ndata: ") + "\n"


def _comment_lines(text: str) -> str:
    # An empty line becomes ":" - never a blank line, which would dispatch the frame.
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    if "\n" not in text:
        return ": " + text + "\n" if text else ":\n"
    return "".join(": " + line + "\n" if line else ":\n" for line in text.split("\n"))


def _unencodable(*fields: tuple[str, str | None]) -> NoReturn:
    # Error path only: encode() failed, so one of these holds a lone surrogate; name it.
    for what, value in fields:
        if value is not None:
            _check_utf8(value, what)
    raise AssertionError("unreachable: one of the fields failed to encode")  # pragma: no cover


def encode_data(data: str) -> bytes:
    """The ``data: ...`` lines for `data`, one per line of it (no closing blank line).

    Raises:
        TypeError: `data` is not a str.
        InvalidEventError: it holds a lone surrogate.
    """
    if type(data) is not str:
        data = _as_str(data, "event data", _DATA_HINT)
    try:
        return _data_lines(data).encode()
    except UnicodeEncodeError:
        _unencodable(("event data", data))


def encode_comment(text: str) -> bytes:
    """The ``: ...`` comment lines for `text`, one per line of it (no blank line).

    Raises:
        TypeError: `text` is not a str.
        InvalidEventError: it holds a lone surrogate.
    """
    if type(text) is not str:
        text = _as_str(text, "comment", "")
    try:
        return _comment_lines(text).encode()
    except UnicodeEncodeError:
        _unencodable(("comment", text))


class ServerSentEvent:
    """One immutable SSE frame, validated at construction; `encode()` gives its bytes.

    A frame without `data` is not dispatched by clients, but its `id` and `retry` still
    take effect (an id-only frame primes a resume cursor). ``id=""`` resets the client's
    last event id. A comment-only frame is a single comment line (a keep-alive).

    Args:
        data: The ``data`` field: one ``data:`` line per line of it (split at CRLF, CR
            or LF only); ``""`` is one empty line, which clients still dispatch.
        event: The event name (clients dispatch ``message`` without one).
        id: The event id; an int is sent as its decimal digits.
        retry: The client's reconnection delay, in milliseconds.
        comment: A comment, written before the other fields (one ``:`` line per line).

    Raises:
        TypeError: a field has the wrong type (bytes data, bool id, bool or float retry).
        InvalidEventError: CR or LF in `event` or `id`, NUL in `id`, a negative `retry`,
            a lone surrogate in any text, or no field at all.
    """

    __slots__ = ("_comment", "_data", "_encoded", "_event", "_id", "_retry")

    def __init__(
        self,
        data: str | None = None,
        *,
        event: str | None = None,
        id: str | int | None = None,
        retry: int | None = None,
        comment: str | None = None,
    ) -> None:
        if comment is not None and type(comment) is not str:
            comment = _as_str(comment, "comment", "")
        if event is not None:
            event = check_event_name(event)
        if id is not None:
            id = check_id(id)
        if data is not None and type(data) is not str:
            data = _as_str(data, "event data", _DATA_HINT)
        if retry is not None:
            retry = check_retry(retry)
        comment_lines = "" if comment is None else _comment_lines(comment)
        if data is None and event is None and id is None and retry is None:
            if comment is None:
                raise InvalidEventError(
                    "a ServerSentEvent needs at least one field (data, event, id, retry or "
                    "comment); for a keep-alive use ServerSentEvent(comment='')"
                )
            text = comment_lines  # a lone comment: no blank line, so no client dispatches anything
        else:
            # One f-string, one encode(); the blank line ends (and with data dispatches) it.
            event_line = "" if event is None else f"event: {event}\n"
            id_line = "" if id is None else f"id: {id}\n"
            data_lines = "" if data is None else _data_lines(data)
            retry_line = "" if retry is None else f"retry: {retry}\n"
            text = f"{comment_lines}{event_line}{id_line}{data_lines}{retry_line}\n"
        try:
            self._encoded = text.encode()
        except UnicodeEncodeError:
            # (`event` and `id` were checked by their check_* functions.)
            _unencodable(("comment", comment), ("event data", data))
        self._data = data
        self._event = event
        self._id = id
        self._retry = retry
        self._comment = comment

    # Read-only views: assigning raises AttributeError; __slots__ forbids new attributes.
    @property
    def data(self) -> str | None:
        """The ``data`` field, as given (None: no ``data:`` line)."""
        return self._data

    @property
    def event(self) -> str | None:
        """The event name (None: no ``event:`` line)."""
        return self._event

    @property
    def id(self) -> str | None:
        """The event id, as a str even when an int was given (None: no ``id:`` line)."""
        return self._id

    @property
    def retry(self) -> int | None:
        """The reconnection delay in milliseconds (None: no ``retry:`` line)."""
        return self._retry

    @property
    def comment(self) -> str | None:
        """The comment (None: no comment line)."""
        return self._comment

    def encode(self) -> bytes:
        """This frame as UTF-8 bytes (computed once, at construction)."""
        return self._encoded

    def _fields(self) -> tuple[str | int | None, ...]:
        return (self._data, self._event, self._id, self._retry, self._comment)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ServerSentEvent):
            return NotImplemented
        return self._fields() == other._fields()

    def __hash__(self) -> int:
        # Equal fields give equal bytes, and bytes cache their hash.
        return hash(self._encoded)

    def __repr__(self) -> str:
        names = ("data", "event", "id", "retry", "comment")
        args = ", ".join(
            f"{n}={v!r}" for n, v in zip(names, self._fields(), strict=True) if v is not None
        )
        return f"ServerSentEvent({args})"

    def __reduce__(self) -> tuple[Any, ...]:
        # The fields are keyword-only: pickle and copy rebuild through a partial.
        fields = partial(
            ServerSentEvent,
            event=self._event,
            id=self._id,
            retry=self._retry,
            comment=self._comment,
        )
        return (fields, (self._data,))
