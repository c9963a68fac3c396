"""Sans-IO incremental parser: bytes of a ``text/event-stream`` in, events out.

Must not import anything async, ASGI or pydantic: standard library only.

Implements WHATWG HTML 9.2.6 "Interpreting an event stream" exactly, as a browser's
EventSource does, so that tests (and the test client) see what a browser would see:

* UTF-8 decode with replacement characters; ONE leading BOM is stripped, at the very
  start of the stream only ("UTF-8 decode" strips it; a later U+FEFF is text).
* Lines end at CRLF, LF or CR.  A CR ends its line at once; if it was the last
  character of a chunk, an LF at the start of the next chunk belongs to it and is
  skipped, so a CRLF split across chunks is one line end, not two.
* Decoding and line splitting work on whole chunks with str methods; Python-level
  work is per line, not per character.  A line that arrives over many chunks is kept
  as a list of pieces and joined once, so it costs linear time.
* At end of stream an unterminated event is discarded (9.2.6: "If the file ends in the
  middle of an event, before the final empty line, the incomplete event is not
  dispatched").
"""

from __future__ import annotations

import codecs
from dataclasses import dataclass

__all__ = ("Comment", "EventStreamParser", "ParsedEvent")


@dataclass(frozen=True, slots=True)
class ParsedEvent:
    """A dispatched event, as an EventSource would fire it."""

    event: str
    """The type: ``message`` when the frame gave none or an empty one."""
    data: str
    """The frame's ``data:`` lines joined with LF."""
    id: str = ""
    """The stream's last event ID when it was dispatched: sticky across events, as in
    the spec (an event without an ``id:`` line carries the one before)."""
    retry: int | None = None
    """A valid ``retry:`` value (milliseconds) seen in the same frame, else None."""


@dataclass(frozen=True, slots=True)
class Comment:
    """A comment line (``: ...``), such as a keep-alive."""

    text: str
    """What follows the colon, minus one leading space."""


class EventStreamParser:
    """Incremental parser for one event stream: `feed` bytes as they come, `close` at
    the end.  Any chunking gives the same items.  No stream is refused, as in a
    browser: bytes that are not UTF-8 become U+FFFD, unknown fields are ignored.

    Args:
        last_event_id: The id a client had before this connection (it stays until the
            stream sets another).
    """

    def __init__(self, last_event_id: str = "") -> None:
        # A client reconnecting goes on with the last event ID it had (WHATWG: the
        # EventSource's "last event ID string", which a new connection keeps).
        self.last_event_id = last_event_id
        """The stream's last event ID string (what a client sends back as
        ``Last-Event-ID``); set when a frame ends, even if nothing is dispatched."""
        self.retry: int | None = None
        """The reconnection time last set by the stream, in milliseconds, or None."""
        # "utf-8-sig" is "UTF-8 decode": it strips one BOM at the start only, and waits
        # for more bytes while the first ones could still be a BOM split across chunks.
        self._decode = codecs.getincrementaldecoder("utf-8-sig")("replace").decode
        self._partial: list[str] = []  # pieces of a line whose end has not arrived
        self._skip_lf = False  # the last chunk ended with CR: a leading LF belongs to it
        # The spec's buffers.  The data buffer is kept as a list of lines: it is empty
        # exactly when the spec's is, and "\n".join() is the spec's buffer without its
        # trailing LF.
        self._data: list[str] = []
        self._event_type = ""
        self._id_buffer = last_event_id
        self._frame_retry: int | None = None

    def feed(self, chunk: bytes) -> list[ParsedEvent | Comment]:
        """Parse the next chunk of the stream.

        Returns:
            The events and comments whose lines the chunk ended, in stream order.
        """
        text = self._decode(chunk)
        if not text:
            return []
        if self._skip_lf:
            self._skip_lf = False
            if text[0] == "\n":
                text = text[1:]
        if "\r" in text:
            self._skip_lf = text[-1] == "\r"
            text = text.replace("\r\n", "\n").replace("\r", "\n")
        elif "\n" not in text:
            self._partial.append(text)  # no line end yet: wait, without re-scanning
            return []
        lines = text.split("\n")
        if self._partial:
            self._partial.append(lines[0])
            lines[0] = "".join(self._partial)
            self._partial.clear()
        last = lines.pop()  # after the last line end: the start of the next line
        if last:
            self._partial.append(last)
        return self._process(lines)

    def close(self) -> list[ParsedEvent | Comment]:
        """End of stream: discard an unterminated line and event (9.2.6).

        Always returns an empty list: a line is processed as soon as its end arrives
        (a CR at the end of a chunk included), so nothing complete is pending here.  It
        returns a list so that callers can treat it like `feed`.
        """
        self._decode(b"", True)
        self._partial.clear()
        self._data = []
        self._event_type = ""
        self._id_buffer = self.last_event_id  # an id in the discarded frame never took effect
        self._frame_retry = None
        return []

    def _process(self, lines: list[str]) -> list[ParsedEvent | Comment]:
        out: list[ParsedEvent | Comment] = []
        for line in lines:
            if not line:
                # A blank line: "dispatch the event".  The last event ID string is set
                # from its buffer whether or not anything is dispatched.
                self.last_event_id = self._id_buffer
                if self._data:
                    out.append(
                        ParsedEvent(
                            self._event_type or "message",
                            "\n".join(self._data),
                            self._id_buffer,
                            self._frame_retry,
                        )
                    )
                    self._data = []
                self._event_type = ""
                self._frame_retry = None
                continue
            name, _, value = line.partition(":")
            if not name:
                # "If the line starts with a colon": a comment.
                out.append(Comment(value[1:] if value[:1] == " " else value))
                continue
            # A line without a colon is a field name with an empty value.  Only one
            # space is removed: "data:  x" is " x".
            if value[:1] == " ":
                value = value[1:]
            if name == "data":
                self._data.append(value)
            elif name == "event":
                self._event_type = value
            elif name == "id":
                if "\0" not in value:  # an id holding NUL is ignored
                    self._id_buffer = value
            elif name == "retry" and value.isascii() and value.isdigit():
                try:
                    retry = int(value)
                except ValueError:  # > sys.get_int_max_str_digits() digits: ignore it
                    continue
                self.retry = self._frame_retry = retry
            # Any other field name is ignored.
        return out
