"""The journal in Redis, for bots that run as several replicas (``REDIS_URL``).

Work is handed out through a Redis Stream and its consumer group: a delivery accepted by one
replica can run on another. Each delivery also has a hash (its state and headers), a string
(its body, kept out of the scripts), a list (its attempts) and a set (its handlers that
finished, once one has). A claim carries a lease; the
deliveries of a consumer that stops renewing it (the replica died) go back on the stream for
the living. Every check-and-set is a Lua script, so two replicas never both finish or both
claim one delivery.

Keys share one hash tag (``{framework}`` by default), so they live in one slot of a cluster.
How durable a recorded delivery is depends on the server's persistence settings: use
``appendonly yes`` (``appendfsync everysec`` or ``always``) for deliveries to survive a
restart of Redis itself.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import redis.asyncio as aioredis
from redis.exceptions import NoScriptError, RedisError, ResponseError

from framework.journal import (
    Attempt,
    ClaimFinisher,
    Counts,
    Entry,
    JournalUnavailable,
    Recorded,
    Status,
)
from framework.journal.batch import Batcher
from framework.webhooks.delivery import Delivery

logger = logging.getLogger(__name__)

T = TypeVar("T")
GROUP = "handlers"

# Records a batch of deliveries: one command for all that arrived together. The bodies are
# not passed through Lua: Redis's Lua hashes every byte of every string it is given (tens of
# microseconds for an 18 KB body); they are SET NX beside, in the same MULTI.
# KEYS: stream, received, finished, failed, then each delivery's hash
# ARGV: per delivery, id, name, action, installation id, headers, received at
_RECORD = """
local new = {}
for i = 5, #KEYS do
  local key, a = KEYS[i], (i - 5) * 6
  local id, received_at = ARGV[a + 1], ARGV[a + 6]
  local status = redis.call('HGET', key, 'status')
  if status and status ~= 'failed' then
    new[i - 4] = 0
  else
    local fields = {'name', ARGV[a + 2], 'action', ARGV[a + 3], 'installation_id', ARGV[a + 4],
                    'headers', ARGV[a + 5], 'received_at', received_at,
                    'status', 'pending', 'not_before', '0'}
    local n = #fields
    if status then  -- failed before and redelivered: its last run's traces go
      redis.call('HDEL', key, 'consumer', 'lease_until', 'finished_at', 'entry')
      redis.call('ZREM', KEYS[3], id)
      redis.call('ZREM', KEYS[4], id)
      fields[n + 1], fields[n + 2] = 'attempts_before', redis.call('HGET', key, 'attempts')
    else
      fields[n + 1], fields[n + 2], fields[n + 3], fields[n + 4] =
        'attempts', '0', 'attempts_before', '0'
    end
    redis.call('HSET', key, unpack(fields))
    redis.call('XADD', KEYS[1], '*', 'id', id)
    redis.call('ZADD', KEYS[2], received_at, id)
    new[i - 4] = 1
  end
end
return new
"""

# One script from the stream to the claim: no moment where an entry is read but not claimed
# (a consumer killed in between would leave it in its pending list, out of everyone's reach).
# KEYS: stream, delayed, leases; ARGV: consumer, lease until, now, count, group, key prefix
_CLAIM = """
local due = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', ARGV[3])
for _, id in ipairs(due) do
  redis.call('XADD', KEYS[1], '*', 'id', id)
  redis.call('ZREM', KEYS[2], id)
end
local claimed = {}
local read = redis.call('XREADGROUP', 'GROUP', ARGV[5], ARGV[1], 'COUNT', ARGV[4],
                        'STREAMS', KEYS[1], '>')
