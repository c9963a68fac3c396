"""The AsyncAPI 3.0 document of an app's event streams (`asgi_sse.schema.asyncapi`).

Built one part of the document at a time (AsyncAPI 3.0.0, "Document Structure"): the
classes each path sends, checked; ``info`` and ``servers``; a channel per path; a
``send`` operation per channel (the app sends, the client receives); and the
components: a message per event class, their payloads' shared schemas. Must not import
anything async, the server or the hub: pydantic, the protocol layer and the schema
helpers only.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import TypeAdapter
from pydantic.json_schema import JsonSchemaValue

from .._protocol.events import BaseEvent
from .._protocol.reset import Reset
from .schema import (
    CURSOR_DESCRIPTION,
    checked_classes,
    docstring_of,
    event_name,
    key_of,
    payload_schemas,
    payload_type,
)

__all__ = ("RESET_DESCRIPTION", "asyncapi")

RESET_DESCRIPTION = (
    "Sent instead of a replay that cannot be exact (the client's id is no longer held, "
    "from before a restart, or not an id of this stream): events were missed. Refetch "
    "the state, then follow the live events after this one; its id is where the "
    "stream goes on (`resume_from`)."
)

EventClass = type[BaseEvent[Any]]


def asyncapi(
    streams: Mapping[str, Sequence[type[BaseEvent[Any]]]],
    *,
    title: str,
    version: str = "1.0.0",
    description: str | None = None,
    servers: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """An AsyncAPI 3.0 document of an app's event streams.

    Every class is a message (``name`` its event name, the payload its data's schema,
    the docstring its description, the model's examples its examples, and the SSE
    fields - ``event``, ``id``, ``retry`` - its headers); every path is a channel and a
    ``send`` operation (the app sends, the client receives).

    Args:
        streams: Each path -> the classes its stream sends (add `asgi_sse.Reset` for a
            hub's stream).
        title: The document's ``info.title``.
        version: The document's ``info.version``: your API's, not AsyncAPI's.
        description: The document's ``info.description``, if any.
        servers: A name -> a URL (``http://127.0.0.1:8000``), if any.

    Raises:
        TypeError: a class that is not a `BaseEvent` (as `stream_schema`).
        ValueError: a path with no class, two classes sent under one event name (on
            one path or in the app), two paths that make one channel key, or a server
            that is not a URL.
    """
    per_path, by_key = _classes_of(streams)
    payloads, definitions = payload_schemas(list(by_key.values()), "#/components/schemas/{model}")
    channel_keys = _channel_keys(per_path)
    document: dict[str, Any] = {"asyncapi": "3.0.0", "info": _info(title, version, description)}
    if servers:
        document["servers"] = {name: _server(url) for name, url in servers.items()}
    document["channels"] = {
        channel_keys[path]: _channel(path, classes) for path, classes in per_path.items()
    }
    document["operations"] = {
        f"send_{channel_keys[path]}": _operation(path, channel_keys[path], classes)
        for path, classes in per_path.items()
    }
    document["components"] = _components(by_key, payloads, definitions)
    return document


# -- the classes ----------------------------------------------------------------------------


def _classes_of(
    streams: Mapping[str, Sequence[EventClass]],
) -> tuple[dict[str, list[EventClass]], dict[str, EventClass]]:
    """Each path's classes, checked, and each message key's one class in the app."""
    per_path: dict[str, list[EventClass]] = {}
    by_key: dict[str, EventClass] = {}
    for path, classes in streams.items():
        checked = checked_classes(classes)
        per_path[path] = checked
        for cls in checked:
            key = _message_key(cls)
            if key in by_key and by_key[key] is not cls:
                raise ValueError(
                    f"{by_key[key].__name__} and {cls.__name__} are both sent as "
                    f"{event_name(cls)!r} in this app: name them apart"
                )
            by_key[key] = cls
    return per_path, by_key


def _message_key(cls: EventClass) -> str:
    return key_of(event_name(cls))


# -- info and servers -----------------------------------------------------------------------


def _info(title: str, version: str, description: str | None) -> dict[str, Any]:
    info: dict[str, Any] = {"title": title, "version": version}
    if description is not None:
        info["description"] = description
    return info


def _server(url: str) -> dict[str, Any]:
    scheme, _, rest = url.partition("://")
    if not rest:
        raise ValueError(f"a server is a URL such as http://127.0.0.1:8000, not {url!r}")
    host, _, path = rest.partition("/")
    server: dict[str, Any] = {"host": host, "protocol": scheme}
    if path:
        server["pathname"] = "/" + path
    return server


# -- channels and operations ----------------------------------------------------------------


def _channel_keys(per_path: Mapping[str, object]) -> dict[str, str]:
    """Each path's channel key (``/`` is ``root``); two paths may not make one."""
    taken: dict[str, str] = {}
    for path in per_path:
        channel = key_of(path.strip("/")) or "root"
        if channel in taken:
            raise ValueError(
                f"the paths {taken[channel]!r} and {path!r} make the same channel key "
                f"{channel!r}: give one of them another path"
            )
        taken[channel] = path
    return {path: channel for channel, path in taken.items()}


def _channel(path: str, classes: Sequence[EventClass]) -> dict[str, Any]:
    return {
        "address": path,
        "title": f"GET {path}",
        "description": (
            f"Server-Sent Events (text/event-stream) at {path}. "
            "Reconnect with the last id received as Last-Event-ID to resume."
        ),
        "messages": {
            _message_key(cls): {"$ref": f"#/components/messages/{_message_key(cls)}"}
            for cls in classes
        },
    }


def _operation(path: str, channel: str, classes: Sequence[EventClass]) -> dict[str, Any]:
    return {
        "action": "send",
        "channel": {"$ref": f"#/channels/{channel}"},
        "summary": f"The app streams these events at {path}.",
        "messages": [
            {"$ref": f"#/channels/{channel}/messages/{_message_key(cls)}"} for cls in classes
        ],
    }


# -- components: messages and schemas ------------------------------------------------------


def _components(
    by_key: Mapping[str, EventClass],
    payloads: Mapping[EventClass, JsonSchemaValue],
    definitions: dict[str, JsonSchemaValue],
) -> dict[str, Any]:
    components: dict[str, Any] = {
        "messages": {key: _message(cls, payloads[cls]) for key, cls in by_key.items()}
    }
    if definitions:
        components["schemas"] = definitions
    return components


def _message(cls: EventClass, payload: JsonSchemaValue) -> dict[str, Any]:
    message: dict[str, Any] = {
        "name": event_name(cls),
        "title": cls.__name__,
        "contentType": "application/json",
        "headers": _headers(cls),
        "payload": payload,
    }
    text = docstring_of(cls)
    if text:
        message["summary"] = text.splitlines()[0]
        message["description"] = text
    examples = _examples(cls)
    if examples:
        message["examples"] = examples
    return message


def _headers(cls: EventClass) -> dict[str, Any]:
    """The frame's SSE fields besides ``data``, as the message's headers."""
    event: dict[str, Any] = {"const": event_name(cls), "description": "The event's type."}
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


def _examples(cls: EventClass) -> list[dict[str, Any]]:
    """The payload model's own examples (``json_schema_extra={"examples": [...]}`` or a
    field-level ``examples``), as AsyncAPI message examples."""
    try:
        schema = TypeAdapter(payload_type(cls)).json_schema(mode="serialization")
    except Exception:
        return []
    examples = schema.get("examples")
    if not isinstance(examples, list):
        return []
    return [{"headers": {"event": event_name(cls)}, "payload": example} for example in examples]
