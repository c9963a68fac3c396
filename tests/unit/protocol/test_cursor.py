"""Ids and cursors (sans-IO): formats, bounds, and that everything is header-safe."""

from __future__ import annotations

import re

from hypothesis import given
from hypothesis import strategies as st

from asgi_sse._protocol.cursor import (
    MAX_CURSOR_LENGTH,
    MAX_KEYS,
    format_cursor,
    format_position,
    new_epoch,
    parse_cursor,
    parse_position,
    source_key,
)

# RFC 9110 field values may hold much more; these are what the cursor promises: no
# comma, space, semicolon or quote (lists, parameters), no CR, LF or NUL.
HEADER_SAFE = re.compile(r"[0-9A-Za-z._~-]*")


def test_positions_round_trip() -> None:
    epoch = new_epoch()
    assert re.fullmatch(r"[0-9a-f]{8}", epoch)
    assert new_epoch() != epoch
    assert parse_position(format_position(epoch, 0)) == (epoch, 0)
    assert parse_position(format_position(epoch, 42)) == (epoch, 42)


def test_malformed_positions_are_none() -> None:
    for text in ("", "42", "-1", "abc-", "ABC-1", "a b-1", "a-1-2", "a-" + "9" * 19, "é-1"):
        assert parse_position(text) is None, text


@given(st.text())
def test_a_key_is_eight_safe_characters_for_any_name(name: str) -> None:
    key = source_key(name)
    assert re.fullmatch(r"[a-z2-7]{8}", key)
    assert source_key(name) == key


@given(
    st.dictionaries(
        st.text(min_size=1),
        st.builds(format_position, st.just(new_epoch()), st.integers(0, 10**12)),
        min_size=1,
        max_size=MAX_KEYS,
    )
)
def test_cursors_round_trip_and_are_header_safe(positions: dict[str, str]) -> None:
    entries = {source_key(name): position for name, position in positions.items()}
    cursor = format_cursor(entries)
    assert HEADER_SAFE.fullmatch(cursor)
    assert parse_cursor(cursor) == entries


def test_malformed_cursors_are_none() -> None:
    good = format_cursor({source_key("a"): "e-1"})
    for text in (
        "",
        "x" * (MAX_CURSOR_LENGTH + 1),
        ".".join([good.replace(source_key("a"), source_key(str(n))) for n in range(65)]),
        "abc~e-1",  # a short key
        f"{source_key('a')}-e-1",  # no separator
        f"{source_key('a')}~",  # no position
        f"{source_key('a')}~e 1",  # a space
        f"{good}.{good}",  # a key twice
        f"{source_key('a')}~{'1' * 41}",  # a position too long
    ):
        assert parse_cursor(text) is None, text
    assert parse_cursor(good) == {source_key("a"): "e-1"}
