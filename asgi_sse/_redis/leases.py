"""Runs across processes on Redis (`asgi_sse.backends.RunLeases`): who runs a topic, the
cancel requests from other processes, and the ``lost`` end of a run whose process died.

Keys of a run on topic ``t`` (besides its stream ``<prefix>t:t``):

* ``<prefix>lease:t`` - the lease: a string, the owning process's random token, with a
  ``PX`` of the lease. Claimed with ``SET NX PX``; renewed and released by scripts that
  compare the token first, so a process never extends or drops another's claim.
* ``<prefix>run:t`` - a hash: the run's ``lost`` frame (``h``, ``t``: `RunEnded`
  ``lost``, cut where its id goes) and ``x``, set when another process asks for a
  cancel. It outlives the lease by `KEEP_AFTER` (renewed with it), so that a process
  that sees the lease lapse still finds the frame to append; deleted on release and
  once ``lost`` was appended.

Cancel requests: `request_run_cancel` sets ``x`` (if the lease is alive); the owning
process looks at ``x`` of its runs every `CANCEL_POLL` seconds (one pipelined round trip
for all of them), so a run is cancelled within that plus a round trip of the request.

* ``<prefix>runs`` - a sorted set of every live run's topic, scored by its lease's
  deadline in milliseconds of the Redis server's own clock (``TIME``, so the processes'
  clocks do not matter); set by the claim and each renewal, removed on release.

Lapses: every `WATCH_POLL` seconds every process asks the sorted set for the runs whose
deadline has passed (`DUE`: one command, whatever the number of topics) and runs `LAPSE`
on each - which appends the ``lost`` frame and the close marker only if the lease is
still gone, the ``run:`` hash is still there and the stream is not closed, and takes
the topic out of the set - so exactly one process ends the topic, whoever sees it
first, whether or not anyone reads it yet. The owner's own renewal does the same when
it finds its lease gone.

Uses the link and the public SPI only.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable
from typing import Any

import anyio

from asgi_sse.backends import TopicLog

from .link import DOWN, RedisLink

__all__ = ("CANCEL_POLL", "KEEP_AFTER", "WATCH_POLL", "Leases")

_log = logging.getLogger("asgi_sse.redis")

CANCEL_POLL = 0.25
"""Seconds between two looks at the cancel requests of this process's runs."""
WATCH_POLL = 0.5
"""Seconds between two looks at the runs whose lease's deadline has passed."""
DUE_BATCH = 100
"""Lapsed runs ended per look, at most (the rest at the next)."""

# Milliseconds of the Redis server's clock, in a script.
_NOW_MS = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
"""
KEEP_AFTER = 60.0
"""Seconds the ``run:`` hash outlives its lease, for a late lapse to find its frame."""

# The lapse: append the lost frame and the close marker, once. A Lua function, shared by
# `LAPSE` and `RENEW`. KEYS: lease, run hash, stream; ARGV[1]: the length cap,
# ARGV[2]: the stream's expiry in ms ("0": none).
_END_LOST = """
local function end_lost(lease, run, stream, maxlen, expire)
  if redis.call('EXISTS', lease) == 1 then return 0 end
  local frame = redis.call('HMGET', run, 'h', 't')
  if not frame[1] then return 0 end
  redis.call('DEL', run)
  local newest = redis.call('XREVRANGE', stream, '+', '-', 'COUNT', 1)
  local prev = '0-0'
  if newest[1] then
    prev = newest[1][1]
    local fields = newest[1][2]
    for i = 1, #fields, 2 do
      if fields[i] == 'c' then return 0 end
    end
  end
  local id = redis.call('XADD', stream, 'MAXLEN', '~', maxlen, '*',
                        'p', prev, 'h', frame[1], 't', frame[2])
  redis.call('XADD', stream, 'MAXLEN', '~', maxlen, '*', 'p', id, 'c', '1')
  if expire ~= '0' then redis.call('PEXPIRE', stream, expire) end
  return 1
