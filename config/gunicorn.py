"""The web server's configuration, for every way LeadLex is served
(``./bin/leadlex``, the Dockerfile, docker-compose, the tests' live servers):
``gunicorn -c python:config.gunicorn config.wsgi:application``.

Slow or idle clients must cost a connection, never a worker. A sync worker is
held by a client that sends half a request line and waits, by a slow reader of a
streamed 50,000-row export, and by an Idempotency-Key duplicate waiting on the
original; two such clients took ``./bin/leadlex up`` down. So each worker process
serves its requests in gevent greenlets (gunicorn's gevent worker: its own HTTP
parser, so body limits and chunked bodies behave as with the sync worker), up to
``worker_connections`` at once, and every socket read or write waits at most
``LEADLEX_WEB_IO_TIMEOUT`` seconds: a client that stops sending its headers or
body, or stops reading the response, is dropped after that. Database drivers
cooperate (psycopg detects gevent); CPU-bound work still takes its share of the
process, so ``--workers`` stays at about the number of cores.
"""

from __future__ import annotations

import os
from typing import Any

from gunicorn.workers.ggevent import GeventWorker

from leadlex.env import env_int

IO_TIMEOUT = env_int("LEADLEX_WEB_IO_TIMEOUT", 30)

worker_class = "config.gunicorn.LeadLexWebWorker"
worker_connections = env_int("LEADLEX_WEB_CONNECTIONS", 1000)
timeout = 120  # a worker whose loop is stuck this long (not a slow request) is restarted
graceful_timeout = 30
keepalive = 5


class LeadLexWebWorker(GeventWorker):
    def init_process(self) -> None:
        # Each request runs in a greenlet of its own and Django keeps one connection per
        # greenlet: a persistent one would be orphaned when its greenlet ends.
        os.environ["DATABASE_CONN_MAX_AGE"] = "0"
        super().init_process()

    def handle(self, listener: Any, client: Any, addr: Any) -> None:
        # Bounds each recv/send, so a stalled peer cannot hold its greenlet (and the
        # request's database connection) for ever; progress, however slow, resets it.
        client.settimeout(IO_TIMEOUT)
        super().handle(listener, client, addr)
