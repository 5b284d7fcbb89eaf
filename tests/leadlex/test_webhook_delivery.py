"""Webhook deliveries against a real HTTP receiver: signed, retried with backoff,
recorded, and never sent to a refused address."""

from __future__ import annotations

import json
import select
import socket
import ssl
import subprocess
import sys
import threading
import time
import uuid
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from django.db import transaction
from django.utils import timezone

from leadlex.models import WebhookDelivery, WebhookEndpoint, Workspace
from leadlex.webhooks import (
    backoff_for,
    in_flight_lease,
    webhook_delivery_attempt,
    webhook_delivery_retry,
    webhook_emit,
    webhook_signature,
    webhook_signature_verify,
    webhook_sweep,
)
from tests.support.receiver import Receiver
from tests.support.worker import WorkerProcess, tasks_routed_to, wait_for

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


@pytest.fixture
def allow_private(settings):
    settings.LEADLEX_WEBHOOKS_ALLOW_PRIVATE = True
    return settings


def register(client, url: str, events: list[str]) -> dict:
    response = client.post("/v1/webhooks", {"url": url, "events": events}, format="json")
    assert response.status_code == 201, response.content
    return response.json()


def delivery(pk) -> WebhookDelivery:
    return WebhookDelivery.objects.get(pk=pk)


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_a_failed_delivery_is_retried_with_backoff_and_then_delivered(owner, allow_private, receiver, celery_worker):
    receiver.statuses = [500]
    endpoint = register(owner.client, receiver.url, ["export.completed"])
    before = timezone.now()
    with transaction.atomic():
        ids = webhook_emit(
            workspace_id=owner.workspace.pk, event="export.completed", data={"export_id": "e1", "total_contacts": 3}
        )
        assert len(ids) == 1
        assert WebhookDelivery.objects.get(pk=ids[0]).status == "pending"  # nothing sent before commit
    first = wait_for(lambda: delivery(ids[0]).attempts == 1 and delivery(ids[0]), timeout=60, message="attempt 1")
    after = timezone.now()
    assert first.status == "pending"
    assert first.last_status_code == 500 and first.last_error == "HTTP 500"
    # Recorded backoff: 60 s after the first failure.
    assert before + timedelta(seconds=60) <= first.next_attempt_at <= after + timedelta(seconds=61)

    # Time passes: the sweeper finds the delivery due and the worker sends it again.
    WebhookDelivery.objects.filter(pk=ids[0]).update(next_attempt_at=timezone.now())
    assert webhook_sweep() == 1
    done = wait_for(
        lambda: delivery(ids[0]).status == "delivered" and delivery(ids[0]), timeout=60, message="delivered"
    )
    assert done.attempts == 2 and done.last_status_code == 200 and done.last_error == ""
    assert done.delivered_at is not None and done.next_attempt_at is None

    assert len(receiver.requests) == 2
    for received in receiver.requests:
        assert received.path == "/hooks/leadlex"
        assert received.headers["content-type"] == "application/json"
        assert received.headers["x-leadlex-event"] == "export.completed"
        assert received.headers["x-leadlex-delivery"] == str(ids[0])
        assert webhook_signature_verify(endpoint["secret"], received.headers["x-leadlex-signature"], received.body)
        assert not webhook_signature_verify("whsec_wrong", received.headers["x-leadlex-signature"], received.body)
        payload = json.loads(received.body)
        assert set(payload) == {"id", "event", "created_at", "workspace_id", "data"}
        assert payload["event"] == "export.completed"
        assert payload["workspace_id"] == str(owner.workspace.pk)
        assert payload["data"] == {"export_id": "e1", "total_contacts": 3}
    assert receiver.requests[0].body == receiver.requests[1].body  # a retry resends the same event


@pytest.mark.django_db(transaction=True)
def test_nothing_is_queued_when_the_transaction_rolls_back(owner, allow_private, receiver):
    register(owner.client, receiver.url, ["import.completed"])

    class Boom(Exception):
        pass

    with pytest.raises(Boom), transaction.atomic():
        webhook_emit(workspace_id=owner.workspace.pk, event="import.completed", data={})
        raise Boom
    assert not WebhookDelivery.objects.exists()


