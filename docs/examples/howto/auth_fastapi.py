"""FastAPI: the same checks as auth_starlette.py, as dependencies."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated

from fastapi import Cookie, Depends, FastAPI, Header, HTTPException, Query, Response

from asgi_sse import Hub
from asgi_sse.starlette import EventSourceResponse

import stream_auth

hub = Hub()


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    async with hub:
        yield


app = FastAPI(lifespan=lifespan)
Session = Annotated[str | None, Cookie()]


def signed_in(session: Session = None) -> str:
    """The user of the session cookie, or 401."""
    user = stream_auth.authenticate(session, None)
    if user is None:
        raise HTTPException(401, "sign in first")
    return user


def stream_user(session: Session = None, token: str | None = None) -> str:
    """The user of the session cookie or of ``?token=``, or 401: on every connection."""
    user = stream_auth.authenticate(session, token)
    if user is None:
        raise HTTPException(401, "sign in first")
    return user


@app.get("/events")
async def events(
    user: Annotated[str, Depends(stream_user)],
    last_event_id: Annotated[str | None, Header()] = None,
    resume_after: Annotated[str | None, Query(alias="lastEventId")] = None,
) -> EventSourceResponse:
    topics = stream_auth.topics_of(user)  # from the server's state, never from the request
    if topics is None:
        raise HTTPException(403, "no access")
    subscription = hub.subscribe(*topics, last_event_id=last_event_id or resume_after, owner=user)
    return EventSourceResponse(subscription, retry=stream_auth.RECONNECT_MS)


@app.post("/token")
async def token(user: Annotated[str, Depends(signed_in)]) -> dict[str, str]:
    return {"token": stream_auth.issue_token(user)}


@app.post("/admin/ban/{user}")
async def ban(user: str, admin: Annotated[str, Depends(signed_in)]) -> dict[str, int]:
    if admin not in stream_auth.ADMINS:
        raise HTTPException(403, "admins only")
    stream_auth.ROOMS.pop(user, None)  # first the state, which every connection reads,
    return {"dropped": await hub.drop(user)}  # then the streams: they reconnect, get a 403


@app.post("/logout")
async def log_out(
    response: Response, user: Annotated[str, Depends(signed_in)], session: Session = None
) -> dict[str, int]:
    stream_auth.SESSIONS.pop(session or "", None)
    response.delete_cookie("session")
    return {"dropped": await hub.drop(user)}


@app.post("/login")
async def log_in(user: str, response: Response) -> dict[str, str]:
    # Stands in for your login: check a password, finish an OAuth flow...
    response.set_cookie("session", stream_auth.log_in(user), httponly=True, samesite="strict")
    return {"user": user}
