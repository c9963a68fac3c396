"""Schemas of event streams: JSON Schema, OpenAPI and AsyncAPI from the event classes.

Pydantic only. What is described is an event as a client receives it (the fields of a
`ParsedEvent`): ``event`` (the class's event name, ``message`` for a class without
one), ``id``, ``retry``, and ``data`` - a string of JSON whose content is the class's
payload, as it is sent (pydantic's serialization schema).

* `event_schema(Echo)`: one class's frame;
* `stream_schema(Echo, ReverseEcho, Reset)`: a stream of several, told apart by
  ``event`` (one of them);
* `openapi_response(Echo, ReverseEcho)`: the OpenAPI 3.1/3.2 response of such a route
  (``text/event-stream`` with an ``itemSchema``), for FastAPI's ``responses=`` and any
  hand-written OpenAPI document;
* `asyncapi({"/sse2": (Echo,), "/chat": (ChatMessage, Reset)}, title=...)`: an
  AsyncAPI 3.0 document of an app's streams - a channel per path, a message per event
  class (its name, payload schema, the docstring as description, the model's examples),
  the ``send`` operations, and the ids' cursor format and the hub's ``reset`` event
  described.
"""

from ._integrations.asyncapi import asyncapi
from ._integrations.schema import (
    CURSOR_DESCRIPTION,
    add_stream_responses,
    event_schema,
    openapi_response,
    stream_schema,
)

__all__ = (
    "CURSOR_DESCRIPTION",
    "add_stream_responses",
    "asyncapi",
    "event_schema",
    "openapi_response",
    "stream_schema",
)
