"""Starlette: streams of the rooms a user may read, checked on every connection, and
ended with `hub.drop` when that changes."""

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from asgi_sse import Hub
from asgi_sse.starlette import EventSourceResponse

import stream_auth

hub = Hub()


@asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    async with hub:
        yield


def signed_in(request: Request) -> str | None:
    """The user of a request's session cookie (the page's own requests)."""
    return stream_auth.authenticate(request.cookies.get("session"), None)


# --8<-- [start:events]
async def events(request: Request) -> Response:  # GET /events, or /events?token=...
    # Every connection and every reconnection comes here: a Last-Event-ID is only a
    # position in the stream, never a credential.
    user = stream_auth.authenticate(
        request.cookies.get("session"), request.query_params.get("token")
    )
    if user is None:
        return PlainTextResponse("sign in first", status_code=401)
    topics = stream_auth.topics_of(user)  # from the server's state, never from the request
    if topics is None:
        return PlainTextResponse("no access", status_code=403)
    # The header when the browser reconnects; ?lastEventId= when a page opens a new
    # EventSource (a fresh token) and resumes where the last one stopped.
    last = request.headers.get("last-event-id") or request.query_params.get("lastEventId")
    subscription = hub.subscribe(*topics, last_event_id=last, owner=user)
    return EventSourceResponse(subscription, retry=stream_auth.RECONNECT_MS)


# --8<-- [end:events]
# --8<-- [start:token]
async def token(request: Request) -> Response:  # POST /token, signed in by the cookie
    user = signed_in(request)
    if user is None:
        return PlainTextResponse("sign in first", status_code=401)
    return JSONResponse({"token": stream_auth.issue_token(user)})


# --8<-- [end:token]
# --8<-- [start:revoke]
async def ban(request: Request) -> Response:  # POST /admin/ban/{user}
    if (admin := signed_in(request)) not in stream_auth.ADMINS:
        return PlainTextResponse("admins only", status_code=401 if admin is None else 403)
    user = request.path_params["user"]
    stream_auth.ROOMS.pop(user, None)  # first the state, which every connection reads,
    dropped = await hub.drop(user)  # then the streams: they reconnect and get a 403
    return JSONResponse({"dropped": dropped})


async def room_access(request: Request) -> Response:  # PUT or DELETE /admin/rooms/{room}/{user}
    if (admin := signed_in(request)) not in stream_auth.ADMINS:
        return PlainTextResponse("admins only", status_code=401 if admin is None else 403)
    room, user = request.path_params["room"], request.path_params["user"]
    if request.method == "PUT":
        stream_auth.ROOMS.setdefault(user, set()).add(room)
    else:
        stream_auth.ROOMS.get(user, set()).discard(room)
    # Their streams reconnect, resume exactly, and now follow the rooms they may read.
    return JSONResponse({"dropped": await hub.drop(user)})


async def log_out(request: Request) -> Response:  # POST /logout
    user = signed_in(request)
    stream_auth.SESSIONS.pop(request.cookies.get("session", ""), None)
    response = JSONResponse({"dropped": await hub.drop(user) if user else 0})
    response.delete_cookie("session")
    return response


# --8<-- [end:revoke]
async def log_in(request: Request) -> Response:  # POST /login?user=bob
    # Stands in for your login: check a password, finish an OAuth flow...
    user = request.query_params["user"]
    response = JSONResponse({"user": user})
    response.set_cookie("session", stream_auth.log_in(user), httponly=True, samesite="strict")
    return response


async def post_message(request: Request) -> Response:  # POST /rooms/{room}/messages?text=hi
    user, room = signed_in(request), request.path_params["room"]
    if user is None:
        return PlainTextResponse("sign in first", status_code=401)
    if room not in stream_auth.ROOMS.get(user, ()):
        return PlainTextResponse("not your room", status_code=403)
    message = {"room": room, "from": user, "text": request.query_params.get("text", "")}
    return JSONResponse({"id": await hub.publish(f"room:{room}", json.dumps(message))})


async def page(request: Request) -> Response:  # GET /
    return FileResponse(Path(__file__).with_name("auth_page.html"))


routes = [
    Route("/", page),
    Route("/login", log_in, methods=["POST"]),
    Route("/logout", log_out, methods=["POST"]),
    Route("/token", token, methods=["POST"]),
    Route("/events", events),
    Route("/rooms/{room}/messages", post_message, methods=["POST"]),
    Route("/admin/ban/{user}", ban, methods=["POST"]),
    Route("/admin/rooms/{room}/{user}", room_access, methods=["PUT", "DELETE"]),
]
app = Starlette(routes=routes, lifespan=lifespan)
