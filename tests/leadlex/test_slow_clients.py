"""Slow or idle clients cost a connection, not a worker.

The live server is the product's own configuration (config/gunicorn.py, as
./bin/leadlex, the Dockerfile and docker-compose start it), on this run's profile.
With sync workers, two connections that sent half a request took the API down;
here 50 such connections and 5 stalled readers of streamed exports are held open
while 200 ordinary requests must each be answered within a second.
"""

from __future__ import annotations

import socket
import time

import pytest
import requests

from tests.conftest import make_key
from tests.exports.factories import make_contacts
from tests.support.server import WebServer

pytestmark = pytest.mark.django_db(transaction=True)

EXPORT_ROWS = 20_000  # ~3 MB of CSV: far more than the socket buffers of a reader that stops reading


def half_open(server: WebServer) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    sock.sendall(b"GET /v1/contacts HTTP/1.1\r\nHost: localhost\r\n")  # and never the rest
    return sock


def stalled_reader(server: WebServer, key: str) -> socket.socket:
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.settimeout(30)
    sock.connect(("127.0.0.1", server.port))
    sock.sendall(
        f"GET /v1/contacts/export?limit=50000 HTTP/1.1\r\nHost: localhost\r\n"
        f"Authorization: Bearer {key}\r\nConnection: close\r\n\r\n".encode()
    )
    assert sock.recv(12).startswith(b"HTTP/1.1 200")  # the stream has started; now it stops being read
    return sock


def read_rest(sock: socket.socket) -> bytes:
    chunks = []
    while chunk := sock.recv(1 << 16):
        chunks.append(chunk)
    return b"".join(chunks)


def test_idle_and_stalled_clients_do_not_keep_other_requests_waiting(workspace):
    make_contacts(workspace, EXPORT_ROWS)
    _, key = make_key(workspace)
    server = WebServer(workers=2, extra_env={"LEADLEX_RATE_LIMITS": "default=10000/minute,contacts_export=100/hour"})
    held: list[socket.socket] = []
    try:
        held += [half_open(server) for _ in range(50)]
        readers = [stalled_reader(server, key) for _ in range(5)]
        held += readers
        slowest = 0.0
        session = requests.Session()
        for _ in range(200):
            started = time.monotonic()
            response = session.get(
                server.url + "/v1/contacts?limit=5", headers={"Authorization": f"Bearer {key}"}, timeout=5
            )
            slowest = max(slowest, time.monotonic() - started)
            assert response.status_code == 200
        assert slowest < 1.0, f"slowest ordinary request took {slowest:.2f}s"
        # The stalled exports were only waiting for their readers: each is whole once read.
        for sock in readers:
            raw = read_rest(sock)
            body = raw.split(b"\r\n\r\n", 1)[1]
            assert b"0\r\n\r\n" in body[-16:] or b"Transfer-Encoding" not in raw  # chunked stream came to its end
            assert body.count(b"\n") > EXPORT_ROWS
    finally:
        for sock in held:
            sock.close()
        server.stop()


def test_a_client_that_stops_sending_its_request_is_dropped_after_the_io_timeout(workspace):
    server = WebServer(workers=1, extra_env={"LEADLEX_WEB_IO_TIMEOUT": "2"})
    try:
        sock = half_open(server)
        started = time.monotonic()
        try:
            leftover = sock.recv(1024)
        except ConnectionResetError:
            leftover = b""
        waited = time.monotonic() - started
        assert leftover == b"" or leftover.startswith(b"HTTP/1.1 4"), leftover
        assert 1.5 <= waited < 8, waited
    finally:
        server.stop()
