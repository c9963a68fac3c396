"""The implementation of `asgi_sse.schema` (whose docstring is the user's guide)."""

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
    "asyncapi",
    "event_schema",
    "openapi_response",
    "stream_schema",
)

JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"

#: What an event's id is, for the documents: how a client resumes.
CURSOR_DESCRIPTION = (
    "The event's id. A client sends the last one it received back as the "
    "`Last-Event-ID` header (or `?lastEventId=`) to resume after it, with no gap and "
    "no duplicate. Hub streams: a Redis stream id (`1764567890123-0`) or `<epoch>-<n>` "
    "for one topic; for several topics a cursor, `<key>~<position>` entries joined by "
    "`.`, where the key is 8 characters derived from the topic's name. Never contains "
    "CR, LF or NUL."
)
RESET_DESCRIPTION = (
    "Sent instead of a replay that cannot be exact (the client's id is no longer held, "
    "from before a restart, or not an id of this stream): events were missed. Refetch "
    "the state, then follow the live events after this one; its id is where the "
    "stream goes on (`resume_from`)."
)

_CHANNEL_KEY = re.compile(r"[^\w.\-]")


def _event_name(cls: type[BaseEvent[Any]]) -> str:
    return cls.event_name or "message"


def _payload_type(cls: type[BaseEvent[Any]]) -> Any:
    """The payload's type as the class validates it: with its constraints (an
    ``Annotated[int, Field(ge=0)]`` keeps its bounds)."""
    field = cls.model_fields["data"]
    if field.metadata:
        arguments = (field.annotation, *field.metadata)
        return cast(Any, Annotated)[arguments]
    return field.annotation


def _check(classes: Iterable[type[BaseEvent[Any]]]) -> list[type[BaseEvent[Any]]]:
    checked = []
    names: dict[str, type[BaseEvent[Any]]] = {}
    for cls in classes:
        if not (isinstance(cls, type) and issubclass(cls, BaseEvent)):
            raise TypeError(f"event classes are BaseEvent subclasses, not {cls!r}")
        name = _event_name(cls)
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


def _payloads(
    classes: Sequence[type[BaseEvent[Any]]], ref_template: str
) -> tuple[dict[type[BaseEvent[Any]], JsonSchemaValue], dict[str, JsonSchemaValue]]:
    """Each class's payload schema (as sent) and the definitions they share."""
    inputs = [(cls, "serialization", TypeAdapter(_payload_type(cls))) for cls in classes]
    schemas, definitions = TypeAdapter.json_schemas(inputs, ref_template=ref_template)  # type: ignore[arg-type]
    return (
        {cls: schemas[(cls, "serialization")] for cls in classes},
        dict(definitions.get("$defs", {})),
    )


def _description(cls: type[BaseEvent[Any]]) -> str | None:
    doc = cls.__doc__
    if not doc or doc == BaseEvent.__doc__:
        return None
    return inspect.cleandoc(doc)


def _frame(cls: type[BaseEvent[Any]], payload: JsonSchemaValue) -> JsonSchemaValue:
    frame: JsonSchemaValue = {"title": cls.__name__, "type": "object"}
    description = _description(cls)
    if description:
        frame["description"] = description
    frame["properties"] = {
        "event": {"const": _event_name(cls)},
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
    ``contentSchema`` is the payload's."""
    return stream_schema(cls)


def stream_schema(*classes: type[BaseEvent[Any]], title: str | None = None) -> JsonSchemaValue:
    """The JSON Schema (2020-12) of a stream's frames: one of the classes' frames, told
    apart by ``event``. Include `asgi_sse.Reset` when the stream is a hub's (it can
    send one). Shared definitions are under ``$defs``; the schema has an ``$id`` of
    its own, so that its references resolve inside it wherever it is embedded.

    Raises:
        TypeError: a class that is not a `BaseEvent`.
        ValueError: no class, or two classes sent under one event name.
    """
    checked = _check(classes)
    payloads, definitions = _payloads(checked, "#/$defs/{model}")
    frames = [_frame(cls, payloads[cls]) for cls in checked]
    names = "-".join(_event_name(cls) for cls in checked)
    schema: JsonSchemaValue = {
        "$schema": JSON_SCHEMA_DIALECT,
        "$id": f"urn:asgi-sse:stream:{_CHANNEL_KEY.sub('_', names)}",
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
    openapi_response(Echo)})``."""
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
    """
    paths = document.setdefault("paths", {})
    for path, classes in streams.items():
        operation = paths.setdefault(path, {}).setdefault(method.lower(), {})
        responses = operation.setdefault("responses", {})
        responses["200"] = openapi_response(*classes)
    return document


def _channel_key(path: str) -> str:
    key = _CHANNEL_KEY.sub("_", path.strip("/"))
    return key or "root"


