"""The 20 MB body limit under a real WSGI server (gunicorn), for a Content-Length
body and for a chunked body that announces no length."""

from __future__ import annotations

import http.client
import json
import socket
import subprocess
import sys
import time

import pytest

from contacts.models import Contact
from tests.conftest import make_key
from tests.support.worker import ROOT, wait_for, worker_env

pytestmark = pytest.mark.django_db(transaction=True)

LIMIT = 200_000


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def server():
    port = free_port()
    env = worker_env()
    env["LEADLEX_MAX_BODY_BYTES"] = str(LIMIT)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "-c",
            "python:config.gunicorn",
            "config.wsgi:application",
            "-b",
            f"127.0.0.1:{port}",
            "-w",
            "1",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )

    def up() -> bool:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return True
        except OSError:
            return proc.poll() is not None

    wait_for(up, timeout=30, message="gunicorn")
    assert proc.poll() is None, proc.stderr.read().decode()
    yield port
    proc.terminate()
    proc.wait(timeout=20)


def send_chunked(
    port: int, key: str, pieces, content_type: str = "application/json", path: str = "/v1/import/contacts"
) -> tuple[int, dict]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    conn.putrequest("POST", path)
    conn.putheader("Authorization", f"Bearer {key}")
    conn.putheader("Content-Type", content_type)
    conn.putheader("Transfer-Encoding", "chunked")
    conn.endheaders()
    try:
        for piece in pieces:
            conn.send(b"%x\r\n%s\r\n" % (len(piece), piece))
        conn.send(b"0\r\n\r\n")
    except (BrokenPipeError, ConnectionResetError):
        pass  # the server answered and closed before we finished: read its answer
    response = conn.getresponse()
    body = json.loads(response.read() or b"{}")
    conn.close()
    return response.status, body


def test_a_chunked_body_within_the_limit_is_imported(server, workspace):
    _key, raw = make_key(workspace)
    body = json.dumps({"rows": [{"email": f"c{i}@acme.com"} for i in range(20)]}).encode()
    status, data = send_chunked(server, raw, [body[i : i + 100] for i in range(0, len(body), 100)])
    assert status == 200, data
    assert data["data"]["created_count"] == 20
    assert Contact.objects.filter(workspace=workspace).count() == 20


def test_a_chunked_body_reaches_every_endpoint_not_only_imports(server, workspace):
    _key, raw = make_key(workspace)
    body = json.dumps({"full_name": "Chunked Carla", "email": "carla@acme.com"}).encode()
    status, data = send_chunked(server, raw, [body[:10], body[10:]], path="/v1/contacts")
    assert status == 201, data
    assert Contact.objects.get(workspace=workspace).email == "carla@acme.com"


def test_a_chunked_body_growing_past_the_limit_is_refused_with_413(server, workspace):
    _key, raw = make_key(workspace)
    row = json.dumps({"email": "x@acme.com", "full_name": "y" * 200}).encode()
    pieces = [b'{"rows": ['] + [row + b","] * ((LIMIT * 3) // len(row)) + [row + b"]}"]
    started = time.monotonic()
    status, data = send_chunked(server, raw, pieces)
    assert status == 413, data
    assert data["error"]["code"] == "payload_too_large"
    assert time.monotonic() - started < 30
    assert Contact.objects.count() == 0


def test_a_content_length_over_the_limit_is_refused_before_the_body_is_read(server, workspace):
    _key, raw = make_key(workspace)
    conn = http.client.HTTPConnection("127.0.0.1", server, timeout=30)
    conn.putrequest("POST", "/v1/import/contacts")
    conn.putheader("Authorization", f"Bearer {raw}")
    conn.putheader("Content-Type", "application/json")
    conn.putheader("Content-Length", str(LIMIT + 1))
    conn.endheaders()
    conn.send(b'{"rows": [')  # far less than announced: a 413 must not wait for the rest
    response = conn.getresponse()
    assert response.status == 413
    assert json.loads(response.read())["error"]["code"] == "payload_too_large"
