"""The read-through cache of the six-figure metrics: keys, encoding, and a fill that cannot go stale.

One Valkey hash per barber (``<namespace>:m:<user_id>``, one field per as_of) holds the raw figures
``before`` returned; derived figures are recomputed on read (they depend on the income target, and
cost microseconds). Invalidating a barber deletes the hash and increments their generation
(``<namespace>:g:<user_id>``). A miss reads the generation in the same round trip as the lookup and
fills only if it is unchanged, in one server-side script: a fill racing an invalidation (read old
rows, the write commits, the entry is dropped, *then* the old figures would be written) is refused
instead of leaving a stale entry behind with no further invalidation coming.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Engine

from bbperf.errors import ConfigError
from bbperf.metrics.model import RawMetrics
from bbperf.target import schema_of
from bbperf.urls import describe_target

POLICIES = ("ttl", "invalidate")
DEFAULT_TTL_S = 30.0

# KEYS: data hash, generation, epoch. ARGV: generation|epoch seen at lookup, field, value, ttl ms.
_FILL_SCRIPT = """
local seen = (redis.call('GET', KEYS[2]) or '0') .. '|' .. (redis.call('GET', KEYS[3]) or '0')
if seen ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], ARGV[2], ARGV[3])
local ttl = tonumber(ARGV[4])
if ttl > 0 and redis.call('PTTL', KEYS[1]) < 0 then redis.call('PEXPIRE', KEYS[1], ttl) end
return 1
"""


@dataclass(frozen=True)
class CachePolicy:
    """How entries leave the cache: ``ttl`` (expire ``ttl_s`` after the fill) or ``invalidate``
    (dropped by the database-driven listener; ``ttl_s`` 0 means never expire otherwise)."""

    name: str
    ttl_s: float

    @classmethod
    def of(cls, name: str, ttl_s: float | None = None) -> CachePolicy:
        if name not in POLICIES:
            raise ConfigError(f"unknown cache policy {name!r}: choose one of {', '.join(POLICIES)}")
        ttl = (DEFAULT_TTL_S if name == "ttl" else 0.0) if ttl_s is None else float(ttl_s)
        if ttl < 0 or (name == "ttl" and ttl == 0):
            raise ConfigError(f"cache TTL {ttl_s!r} s must be positive for the ttl policy")
        return cls(name, ttl)


def encode(raw: RawMetrics) -> bytes:
    """The compared figures as JSON, money as exact strings."""
    return json.dumps(
        {k: str(v) if isinstance(v, Decimal) else v for k, v in raw.values().items()}
    ).encode()


def decode(data: bytes, user_id: int, as_of: datetime) -> RawMetrics:
    """Inverse of ``encode`` (Decimals come back exactly as they went in)."""
    values = json.loads(data)
    for name in ("revenue_30d", "average_ticket"):
        values[name] = Decimal(values[name])
    return RawMetrics(user_id=user_id, as_of=as_of, **values)


def namespace(engine: Engine) -> str:
    """Key prefix for one target database and schema (no user name or password in it)."""
    return f"bbperf:{describe_target(engine.url)}:{schema_of(engine)}"


@dataclass(frozen=True)
class Lookup:
    """A cache lookup: the figures on a hit, else the token a fill must present."""

    raw: RawMetrics | None
    token: str


class MetricsCache:
    """The six-figure metrics' entries on one Valkey client, under one namespace."""

    def __init__(self, client: Any, namespace: str, policy: CachePolicy) -> None:
        self.client = client
        # Each policy keeps its own entries: a TTL read never sees an entry filled without expiry.
        self.prefix = f"{namespace}:{policy.name}"
        self.policy = policy
        self._fill = client.register_script(_FILL_SCRIPT)

    def key(self, user_id: int) -> str:
        return f"{self.prefix}:m:{user_id}"

    def _generation_key(self, user_id: int) -> str:
        return f"{self.prefix}:g:{user_id}"

    @property
    def _epoch_key(self) -> str:
        return f"{self.prefix}:epoch"

    def lookup(self, user_id: int, as_of: datetime) -> Lookup:
        """One round trip: the entry (if any) and the generation and epoch it is checked against."""
        pipe = self.client.pipeline(transaction=False)
        pipe.hget(self.key(user_id), as_of.isoformat())
        pipe.mget(self._generation_key(user_id), self._epoch_key)
        data, (generation, epoch) = pipe.execute()
        token = f"{_text(generation)}|{_text(epoch)}"
        return Lookup(decode(data, user_id, as_of) if data is not None else None, token)

    def fill(self, user_id: int, as_of: datetime, raw: RawMetrics, token: str) -> bool:
        """Store ``raw`` unless the barber was invalidated since the lookup that gave ``token``."""
        ttl_ms = int(self.policy.ttl_s * 1000)
        keys = [self.key(user_id), self._generation_key(user_id), self._epoch_key]
        return bool(self._fill(keys=keys, args=[token, as_of.isoformat(), encode(raw), ttl_ms]))

    def invalidate(self, user_id: int) -> None:
        """Drop the barber's entries and bump their generation, atomically."""
        pipe = self.client.pipeline(transaction=True)
        pipe.delete(self.key(user_id))
        pipe.incr(self._generation_key(user_id))
        pipe.execute()

    def flush(self) -> int:
        """Drop every entry of this namespace and bump the epoch (fills in flight are refused)."""
        self.client.incr(self._epoch_key)
        deleted = 0
        for key in self.client.scan_iter(match=f"{self.prefix}:m:*", count=500):
            deleted += int(self.client.delete(key))
        return deleted

    def memory_bytes(self, user_id: int) -> int | None:
        """``MEMORY USAGE`` of the barber's entry (key, hash and allocator overhead), or None."""
        usage = self.client.memory_usage(self.key(user_id), samples=0)
        return int(usage) if usage is not None else None

    def cached_barbers(self) -> list[int]:
        return sorted(
            int(_text(k).rsplit(":", 1)[1])
            for k in self.client.scan_iter(match=f"{self.prefix}:m:*", count=500)
        )


def _text(value: bytes | str | None) -> str:
    if value is None:
        return "0"
    return value.decode() if isinstance(value, bytes) else str(value)