end
"""

CLAIM = (
    _NOW_MS
    + """
if not redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return 0 end
redis.call('DEL', KEYS[2])
redis.call('HSET', KEYS[2], 'h', ARGV[3], 't', ARGV[4])
redis.call('PEXPIRE', KEYS[2], ARGV[5])
redis.call('ZADD', KEYS[3], now + tonumber(ARGV[2]), ARGV[6])
return 1
"""
)
"""KEYS: lease, run hash, runs set. ARGV: token, lease ms, lost frame's head and tail,
hash ms, topic. 1 if claimed."""

RENEW = (
    _END_LOST
    + _NOW_MS
    + """
local owner = redis.call('GET', KEYS[1])
if owner == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  redis.call('PEXPIRE', KEYS[2], ARGV[3])
  redis.call('ZADD', KEYS[4], now + tonumber(ARGV[2]), ARGV[6])
  return 1
end
if not owner then
  end_lost(KEYS[1], KEYS[2], KEYS[3], ARGV[4], ARGV[5])
  redis.call('ZREM', KEYS[4], ARGV[6])
end
return 0
"""
)
"""KEYS: lease, run hash, stream, runs set. ARGV: token, lease ms, hash ms, length cap,
expiry ms, topic. 1 if renewed; 0 if the claim is gone (then ``lost`` is appended,
once)."""

RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1], KEYS[2])
  redis.call('ZREM', KEYS[3], ARGV[2])
  return 1
end
return 0
"""
"""KEYS: lease, run hash, runs set. ARGV: token, topic. Drops the claim if it is this
process's."""

REQUEST_CANCEL = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[2], 'x', '1')
return 1
"""
"""KEYS: lease, run hash. 1 if a live claim was asked to cancel."""

LAPSE = (
    _END_LOST
    + """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
local ended = end_lost(KEYS[1], KEYS[2], KEYS[3], ARGV[1], ARGV[2])
redis.call('ZREM', KEYS[4], ARGV[3])
return ended
"""
)
"""KEYS: lease, run hash, stream, runs set. ARGV: length cap, expiry ms, topic. 1 if it
ended the topic; the topic leaves the runs set unless its lease is alive."""

DUE = (
    _NOW_MS
    + """
return redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, ARGV[1])
"""
)
"""KEYS: runs set. ARGV: how many at most. The topics whose lease's deadline passed."""


class _Claim:
    __slots__ = ("cancelled", "log")

    def __init__(self, log: TopicLog) -> None:
        self.log = log
        self.cancelled = anyio.Event()


