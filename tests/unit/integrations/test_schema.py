"""Event schemas: JSON Schema of frames, OpenAPI responses in the frameworks' documents,
and the AsyncAPI 3.0 document, validated against the official AsyncAPI JSON Schema
(``@asyncapi/specs`` from npm, in tools/asyncapi: ``npm install --prefix
tools/asyncapi``; without it that check skips - or fails under
``ASGI_SSE_REQUIRE_ASYNCAPI=1``, as in CI).

Every frame decoded into a typed event by the test client (`TestStream.next_event`)
anywhere in the suite is also validated against its class's schema (tests/conftest.py);
here the demo's and the hub's streams are validated frame by frame, with the ``data``
content schema checked too.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest
from pydantic import BaseModel, ConfigDict, Field

from asgi_sse import BaseEvent, Hub, ParsedEvent, Reset, SSEEndpoint, SSERequest, Subscription
from asgi_sse.demo import Echo, ReverseEcho, create_app
from asgi_sse.demo.chat import ChatMessage, ChatPayload, Connected
from asgi_sse.schema import (
    CURSOR_DESCRIPTION,
    add_stream_responses,
    asyncapi,
    event_schema,
    openapi_response,
    stream_schema,
)
from asgi_sse.testing import ASGIStreamTransport, connect
from tests.support.schemacheck import frame_errors

pytestmark = pytest.mark.timeout(30)

ROOT = Path(__file__).resolve().parents[3]
ASYNCAPI_SCHEMA = ROOT / "tools/asyncapi/node_modules/@asyncapi/specs/schemas/3.0.0.json"


class Item(BaseModel):
    """An item of a list."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"name": "a", "tags": ["x"]}]})

    name: str
    tags: list[str] = Field(default_factory=list)


class Basket(BaseEvent[list[Item]]):
    """A basket of items.

    Sent whenever the basket changes."""


class Count(BaseEvent[int], event="stats.count"):
    pass


class Plain(BaseEvent[dict[str, float]]):  # no docstring of its own
    pass


Untitled = BaseEvent[str]  # no event name: sent without an event line, read as "message"


def parsed(frame: bytes) -> ParsedEvent:
    from asgi_sse import EventStreamParser

    (event,) = [e for e in EventStreamParser().feed(frame) if isinstance(e, ParsedEvent)]
    return event


# -- JSON Schema ----------------------------------------------------------------------------


def test_one_class_frame_schema_fixes_the_name_and_describes_the_payload() -> None:
    schema = event_schema(Basket)
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["title"] == "Basket"
    assert schema["description"] == "A basket of items.\n\nSent whenever the basket changes."
    properties = schema["properties"]
    assert properties["event"] == {"const": "basket"}
    assert properties["retry"] == {"type": "integer", "minimum": 0}
    assert properties["id"]["description"] == CURSOR_DESCRIPTION
    data = properties["data"]
    assert (data["type"], data["contentMediaType"]) == ("string", "application/json")
    assert data["contentSchema"] == {"items": {"$ref": "#/$defs/Item"}, "type": "array"}
    assert schema["$defs"]["Item"]["properties"]["name"] == {"title": "Name", "type": "string"}
    assert schema["required"] == ["event", "data"]


@pytest.mark.parametrize(
    "event",
    [
        Basket(data=[Item(name="a", tags=["x", "y"])], id="7", retry=1000),
        Count(data=3),
        Plain(data={"x": 1.5}, id=""),
        Untitled(data="hello\nworld"),
        Echo(data={"message": "hi", "created_at": dt.datetime(2026, 1, 1)}, id=4),  # type: ignore[arg-type]
    ],
)
def test_encoded_frames_validate_against_their_class_schema(event: BaseEvent[Any]) -> None:
    assert frame_errors(event_schema(type(event)), parsed(event.encode())) == []


