"""JSON Schema and OpenAPI of event streams, and the pieces every schema is built from
(`asgi_sse.schema`'s docstring is the user's guide; the AsyncAPI document is in
``asyncapi``).

What is described is a frame as a client parses it, its ``data`` a string of JSON whose
content schema is the class's payload as sent (pydantic's serialization schema). Must
not import anything async, the server or the hub: pydantic and the protocol layer only.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Annotated, Any, cast

from pydantic import TypeAdapter
from pydantic.json_schema import JsonSchemaValue

from .._protocol.events import BaseEvent

__all__ = (
    "CURSOR_DESCRIPTION",
    "add_stream_responses",
    "checked_classes",
    "docstring_of",
    "event_name",
    "event_schema",
    "key_of",
    "openapi_response",
    "payload_schemas",
    "payload_type",
    "stream_schema",
)

JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"

CURSOR_DESCRIPTION = (
    "The event's id. A client sends the last one it received back as the "
    "`Last-Event-ID` header (or `?lastEventId=`) to resume after it, with no gap and "
    "no duplicate. Hub streams: a Redis stream id (`1764567890123-0`) or `<epoch>-<n>` "
    "for one topic; for several topics a cursor, `<key>~<position>` entries joined by "
    "`.`, where the key is 8 characters derived from the topic's name. Never contains "
    "CR, LF or NUL."
)
"""What an event's id is, for the documents: how a client resumes."""

_UNSAFE_IN_KEY = re.compile(r"[^\w.\-]")


def key_of(text: str) -> str:
    """``text`` as a key of a document (a schema's ``$id``, an AsyncAPI channel or
    message): every character but letters, digits, ``_``, ``.`` and ``-`` is ``_``."""
    return _UNSAFE_IN_KEY.sub("_", text)


def event_name(cls: type[BaseEvent[Any]]) -> str:
    """The event name a class is sent and read under (``message`` without one)."""
    return cls.event_name or "message"


def payload_type(cls: type[BaseEvent[Any]]) -> Any:
    """The payload's type as the class validates it: with its constraints (an
    ``Annotated[int, Field(ge=0)]`` keeps its bounds)."""
    field = cls.model_fields["data"]
    if field.metadata:
        arguments = (field.annotation, *field.metadata)
        return cast(Any, Annotated)[arguments]
    return field.annotation


def checked_classes(classes: Iterable[type[BaseEvent[Any]]]) -> list[type[BaseEvent[Any]]]:
    """The classes, each once, in their order.

    Raises:
        TypeError: a class that is not a `BaseEvent`.
        ValueError: no class, or two classes sent under one event name.
    """
    checked = []
    names: dict[str, type[BaseEvent[Any]]] = {}
    for cls in classes:
        if not (isinstance(cls, type) and issubclass(cls, BaseEvent)):
            raise TypeError(f"event classes are BaseEvent subclasses, not {cls!r}")
        name = event_name(cls)
        if name in names and names[name] is not cls:
            raise ValueError(
                f"{names[name].__name__} and {cls.__name__} are both sent as {name!r}: "
                "a client could not tell them apart"
            )
        if name not in names:
            names[name] = cls
            checked.append(cls)
    if not checked:
        raise ValueError("give at least one event class")
    return checked


def payload_schemas(
    classes: Sequence[type[BaseEvent[Any]]], ref_template: str
) -> tuple[dict[type[BaseEvent[Any]], JsonSchemaValue], dict[str, JsonSchemaValue]]:
    """Each class's payload schema (as sent) and the definitions they share."""
    inputs = [(cls, "serialization", TypeAdapter(payload_type(cls))) for cls in classes]
    schemas, definitions = TypeAdapter.json_schemas(inputs, ref_template=ref_template)  # type: ignore[arg-type]
    return (
        {cls: schemas[(cls, "serialization")] for cls in classes},
        dict(definitions.get("$defs", {})),
    )


def docstring_of(cls: type[BaseEvent[Any]]) -> str | None:
    """The class's own docstring, cleaned (None when it has none of its own)."""
    doc = cls.__doc__
    if not doc or doc == BaseEvent.__doc__:
        return None
    return inspect.cleandoc(doc)