class Leases:
    """The `RunLeases` side of one `RedisStreamsBackend`: ``key_of(kind, name)`` names
    a key, ``append_args()`` gives the streams' length cap and expiry."""

    def __init__(
        self,
        link: RedisLink,
        *,
        key_of: Callable[[str, str], bytes],
        append_args: Callable[[], tuple[bytes, bytes]],
    ) -> None:
        self.link = link
        self.key_of = key_of
        self.append_args = append_args
        self.runs_key = key_of("runs", "")
        self.token = secrets.token_hex(16).encode()  # this process's claims
        self.claims: dict[str, _Claim] = {}  # topic -> a claim of this process
        self.lapses = 0
        """Topics this process ended ``lost``."""
        self._scripts: dict[str, Any] = {}

    def register(self) -> None:
        client = self.link.client
        self._scripts = {
            name: client.register_script(body)
            for name, body in (
                ("claim", CLAIM),
                ("renew", RENEW),
                ("release", RELEASE),
                ("cancel", REQUEST_CANCEL),
                ("lapse", LAPSE),
                ("due", DUE),
            )
        }

    def _keys(self, topic: str) -> list[bytes]:
        return [self.key_of("lease:", topic), self.key_of("run:", topic)]

    @staticmethod
    def _member(topic: str) -> bytes:
        return topic.encode("utf-8", "surrogatepass")

    async def claim(self, log: TopicLog, lease: float, lost: tuple[bytes, bytes]) -> bool:
        ms = max(1, int(lease * 1000))
        keep = ms + int(KEEP_AFTER * 1000)
        args = [self.token, ms, lost[0], lost[1], keep, self._member(log.name)]
        keys = [*self._keys(log.name), self.runs_key]
        async with self.link.errors():
            claimed = await self._scripts["claim"](keys=keys, args=args)
        if claimed == 1:
            self.claims[log.name] = _Claim(log)
            return True
        return False

    async def renew(self, log: TopicLog, lease: float) -> bool:
        ms = max(1, int(lease * 1000))
        maxlen, expire = self.append_args()
        keys = [*self._keys(log.name), self.key_of("t:", log.name), self.runs_key]
        args = [self.token, ms, ms + int(KEEP_AFTER * 1000), maxlen, expire]
        args.append(self._member(log.name))
        async with self.link.errors():
            kept = await self._scripts["renew"](keys=keys, args=args)
        return bool(kept == 1)

    async def release(self, log: TopicLog) -> None:
        self.claims.pop(log.name, None)
        with anyio.move_on_after(5, shield=True):
            try:
                keys = [*self._keys(log.name), self.runs_key]
                args = [self.token, self._member(log.name)]
                await self._scripts["release"](keys=keys, args=args)
            except Exception:
                _log.warning("could not release the run on topic %r", log.name, exc_info=True)

    async def request_cancel(self, topic: str) -> bool:
        async with self.link.errors():
            asked = await self._scripts["cancel"](keys=self._keys(topic), args=[])
        return bool(asked == 1)

    async def cancel_requested(self, log: TopicLog) -> None:
        claim = self.claims.get(log.name)
        if claim is None:
            await anyio.sleep_forever()
            return
        await claim.cancelled.wait()

    # -- the polls, in the backend's task group -----------------------------------------

    async def poll(self) -> None:
        """Look at the cancel requests every `CANCEL_POLL` s, at the runs whose lease
        lapsed every `WATCH_POLL` s, until cancelled."""
        ticks = 0
        every = max(1, round(WATCH_POLL / CANCEL_POLL))
        while True:
            await anyio.sleep(CANCEL_POLL)
            try:
                await self.look_at_cancels()
                ticks += 1
                if ticks % every == 0:
                    await self.look_at_leases()
            except DOWN:
                continue  # the readers report it; looked at again next time
            except Exception:
                _log.exception("looking at the runs' leases failed")

    async def look_at_cancels(self) -> None:
        claims = [(topic, c) for topic, c in self.claims.items() if not c.cancelled.is_set()]
        if not claims:
            return
        pipe = self.link.client.pipeline(transaction=False)
        for topic, _ in claims:
            pipe.hget(self.key_of("run:", topic), b"x")
        for (_, claim), flag in zip(claims, await pipe.execute(), strict=True):
            if flag is not None:
                claim.cancelled.set()

    async def look_at_leases(self) -> None:
        """End ``lost`` every run whose lease's deadline has passed, anywhere."""
        due = await self._scripts["due"](keys=[self.runs_key], args=[DUE_BATCH])
        for member in due:
            await self.lapse(bytes(member).decode("utf-8", "surrogatepass"))

    async def lapse(self, topic: str) -> None:
        """The lease of the run on ``topic`` is gone: end it ``lost`` (once)."""
        maxlen, expire = self.append_args()
        keys = [*self._keys(topic), self.key_of("t:", topic), self.runs_key]
        args = [maxlen, expire, self._member(topic)]
        ended = await self._scripts["lapse"](keys=keys, args=args)
        if ended == 1:
            self.lapses += 1
            _log.warning("the run on topic %r lost its process: ended it 'lost'", topic)

    def forget_all(self) -> None:
        """The backend stopped: what it saw is stale (its runs released their claims)."""
        self.claims.clear()