if not read then return claimed end
for _, item in ipairs(read[1][2]) do
  local entry, id = item[1], item[2][2]
  local key = ARGV[6] .. 'd:' .. id
  if redis.call('HGET', key, 'status') ~= 'pending' then
    redis.call('XACK', KEYS[1], ARGV[5], entry)
    redis.call('XDEL', KEYS[1], entry)
  else
    local attempts = redis.call('HINCRBY', key, 'attempts', 1)
    redis.call('HSET', key, 'status', 'running', 'consumer', ARGV[1], 'lease_until', ARGV[2],
               'entry', entry)
    redis.call('ZADD', KEYS[3], ARGV[2], id)
    redis.call('RPUSH', ARGV[6] .. 'a:' .. id, cjson.encode({number = attempts,
               consumer = ARGV[1], started_at = tonumber(ARGV[3])}))
    local row = redis.call('HMGET', key, 'name', 'action', 'installation_id', 'headers',
                           'received_at', 'attempts_before')
    row[6] = attempts - tonumber(row[6] or '0')
    row[7] = {}  -- the handlers that finished in an earlier run
    if attempts > 1 then row[7] = redis.call('SMEMBERS', ARGV[6] .. 'h:' .. id) end
    table.insert(row, 1, id)
    table.insert(claimed, row)
  end
end
return claimed
"""

_RENEW = """
if redis.call('HGET', KEYS[1], 'status') == 'running'
   and redis.call('HGET', KEYS[1], 'consumer') == ARGV[1] then
  redis.call('HSET', KEYS[1], 'lease_until', ARGV[2])
  redis.call('ZADD', KEYS[2], ARGV[2], ARGV[3])
end
return 0
"""

# KEYS: hash, attempts, stream, delayed, finished, leases, failed
# ARGV: consumer, new status, error, not_before, now, id, group
_FINISH = """
if redis.call('HGET', KEYS[1], 'status') ~= 'running'
   or redis.call('HGET', KEYS[1], 'consumer') ~= ARGV[1] then return 0 end
local entry = redis.call('HGET', KEYS[1], 'entry')
if entry then
  redis.call('XACK', KEYS[3], ARGV[7], entry)
  redis.call('XDEL', KEYS[3], entry)
end
redis.call('HDEL', KEYS[1], 'consumer', 'lease_until', 'entry')
redis.call('ZREM', KEYS[6], ARGV[6])
redis.call('HSET', KEYS[1], 'status', ARGV[2], 'not_before', ARGV[4])
if ARGV[3] ~= '' then redis.call('HSET', KEYS[1], 'last_error', ARGV[3]) end
local last = cjson.decode(redis.call('LINDEX', KEYS[2], -1))
last.finished_at = tonumber(ARGV[5])
if ARGV[3] ~= '' then last.error = ARGV[3] end
redis.call('LSET', KEYS[2], -1, cjson.encode(last))
if ARGV[2] == 'pending' then
  redis.call('ZADD', KEYS[4], ARGV[4], ARGV[6])
else
  redis.call('HSET', KEYS[1], 'finished_at', ARGV[5])
  redis.call('ZADD', KEYS[5], ARGV[5], ARGV[6])
  if ARGV[2] == 'failed' then redis.call('ZADD', KEYS[7], ARGV[5], ARGV[6]) end
