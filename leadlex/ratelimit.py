"""Fixed-window rate limits per workspace and endpoint group, exact across processes.

Production counts in Redis with one atomic Lua script (INCR + EXPIRE); the
embedded profile counts in a small SQLite file with an atomic UPSERT ... RETURNING
under an IMMEDIATE transaction, so several web processes on one machine agree.
"""

from __future__ import annotations

import random
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

_PERIODS = {"second": 1, "minute": 60, "hour": 3600, "day": 86400}


@dataclass(frozen=True)
class Rate:
    limit: int
    period: int


@dataclass(frozen=True)
class Decision:
    allowed: bool
    limit: int
    remaining: int
    reset: int  # Unix epoch seconds when the window ends

    def headers(self) -> dict[str, str]:
        headers = {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(self.remaining),
            "X-RateLimit-Reset": str(self.reset),
        }
        if not self.allowed:
            headers["Retry-After"] = str(max(1, self.reset - int(time.time())))
        return headers


def parse_rate(text: str) -> Rate:
    count, _, unit = text.partition("/")
    try:
        limit = int(count)
        period = _PERIODS[unit.strip().rstrip("s")]
    except (ValueError, KeyError):
        raise ImproperlyConfigured(f"Bad rate {text!r}: expected N/second|minute|hour|day") from None
    if limit < 0:
        raise ImproperlyConfigured(f"Bad rate {text!r}: negative limit")
    return Rate(limit, period)


def rate_for(group: str) -> Rate:
    limits = settings.LEADLEX_RATE_LIMITS
    return parse_rate(limits.get(group) or limits["default"])


class RedisCounter:
    _SCRIPT = """
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
return n
"""

    def __init__(self, url: str) -> None:
        import redis

        self._client = redis.Redis.from_url(url)
        self._incr = self._client.register_script(self._SCRIPT)

    def hit(self, key: str, ttl: int) -> int:
        return int(self._incr(keys=[key], args=[ttl]))


def _retry_while_locked(statement: Callable[[], object], *, seconds: float = 30) -> None:
    """Run a set-up statement that SQLite may refuse with "database is locked" at once,
    without waiting on its busy timeout: switching to WAL needs an exclusive lock, so
    several processes opening a new file together (gunicorn's workers on their first
    request) collide there."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            statement()
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.01 + random.random() * 0.05)


class SqliteCounter:
    def __init__(self, path: str) -> None:
        self._path = path
        self._local = threading.local()
        conn = self._connect()
        _retry_while_locked(
            lambda: conn.execute(
                "CREATE TABLE IF NOT EXISTS hits (key TEXT PRIMARY KEY, n INTEGER NOT NULL, expires REAL NOT NULL)"
            )
        )

    def _connect(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self._path, timeout=30, isolation_level=None)
            _retry_while_locked(lambda: conn.execute("PRAGMA journal_mode=WAL"))
            self._local.conn = conn
        return conn

    def hit(self, key: str, ttl: int) -> int:
        conn = self._connect()
        now = time.time()
        conn.execute("BEGIN IMMEDIATE")
        try:
            (count,) = conn.execute(
                "INSERT INTO hits (key, n, expires) VALUES (?, 1, ?) "
                "ON CONFLICT(key) DO UPDATE SET n = n + 1 RETURNING n",
                (key, now + ttl),
            ).fetchone()
            if count == 1:
                # A new window: drop the finished ones so the file stays small.
                conn.execute("DELETE FROM hits WHERE expires < ?", (now,))
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        return int(count)


@lru_cache(maxsize=4)
def _counter(store: str, location: str) -> RedisCounter | SqliteCounter:
    if store == "redis":
        return RedisCounter(location)
    return SqliteCounter(location)


def get_counter() -> RedisCounter | SqliteCounter:
    if settings.LEADLEX_RATELIMIT_STORE == "redis":
        return _counter("redis", settings.REDIS_URL)
    return _counter("sqlite", str(settings.LEADLEX_RATELIMIT_SQLITE_PATH))


def rate_limit_hit(*, workspace_id: str, group: str, now: float | None = None) -> Decision:
    rate = rate_for(group)
    now = time.time() if now is None else now
    window = int(now // rate.period)
    reset = (window + 1) * rate.period
    count = get_counter().hit(f"leadlex:rl:{group}:{workspace_id}:{window}", rate.period + 1)
    return Decision(allowed=count <= rate.limit, limit=rate.limit, remaining=max(0, rate.limit - count), reset=reset)