def test_a_frame_of_another_class_or_with_bad_data_does_not_validate() -> None:
    schema = event_schema(Basket)
    assert frame_errors(schema, parsed(Count(data=3).encode()))  # event: stats.count
    wrong = parsed(b'event: basket\ndata: [{"name": 1}]\n\n')
    assert any("1 is not of type 'string'" in error for error in frame_errors(schema, wrong))
    assert frame_errors(schema, parsed(b"event: basket\ndata: not json\n\n"))


def test_a_stream_schema_is_one_of_its_frames_told_apart_by_event() -> None:
    schema = stream_schema(Echo, ReverseEcho, Reset, title="sse3")
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["title"] == "sse3"
    names = [frame["properties"]["event"]["const"] for frame in schema["oneOf"]]
    assert names == ["echo", "reverse_echo", "reset"]
    assert set(schema["$defs"]) == {"EchoPayload", "ResetInfo"}
    reset = Reset(data={"reason": "gone", "topics": ["t"], "resume_from": "1-0"}, id="1-0")  # type: ignore[arg-type]
    for event in (Echo(data={"message": "m", "created_at": dt.datetime.now()}), reset):  # type: ignore[arg-type]
        assert frame_errors(schema, parsed(event.encode())) == []
    assert frame_errors(schema, parsed(Count(data=1).encode()))


def test_what_cannot_be_described_is_refused() -> None:
    with pytest.raises(ValueError, match="at least one"):
        stream_schema()
    with pytest.raises(TypeError, match="BaseEvent subclasses"):
        stream_schema(Item)  # type: ignore[arg-type]

    class Other(BaseEvent[int], event="basket"):
        pass

    with pytest.raises(ValueError, match="both sent as 'basket'"):
        stream_schema(Basket, Other)
    with pytest.raises(ValueError, match="both sent as 'basket'"):
        asyncapi({"/a": (Basket,), "/b": (Other,)}, title="t")
    with pytest.raises(ValueError, match="a server is a URL"):
        asyncapi({"/a": (Basket,)}, title="t", servers={"x": "localhost"})
    assert stream_schema(Basket, Basket) == stream_schema(Basket)  # the same class twice: once


# -- streams the suite runs, frame by frame --------------------------------------------------


@pytest.mark.anyio
async def test_every_frame_of_the_demo_streams_validates_with_its_data() -> None:
    app = create_app()
    for path, classes in (
        ("/sse2?interval=0&count=5", (Echo,)),
        ("/sse3?interval=0&count=4", (Echo, ReverseEcho)),
    ):
        schema = stream_schema(*classes)
        async with connect(app, path) as stream:
            events = await stream.events(4)
        for event in events:
            assert frame_errors(schema, event) == [], event


@pytest.mark.anyio
async def test_every_frame_of_a_hub_stream_validates_resets_included() -> None:
    hub = Hub(history=2)
    schema = stream_schema(Connected, ChatMessage, Reset)
    async with hub:
        first = await hub.publish(
            "chat", ChatMessage(data=ChatPayload(text="a", time=dt.datetime.now(dt.timezone.utc)))
        )
        for n in range(3):
            await hub.publish(
                "chat",
                ChatMessage(data=ChatPayload(text=str(n), time=dt.datetime.now(dt.timezone.utc))),
            )

        def handler(request: SSERequest) -> Subscription:
            return hub.subscribe("chat", last_event_id=request.last_event_id)

        async with connect(SSEEndpoint(handler), "/", last_event_id=first) as stream:
            reset = await stream.next_event(Reset)  # `first` fell out of the log
            await hub.publish(
                "chat",
                ChatMessage(data=ChatPayload(text="live", time=dt.datetime.now(dt.timezone.utc))),
            )
            live = await stream.next_event()
        assert reset.data.reason == "gone"
        for message in stream.messages:
            if message["type"] == "http.response.body" and message.get("body"):
                from asgi_sse import EventStreamParser

                for event in EventStreamParser().feed(message["body"]):
                    if isinstance(event, ParsedEvent):
                        assert frame_errors(schema, event) == [], event
        assert frame_errors(schema, live) == []


# -- OpenAPI --------------------------------------------------------------------------------


