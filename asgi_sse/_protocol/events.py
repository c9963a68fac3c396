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
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Generic, ParamSpec, TypeVar, cast

from pydantic import BaseModel, Field, StrictInt, TypeAdapter
from pydantic._internal._model_construction import ModelMetaclass
from pydantic_core import PydanticSerializationError, SchemaSerializer

from .._util.closing import close_stream
from .._util.compat import Self
from .errors import InvalidEventError
from .wire import ID_PATTERN, check_event_name, check_id, check_retry

__all__ = ("BaseEvent", "event_name_for", "event_stream")

T = TypeVar("T")
E = TypeVar("E", bound="BaseEvent[Any]")
P = ParamSpec("P")

# Word boundaries of a class name: "ReverseEcho" -> reverse|echo, "HTTPError" -> http|error.
_BOUNDARY = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")


def event_name_for(class_name: str) -> str:
    """The event name derived from a class name: `ReverseEcho` -> `reverse_echo`."""
    return _BOUNDARY.sub("_", class_name).lower()


if TYPE_CHECKING:
    # Type checkers see pydantic's own metaclass, so that they treat event classes as
    # pydantic models (the generated `__init__`, the mypy plugin) exactly as before.
    _EventMeta = ModelMetaclass
else:

    class _EventMeta(ModelMetaclass):
        """Pydantic's metaclass, told when an event class's `encode` changes (setting or
        deleting it on a made class; a subclass that defines its own is not a change),
        so that the response's per-class encoders (`ITEM_ENCODERS`) never outlive it."""

        def __setattr__(cls, name: str, value: Any) -> None:
            super().__setattr__(name, value)
            if name == "encode":
                ITEM_ENCODERS.clear()

        def __delattr__(cls, name: str) -> None:
            super().__delattr__(name)
            if name == "encode":
                ITEM_ENCODERS.clear()


class BaseEvent(BaseModel, Generic[T], metaclass=_EventMeta):
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
    # Note: the wire's id rule (ID_PATTERN), checked by pydantic-core's regex: measured
    # cheaper than any Python check (a call from pydantic-core costs more than the
    # scan). StrictInt first: pydantic tries the members in order, and the typed
    # stream's ids are ints. Ints are sent as decimal digits.
    id: StrictInt | Annotated[str, Field(pattern=ID_PATTERN)] | None = None
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
        cls = type(self)
        try:
            serializer, _, formats, _ = _CODECS[cls]
        except KeyError:
            serializer, _, formats, _ = _build_codec(cls)
        # One attribute lookup, not three: pydantic's __getattr__ puts every instance
        # attribute lookup on CPython's slow path.
        fields = self.__dict__
        event_id = fields["id"]
        retry = fields["retry"]
        try:
            payload = serializer.to_json(fields["data"])
        except PydanticSerializationError as exc:
            raise _unencodable(cls, event_id, exc) from exc
        if event_id is None:
            if retry is None:
                return formats[0] % payload
            return formats[1] % (payload, retry)
        if type(event_id) is int:
            if retry is None:
                return formats[2] % (event_id, payload)
            return formats[3] % (event_id, payload, retry)
        # A str (validated at construction); anything else came in through
        # model_construct() and is formatted as before: a str subclass as text, else %d.
        id_bytes = event_id.encode() if isinstance(event_id, str) else b"%d" % event_id
        if retry is None:
            return formats[4] % (id_bytes, payload)
        return formats[5] % (id_bytes, payload, retry)

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
        try:
            serializer, exact_type, formats, adapter = _CODECS[cls]
        except KeyError:
            serializer, exact_type, formats, adapter = _build_codec(cls)
        if type(data) is not exact_type:
            data = adapter.validate_python(data)
        try:
            payload = serializer.to_json(data)
        except PydanticSerializationError as exc:
            raise _unencodable(cls, id, exc) from exc
        if retry is not None:
            retry = check_retry(retry)
        if id is None:
            if retry is None:
                return formats[0] % payload
            return formats[1] % (payload, retry)
        if type(id) is int:
            if retry is None:
                return formats[2] % (id, payload)
            return formats[3] % (id, payload, retry)
        # The wire's rule (ID_FORBIDDEN) as three scans of a C loop each, no regex; any
        # other type, and a str that breaks the rule, go to check_id, which explains.
        if type(id) is not str or "\n" in id or "\r" in id or "\0" in id:
            id = check_id(id)
        try:
            id_bytes = id.encode()
        except UnicodeEncodeError:  # a lone surrogate: let check_id explain
            id_bytes = check_id(id).encode()
        if retry is None:
            return formats[4] % (id_bytes, payload)
        return formats[5] % (id_bytes, payload, retry)

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


