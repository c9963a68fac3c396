"""Who may read what, without a framework: sessions, short-lived signed stream tokens,
and each user's rooms. The apps of the authorization guide (auth_starlette.py,
auth_fastapi.py) ask it on every connection."""

import hashlib
import hmac
import secrets
import time

# The server's own state; a real app keeps it in its database.
SESSIONS: dict[str, str] = {}  # session cookie -> user id
ROOMS: dict[str, set[str]] = {"alice": {"general", "staff"}, "bob": {"general"}}
ADMINS = {"alice"}

# --8<-- [start:tokens]
SECRET = secrets.token_bytes(32)  # in production: from your settings, the same everywhere
TOKEN_LIFETIME = 60  # seconds: enough to open the stream, too short to be worth stealing


def _signature(payload: str) -> str:
    # "stream:": a token for streams only, never mistaken for another signed value.
    return hmac.new(SECRET, f"stream:{payload}".encode(), hashlib.sha256).hexdigest()


def issue_token(user: str, now: float | None = None) -> str:
    """A token that lets ``user`` open a stream for the next minute: who, until when,
    and an HMAC of both."""
    expires = int((time.time() if now is None else now) + TOKEN_LIFETIME)
    payload = f"{user}:{expires}"
    return f"{payload}:{_signature(payload)}"


def user_of_token(token: str, now: float | None = None) -> str | None:
    """The user a token was issued to; None when it is forged, altered or expired."""
    payload, _, signature = token.rpartition(":")
    if not hmac.compare_digest(signature.encode(), _signature(payload).encode()):
        return None
    user, _, expires = payload.rpartition(":")
    if int(expires) < (time.time() if now is None else now):
        return None
    return user


# --8<-- [end:tokens]
# --8<-- [start:check]
def log_in(user: str) -> str:
    """A new session of ``user`` (your login checks a password first); its cookie."""
    session = secrets.token_urlsafe(32)
    SESSIONS[session] = user
    return session


def authenticate(session: str | None, token: str | None) -> str | None:
    """Who a request comes from: its session cookie, else its stream token (None:
    neither is valid)."""
    if session is not None and session in SESSIONS:
        return SESSIONS[session]
    if token:
        return user_of_token(token)
    return None


def topics_of(user: str) -> list[str] | None:
    """What ``user`` may read now, from the server's state (None: nothing at all).

    Their own topic (messages to them alone), then their rooms': with two topics or
    more a stream's ids are cursors that name each topic, so a user who gains or loses
    a room resumes the others exactly."""
    rooms = ROOMS.get(user)
    if rooms is None:
        return None
    return [f"user:{user}", *(f"room:{room}" for room in sorted(rooms))]


# --8<-- [end:check]
RECONNECT_MS = 1000  # how long a browser waits before it reconnects
