"""Shared fixtures: every async test runs on asyncio and on trio."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from asgi_sse import ParsedEvent


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(autouse=True, scope="session")
def typed_frames_fit_their_schema() -> Iterator[None]:
    """Every frame the suite decodes into a typed event with the test client must fit
    that class's JSON Schema (`asgi_sse.schema.event_schema`), ``data`` included."""
    from asgi_sse.testing import TestStream
    from tests.support.schemacheck import check_typed_frame

    original = TestStream._decode

    def checked(self: TestStream, event_type: type[Any], item: ParsedEvent) -> Any:
        event = original(self, event_type, item)  # pydantic accepted it first
        check_typed_frame(event_type, item)
        return event

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(TestStream, "_decode", checked)
        yield