def item_schema(document: dict[str, Any], path: str) -> dict[str, Any]:
    content = document["paths"][path]["get"]["responses"]["200"]["content"]
    schema: dict[str, Any] = content["text/event-stream"]["itemSchema"]
    return schema


def names_and_payloads(schema: dict[str, Any]) -> dict[str, Any]:
    frames = schema.get("oneOf", [schema])
    return {
        frame["properties"]["event"]["const"]: frame["properties"]["data"]["contentSchema"]
        for frame in frames
    }


def test_fastapi_routes_document_their_events() -> None:
    from fastapi import FastAPI

    from asgi_sse.starlette import EventSourceResponse as StarletteSSE

    app = FastAPI()

    @app.get(
        "/echoes",
        response_class=StarletteSSE,
        response_model=None,
        responses={200: openapi_response(Echo, ReverseEcho)},
    )
    async def echoes() -> None:  # pragma: no cover - documented, not called
        raise NotImplementedError

    app.mount("/chat", SSEEndpoint(lambda request: iter(())))  # type: ignore[arg-type, return-value]
    document = app.openapi()
    add_stream_responses(document, {"/chat": (Connected, ChatMessage, Reset)})  # mounted
    assert document["openapi"].startswith("3.1")
    echoes_schema = item_schema(document, "/echoes")
    assert names_and_payloads(echoes_schema) == {
        "echo": {"$ref": "#/$defs/EchoPayload"},
        "reverse_echo": {"$ref": "#/$defs/EchoPayload"},
    }
    assert echoes_schema["$defs"]["EchoPayload"]["required"] == ["message", "created_at"]
    jsonschema.Draft202012Validator.check_schema(echoes_schema)
    chat = item_schema(document, "/chat")
    assert list(names_and_payloads(chat)) == ["connected", "chat_message", "reset"]
    # The whole document survives a JSON round trip (what /openapi.json serves).
    assert json.loads(json.dumps(document)) == document


def test_starlette_and_litestar_documents_get_the_same_responses() -> None:
    from litestar import Litestar, get
    from starlette.applications import Starlette
    from starlette.routing import Route
    from starlette.schemas import SchemaGenerator

    async def endpoint(request: Any) -> None:  # pragma: no cover - documented, not called
        """responses: {}"""

    starlette_app = Starlette(routes=[Route("/echoes", endpoint)])
    generator = SchemaGenerator({"openapi": "3.1.0", "info": {"title": "t", "version": "1"}})
    document = add_stream_responses(
        generator.get_schema(starlette_app.routes), {"/echoes": (Echo,)}
    )
    assert names_and_payloads(item_schema(document, "/echoes")) == {
        "echo": {"$ref": "#/$defs/EchoPayload"}
    }

    @get("/echoes")
    async def litestar_echoes() -> None:  # pragma: no cover - documented, not called
        return None

    litestar_app = Litestar([litestar_echoes])
    document = add_stream_responses(litestar_app.openapi_schema.to_schema(), {"/echoes": (Echo,)})
    assert names_and_payloads(item_schema(document, "/echoes")) == {
        "echo": {"$ref": "#/$defs/EchoPayload"}
    }


# -- AsyncAPI -------------------------------------------------------------------------------


def official_asyncapi_schema() -> dict[str, Any]:
    if not ASYNCAPI_SCHEMA.exists():
        reason = "no @asyncapi/specs: npm install --prefix tools/asyncapi"
        if os.environ.get("ASGI_SSE_REQUIRE_ASYNCAPI") == "1":
            pytest.fail(f"{reason} (ASGI_SSE_REQUIRE_ASYNCAPI=1)")
        pytest.skip(reason)
    schema: dict[str, Any] = json.loads(ASYNCAPI_SCHEMA.read_text(encoding="utf-8"))
    return schema


def asyncapi_errors(document: dict[str, Any]) -> list[str]:
    schema = official_asyncapi_schema()
    validator = jsonschema.validators.validator_for(schema)(schema)
    return [error.message for error in validator.iter_errors(document)]