def test_emit_only_targets_subscribed_active_endpoints_of_the_workspace(
    owner, stranger, allow_private, receiver, django_capture_on_commit_callbacks
):
    subscribed = register(owner.client, receiver.url, ["export.completed", "export.failed"])
    register(owner.client, receiver.url, ["import.completed"])
    paused = register(owner.client, receiver.url, ["export.completed"])
    WebhookEndpoint.objects.filter(pk=paused["id"]).update(is_active=False)
    register(stranger.client, receiver.url, ["export.completed"])

    with django_capture_on_commit_callbacks() as callbacks:
        ids = webhook_emit(workspace_id=owner.workspace.pk, event="export.completed", data={"n": 1})
    assert len(callbacks) == 1
    assert [str(d.endpoint_id) for d in WebhookDelivery.objects.filter(pk__in=ids)] == [subscribed["id"]]
    assert webhook_emit(workspace_id=owner.workspace.pk, event="import.failed", data={}) == []
    with pytest.raises(ValueError):
        webhook_emit(workspace_id=owner.workspace.pk, event="export.exploded", data={})


def emit_one(workspace: Workspace) -> WebhookDelivery:
    ids = webhook_emit(workspace_id=workspace.pk, event="export.failed", data={"error": "disk full"})
    return delivery(ids[0])


def test_a_delivery_to_an_address_that_became_private_is_refused_on_every_attempt(owner, settings, receiver):
    settings.LEADLEX_WEBHOOKS_ALLOW_PRIVATE = True
    register(owner.client, receiver.url, ["export.failed"])
    d = emit_one(owner.workspace)
    settings.LEADLEX_WEBHOOKS_ALLOW_PRIVATE = False
    assert webhook_delivery_attempt(delivery_id=d.pk) == "pending"
    d.refresh_from_db()
    assert d.attempts == 1 and d.last_status_code is None
    assert d.last_error.startswith("refused:") and "private" in d.last_error
    assert receiver.requests == []


def test_it_connects_to_the_address_it_checked_not_to_a_second_lookup(owner, allow_private, receiver, monkeypatch):
    # "hooks.rebind.test" resolves (once) to the receiver; any second lookup - what a
    # DNS-rebinding attacker would answer differently - would fail the request.
    port = receiver.server.server_port
    WebhookEndpoint.objects.create(
        workspace=owner.workspace, url=f"http://hooks.rebind.test:{port}/in", events=["export.failed"], secret="whsec_x"
    )
    lookups: list[str] = []

    def resolver(host: str, p: int) -> list[str]:
        lookups.append(host)
        return ["127.0.0.1"]

    monkeypatch.setattr("leadlex.ssrf._system_resolver", resolver)
    real_getaddrinfo = socket.getaddrinfo

    def no_rebinding(host, *args, **kwargs):
        assert host != "hooks.rebind.test", "the delivery resolved the name a second time"
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", no_rebinding)
    d = emit_one(owner.workspace)
    assert webhook_delivery_attempt(delivery_id=d.pk) == "delivered"
    assert lookups == ["hooks.rebind.test"]
    assert receiver.requests[0].headers["host"] == f"hooks.rebind.test:{port}"
    assert receiver.requests[0].path == "/in"


def test_redirects_are_not_followed_and_count_as_failures(owner, allow_private, receiver):
    receiver.statuses = [302]
    receiver.redirect_to = "http://127.0.0.1:9/elsewhere"
    register(owner.client, receiver.url, ["export.failed"])
    d = emit_one(owner.workspace)
    assert webhook_delivery_attempt(delivery_id=d.pk) == "pending"
    d.refresh_from_db()
    assert d.last_status_code == 302 and "redirects are not followed" in d.last_error
    assert len(receiver.requests) == 1


def test_an_unreachable_endpoint_records_the_error(owner, allow_private):
    with socket.socket() as s:  # a port with nobody listening
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    register(owner.client, f"http://127.0.0.1:{port}/x", ["export.failed"])
    d = emit_one(owner.workspace)
    webhook_delivery_attempt(delivery_id=d.pk)
    d.refresh_from_db()
    assert d.attempts == 1 and d.status == "pending" and "ConnectionError" in d.last_error


