"""The Redis Streams backend of the hub (public as `asgi_sse.redis`).

Written against the public backend SPI (`asgi_sse.backends`) only, as a third-party
backend would be. Its modules:

* ``entries`` and ``append.lua`` - what a topic's stream holds, and the script that
  appends to it;
* ``link`` - the client, whether Redis answers, the backoff;
* ``reader`` - one blocking ``XREAD`` per group of topics, feeding their logs;
* ``locate`` - where a client's last event id resumes, reading back from Redis;
* ``options`` - the checks of its options;
* ``backend`` - `RedisStreamsBackend`, which puts them together.

Importing it needs the ``redis`` package (the ``redis`` extra).
"""

try:
    import redis  # noqa: F401
except ImportError as exc:  # pragma: no cover - the extra is installed in the tests
    raise ImportError(
        "asgi_sse.redis needs the redis package: pip install 'asgi-sse[redis]'"
    ) from exc
