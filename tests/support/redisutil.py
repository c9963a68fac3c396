"""The Redis server the tests use (not a test module).

``ASGI_SSE_REDIS_URL`` names it (default ``redis://127.0.0.1:6379/0``). Where none answers,
Redis tests skip with the reason - unless ``ASGI_SSE_REQUIRE_REDIS=1`` (CI), where they
fail instead. Every test gets a key prefix of its own (`redis_prefix`), and its keys are
deleted afterwards.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest

REDIS_URL = os.environ.get("ASGI_SSE_REDIS_URL", "redis://127.0.0.1:6379/0")


def redis_answers(url: str = REDIS_URL) -> str | None:
    """None if a Redis server answers at ``url``, else why not."""
    try:
        import redis
    except ImportError:
        return "the redis package is not installed (pip install -e '.[test]')"
    try:
        client = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
        try:
            client.ping()
        finally:
            client.close()
    except Exception as exc:
        return f"no Redis answers at {url}: {exc}"
    return None


def require_redis() -> None:
    """Skip (or, with ASGI_SSE_REQUIRE_REDIS=1, fail) where no Redis answers."""
    reason = redis_answers()
    if reason is None:
        return
    if os.environ.get("ASGI_SSE_REQUIRE_REDIS") == "1":
        pytest.fail(f"{reason} (ASGI_SSE_REQUIRE_REDIS=1: Redis tests must run)")
    pytest.skip(reason)


def delete_prefix(prefix: str, url: str = REDIS_URL) -> None:
    """Delete every key under ``prefix``."""
    import redis

    client = redis.Redis.from_url(url)
    try:
        keys = list(client.scan_iter(match=prefix + "*", count=1000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


@pytest.fixture
def redis_prefix() -> Iterator[str]:
    """A key prefix of this test's own on the test Redis; its keys are deleted after."""
    require_redis()
    prefix = f"asgi-sse-test:{uuid.uuid4().hex[:12]}:"
    try:
        yield prefix
    finally:
        delete_prefix(prefix)