def test_after_the_last_attempt_the_delivery_fails_for_good(owner, allow_private, receiver, settings):
    settings.LEADLEX_WEBHOOK_MAX_ATTEMPTS = 3
    receiver.statuses = [500, 502, 503, 200]
    register(owner.client, receiver.url, ["export.failed"])
    d = emit_one(owner.workspace)
    for expected in ("pending", "pending", "failed"):
        WebhookDelivery.objects.filter(pk=d.pk).update(next_attempt_at=timezone.now())
        assert webhook_delivery_attempt(delivery_id=d.pk) == expected
    d.refresh_from_db()
    assert d.attempts == 3 and d.last_status_code == 503 and d.next_attempt_at is None
    assert webhook_delivery_attempt(delivery_id=d.pk) == "skipped"
    assert webhook_sweep(now=timezone.now() + timedelta(days=2)) == 0

    # The admin's "retry now" makes it due again.
    with_callbacks = webhook_delivery_retry(delivery_ids=[d.pk])
    assert with_callbacks == 1
    assert webhook_delivery_attempt(delivery_id=d.pk) == "delivered"


def test_a_claimed_or_not_yet_due_delivery_is_not_sent_twice(owner, allow_private, receiver):
    receiver.statuses = [500]
    register(owner.client, receiver.url, ["export.failed"])
    d = emit_one(owner.workspace)
    assert webhook_delivery_attempt(delivery_id=d.pk) == "pending"
    assert webhook_delivery_attempt(delivery_id=d.pk) == "skipped"  # backoff not over: a duplicate task does nothing
    assert webhook_sweep() == 0
    assert len(receiver.requests) == 1


def test_the_sweeper_does_not_redispatch_a_delivery_it_just_dispatched(
    owner, allow_private, receiver, django_capture_on_commit_callbacks
):
    register(owner.client, receiver.url, ["export.failed"])
    d = emit_one(owner.workspace)
    now = timezone.now()
    # Queued at emit time: left alone for two minutes, then dispatched again in case the task was lost.
    assert webhook_sweep(now=now + timedelta(seconds=30)) == 0
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        assert webhook_sweep(now=now + timedelta(minutes=3)) == 1
    assert len(callbacks) == 1
    assert webhook_sweep(now=now + timedelta(minutes=3, seconds=30)) == 0
    assert d.pk


def test_backoff_doubles_from_a_minute_and_is_capped_at_six_hours():
    assert [backoff_for(n).total_seconds() for n in range(1, 6)] == [60, 120, 240, 480, 960]
    assert backoff_for(11) == timedelta(hours=6)
    total = sum((backoff_for(n) for n in range(1, 12)), timedelta())
    assert timedelta(hours=18) < total < timedelta(hours=24)  # 12 attempts span about a day


@pytest.mark.parametrize(
    "header",
    [
        "",
        "t=abc,v1=00",
        "v1=00",
        "t=1",
        "garbage",
        "t=1,v1=",
    ],
)
def test_signature_verification_rejects_malformed_headers(header):
    assert not webhook_signature_verify("whsec_s", header, b"{}")


def test_signature_verification_checks_body_secret_and_age():
    header = webhook_signature("whsec_s", b'{"a":1}', timestamp=1_700_000_000)
    assert webhook_signature_verify("whsec_s", header, b'{"a":1}', now=1_700_000_100)
    assert not webhook_signature_verify("whsec_s", header, b'{"a":2}', now=1_700_000_100)
    assert not webhook_signature_verify("whsec_t", header, b'{"a":1}', now=1_700_000_100)
    assert not webhook_signature_verify("whsec_s", header, b'{"a":1}', now=1_700_001_000)  # replayed
    assert webhook_signature_verify("whsec_s", header, b'{"a":1}', tolerance=None)
    rotated = header + ",v1=" + "0" * 64
    assert webhook_signature_verify("whsec_s", rotated, b'{"a":1}', now=1_700_000_000)


