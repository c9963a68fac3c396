"""Event ids and cursors: how a client's `Last-Event-ID` says where it stopped.

Sans-IO, standard library only. Two shapes, both safe in an HTTP header (letters,
digits, ``-``, ``.``, ``~`` and ``_`` only: no comma, space, semicolon, quote, CR or
LF) and bounded in size:

* a **position** in one log: ``<epoch>-<sequence>``, e.g. ``3fa9c2d1-42``. The epoch is
  chosen when the log is created, so an id from before a restart (or from another log
  that had the same name) never matches the wrong events; the sequence increases by one
  per event from 1, and 0 is the head of a log that holds no event yet.
* a **cursor** over several logs (or keyed sources, whose positions are their own ids:
  letters, digits, ``_`` and ``-``, up to 40): ``<key>~<position>`` entries joined by
  ``.``, where the key is derived from the log's name (a fixed-length hash, so names
  never appear on the wire and a cursor's size does not depend on them), e.g.
  ``k7d2mq4x~3fa9c2d1-42.b2xw9p0c~3fa9c2d1-7``.

Parsing never raises: anything malformed is None, and the caller decides (the hub
sends a `Reset`).
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets

__all__ = (
    "MAX_CURSOR_LENGTH",
    "MAX_KEYS",
    "TOKEN",
    "Position",
    "format_cursor",
    "format_position",
    "new_epoch",
    "parse_cursor",
    "parse_position",
    "source_key",
)

#: A cursor longer than this is malformed (a header of a few kB at most).
MAX_CURSOR_LENGTH = 4096
#: A cursor with more entries than this is malformed.
MAX_KEYS = 64

Position = tuple[str, int]  # (epoch, sequence)

_POSITION = re.compile(r"([0-9a-z]{1,16})-([0-9]{1,18})")
_KEY = re.compile(r"[0-9a-z]{8}")
#: What a position in a cursor may be (a hub position, or a keyed source's own id).
TOKEN = re.compile(r"[0-9A-Za-z_-]{1,40}")


def new_epoch() -> str:
    """A fresh epoch: 8 random hex digits."""
    return secrets.token_hex(4)


def format_position(epoch: str, sequence: int) -> str:
    return f"{epoch}-{sequence}"


def parse_position(text: str) -> Position | None:
    """``(epoch, sequence)`` of an id made by `format_position`, or None."""
    match = _POSITION.fullmatch(text)
    if match is None:
        return None
    return match.group(1), int(match.group(2))


def source_key(name: str) -> str:
    """The cursor key of a log: 8 characters of base32 (lower case) of its name's hash."""
    digest = hashlib.blake2b(name.encode("utf-8", "surrogatepass"), digest_size=5).digest()
    return base64.b32encode(digest).decode("ascii").lower()


def format_cursor(entries: dict[str, str]) -> str:
    """A cursor from ``{key: position}`` (in the given order)."""
    return ".".join(f"{key}~{position}" for key, position in entries.items())


def parse_cursor(text: str) -> dict[str, str] | None:
    """``{key: position}`` of a cursor made by `format_cursor`, or None when malformed
    (too long, too many entries, a bad key or position, a key twice)."""
    if not text or len(text) > MAX_CURSOR_LENGTH:
        return None
    parts = text.split(".")
    if len(parts) > MAX_KEYS:
        return None
    entries: dict[str, str] = {}
    for part in parts:
        key, sep, position = part.partition("~")
        if not sep or not _KEY.fullmatch(key) or key in entries:
            return None
        if not TOKEN.fullmatch(position):
            return None
        entries[key] = position
    return entries
