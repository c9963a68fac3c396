"""Typed events: a pydantic model per event class, encoded straight to one SSE frame.

Strategy: everything that is the same for every instance of a class (the `event:` line,
the serializer of the `data` type) is computed once per class and kept on the class;
encoding an instance is then one call into pydantic-core's JSON serializer plus one
bytes formatting operation. Pydantic's JSON output never contains a raw CR or LF
(JSON escapes them), so the payload is always exactly one `data:` line and needs no
splitting (WHATWG HTML, 9.2.6 "Interpreting an event stream").

Imports the wire layer, pydantic and `_util.closing` (for the decorator's cleanup);
nothing async, nothing ASGI.
"""

from __future__ import annotations

import functools
import re
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from typing import Annotated, Any, ClassVar, Generic, ParamSpec, TypeVar, cast

from pydantic import BaseModel, Field, StrictInt, TypeAdapter
from pydantic_core import PydanticSerializationError, SchemaSerializer

from .._util.closing import close_stream
from .._util.compat import Self
from .errors import InvalidEventError
from .wire import ID_PATTERN, check_event_name, check_id, check_retry, find_forbidden_id_char

__all__ = ("BaseEvent", "event_name_for", "event_stream")

T = TypeVar("T")
E = TypeVar("E", bound="BaseEvent[Any]")
P = ParamSpec("P")

# Word boundaries of a class name: "ReverseEcho" -> reverse|echo, "HTTPError" -> http|error.
_BOUNDARY = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")


def event_name_for(class_name: str) -> str:
    """The event name derived from a class name: `ReverseEcho` -> `reverse_echo`."""
    return _BOUNDARY.sub("_", class_name).lower()