def _frame(cls: type[BaseEvent[Any]], payload: JsonSchemaValue) -> JsonSchemaValue:
    frame: JsonSchemaValue = {"title": cls.__name__, "type": "object"}
    description = docstring_of(cls)
    if description:
        frame["description"] = description
    frame["properties"] = {
        "event": {"const": event_name(cls)},
        "id": {
            "type": "string",
            "pattern": "^[^\\r\\n\\u0000]*$",
            "description": CURSOR_DESCRIPTION,
        },
        "retry": {"type": "integer", "minimum": 0},
        "data": {
            "type": "string",
            "contentMediaType": "application/json",
            "contentSchema": payload,
        },
    }
    frame["required"] = ["event", "data"]
    frame["additionalProperties"] = False
    return frame


def event_schema(cls: type[BaseEvent[Any]]) -> JsonSchemaValue:
    """The JSON Schema (2020-12) of one event class's frames, as a client parses them:
    ``event`` fixed to its name, ``id``, ``retry``, and ``data`` a string of JSON whose
    ``contentSchema`` is the payload's (as sent: pydantic's serialization schema).

    Raises:
        TypeError: ``cls`` is not a `BaseEvent` subclass.
    """
    return stream_schema(cls)


def stream_schema(*classes: type[BaseEvent[Any]], title: str | None = None) -> JsonSchemaValue:
    """The JSON Schema (2020-12) of a stream's frames: one of the classes' frames, told
    apart by ``event``. Include `asgi_sse.Reset` when the stream is a hub's (it can
    send one). Shared definitions are under ``$defs``; the schema has an ``$id`` of
    its own, so that its references resolve inside it wherever it is embedded.

    Args:
        *classes: The event classes the stream sends (one given twice counts once).
        title: The schema's ``title``, if any.

    Raises:
        TypeError: a class that is not a `BaseEvent`.
        ValueError: no class, or two classes sent under one event name.
    """
    checked = checked_classes(classes)
    payloads, definitions = payload_schemas(checked, "#/$defs/{model}")
    frames = [_frame(cls, payloads[cls]) for cls in checked]
    names = "-".join(event_name(cls) for cls in checked)
    schema: JsonSchemaValue = {
        "$schema": JSON_SCHEMA_DIALECT,
        "$id": f"urn:asgi-sse:stream:{key_of(names)}",
    }
    if title is not None:
        schema["title"] = title
    if len(frames) == 1:
        schema.update(frames[0])
    else:
        schema["oneOf"] = frames
    if definitions:
        schema["$defs"] = definitions
    return schema


def openapi_response(
    *classes: type[BaseEvent[Any]], description: str = "An event stream (text/event-stream)"
) -> dict[str, Any]:
    """The OpenAPI 3.1/3.2 Response Object of a route that streams ``classes``:
    ``text/event-stream`` content whose ``itemSchema`` (OpenAPI 3.2: the schema of each
    event) is `stream_schema`. For FastAPI: ``@app.get(path, responses={200:
    openapi_response(Echo)})``.

    Args:
        *classes: The event classes the route streams.
        description: The response's ``description``.

    Raises:
        TypeError: a class that is not a `BaseEvent`.
        ValueError: no class, or two classes sent under one event name.
    """
    return {
        "description": description,
        "content": {"text/event-stream": {"itemSchema": stream_schema(*classes)}},
    }


def add_stream_responses(
    document: dict[str, Any],
    streams: Mapping[str, Sequence[type[BaseEvent[Any]]]],
    *,
    method: str = "get",
) -> dict[str, Any]:
    """Document event-stream routes in an OpenAPI document (a dict), in place, and
    return it: for each path, the ``method`` operation's 200 response becomes
    `openapi_response` of its classes (the path and operation are added when the
    document has none - an app mounted with ``app.mount`` is invisible to FastAPI).

    The recipe for any framework that produces an OpenAPI dict: FastAPI
    (``app.openapi()``), Starlette (``SchemaGenerator.get_schema(routes)``), Litestar
    (``app.openapi_schema.to_schema()``).

    Args:
        document: The OpenAPI document, changed in place.
        streams: Each path -> the event classes its stream sends.
        method: The operation documented, in any case.

    Returns:
        ``document``.

    Raises:
        TypeError: a class that is not a `BaseEvent`.
        ValueError: a path with no class, or two classes sent under one event name.
    """
    paths = document.setdefault("paths", {})
    for path, classes in streams.items():
        operation = paths.setdefault(path, {}).setdefault(method.lower(), {})
        responses = operation.setdefault("responses", {})
        responses["200"] = openapi_response(*classes)
    return document
