""".ci/shared_servers.py: what `.ci/run` takes on the machine's PostgreSQL and Redis is
the run's own (unique database names, Redis db numbers no other run holds, nobody's
data taken) and is given back; a server that does not answer is reported, so that
`.ci/run` starts its own. Run against the servers of the production profile."""

from __future__ import annotations

import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection

ROOT = Path(__file__).resolve().parents[2]
HELPER = ROOT / ".ci" / "shared_servers.py"

pytestmark = pytest.mark.skipif(not settings.REDIS_URL, reason="needs the production profile's PostgreSQL and Redis")


def helper(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(HELPER), *args], capture_output=True, text=True, timeout=60, check=False, cwd=ROOT
    )


def run_name() -> str:
    return f"t_{uuid.uuid4().hex[:10]}"


@pytest.fixture
def closed_port() -> Iterator[int]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))  # bound, never listening: connections are refused
        yield s.getsockname()[1]


@pytest.fixture
def pg_url() -> str:
    db = connection.settings_dict
    return f"postgres://{db['USER'] or 'postgres'}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/postgres"


def _databases(pg_url: str, pattern: str) -> set[str]:
    import psycopg

    with psycopg.connect(pg_url, autocommit=True) as conn:
        return {row[0] for row in conn.execute("SELECT datname FROM pg_database WHERE datname LIKE %s", (pattern,))}


@pytest.mark.django_db
def test_a_runs_databases_are_named_after_it_and_all_dropped_at_the_end(pg_url: str) -> None:
    import psycopg

    run = run_name()
    claimed = helper("pg-claim", pg_url, run)
    assert claimed.returncode == 0, claimed.stderr
    assert claimed.stdout.strip() == pg_url.removesuffix("/postgres")  # the server, without a database
    assert _databases(pg_url, f"%{run}%") == {f"leadlex_{run}", f"leadlex_{run}_smoke"}
    # What pytest-django adds, with a connection left open as a killed worker would leave it.
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "test_leadlex_{run}"')
    left_open = psycopg.connect(pg_url.removesuffix("/postgres") + f"/test_leadlex_{run}")
    try:
        released = helper("pg-release", pg_url, run)
        assert released.returncode == 0, released.stderr
    finally:
        left_open.close()
    assert _databases(pg_url, f"%{run}%") == set()


def test_two_runs_get_different_redis_dbs_and_nobodys_data(closed_port: int) -> None:
    import redis

    url = settings.REDIS_URL.rsplit("/", 1)[0] if settings.REDIS_URL.count("/") > 2 else settings.REDIS_URL
    first, second = run_name(), run_name()
    # Someone's own data in the lowest free db: never taken, never flushed.
    foreign_db = None
    for db in range(1, 16):
        if not redis.Redis.from_url(url, db=db).dbsize() and not redis.Redis.from_url(url, db=0).exists(
            f"leadlex-ci:redis-db:{db}"
        ):
            foreign_db = db
            break
    assert foreign_db is not None
    foreign = redis.Redis.from_url(url, db=foreign_db)
    foreign.set("someone:else", "keep me")
    claims: dict[str, list[int]] = {}
    try:
        for run in (first, second):
            result = helper("redis-claim", url, run, "2", "60")
            assert result.returncode == 0, result.stderr
            server, *dbs = result.stdout.split()
            assert server == url  # the server, without a db number
            claims[run] = [int(db) for db in dbs]
        assert len(set(claims[first]) | set(claims[second])) == 4
        assert foreign_db not in claims[first] + claims[second]
        assert 0 not in claims[first] + claims[second]  # db 0 holds the claims
        ours = redis.Redis.from_url(url, db=claims[first][0])
        ours.set("a:key", "1")
        # The second run cannot release (flush) what the first holds.
        helper("redis-release", url, second, *map(str, claims[first]))
        assert ours.get("a:key") == b"1"
    finally:
        for run, dbs in claims.items():
            assert helper("redis-release", url, run, *map(str, dbs)).returncode == 0
        assert foreign.get("someone:else") == b"keep me"
        foreign.delete("someone:else")
    assert ours.dbsize() == 0
    registry = redis.Redis.from_url(url, db=0)
    assert not any(registry.exists(f"leadlex-ci:redis-db:{db}") for db in claims[first] + claims[second])


def test_a_server_that_does_not_answer_is_reported(closed_port: int) -> None:
    pg = helper("pg-claim", f"postgres://postgres@127.0.0.1:{closed_port}/postgres", run_name())
    assert pg.returncode == 1 and "does not answer" in pg.stderr
    cache = helper("redis-claim", f"redis://127.0.0.1:{closed_port}", run_name(), "2", "60")
    assert cache.returncode == 1 and "does not answer" in cache.stderr