@pytest.mark.django_db(transaction=True)
def test_retry_now_leaves_a_delivery_that_is_on_the_wire_alone(owner, allow_private, receiver):
    """The admin's "retry now" on a delivery a worker is sending at that moment must
    not make it due again: a second worker would send it a second time."""
    import threading

    from django.db import connection

    receiver.hold = threading.Event()
    endpoint = register(owner.client, receiver.url, ["export.failed"])
    # Made by hand rather than emitted: no task is queued for it (a session worker
    # left running by another test would take it) and the sweeper leaves a freshly
    # dispatched row alone, so the thread below is the one sender.
    now = timezone.now()
    d = WebhookDelivery.objects.create(
        endpoint_id=endpoint["id"],
        event="export.failed",
        payload={"error": "x"},
        status="pending",
        next_attempt_at=now,
        dispatched_at=now,
    )
    outcome: list[str] = []

    def attempt() -> None:
        try:
            outcome.append(webhook_delivery_attempt(delivery_id=d.pk))
        finally:
            connection.close()

    worker = threading.Thread(target=attempt)
    worker.start()
    try:
        wait_for(lambda: receiver.requests, timeout=10, message="the POST to reach the receiver")
        assert webhook_delivery_retry(delivery_ids=[d.pk]) == 0
        assert webhook_delivery_attempt(delivery_id=d.pk) == "skipped"
        assert webhook_sweep(now=timezone.now() + in_flight_lease() - timedelta(seconds=2)) == 0
    finally:
        receiver.hold.set()
        worker.join(timeout=30)
    assert outcome == ["delivered"]
    assert len(receiver.requests) == 1
    d.refresh_from_db()
    assert d.status == "delivered" and d.attempts == 1 and d.leased_until is None


def test_retry_now_makes_a_delivery_waiting_for_its_backoff_due(owner, allow_private, receiver):
    receiver.statuses = [500]
    register(owner.client, receiver.url, ["export.failed"])
    d = emit_one(owner.workspace)
    assert webhook_delivery_attempt(delivery_id=d.pk) == "pending"  # failed once: backoff
    assert webhook_delivery_attempt(delivery_id=d.pk) == "skipped"
    assert webhook_delivery_retry(delivery_ids=[d.pk]) == 1
    assert webhook_delivery_attempt(delivery_id=d.pk) == "delivered"
    assert len(receiver.requests) == 2


# Short timeouts so the lease is seconds, not the production default's 25 s.
SHORT_TIMEOUTS = {
    "LEADLEX_WEBHOOK_CONNECT_TIMEOUT": 1,
    "LEADLEX_WEBHOOK_READ_TIMEOUT": 3,
    "LEADLEX_WEBHOOK_LEASE_MARGIN": 2,
}


def test_the_in_flight_lease_is_the_delivery_timeouts_plus_a_margin(settings):
    assert in_flight_lease() == timedelta(seconds=5 + 10 + 10)  # the defaults
    for name, value in SHORT_TIMEOUTS.items():
        setattr(settings, name, value)
    assert in_flight_lease() == timedelta(seconds=6)


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_a_delivery_on_the_wire_when_its_worker_is_killed_is_sent_again_within_a_minute(owner, allow_private, receiver):
    """SIGKILL the worker while the receiver holds its POST open: the delivery is
    sent again by another worker once the lease (connect + read + margin) is over,
    not before, and its log counts both attempts."""
    for name, value in SHORT_TIMEOUTS.items():
        setattr(allow_private, name, value)
    # No re-send of a lost task is needed here (it would come after the 2-minute
    # dispatch lease): a message published while a worker polls is not lost.
    env = {name: str(value) for name, value in SHORT_TIMEOUTS.items()} | {"LEADLEX_WEBHOOKS_ALLOW_PRIVATE": "1"}
    receiver.hold = threading.Event()
    endpoint = register(owner.client, receiver.url, ["export.completed"])
    now = timezone.now()
    # Made by hand and queued to a queue only the doomed worker reads (see the
    # on-the-wire test above for why).
    d = WebhookDelivery.objects.create(
        endpoint_id=endpoint["id"],
        event="export.completed",
        payload={"n": 1},
        status="pending",
        next_attempt_at=now,
        dispatched_at=now,
    )
    from leadlex.tasks import webhook_deliver

    doomed_queue, successor_queue = (f"leadlex-webhook-{role}-{uuid.uuid4().hex[:8]}" for role in ("kill", "successor"))
    doomed = WorkerProcess("webhook-doomed", extra_env=env, queues=doomed_queue)
    held = receiver.hold
    try:
        webhook_deliver.apply_async(args=[str(d.pk)], queue=doomed_queue)
        wait_for(lambda: receiver.requests, timeout=60, message="the first POST to reach the receiver")
        receiver.hold = None  # the next request is answered at once
        doomed.kill()
        killed_at = time.monotonic()
        lost = delivery(d.pk)
        assert lost.status == "pending" and lost.attempts == 0 and lost.leased_until is not None
        assert lost.leased_until <= timezone.now() + timedelta(seconds=6)

        # The copy the sweep sends goes to a queue only the successor reads: the session's
        # shared worker (on "celery") must not be the one that sends it again.
        successor = WorkerProcess("webhook-successor", extra_env=env, queues=successor_queue)
        dispatched_at: list[datetime] = []

        def beat() -> bool:
            # What beat does every 30 s, done here every half second.
            if webhook_sweep() > 0:
                dispatched_at.append(timezone.now())
            return len(receiver.requests) == 2

        try:
            try:
                with tasks_routed_to("leadlex.webhook_deliver", successor_queue):
                    wait_for(beat, timeout=60, interval=0.5, message="the delivery to be sent again")
            except AssertionError as exc:
                row = delivery(d.pk).__dict__
                raise AssertionError(f"{exc}\nrow: {row}\nsuccessor log:\n{successor.log()[-4000:]}") from None
            assert time.monotonic() - killed_at < 60
            assert dispatched_at and dispatched_at[0] >= lost.leased_until  # not while it could be on the wire
            done = wait_for(
                lambda: delivery(d.pk).status == "delivered" and delivery(d.pk),
                timeout=30,
                message="the delivery to be recorded",
            )
        finally:
            successor.kill()  # its work is recorded; a warm shutdown only costs time here
    finally:
        held.set()
        doomed.kill()
    first, second = receiver.requests
    assert first.headers["x-leadlex-delivery"] == second.headers["x-leadlex-delivery"] == str(d.pk)
    assert first.body == second.body
    # The log: the lost attempt and the delivered one.
    assert done.attempts == 2 and done.last_status_code == 200 and done.last_error == ""
    assert done.delivered_at >= lost.leased_until and done.leased_until is None


