"""The hub on Redis Streams: several workers and hosts share topics, and nothing
acknowledged is lost.

``Hub(backend=RedisStreamsBackend("redis://127.0.0.1:6379/0"))``; needs the ``redis``
package (``pip install 'asgi-sse[redis]'``) and asyncio (redis's client does not run on
trio). It is written against the public backend SPI (`asgi_sse.backends`) only, as any
other backend would be.

How it works:

* **Publish** runs one server-side script: it appends the encoded frame (split where
  the ``id:`` line goes) to the topic's stream with ``XADD ... MAXLEN ~ <history>``,
  together with the id of the entry before it (``p``), and returns the new entry's
  id, which is the event's id in every process. The call returning is the
  acknowledgement: with Redis persisting writes (``appendfsync always``), the event
  survives a Redis restart.
* **One reader per group of topics** (`topics_per_reader`, so per process for most
  apps): a blocking ``XREAD`` over the topics this process serves, each from the last
  id it read (never ``$``), feeding the same in-process logs and cursors as the memory
  backend. A topic's first subscriber reads the stream's newest id as its starting
  point and wakes the reader at once (an entry on the reader's own wake stream).
* **Gaps.** Every entry names the one before it: an entry whose ``p`` is not the last
  id read means entries were trimmed before this process read them (a stalled worker)
  or lost (Redis restarted without its data); the subscribers behind get a `Reset`
  (``gone``), never silence.
* **Resume.** A last event id this process holds resumes locally; an older one is read
  from Redis (``XREVRANGE`` in pages, checked link by link) into the local log, so the
  replay and the live tail are one log with no gap and no duplicate; one ahead of this
  process's reader waits for it. The hub's ``history`` bounds what resumes exactly,
  as with the memory backend.
* **Publishing without a hub**: `Publisher` (sync `publish` for Celery, Django, a
  script; `apublish` for asyncio) runs the same script on the same keys, so its events
  are the topic's like the hub's own.
* **Runs** (`Hub.run`) across processes: a run's topic is claimed with a lease key
  (``SET <prefix>lease:<topic> <token> NX PX``), renewed every third of ``run_lease``
  by its process; `Hub.cancel` in any process flags it, and the owner notices within a
  quarter second; when the lease lapses (its process died), a process whose
  subscribers read the topic ends it with `RunEnded` ``lost``, once.
* **Faults.** Redis unreachable when the hub starts: `HubUnavailable`, the app does not
  start. Redis gone later: `publish` raises `HubUnavailable`; open streams stay open
  (keep-alives go on); the readers reconnect with capped, jittered backoff and go on
  from the last id they read; a client connecting meanwhile gets its response (200,
  keep-alives) and its replay once Redis is back.
"""

from ._redis.backend import RedisStreamsBackend
from ._redis.publisher import Publisher

__all__ = ("Publisher", "RedisStreamsBackend")