class BaseEvent(BaseModel, Generic[T]):
    """A typed Server-Sent Event: `data` is any value pydantic can dump to JSON.

    Subclass it with the payload type; the event name is the class name in snake case
    unless given explicitly:

    ```python
    class Echo(BaseEvent[EchoPayload]): ...              # event: echo
    class Tick(BaseEvent[int], event="clock.tick"): ...  # event: clock.tick
    ```

    `BaseEvent[T]` used directly (not subclassed) sends no `event:` line, which clients
    dispatch as a `message` event.

    Raises:
        pydantic.ValidationError: (a `ValueError`) at construction, when `data` does not
            match `T`, when `id` contains CR, LF, NUL or a lone surrogate, or when `retry`
            is not a non-negative int.
        InvalidEventError: at class creation, when an explicit event name contains CR or
            LF, or a lone surrogate.
        TypeError: at class creation, when an explicit event name is not a str.
    """

    data: T
    """The payload, sent as one ``data:`` line of JSON."""
    # Note: the wire's id rule (ID_PATTERN), checked by pydantic-core: no Python call
    # per event. Ints are sent as decimal digits.
    id: Annotated[str, Field(pattern=ID_PATTERN)] | StrictInt | None = None
    """The ``id:`` line (None: none); the client sends the last one back to resume."""
    retry: StrictInt | None = Field(default=None, ge=0)
    """The ``retry:`` line: the client's reconnection delay in milliseconds (None: none)."""

    # Per-class constants, set when the class is created (see __pydantic_init_subclass__).
    event_name: ClassVar[str | None] = None
    """The class's ``event:`` name, set when the class is created (None: no ``event:``
    line, which clients dispatch as ``message``)."""
    _sse_prefix: ClassVar[bytes] = b""

    def __init_subclass__(cls, event: str | None = None, **kwargs: Any) -> None:
        # Accept the `event=` class keyword; it is used once pydantic built the class.
        super().__init_subclass__(**kwargs)

    @classmethod
    def __pydantic_init_subclass__(cls, event: str | None = None, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        origin = cls.__pydantic_generic_metadata__["origin"]
        if event is not None:
            name: str | None = check_event_name(event)
        elif origin is not None:
            # `BaseEvent[int]` or `MyGenericEvent[int]`: a parametrisation, not a new event.
            name = cast("type[BaseEvent[Any]]", origin).event_name
        else:
            name = event_name_for(cls.__name__)
        cls.event_name = name
        cls._sse_prefix = b"" if name is None else b"event: " + name.encode() + b"\n"
        _CODECS.pop(cls, None)

    def encode(self) -> bytes:
        """This event as one complete SSE frame (UTF-8 bytes, ending in a blank line).

        Raises:
            InvalidEventError: when `data` cannot be serialised to JSON (a lone
                surrogate in a str, a value pydantic cannot dump).
        """
        prefix, serializer, _, _ = _CODECS.get(type(self)) or _build_codec(type(self))
        try:
            payload = serializer.to_json(self.data)
        except PydanticSerializationError as exc:
            raise _unencodable(type(self), self.id, exc) from exc
        event_id = self.id
        retry = self.retry
        if event_id is None:
            if retry is None:
                return b"%sdata: %s\n\n" % (prefix, payload)
            return b"%sdata: %s\nretry: %d\n\n" % (prefix, payload, retry)
        id_bytes = event_id.encode() if isinstance(event_id, str) else b"%d" % event_id
        if retry is None:
            return b"%sid: %s\ndata: %s\n\n" % (prefix, id_bytes, payload)
        return b"%sid: %s\ndata: %s\nretry: %d\n\n" % (prefix, id_bytes, payload, retry)

    @classmethod
    def frame(cls, data: T, *, id: str | int | None = None, retry: int | None = None) -> bytes:
        """Encode ``data`` as one event of this class, without building the event object.

        The same bytes as ``cls(data=data, id=id, retry=retry).encode()``, with the same
        checks, for hot paths (a broadcast loop, a token stream): `data` is validated
        against the payload type, unless the payload type is a pydantic model and
        `data` an instance of exactly that class (which pydantic would not revalidate).

        Raises:
            pydantic.ValidationError: when `data` does not match the payload type.
            InvalidEventError: when `id` contains CR, LF, NUL or a lone surrogate,
                `retry` is negative, or `data` cannot be serialised to JSON (a lone
                surrogate in a str).
            TypeError: when `id` or `retry` has the wrong type.
        """
        prefix, serializer, exact_type, adapter = _CODECS.get(cls) or _build_codec(cls)
        if type(data) is not exact_type:
            data = adapter.validate_python(data)
        try:
            payload = serializer.to_json(data)
        except PydanticSerializationError as exc:
            raise _unencodable(cls, id, exc) from exc
        if id is None:
            lines_before_data = prefix
        elif type(id) is int:
            lines_before_data = b"%sid: %d\n" % (prefix, id)
        elif type(id) is str and not find_forbidden_id_char(id):
            try:
                lines_before_data = b"%sid: %s\n" % (prefix, id.encode())
            except UnicodeEncodeError:  # a lone surrogate: let check_id explain
                lines_before_data = b"%sid: %s\n" % (prefix, check_id(id).encode())
        else:
            lines_before_data = b"%sid: %s\n" % (prefix, check_id(id).encode())
        if retry is None:
            return b"%sdata: %s\n\n" % (lines_before_data, payload)
        return b"%sdata: %s\nretry: %d\n\n" % (lines_before_data, payload, check_retry(retry))

    @classmethod
    def decode(cls, data: str, *, id: str | None = None) -> Self:
        """Build an event back from a received frame's `data` (JSON) and `id`.

        The inverse of `encode()`, for clients and tests; an empty `id` is no id.

        Raises:
            pydantic.ValidationError: when `data` is not JSON of the payload type, or
                `id` contains CR, LF or NUL.
        """
        value = (_CODECS.get(cls) or _build_codec(cls))[3].validate_json(data)
        return cls(data=value, id=id or None)


def _unencodable(
    cls: type[BaseEvent[Any]], event_id: str | int | None, error: Exception
) -> InvalidEventError:
    which = cls.__name__ if event_id is None else f"{cls.__name__} (id {event_id!r})"
    return InvalidEventError(
        f"{which} cannot be encoded: {error}; a str holding a lone surrogate usually comes "
        "from decoding bytes with errors='surrogateescape' or from broken JSON"
    )


# Per class: (event-line prefix, serializer of `data`, the payload class whose exact
# instances need no validation - a model, which pydantic does not revalidate - and the
# TypeAdapter of `data`), built on first use.
# Note: a module dict, not class attributes: pydantic's metaclass defines __getattr__,
# which takes every class attribute lookup off CPython's fast path (~4x slower).
_Codec = tuple[bytes, SchemaSerializer, "type | None", TypeAdapter[Any]]
_CODECS: dict[type, _Codec] = {}


def _build_codec(cls: type[BaseEvent[Any]]) -> _Codec:
    field = cls.model_fields["data"]
    annotation = field.annotation
    exact = (
        annotation
        if isinstance(annotation, type)
        and issubclass(annotation, BaseModel)
        and not field.metadata
        and annotation.model_config.get("revalidate_instances", "never") == "never"
        else None
    )
    adapter: TypeAdapter[Any] = TypeAdapter(field.rebuild_annotation())
    _CODECS[cls] = codec = (cls._sse_prefix, adapter.serializer, exact, adapter)
    return codec


def event_stream(
    func: Callable[P, AsyncIterator[E]],
) -> Callable[P, AsyncGenerator[E, None]]:
    """Number the events of a stream of typed events: 0, 1, 2... per stream.

    Decorates an async generator function that yields `BaseEvent`s; every event that
    carries no `id` of its own gets its position in the stream as its id (the typed
    stream: numbered per stream, from 0). Closing the decorated stream
    closes the inner one, so its `finally` blocks run.

    Raises:
        TypeError: while iterating, when the inner stream yields something that is not
            a `BaseEvent`.
    """

    @functools.wraps(func)
    async def numbered(*args: P.args, **kwargs: P.kwargs) -> AsyncGenerator[E, None]:
        inner = func(*args, **kwargs)
        try:
            position = 0
            async for event in inner:
                if not isinstance(event, BaseEvent):
                    msg = (
                        f"@event_stream expects BaseEvent instances, got {type(event).__name__}; "
                        "yield e.g. Echo(data=...) or drop the decorator"
                    )
                    raise TypeError(msg)
                if event.id is None:
                    event = event.model_copy(update={"id": position})
                position += 1
                yield event
        finally:
            await close_stream(inner)

    return numbered