class DrippingReceiver:
    """Answers a status line, then one header byte every 0.3 s for 20 s: each read is
    quick, the answer never ends (or, with ``drip=False``, answers 200 at once).
    Over TLS with ``tls``. Records when the client hung up."""

    def __init__(self, *, drip: bool = True, tls: ssl.SSLContext | None = None) -> None:
        self.server = socket.create_server(("127.0.0.1", 0))
        self.drip = drip
        self.tls = tls
        self.hung_up_at: float | None = None
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    @property
    def port(self) -> int:
        return self.server.getsockname()[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/drip"

    def _serve(self) -> None:
        conn, _ = self.server.accept()
        if self.tls is not None:
            try:
                conn = self.tls.wrap_socket(conn, server_side=True)
            except (ssl.SSLError, OSError):  # the client refused the certificate
                conn.close()
                return
        with conn:
            try:
                if not self._read_request(conn):
                    return
            except OSError:  # e.g. the client's TLS alert
                return
            if not self.drip:
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
                return
            conn.sendall(b"HTTP/1.1 200 OK\r\nX-Drip: ")
            end = time.monotonic() + 20
            while time.monotonic() < end:
                try:
                    readable, _, _ = select.select([conn], [], [], 0.3)
                    if readable and conn.recv(1) == b"":
                        break
                    conn.sendall(b"x")
                except OSError:
                    break
            self.hung_up_at = time.monotonic()

    @staticmethod
    def _read_request(conn: socket.socket) -> bool:
        """Reads all of it (closing with unread bytes would reset the connection);
        False when the client hung up first."""
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = conn.recv(65536)
            if not chunk:
                return False
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        length = next(
            (
                int(line.split(b":", 1)[1])
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"content-length:")
            ),
            0,
        )
        while len(body) < length:
            chunk = conn.recv(65536)
            if not chunk:
                return False
            body += chunk
        return True

    def close(self) -> None:
        self.server.close()
        self.thread.join(timeout=30)


