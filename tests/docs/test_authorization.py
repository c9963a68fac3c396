"""The authorization guide's apps (docs/examples/howto/auth_starlette.py, auth_fastapi.py
and stream_auth.py, which they share), in-process, on asyncio and trio.

Who may stream is decided on every connection, reconnections included: no valid
session cookie or stream token is 401, a signed-in user with no access is 403, and the
topics come from the server's state only (a room the user is not in is simply not in
their stream). `hub.drop(user)` ends that user's streams and nobody else's; what the
reconnection gets then depends on the state alone. A real browser's side of it is
tests/integration/test_auth_browser.py.
"""

from __future__ import annotations

import importlib
import json
import sys
import time
from collections.abc import Callable, Iterator
from types import ModuleType
from typing import Any
from urllib.parse import quote

import pytest

from asgi_sse.testing import TestStream, connect
from tests.docs.source import EXAMPLES

APPS = ("auth_starlette", "auth_fastapi")
MODULES = ("stream_auth", *APPS)

pytestmark = pytest.mark.timeout(30)


@pytest.fixture
def fresh(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[str], Any]]:
    """Import example modules afresh: stream_auth's state is global."""
    monkeypatch.syspath_prepend(str(EXAMPLES / "howto"))
    for name in MODULES:
        monkeypatch.delitem(sys.modules, name, raising=False)
    yield importlib.import_module
    for name in MODULES:
        sys.modules.pop(name, None)


@pytest.fixture(params=APPS)
def app_module(request: pytest.FixtureRequest, fresh: Callable[[str], Any]) -> Any:
    return fresh(str(request.param))


@pytest.fixture
def starlette_app(fresh: Callable[[str], Any]) -> Any:
    return fresh("auth_starlette")


def cookie(session: str) -> dict[str, str]:
    return {"cookie": f"session={session}"}


async def call(
    module: ModuleType, method: str, path: str, session: str | None = None
) -> tuple[int, Any]:
    """A plain request's status and JSON body (None when the body is not JSON)."""
    headers = cookie(session) if session is not None else {}
    async with connect(module.app, path, method=method, headers=headers) as response:
        await response.wait_finished()
    body = b"".join(m["body"] for m in response.messages if m["type"] == "http.response.body")
    try:
        return response.status or 0, json.loads(body)
    except ValueError:
        return response.status or 0, None


async def status_of(module: ModuleType, path: str, **options: Any) -> int:
    """The status a stream request is answered with (the stream, if any, is left)."""
    async with connect(module.app, path, **options) as stream:
        await stream.wait_started()
        if stream.status == 200:
            await stream.disconnect()
        else:
            await stream.wait_finished()
    assert stream.status is not None
    return stream.status


async def publish(module: ModuleType, room: str, text: str) -> str:
    event_id: str = await module.hub.publish(f"room:{room}", json.dumps({"text": text}))
    return event_id


async def texts(stream: TestStream, count: int) -> list[str]:
    return [json.loads(event.data)["text"] for event in await stream.events(count)]


def started(stream: TestStream) -> None:
    assert stream.status == 200
    assert stream.header("content-type") == "text/event-stream"


# -- who may connect --------------------------------------------------------------------


@pytest.mark.anyio
async def test_a_stream_needs_a_session_or_a_fresh_signed_token(app_module: Any) -> None:
    auth = app_module.stream_auth
    async with app_module.hub:
        assert await status_of(app_module, "/events") == 401
        assert await status_of(app_module, "/events", headers=cookie("made-up")) == 401
        bob = auth.log_in("bob")
        assert await status_of(app_module, "/events", headers=cookie(bob)) == 200
        # A token is issued to a signed-in user only, and opens a stream on its own.
        assert (await call(app_module, "POST", "/token"))[0] == 401
        status, body = await call(app_module, "POST", "/token", bob)
        assert status == 200
        assert await status_of(app_module, f"/events?token={body['token']}") == 200
        assert auth.user_of_token(body["token"]) == "bob"
        # Expired, altered (another user, a later expiry), or not a token at all: 401.
        expired = auth.issue_token("bob", now=time.time() - 2 * auth.TOKEN_LIFETIME)
        user, expires, signature = body["token"].split(":")
        refused = [
            expired,
            f"alice:{expires}:{signature}",
            f"{user}:{int(expires) + 3600}:{signature}",
            "bob",
            "",
            "bob:1:%C3%A9",  # not ASCII: compared as bytes, refused, not a 500
        ]
        for token in refused:
            assert await status_of(app_module, f"/events?token={token}") == 401, token


