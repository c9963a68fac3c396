"""Tests of the tutorial's chat.py: a reconnect gets exactly what it missed."""

import pytest

from asgi_sse.testing import connect

from chat import ChatMessage, Said, app, hub

pytestmark = pytest.mark.anyio


async def test_a_reconnect_resumes_after_its_last_event_id() -> None:
    async with hub:  # what the server's lifespan does
        async with connect(app, "/chat") as stream:
            await stream.wait_started()  # subscribed: nothing published now is missed
            one = await hub.publish("chat", ChatMessage(data=Said(text="one")))
            assert (await stream.next_event(ChatMessage)).data.text == "one"
        missed = await hub.publish("chat", ChatMessage(data=Said(text="two")))
        async with connect(app, "/chat", last_event_id=one) as again:
            event = await again.next_event(ChatMessage)
        assert (event.id, event.data.text) == (missed, "two")


async def test_posting_publishes() -> None:
    async with hub:
        async with connect(app, "/chat") as stream:
            await stream.wait_started()
            async with connect(app, "/chat", method="POST", body=b"hello") as post:
                await post.wait_finished()
            assert post.status == 204
            assert (await stream.next_event(ChatMessage)).data.text == "hello"
