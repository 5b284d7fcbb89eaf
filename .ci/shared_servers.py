"""The machine's PostgreSQL and Redis, shared by concurrent `.ci/run`s (and the people on the machine).

Each run takes what is its own and gives it back at the end:

- PostgreSQL: databases named after the run (``leadlex_<run>``, ``leadlex_<run>_smoke``; pytest-django adds
  ``test_leadlex_<run>``), all dropped by ``pg-release`` (connections to them are ended first).
- Redis: db numbers claimed in db 0 with ``SET leadlex-ci:redis-db:<n> <run> NX EX <ttl>``, so two runs never
  get the same one, and only a db that is empty (or holds the leftovers of a CI run whose claim has expired: a
  marker key says so) is taken. ``redis-release`` flushes the db and drops the claim. The TTL frees the dbs of a
  run that was killed before it could release them; it outlasts the longest run.

Commands (exit 0 on success; 1 when the server does not answer or cannot give what is asked):
  pg-claim URL RUN           create the run's databases; print the server URL to use (without a database)
  pg-release URL RUN         drop every database of the run
  redis-claim URL RUN N TTL  claim N db numbers; print the server URL to use and them, space-separated
  redis-release URL RUN DB…  flush and release the given db numbers if this run holds them
"""

from __future__ import annotations

import re
import sys
from urllib.parse import urlsplit, urlunsplit

CONNECT_TIMEOUT = 3
CLAIM_KEY = "leadlex-ci:redis-db:{}"
MARKER_KEY = "leadlex-ci:owner"  # in a claimed db: which run's data it holds


def _run_name(run: str) -> str:
    if not re.fullmatch(r"[a-z0-9_]{1,40}", run):
        raise SystemExit(f"run name {run!r}: lower-case letters, digits and _ only")
    return run


def _server_url(url: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "", "", ""))


def pg_claim(url: str, run: str) -> int:
    import psycopg
    from psycopg import sql

    try:
        conn = psycopg.connect(url, connect_timeout=CONNECT_TIMEOUT, autocommit=True)
    except psycopg.Error as exc:
        print(f"PostgreSQL at {_server_url(url)} does not answer: {exc}".strip(), file=sys.stderr)
        return 1
    with conn:
        try:
            for name in (f"leadlex_{run}", f"leadlex_{run}_smoke"):
                conn.execute(
                    sql.SQL("CREATE DATABASE {} ENCODING 'UTF8' TEMPLATE template0").format(sql.Identifier(name))
                )
        except psycopg.Error as exc:
            print(f"PostgreSQL at {_server_url(url)} answers but cannot create databases: {exc}", file=sys.stderr)
            pg_release(url, run)
            return 1
    print(_server_url(url))
    return 0


def pg_release(url: str, run: str) -> int:
    import psycopg
    from psycopg import sql

    with psycopg.connect(url, connect_timeout=CONNECT_TIMEOUT, autocommit=True) as conn:
        names = [
            row[0]
            for row in conn.execute(
                "SELECT datname FROM pg_database WHERE datname = ANY(%s) OR datname LIKE %s OR datname LIKE %s",
                ([f"leadlex_{run}", f"test_leadlex_{run}"], f"leadlex\\_{run}\\_%", f"test\\_leadlex\\_{run}\\_%"),
            )
        ]
        for name in names:
            # FORCE: a worker a killed test left behind must not keep the database alive.
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
    print(" ".join(names))
    return 0


def _redis(url: str, db: int):  # noqa: ANN202 - redis.Redis, imported late so that the PostgreSQL commands need no redis
    import redis

    return redis.Redis.from_url(
        _server_url(url), db=db, socket_connect_timeout=CONNECT_TIMEOUT, socket_timeout=CONNECT_TIMEOUT
    )


def redis_claim(url: str, run: str, count: int, ttl: int) -> int:
    import redis

    registry = _redis(url, 0)
    try:
        registry.ping()
        databases = int(registry.config_get("databases").get("databases", 16))
    except redis.ResponseError:
        databases = 16  # CONFIG may be disabled on a shared server
    except redis.RedisError as exc:
        print(f"Redis at {_server_url(url)} does not answer: {exc}", file=sys.stderr)
        return 1
    claimed: list[int] = []
    for db in range(1, databases):  # db 0 holds the claims; it is never a run's
        if len(claimed) == count:
            break
        if not registry.set(CLAIM_KEY.format(db), run, nx=True, ex=ttl):
            continue  # another run's
        data = _redis(url, db)
        # Empty, or the data of a CI run whose claim is gone (killed before it could flush): ours now.
        if data.dbsize() and data.get(MARKER_KEY) is None:
            registry.delete(CLAIM_KEY.format(db))  # someone's own data: not ours to take
            continue
        data.flushdb()
        data.set(MARKER_KEY, run)
        claimed.append(db)
    if len(claimed) < count:
        redis_release(url, run, claimed)
        print(f"Redis at {_server_url(url)}: fewer than {count} free db numbers", file=sys.stderr)
        return 1
    print(_server_url(url), *claimed)
    return 0


def redis_release(url: str, run: str, dbs: list[int]) -> int:
    registry = _redis(url, 0)
    for db in dbs:
        key = CLAIM_KEY.format(db)
        if registry.get(key) == run.encode():
            _redis(url, db).flushdb()
            registry.delete(key)
    return 0


def main(argv: list[str]) -> int:
    command, url, run, *rest = argv
    run = _run_name(run)
    if command == "pg-claim":
        return pg_claim(url, run)
    if command == "pg-release":
        return pg_release(url, run)
    if command == "redis-claim":
        return redis_claim(url, run, int(rest[0]), int(rest[1]))
    if command == "redis-release":
        return redis_release(url, run, [int(db) for db in rest])
    raise SystemExit(f"unknown command {command!r}")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