def test_the_token_lasts_about_a_minute(fresh: Callable[[str], Any]) -> None:
    auth = fresh("stream_auth")
    now = time.time()
    token = auth.issue_token("bob", now=now)
    assert auth.user_of_token(token, now=now + 59) == "bob"
    assert auth.user_of_token(token, now=now + 61) is None


@pytest.mark.anyio
async def test_a_signed_in_user_without_access_gets_403(app_module: Any) -> None:
    auth = app_module.stream_auth
    async with app_module.hub:
        alice, bob = auth.log_in("alice"), auth.log_in("bob")
        assert (await call(app_module, "POST", "/admin/ban/alice", bob))[0] == 403
        assert (await call(app_module, "POST", "/admin/ban/alice"))[0] == 401
        assert await call(app_module, "POST", "/admin/ban/bob", alice) == (200, {"dropped": 0})
        assert await status_of(app_module, "/events", headers=cookie(bob)) == 403
        token = auth.issue_token("bob")
        assert await status_of(app_module, f"/events?token={token}") == 403


@pytest.mark.anyio
async def test_the_topics_come_from_the_servers_state_only(app_module: Any) -> None:
    auth = app_module.stream_auth
    async with app_module.hub:
        bob = auth.log_in("bob")
        # Whatever the request names, bob reads his own topic and the rooms he is in.
        path = "/events?topic=room:staff&room=staff"
        async with connect(app_module.app, path, headers=cookie(bob)) as stream:
            await stream.wait_started()
            started(stream)
            await publish(app_module, "staff", "not for bob")
            await publish(app_module, "general", "for everyone")
            await app_module.hub.publish("user:bob", json.dumps({"text": "for bob"}))
            # (Each topic in its publish order; topics interleave as they come.)
            assert sorted(await texts(stream, 2)) == ["for bob", "for everyone"]


# -- every connection, reconnections included -----------------------------------------


@pytest.mark.anyio
async def test_a_reconnection_is_checked_again(app_module: Any) -> None:
    auth = app_module.stream_auth
    async with app_module.hub:
        alice, bob = auth.log_in("alice"), auth.log_in("bob")
        async with connect(app_module.app, "/events", headers=cookie(bob)) as stream:
            await stream.wait_started()
            await publish(app_module, "general", "one")
            await stream.next_event()
            await stream.disconnect()
        last = stream.last_event_id
        await publish(app_module, "general", "two")
        # Allowed: resumes exactly after its last event.
        async with connect(
            app_module.app, "/events", headers=cookie(bob), last_event_id=last
        ) as again:
            assert await texts(again, 1) == ["two"]
            await again.disconnect()
        # A Last-Event-ID is no credential: without a valid session or token, 401 ...
        expired = auth.issue_token("bob", now=time.time() - 2 * auth.TOKEN_LIFETIME)
        assert await status_of(app_module, "/events", last_event_id=last) == 401
        path = f"/events?token={expired}"
        assert await status_of(app_module, path, last_event_id=last) == 401
        # ... and once the state says no, 403.
        await call(app_module, "POST", "/admin/ban/bob", alice)
        assert (
            await status_of(app_module, "/events", headers=cookie(bob), last_event_id=last) == 403
        )


@pytest.mark.anyio
async def test_a_new_connection_resumes_from_the_query(app_module: Any) -> None:
    """A page whose token expired opens a new EventSource with a fresh token and
    ``?lastEventId=``: it misses nothing."""
    auth = app_module.stream_auth
    async with app_module.hub:
        token = auth.issue_token("bob")
        async with connect(app_module.app, f"/events?token={token}") as stream:
            await stream.wait_started()
            await publish(app_module, "general", "seen")
            assert await texts(stream, 1) == ["seen"]
            await stream.disconnect()
        await publish(app_module, "general", "missed")
        fresh = auth.issue_token("bob")
        path = f"/events?token={fresh}&lastEventId={quote(stream.last_event_id)}"
        async with connect(app_module.app, path) as again:
            assert await texts(again, 1) == ["missed"]
            await again.disconnect()