def _examples(cls: type[BaseEvent[Any]], payload_type: Any) -> list[dict[str, Any]]:
    """The payload model's own examples (``json_schema_extra={"examples": [...]}`` or a
    field-level ``examples``), as AsyncAPI message examples."""
    try:
        schema = TypeAdapter(payload_type).json_schema(mode="serialization")
    except Exception:
        return []
    examples = schema.get("examples")
    if not isinstance(examples, list):
        return []
    return [{"headers": {"event": _event_name(cls)}, "payload": example} for example in examples]


def asyncapi(
    streams: Mapping[str, Sequence[type[BaseEvent[Any]]]],
    *,
    title: str,
    version: str = "1.0.0",
    description: str | None = None,
    servers: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """An AsyncAPI 3.0 document of an app's event streams.

    ``streams`` maps each path to the classes its stream sends (add `asgi_sse.Reset`
    for a hub's stream); ``servers`` maps a name to a URL (``http://127.0.0.1:8000``).
    Every class is a message (``name`` its event name, the payload its data's schema,
    the docstring its description, the model's examples its examples, and the SSE
    fields - ``event``, ``id``, ``retry`` - its headers); every path is a channel and a
    ``send`` operation (the app sends, the client receives).

    Raises:
        TypeError, ValueError: as `stream_schema`.
    """
    every: dict[str, type[BaseEvent[Any]]] = {}
    per_path: dict[str, list[type[BaseEvent[Any]]]] = {}
    for path, classes in streams.items():
        checked = _check(classes)
        per_path[path] = checked
        for cls in checked:
            key = _message_key(cls)
            if key in every and every[key] is not cls:
                raise ValueError(
                    f"{every[key].__name__} and {cls.__name__} are both sent as "
                    f"{_event_name(cls)!r} in this app: name them apart"
                )
            every[key] = cls
    classes = list(every.values())
    payloads, definitions = _payloads(classes, "#/components/schemas/{model}")
    messages: dict[str, Any] = {}
    for key, cls in every.items():
        message: dict[str, Any] = {
            "name": _event_name(cls),
            "title": cls.__name__,
            "contentType": "application/json",
            "headers": _headers(cls),
            "payload": payloads[cls],
        }
        text = _description(cls)
        if text:
            message["summary"] = text.splitlines()[0]
            message["description"] = text
        examples = _examples(cls, _payload_type(cls))
        if examples:
            message["examples"] = examples
        messages[key] = message
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    taken: dict[str, str] = {}
    for path in per_path:
        channel = _channel_key(path)
        if channel in taken:
            raise ValueError(
                f"the paths {taken[channel]!r} and {path!r} make the same channel key "
                f"{channel!r}: give one of them another path"
            )
        taken[channel] = path
    for path, checked in per_path.items():
        channel = _channel_key(path)
        channels[channel] = {
            "address": path,
            "title": f"GET {path}",
            "description": (
                f"Server-Sent Events (text/event-stream) at {path}. "
                "Reconnect with the last id received as Last-Event-ID to resume."
            ),
            "messages": {
                _message_key(cls): {"$ref": f"#/components/messages/{_message_key(cls)}"}
                for cls in checked
            },
        }
        operations[f"send_{channel}"] = {
            "action": "send",
            "channel": {"$ref": f"#/channels/{channel}"},
            "summary": f"The app streams these events at {path}.",
            "messages": [
                {"$ref": f"#/channels/{channel}/messages/{_message_key(cls)}"} for cls in checked
            ],
        }
    info: dict[str, Any] = {"title": title, "version": version}
    if description is not None:
        info["description"] = description
    document: dict[str, Any] = {"asyncapi": "3.0.0", "info": info}
    if servers:
        document["servers"] = {name: _server(url) for name, url in servers.items()}
    document["channels"] = channels
    document["operations"] = operations
    document["components"] = {"messages": messages}
    if definitions:
        document["components"]["schemas"] = definitions
    return document


def _message_key(cls: type[BaseEvent[Any]]) -> str:
    return _CHANNEL_KEY.sub("_", _event_name(cls))


def _headers(cls: type[BaseEvent[Any]]) -> dict[str, Any]:
    from .._protocol.reset import Reset

    event: dict[str, Any] = {"const": _event_name(cls), "description": "The event's type."}
    if cls is Reset:
        event["description"] = RESET_DESCRIPTION
    return {
        "type": "object",
        "description": "The event's SSE fields besides data.",
        "properties": {
            "event": event,
            "id": {"type": "string", "description": CURSOR_DESCRIPTION},
            "retry": {
                "type": "integer",
                "minimum": 0,
                "description": "The reconnection delay the client takes, in ms.",
            },
        },
    }


def _server(url: str) -> dict[str, Any]:
    scheme, _, rest = url.partition("://")
    if not rest:
        raise ValueError(f"a server is a URL such as http://127.0.0.1:8000, not {url!r}")
    host, _, path = rest.partition("/")
    server: dict[str, Any] = {"host": host, "protocol": scheme}
    if path:
        server["pathname"] = "/" + path
    return server