end
return 1
"""

# KEYS: leases, stream; ARGV: now, key prefix, group, error, consumer ('' for expired leases)
_REQUEUE_EXPIRED = """
local expired = {}
if ARGV[5] == '' then
  expired = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', '(' .. ARGV[1])
else
  for _, id in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
    if redis.call('HGET', ARGV[2] .. 'd:' .. id, 'consumer') == ARGV[5] then
      table.insert(expired, id)
    end
  end
end
for _, id in ipairs(expired) do
  local key = ARGV[2] .. 'd:' .. id
  local entry = redis.call('HGET', key, 'entry')
  if entry then
    redis.call('XACK', KEYS[2], ARGV[3], entry)
    redis.call('XDEL', KEYS[2], entry)
  end
  redis.call('HDEL', key, 'consumer', 'lease_until', 'entry')
  redis.call('HSET', key, 'status', 'pending')
  local attempts = ARGV[2] .. 'a:' .. id
  local last = cjson.decode(redis.call('LINDEX', attempts, -1))
  last.finished_at = tonumber(ARGV[1])
  last.error = ARGV[4]
  redis.call('LSET', attempts, -1, cjson.encode(last))
  redis.call('XADD', KEYS[2], '*', 'id', id)
  redis.call('ZREM', KEYS[1], id)
end
return expired
"""


# KEYS: hash, handlers done; ARGV: handler
_HANDLER_DONE = """
if redis.call('EXISTS', KEYS[1]) == 1 then redis.call('SADD', KEYS[2], ARGV[1]) end
return 0
"""

# KEYS: hash, stream, finished, failed, handlers done; ARGV: id
_REQUEUE = """
local status = redis.call('HGET', KEYS[1], 'status')
if status ~= 'done' and status ~= 'failed' then return 0 end
if status == 'done' then redis.call('DEL', KEYS[5]) end  -- a replay runs every handler
redis.call('HSET', KEYS[1], 'status', 'pending', 'not_before', '0',
           'attempts_before', redis.call('HGET', KEYS[1], 'attempts'))
redis.call('HDEL', KEYS[1], 'finished_at')
redis.call('ZREM', KEYS[3], ARGV[1])
redis.call('ZREM', KEYS[4], ARGV[1])
redis.call('XADD', KEYS[2], '*', 'id', ARGV[1])
return 1
"""

# KEYS: the job's turn; ARGV: holder, milliseconds
_TAKE_TURN = """
local holder = redis.call('GET', KEYS[1])
if holder and holder ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
"""

# KEYS: the job's turn, its last success; ARGV: holder, succeeded at ('' if it did not)
_END_TURN = """
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
if ARGV[2] ~= '' then
  local kept = tonumber(redis.call('GET', KEYS[2]) or '0')
  if tonumber(ARGV[2]) > kept then redis.call('SET', KEYS[2], ARGV[2]) end
end
return 0
"""


def redact(url: str) -> str:
    """The URL without its password, for messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)[1]
    user = f"{parts.username}:***@" if parts.username else "***@"
    return urlunsplit(parts._replace(netloc=user + netloc))


def _text(value: bytes | None) -> str | None:
    return value.decode() if value else None