# -- ending streams -----------------------------------------------------------------------


@pytest.mark.anyio
async def test_drop_ends_that_users_streams_only(app_module: Any) -> None:
    auth = app_module.stream_auth
    async with app_module.hub:
        alice, bob = auth.log_in("alice"), auth.log_in("bob")
        token = auth.issue_token("alice")
        async with (
            connect(app_module.app, "/events", headers=cookie(bob)) as bobs,
            connect(app_module.app, "/events", headers=cookie(alice)) as alices,
            connect(app_module.app, f"/events?token={token}") as alices_too,
        ):
            for stream in (bobs, alices, alices_too):
                await stream.wait_started()
                started(stream)
            assert await call(app_module, "POST", "/admin/ban/bob", alice) == (200, {"dropped": 1})
            await bobs.wait_finished()  # a clean end: a browser reconnects (and gets 403)
            assert bobs.exception is None
            await publish(app_module, "general", "still here")
            for stream in (alices, alices_too):
                assert await texts(stream, 1) == ["still here"]
            # The app's logout drops every stream of the user, whatever opened it.
            assert await call(app_module, "POST", "/logout", alice) == (200, {"dropped": 2})
            await alices.wait_finished()
            await alices_too.wait_finished()
        assert await status_of(app_module, "/events", headers=cookie(alice)) == 401
        assert await app_module.hub.drop("nobody") == 0


@pytest.mark.anyio
async def test_a_user_who_gains_or_loses_a_room_resumes_exactly(starlette_app: Any) -> None:
    module = starlette_app
    auth = module.stream_auth
    async with module.hub:
        alice, bob = auth.log_in("alice"), auth.log_in("bob")
        async with connect(module.app, "/events", headers=cookie(bob)) as stream:
            await stream.wait_started()
            await publish(module, "general", "one")
            assert await texts(stream, 1) == ["one"]
            path = "/admin/rooms/staff/bob"
            assert await call(module, "PUT", path, alice) == (200, {"dropped": 1})
            await stream.wait_finished()
        await publish(module, "general", "two")  # while bob reconnects
        await publish(module, "staff", "before bob")
        last = stream.last_event_id
        async with connect(
            module.app, "/events", headers=cookie(bob), last_event_id=last
        ) as again:
            # general resumes exactly (no Reset); staff, new to him, from its newest event.
            await again.wait_started()
            await publish(module, "staff", "three")
            got = await again.events(2)
            assert {(e.event, json.loads(e.data)["text"]) for e in got} == {
                ("message", "two"),
                ("message", "three"),
            }
            path = "/admin/rooms/general/bob"
            assert await call(module, "DELETE", path, alice) == (200, {"dropped": 1})
            await again.wait_finished()
        await publish(module, "general", "gone")
        await publish(module, "staff", "four")
        last = again.last_event_id
        async with connect(
            module.app, "/events", headers=cookie(bob), last_event_id=last
        ) as third:
            assert await texts(third, 1) == ["four"]
            await third.disconnect()


@pytest.mark.anyio
async def test_posting_to_a_room_needs_its_membership(starlette_app: Any) -> None:
    module = starlette_app
    auth = module.stream_auth
    async with module.hub:
        bob = auth.log_in("bob")
        assert (await call(module, "POST", "/rooms/staff/messages?text=hi", bob))[0] == 403
        assert (await call(module, "POST", "/rooms/general/messages?text=hi"))[0] == 401
        status, body = await call(module, "POST", "/rooms/general/messages?text=hi", bob)
        assert status == 200
        assert body["id"] == module.hub.head("room:general")


@pytest.mark.anyio
async def test_the_page_is_served(starlette_app: Any) -> None:
    status, _ = await call(starlette_app, "GET", "/")
    assert status == 200
