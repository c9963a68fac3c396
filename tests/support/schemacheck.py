"""Checking received frames against `asgi_sse.schema` (not a test module)."""

from __future__ import annotations

import json
from functools import cache
from typing import Any

import jsonschema

from asgi_sse import BaseEvent, ParsedEvent
from asgi_sse.schema import event_schema

__all__ = ("check_typed_frame", "frame_errors")


def frame_errors(schema: dict[str, Any], event: ParsedEvent) -> list[str]:
    """Why ``event`` (as a client parsed it) does not fit the stream ``schema``: the
    frame's fields, then its ``data`` against the matching frame's content schema."""
    instance: dict[str, Any] = {"event": event.event, "data": event.data}
    if event.id:
        instance["id"] = event.id
    if event.retry is not None:
        instance["retry"] = event.retry
    errors = [
        error.message for error in jsonschema.Draft202012Validator(schema).iter_errors(instance)
    ]
    if errors:
        return errors
    frames = schema.get("oneOf", [schema])
    (frame,) = [f for f in frames if f["properties"]["event"]["const"] == event.event]
    content = frame["properties"]["data"]["contentSchema"]
    try:
        data = json.loads(event.data)
    except ValueError as exc:
        return [f"data is not JSON: {exc}"]
    # The content schema's references point into the stream schema's own $defs.
    wrapper = {
        "$schema": schema["$schema"],
        "$id": schema["$id"],
        "$defs": schema.get("$defs", {}),
        **content,
    }
    return [error.message for error in jsonschema.Draft202012Validator(wrapper).iter_errors(data)]


@cache
def _schema_of(cls: type[BaseEvent[Any]]) -> dict[str, Any]:
    return event_schema(cls)


def check_typed_frame(cls: type[BaseEvent[Any]], event: ParsedEvent) -> None:
    """AssertionError if a frame decoded as ``cls`` does not fit ``cls``'s schema."""
    errors = frame_errors(_schema_of(cls), event)
    assert not errors, f"a {cls.__name__} frame does not fit its schema: {errors}\n{event}"