def test_the_asyncapi_document_validates_against_the_official_schema() -> None:
    document = asyncapi(
        {"/baskets": (Basket, Count), "/hub": (Basket, Reset), "/": (Untitled,)},
        title="Shop",
        version="2.1.0",
        description="The shop's streams.",
        servers={"production": "https://shop.example/api"},
    )
    assert asyncapi_errors(document) == []
    assert document["asyncapi"] == "3.0.0"
    assert document["servers"]["production"] == {
        "host": "shop.example",
        "protocol": "https",
        "pathname": "/api",
    }
    channels = document["channels"]
    assert {key: channel["address"] for key, channel in channels.items()} == {
        "baskets": "/baskets",
        "hub": "/hub",
        "root": "/",
    }
    assert set(channels["baskets"]["messages"]) == {"basket", "stats.count"}
    operation = document["operations"]["send_hub"]
    assert operation["action"] == "send"
    assert operation["channel"] == {"$ref": "#/channels/hub"}
    messages = document["components"]["messages"]
    basket = messages["basket"]
    assert (basket["name"], basket["title"], basket["summary"]) == (
        "basket",
        "Basket",
        "A basket of items.",
    )
    assert basket["payload"] == {"items": {"$ref": "#/components/schemas/Item"}, "type": "array"}
    assert basket["headers"]["properties"]["id"]["description"] == CURSOR_DESCRIPTION
    assert messages["stats.count"]["name"] == "stats.count"
    assert messages["message"]["name"] == "message"  # a class without an event name
    reset = messages["reset"]
    assert "Refetch" in reset["headers"]["properties"]["event"]["description"]
    assert reset["payload"] == {"$ref": "#/components/schemas/ResetInfo"}
    schemas = document["components"]["schemas"]
    assert set(schemas) >= {"Item", "ResetInfo"}
    assert schemas["ResetInfo"]["properties"]["reason"]["enum"] == [
        "gone",
        "unknown",
        "malformed",
        "overflow",
    ]


def test_asyncapi_examples_come_from_the_model() -> None:
    class Listed(BaseEvent[Item]):
        pass

    document = asyncapi({"/items": (Listed,)}, title="t")
    assert document["components"]["messages"]["listed"]["examples"] == [
        {"headers": {"event": "listed"}, "payload": {"name": "a", "tags": ["x"]}}
    ]
    assert asyncapi_errors(document) == []


def test_a_broken_document_is_caught_by_the_official_schema() -> None:
    document = asyncapi({"/items": (Basket,)}, title="t")
    document["operations"]["send_items"]["action"] = "publish"  # AsyncAPI 2's word
    assert asyncapi_errors(document)


@pytest.mark.anyio
async def test_the_demo_serves_its_asyncapi_document() -> None:
    transport = ASGIStreamTransport(create_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://demo") as http:
        response = await http.get("/asyncapi.json")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    document = response.json()
    assert document["info"]["title"] == "asgi-sse demo"
    assert {c["address"] for c in document["channels"].values()} == {"/sse2", "/sse3", "/chat"}
    assert set(document["components"]["messages"]) == {
        "echo",
        "reverse_echo",
        "connected",
        "chat_message",
        "reset",
    }
    assert asyncapi_errors(document) == []


def test_constraints_of_an_annotated_payload_are_kept() -> None:
    from typing import Annotated

    class Level(BaseEvent[Annotated[int, Field(ge=0, le=10)]]):
        pass

    content = event_schema(Level)["properties"]["data"]["contentSchema"]
    assert content == {"type": "integer", "minimum": 0, "maximum": 10}
    assert frame_errors(event_schema(Level), parsed(b"event: level\ndata: 11\n\n"))


def test_paths_that_make_the_same_channel_key_are_refused() -> None:
    with pytest.raises(ValueError, match="same channel key 'x_y'"):
        asyncapi({"/x/y": (Basket,), "/x_y": (Count,)}, title="t")