class RedisJournal(ClaimFinisher):
    """A :class:`~framework.journal.Journal` in Redis (a stream, a consumer group, hashes)."""

    def __init__(
        self,
        client: aioredis.Redis,
        *,
        url: str = "redis",
        prefix: str = "framework",
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._redis = client
        # redis-py types results as a union over its decode modes; this client never decodes,
        # so results are read through an untyped handle and converted where they are used.
        self._raw: Any = client
        self._where = redact(url)
        self._prefix = f"{{{prefix}}}:"
        self._clock = clock
        self._stream = self._prefix + "stream"
        self._delayed = self._prefix + "delayed"
        self._received = self._prefix + "received"
        self._finished = self._prefix + "finished"
        self._failed = self._prefix + "failed"  # the dead letters, for counting them
        self._leases = self._prefix + "leases"
        # A second batch may go while one is on its way.
        self._recorder: Batcher[Delivery, bool] = Batcher(self._record_batch, in_flight=2, size=256)
        self._scripts = {
            name: client.register_script(source)
            for name, source in (
                ("record", _RECORD),
                ("claim", _CLAIM),
                ("renew", _RENEW),
                ("finish", _FINISH),
                ("requeue_expired", _REQUEUE_EXPIRED),
                ("requeue", _REQUEUE),
                ("handler_done", _HANDLER_DONE),
            )
        }

    @classmethod
    async def open(cls, url: str, **options: Any) -> RedisJournal:
        """Connect to ``url`` (``redis://host:port/db``) and create the consumer group."""
        # A burst of deliveries waits for a free connection rather than failing.
        pool = aioredis.BlockingConnectionPool.from_url(url, max_connections=32, timeout=10)
        journal = cls(aioredis.Redis.from_pool(pool), url=url, **options)
        try:
            await journal._guard(journal._create_group())
        except JournalUnavailable:
            await journal.close()
            raise
        return journal

    async def _create_group(self) -> None:
        try:
            await self._redis.xgroup_create(self._stream, GROUP, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    async def _guard(self, operation: Awaitable[T]) -> T:
        try:
            return await operation
        except RedisError as exc:
            raise JournalUnavailable(
                f"the delivery journal at {self._where} is unusable: {type(exc).__name__}: "
                f"{redact(str(exc))}",
                "the delivery journal (Redis) is unreachable",
            ) from None

    def _hash(self, delivery_id: str) -> str:
        return f"{self._prefix}d:{delivery_id}"

    def _body(self, delivery_id: str) -> str:
        return f"{self._prefix}b:{delivery_id}"

    def _attempts(self, delivery_id: str) -> str:
        return f"{self._prefix}a:{delivery_id}"

    def _handlers_done(self, delivery_id: str) -> str:
        return f"{self._prefix}h:{delivery_id}"

    async def record(self, delivery: Delivery) -> bool:
        """Store a delivery; True if it is new (or failed before and is redelivered).

        Deliveries recorded while a batch is on its way to Redis go together in the next one:
        one round trip and one command for a burst, as the SQLite journal commits a group.
        """
        return await self._recorder.submit(delivery)

    async def record_running(self, delivery: Delivery, consumer: str, lease: float) -> Recorded:
        """Store a delivery for a claim, as :meth:`record` does: a delivery in the stream
        belongs to whichever replica's claim reads it first, so none is handed over."""
        return "pending" if await self.record(delivery) else "duplicate"

    async def _record_batch(self, batch: list[Delivery]) -> list[bool | Exception]:
        keys = [self._stream, self._received, self._finished, self._failed]
        args: list[Any] = []
        for delivery in batch:
            keys.append(self._hash(delivery.id))
            args += (
                delivery.id,
                delivery.name,
                delivery.action or "",
                "" if delivery.installation_id is None else str(delivery.installation_id),
                json.dumps(dict(delivery.headers)),
                repr(delivery.received_at),
            )
        new = await self._guard(self._record(batch, keys, args))
        return [bool(added) for added in new]

    async def _record(self, batch: list[Delivery], keys: list[str], args: list[Any]) -> Any:
        try:
            return await self._record_once(batch, keys, args)
        except NoScriptError:  # Redis restarted (or flushed its scripts) since it was loaded
            await self._raw.script_load(self._scripts["record"].script)
            return await self._record_once(batch, keys, args)

    async def _record_once(self, batch: list[Delivery], keys: list[str], args: list[Any]) -> Any:
        async with self._raw.pipeline(transaction=True) as pipe:
            for delivery in batch:  # a duplicate's body is already there: NX keeps it
                pipe.set(self._body(delivery.id), delivery.body, nx=True)
            pipe.evalsha(self._scripts["record"].sha, len(keys), *keys, *args)
            return (await pipe.execute())[-1]

    async def claim(self, consumer: str, limit: int, lease: float) -> list[Delivery]:
        """Take up to ``limit`` due deliveries, in the order they were recorded."""
        return await self._guard(self._claim(consumer, limit, lease))

    async def _claim(self, consumer: str, limit: int, lease: float) -> list[Delivery]:
        now = self._clock()
        rows: list[list[Any]] = await self._scripts["claim"](
            keys=[self._stream, self._delayed, self._leases],
            args=[consumer, repr(now + lease), repr(now), limit, GROUP, self._prefix],
        )
        if not rows:
            return []
        bodies = await self._raw.mget([self._body(row[0].decode()) for row in rows])
        claimed = []
        for row, body in zip(rows, bodies, strict=True):
            delivery_id, name, action, installation, headers, received_at, attempt, done = row
            if body is None:  # only if someone deleted the key by hand: no retry brings it back
                key = self._body(delivery_id.decode())
                error = f"the delivery cannot run: its body is missing from Redis ({key})"
                logger.error("delivery %s: %s", delivery_id.decode(), error)
                await self._finish(delivery_id.decode(), consumer, Status.FAILED, error)
                continue
            claimed.append(
                Delivery(
                    delivery_id.decode(),
                    name.decode(),
                    body,
                    _text(action),
                    int(installation) if installation else None,
                    json.loads(headers),
                    float(received_at),
                    int(attempt),
                    frozenset(handler.decode() for handler in done),
                )
            )
        return claimed

    async def handler_done(self, delivery_id: str, handler: str) -> None:
        """Record that ``handler`` finished its run of the delivery."""
        keys = [self._hash(delivery_id), self._handlers_done(delivery_id)]
        await self._guard(self._scripts["handler_done"](keys=keys, args=[handler]))

    async def renew(self, consumer: str, delivery_ids: list[str], lease: float) -> None:
        """Extend the leases ``consumer`` holds on these deliveries."""
        until = repr(self._clock() + lease)
        for delivery_id in delivery_ids:
            await self._guard(
                self._scripts["renew"](
                    keys=[self._hash(delivery_id), self._leases],
                    args=[consumer, until, delivery_id],
                )
            )

    async def _finish(
        self, delivery_id: str, consumer: str, status: Status, error: str | None, at: float = 0
    ) -> bool:
        keys = [self._hash(delivery_id), self._attempts(delivery_id), self._stream,
                self._delayed, self._finished, self._leases, self._failed]  # fmt: skip
        now = repr(self._clock())
        args: list[Any] = [consumer, status.value, error or "", repr(at), now, delivery_id, GROUP]
        return bool(await self._guard(self._scripts["finish"](keys=keys, args=args)))

    async def requeue_expired(self) -> list[str]:
        """Deliveries whose consumer stopped renewing its lease go back on the stream."""
        return await self._requeue_held("", "lease expired")

    async def release(self, consumer: str) -> list[str]:
        """Every delivery ``consumer`` holds goes back on the stream now."""
        return await self._requeue_held(consumer, "released")

    async def _requeue_held(self, consumer: str, why: str) -> list[str]:
        ids: list[bytes] = await self._guard(
            self._scripts["requeue_expired"](
                keys=[self._leases, self._stream],
                args=[repr(self._clock()), self._prefix, GROUP,
                      f"its consumer stopped ({why})", consumer],
            )
        )  # fmt: skip
        return [i.decode() for i in ids]

    async def requeue(self, delivery_id: str) -> bool:
        """A done or failed delivery goes back on the stream, due now (a done one runs all its
        handlers again; a failed one, those that had not finished)."""
        keys = [self._hash(delivery_id), self._stream, self._finished, self._failed,
                self._handlers_done(delivery_id)]  # fmt: skip
        return bool(await self._guard(self._scripts["requeue"](keys=keys, args=[delivery_id])))

    async def active(self) -> int:
        """Pending and running deliveries: entries on the stream, plus those waiting to retry."""

        async def count() -> int:
            async with self._raw.pipeline(transaction=False) as pipe:
                pipe.xlen(self._stream)
                pipe.zcard(self._delayed)
                stream, delayed = await pipe.execute()
            return int(stream) + int(delayed)

        return await self._guard(count())

    async def counts(self) -> Counts:
        """Deliveries by state. Running ones stay on the stream until they finish, and the
        oldest entry on it (due or running) stands for the oldest pending."""

        async def count() -> Counts:
            async with self._raw.pipeline(transaction=False) as pipe:
                pipe.xlen(self._stream)
                pipe.zcard(self._delayed)
                pipe.zcard(self._leases)
                pipe.zcard(self._failed)
                pipe.xrange(self._stream, count=1)
                stream, delayed, running, failed, first = await pipe.execute()
            oldest = None
            if first:  # when the delivery behind the oldest entry was received
                received = await self._raw.hget(
                    self._hash(first[0][1][b"id"].decode()), "received_at"
                )
                oldest = float(received) if received else None
            pending = max(0, int(stream) - int(running)) + int(delayed)
            return Counts(pending, int(running), int(failed), oldest)

        return await self._guard(count())

    async def get(self, delivery_id: str) -> Entry | None:
        """One delivery with its attempts, or None."""
        return await self._guard(self._get(delivery_id, with_history=True))

    async def _get(self, delivery_id: str, with_history: bool) -> Entry | None:
        async with self._raw.pipeline(transaction=False) as pipe:
            pipe.hgetall(self._hash(delivery_id))
            pipe.get(self._body(delivery_id))
            fields, body = await pipe.execute()
        if not fields:
            return None
        history: list[Attempt] = []
        done: set[bytes] = set()
        if with_history:
            done = await self._raw.smembers(self._handlers_done(delivery_id))
            for raw in await self._raw.lrange(self._attempts(delivery_id), 0, -1):
                item = json.loads(raw)
                history.append(
                    Attempt(item["number"], item["consumer"], item["started_at"],
                            item.get("finished_at"), item.get("error"))
                )  # fmt: skip
        delivery = Delivery(
            delivery_id,
            fields[b"name"].decode(),
            body or b"",
            _text(fields.get(b"action")),
            int(fields[b"installation_id"]) if fields.get(b"installation_id") else None,
            json.loads(fields[b"headers"]),
            float(fields[b"received_at"]),
        )
        finished = fields.get(b"finished_at")
        return Entry(
            delivery,
            Status(fields[b"status"].decode()),
            int(fields[b"attempts"]),
            float(fields[b"received_at"]),
            float(fields.get(b"not_before") or 0),
            float(finished) if finished else None,
            _text(fields.get(b"last_error")),
            history,
            frozenset(handler.decode() for handler in done),
        )

    async def entries(self, status: Status | None = None, limit: int = 100) -> list[Entry]:
        """The newest deliveries first, optionally only those with ``status``."""
        return await self._guard(self._entries(status, limit))

    async def _entries(self, status: Status | None, limit: int) -> list[Entry]:
        found: list[Entry] = []
        start, page = 0, max(limit, 100)
        while len(found) < limit:
            ids = await self._raw.zrevrange(self._received, start, start + page - 1)
            if not ids:
                break
            for raw in ids:
                entry = await self._get(raw.decode(), with_history=False)
                if entry is not None and (status is None or entry.status is status):
                    found.append(entry)
                    if len(found) == limit:
                        break
            start += page
        return found

    async def purge(self, finished_before: float) -> int:
        """Delete done and failed deliveries that finished before ``finished_before``."""
        return await self._guard(self._purge(finished_before))

    async def _purge(self, finished_before: float) -> int:
        ids = await self._raw.zrangebyscore(self._finished, "-inf", f"({finished_before!r}")
        for raw in ids:
            delivery_id = raw.decode()
            async with self._raw.pipeline(transaction=True) as pipe:
                pipe.delete(
                    self._hash(delivery_id),
                    self._attempts(delivery_id),
                    self._body(delivery_id),
                    self._handlers_done(delivery_id),
                )
                pipe.zrem(self._received, delivery_id)
                pipe.zrem(self._finished, delivery_id)
                pipe.zrem(self._failed, delivery_id)
                await pipe.execute()
        return len(ids)

    # Turns: a key that expires, so a replica that dies mid-turn holds it no longer ------

    async def take_turn(self, job: str, holder: str, seconds: float) -> bool:
        """Hold ``job`` for ``seconds`` unless another holder's turn is still running."""
        keys = [f"{self._prefix}turn:{job}"]
        taken = self._raw.eval(_TAKE_TURN, len(keys), *keys, holder, max(1, int(seconds * 1000)))
        return bool(await self._guard(taken))

    async def end_turn(self, job: str, holder: str, succeeded_at: float | None) -> None:
        """Let go of ``job`` (if ``holder`` still holds it); keep ``succeeded_at``."""
        keys = [f"{self._prefix}turn:{job}", f"{self._prefix}succeeded:{job}"]
        at = "" if succeeded_at is None else repr(succeeded_at)
        await self._guard(self._raw.eval(_END_TURN, len(keys), *keys, holder, at))

    async def last_success(self, job: str) -> float | None:
        """When the last successful run of ``job`` began, or None."""
        raw = await self._guard(self._raw.get(f"{self._prefix}succeeded:{job}"))
        return None if raw is None else float(raw)

    async def close(self) -> None:
        """Close the connection pool."""
        await self._redis.aclose()

    def damaged(self) -> str | None:
        """Always None: Redis's own persistence answers for its data."""
        return None