@pytest.fixture
def localhost_tls(tmp_path, monkeypatch) -> ssl.SSLContext:
    """A server context with a self-signed certificate for "localhost", which the
    delivery's TLS verification is made to trust (it trusts only that)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = timezone.now()
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    monkeypatch.setattr("requests.adapters.DEFAULT_CA_BUNDLE_PATH", str(cert_path))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_path, key_path)
    return context


def test_an_https_delivery_goes_to_the_checked_address_and_verifies_the_host_name(owner, allow_private, localhost_tls):
    receiver = DrippingReceiver(drip=False, tls=localhost_tls)
    try:
        register(owner.client, f"https://localhost:{receiver.port}/in", ["export.failed"])
        d = emit_one(owner.workspace)
        assert webhook_delivery_attempt(delivery_id=d.pk) == "delivered"
    finally:
        receiver.close()
    # The same certificate does not name 127.0.0.1: refused, not sent.
    receiver = DrippingReceiver(drip=False, tls=localhost_tls)
    try:
        WebhookEndpoint.objects.all().delete()
        register(owner.client, f"https://127.0.0.1:{receiver.port}/in", ["export.failed"])
        d = emit_one(owner.workspace)
        assert webhook_delivery_attempt(delivery_id=d.pk) == "pending"
        d.refresh_from_db()
        assert d.last_error.startswith("SSLError:") and "127.0.0.1" in d.last_error
    finally:
        receiver.close()


@pytest.mark.parametrize("scheme", ["http", "https"])
def test_an_answer_dripped_byte_by_byte_is_cut_off_within_the_lease(owner, allow_private, localhost_tls, scheme):
    """requests' read timeout is per read: without the attempt's own deadline this
    answer would keep the POST on the wire for 20 s, far past the lease."""
    allow_private.LEADLEX_WEBHOOK_CONNECT_TIMEOUT = 1
    allow_private.LEADLEX_WEBHOOK_READ_TIMEOUT = 1
    allow_private.LEADLEX_WEBHOOK_LEASE_MARGIN = 2
    dripper = DrippingReceiver(tls=localhost_tls if scheme == "https" else None)
    try:
        register(owner.client, f"{scheme}://localhost:{dripper.port}/drip", ["export.failed"])
        d = emit_one(owner.workspace)
        started = time.monotonic()
        assert webhook_delivery_attempt(delivery_id=d.pk) == "pending"
        elapsed = time.monotonic() - started
        wait_for(lambda: dripper.hung_up_at is not None, timeout=30, message="the receiver to see the hang-up")
        assert dripper.hung_up_at - started < 1 + 1 + 0.5  # connect + read, well inside the 4 s lease
    finally:
        dripper.close()
    assert elapsed < 3
    d.refresh_from_db()
    assert d.attempts == 1 and d.last_status_code is None and d.leased_until is None
    assert d.last_error.startswith("Timeout:") and "within 2 s" in d.last_error


def test_a_lease_margin_below_two_seconds_stops_the_process_at_start_up(tmp_path):
    env = {"PATH": "/usr/bin:/bin", "LEADLEX_DATA_DIR": str(tmp_path), "LEADLEX_WEBHOOK_LEASE_MARGIN": "1"}
    result = subprocess.run(
        [sys.executable, "manage.py", "check"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr and "LEADLEX_WEBHOOK_LEASE_MARGIN" in result.stderr


def test_an_attempt_lost_with_its_worker_counts_so_a_delivery_that_kills_workers_ends_failed(
    owner, allow_private, receiver, settings
):
    settings.LEADLEX_WEBHOOK_MAX_ATTEMPTS = 3
    receiver.statuses = [500]
    endpoint = register(owner.client, receiver.url, ["export.failed"])
    expired = timezone.now() - timedelta(seconds=1)

    def lost_delivery(attempts: int) -> WebhookDelivery:
        # What a SIGKILLed worker leaves: a lease that ran out without an outcome.
        return WebhookDelivery.objects.create(
            endpoint_id=endpoint["id"],
            event="export.failed",
            payload={},
            status="pending",
            attempts=attempts,
            next_attempt_at=expired,
            leased_until=expired,
        )

    once = lost_delivery(attempts=1)  # attempt 2 was lost: this is attempt 3, the last
    assert webhook_delivery_attempt(delivery_id=once.pk) == "failed"
    once.refresh_from_db()
    assert once.attempts == 3 and once.last_status_code == 500 and len(receiver.requests) == 1

    twice = lost_delivery(attempts=2)  # attempt 3 was lost: nothing more is sent
    assert webhook_delivery_attempt(delivery_id=twice.pk) == "failed"
    twice.refresh_from_db()
    assert twice.attempts == 3 and twice.last_error.startswith("lost:") and twice.leased_until is None
    assert len(receiver.requests) == 1

    # "Retry now" starts it afresh.
    assert webhook_delivery_retry(delivery_ids=[twice.pk]) == 1
    assert webhook_delivery_attempt(delivery_id=twice.pk) == "delivered"
    twice.refresh_from_db()
    assert twice.attempts == 1