_ENCODE: Callable[[BaseEvent[Any]], bytes] = BaseEvent.encode


def _unencodable(
    cls: type[BaseEvent[Any]], event_id: str | int | None, error: Exception
) -> InvalidEventError:
    which = cls.__name__ if event_id is None else f"{cls.__name__} (id {event_id!r})"
    return InvalidEventError(
        f"{which} cannot be encoded: {error}; a str holding a lone surrogate usually comes "
        "from decoding bytes with errors='surrogateescape' or from broken JSON"
    )


# Per class: (serializer of `data`, the payload class whose exact instances need no
# validation - a model, which pydantic does not revalidate -, the six %-formats of a
# frame with the class's `event:` line in them (see _FORMATS), and the TypeAdapter of
# `data`), built on first use.
# Note: a module dict, not class attributes: pydantic's metaclass defines __getattr__,
# which takes every class attribute lookup off CPython's fast path (~4x slower).
_Codec = tuple[SchemaSerializer, "type | None", tuple[bytes, ...], TypeAdapter[Any]]
_CODECS: dict[type, _Codec] = {}

# The frame's lines after the `event:` line, in the wire's field order, indexed by
# (no id, int id, str id encoded) * 2 + (retry given): one %-format per frame, no
# intermediate bytes.
_FORMATS = tuple(
    id_line + b"data: %s\n" + retry_line + b"\n"
    for id_line in (b"", b"id: %d\n", b"id: %s\n")
    for retry_line in (b"", b"retry: %d\n")
)


#: Per exact event class, the function the response encodes its instances with (see
#: `item_encoder`); emptied whenever any event class's `encode` is set or deleted.
ITEM_ENCODERS: dict[type, Callable[[Any], bytes]] = {}


def item_encoder(cls: type[BaseEvent[Any]]) -> Callable[[BaseEvent[Any]], bytes] | None:
    """A function that encodes instances of exactly ``cls`` as `encode()` would, with the
    class's serializer and frame formats bound in a closure (nothing looked up per event,
    not even the method: pydantic's ``__getattr__`` keeps attribute lookups on models off
    CPython's fast path).

    None when the `encode` that instances of ``cls`` find is not `BaseEvent.encode` (the
    user's own, a wrapper, a mock): then it must be called. Nothing is set on the class;
    the caller keeps the function (`ITEM_ENCODERS`), which the event classes' metaclass
    empties when any class's `encode` changes.
    """
    if getattr(cls, "encode", None) is not BaseEvent.__dict__["encode"]:
        return None
    codec = _CODECS.get(cls)
    if codec is None:
        return None  # not encoded yet: the first event goes through encode()
    to_json = codec[0].to_json
    plain, _, int_id, _, str_id, _ = codec[2]

    def encode(self: BaseEvent[Any]) -> bytes:
        fields = self.__dict__
        event_id = fields["id"]
        kind = type(event_id)
        if fields["retry"] is None and (event_id is None or kind is int or kind is str):
            try:
                payload = to_json(fields["data"])
            except PydanticSerializationError as exc:
                raise _unencodable(cls, event_id, exc) from exc
            if event_id is None:
                return plain % payload
            if kind is int:
                return int_id % (event_id, payload)
            return str_id % (cast("str", event_id).encode(), payload)
        return _ENCODE(self)  # a retry, or an id from model_construct(): the full path

    return encode


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
    prefix = cls._sse_prefix.replace(b"%", b"%%")  # an event name may hold a "%"
    formats = tuple(prefix + line for line in _FORMATS)
    codec = (adapter.serializer, exact, formats, adapter)
    if adapter.pydantic_complete:
        # Note: an adapter of a type not defined yet (a forward reference) serializes
        # through a placeholder: not kept, so that the next encode tries again.
        _CODECS[cls] = codec
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
