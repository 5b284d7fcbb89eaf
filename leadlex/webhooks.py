"""Webhooks: emitting events, delivering them signed, retrying with backoff.

``webhook_emit`` is what the import and export engines call. It writes one
``WebhookDelivery`` per subscribed endpoint and enqueues delivery after the
surrounding transaction commits. ``webhook_delivery_attempt`` (run by the
``webhook_deliver`` task) claims a due delivery with a conditional UPDATE, POSTs
it to the address the SSRF guard checked, and records the outcome. The
``webhook_sweep`` task re-dispatches every delivery whose ``next_attempt_at`` has
passed, which covers retries, lost tasks and killed workers alike: a claimed
delivery is leased for its POST's connect + read timeouts plus a margin, and the
attempt is cut off at connect + read, so it is never sent twice at once.

Timing of one delivery::

    attempt 1 at once; attempt n+1 after BACKOFF_BASE * 2**(n-1), capped at
    BACKOFF_CAP; after MAX_ATTEMPTS failures the delivery is "failed".

With the defaults (60 s, 6 h, 12 attempts) the last try is ~20 hours after the first.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import logging
import secrets
import socket
import threading
import time
import uuid
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

import requests
import urllib3
from django.conf import settings
from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection, models, transaction
from django.db.models import Case, F, Q, Value, When
from django.utils import timezone
from requests.adapters import HTTPAdapter

from leadlex import ssrf
from leadlex.errors import NotFound, ValidationFailed
from leadlex.models import WebhookDelivery, WebhookEndpoint, Workspace

logger = logging.getLogger("leadlex.webhooks")

EVENTS: tuple[str, ...] = WebhookEndpoint.EVENTS
SIGNATURE_HEADER = "X-LeadLex-Signature"
EVENT_HEADER = "X-LeadLex-Event"
DELIVERY_HEADER = "X-LeadLex-Delivery"
SECRET_PREFIX = "whsec_"
MAX_ENDPOINTS_PER_WORKSPACE = 20

SWEEP_BATCH = 500
LOST_ATTEMPT_ERROR = "lost: the worker stopped while the attempt was in flight"
_ERROR_MAX = 500


def _setting(name: str, default: Any) -> Any:
    return getattr(settings, name, default)


def delivery_timeouts() -> tuple[int, int]:
    """(connect, read) seconds of one POST; the whole attempt is also cut off at their sum."""
    return (int(_setting("LEADLEX_WEBHOOK_CONNECT_TIMEOUT", 5)), int(_setting("LEADLEX_WEBHOOK_READ_TIMEOUT", 10)))


def in_flight_lease() -> timedelta:
    """How long a claimed delivery is hidden from other workers and the sweeper.

    An attempt is cut off at connect + read timeout after its claim (``_Deadline``),
    so with a margin on top (clock skew between workers, recording the outcome) no
    delivery is sent again while its first attempt may still be on the wire; and a
    killed worker's delivery is sent again as soon as that is safe, at the next sweep.
    """
    connect, read = delivery_timeouts()
    return timedelta(seconds=connect + read + int(_setting("LEADLEX_WEBHOOK_LEASE_MARGIN", 10)))


def dispatch_lease() -> timedelta:
    """How long a dispatched delivery is left to its queued task before the sweeper
    sends another copy, in case the message was lost (the copy is harmless: the
    claim lets only one through)."""
    return timedelta(seconds=float(_setting("LEADLEX_WEBHOOK_DISPATCH_LEASE", 120)))


def max_attempts() -> int:
    return int(_setting("LEADLEX_WEBHOOK_MAX_ATTEMPTS", 12))


def backoff_for(attempts: int) -> timedelta:
    """Wait before the next attempt, after ``attempts`` failed ones (>= 1)."""
    base = float(_setting("LEADLEX_WEBHOOK_BACKOFF_BASE", 60))
    cap = float(_setting("LEADLEX_WEBHOOK_BACKOFF_CAP", 6 * 3600))
    return timedelta(seconds=min(cap, base * 2 ** max(0, attempts - 1)))


# --- Signatures ---------------------------------------------------------------------
def webhook_signature(secret: str, body: bytes, *, timestamp: int | None = None) -> str:
    """The ``X-LeadLex-Signature`` value: ``t=<unix>,v1=<hex HMAC-SHA256 of "<t>.<body>">``."""
    t = int(time.time()) if timestamp is None else int(timestamp)
    mac = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={t},v1={mac}"


def webhook_signature_verify(
    secret: str, header: str, body: bytes, *, tolerance: int | None = 300, now: float | None = None
) -> bool:
    """True when ``header`` signs ``body`` under ``secret`` and (unless ``tolerance``
    is None) its timestamp is within ``tolerance`` seconds of now, which stops
    replays of an old delivery."""
    if isinstance(body, str):
        body = body.encode()
    timestamp: int | None = None
    candidates: list[str] = []
    for item in (header or "").split(","):
        name, _, value = item.strip().partition("=")
        if name == "t":
            try:
                timestamp = int(value)
            except ValueError:
                return False
        elif name == "v1":
            candidates.append(value)
    if timestamp is None or not candidates:
        return False
    if tolerance is not None and abs((time.time() if now is None else now) - timestamp) > tolerance:
        return False
    expected = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return any(hmac.compare_digest(expected, c) for c in candidates)


def payload_body(payload: dict[str, Any]) -> bytes:
    """The exact bytes sent (and signed) for a stored payload."""
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()


# --- Endpoint registry (services and selectors) --------------------------------------
def webhook_endpoint_list(*, workspace: Workspace) -> list[WebhookEndpoint]:
    return list(WebhookEndpoint.objects.filter(workspace=workspace).order_by("-created_at", "id"))


def webhook_url_check(*, url: str) -> None:
    """Raise ValidationFailed unless ``url`` may receive webhooks under current settings."""
    try:
        ssrf.target_resolve(url, allow_private=settings.LEADLEX_WEBHOOKS_ALLOW_PRIVATE)
    except ssrf.UnsafeUrl as exc:
        raise ValidationFailed(str(exc), details={"field": "url", "reason": exc.reason}) from None


def webhook_endpoint_create(*, workspace: Workspace, url: str, events: Iterable[str]) -> WebhookEndpoint:
    events = list(dict.fromkeys(events))  # de-duplicated, order kept
    unknown = [e for e in events if e not in EVENTS]
    if not events or unknown:
        raise ValidationFailed(
            f"events must be a non-empty list of: {', '.join(EVENTS)}.",
            details={"field": "events", "unknown": unknown, "allowed": list(EVENTS)},
        )
    webhook_url_check(url=url)  # DNS lookup: outside any transaction
    if WebhookEndpoint.objects.filter(workspace=workspace).count() >= MAX_ENDPOINTS_PER_WORKSPACE:
        raise ValidationFailed(
            f"A workspace may have at most {MAX_ENDPOINTS_PER_WORKSPACE} webhook endpoints.",
            details={"limit": MAX_ENDPOINTS_PER_WORKSPACE},
        )
    return WebhookEndpoint.objects.create(
        workspace=workspace, url=url, events=events, secret=SECRET_PREFIX + secrets.token_urlsafe(32)
    )


def webhook_endpoint_get(*, workspace: Workspace, endpoint_id: Any) -> WebhookEndpoint:
    """Another workspace's id, or a malformed one, is simply "not found"."""
    try:
        return WebhookEndpoint.objects.get(workspace=workspace, pk=endpoint_id)
    except (WebhookEndpoint.DoesNotExist, DjangoValidationError, ValueError):
        raise NotFound() from None


def webhook_endpoint_delete(*, workspace: Workspace, endpoint_id: Any) -> None:
    """Deletes the endpoint and, with it, its pending deliveries and log."""
    webhook_endpoint_get(workspace=workspace, endpoint_id=endpoint_id).delete()


# --- Emitting -------------------------------------------------------------------------
def _dispatch(delivery_ids: list[UUID]) -> None:
    from leadlex.tasks import webhook_deliver

    for delivery_id in delivery_ids:
        try:
            webhook_deliver.delay(str(delivery_id))
        except Exception:
            logger.warning(
                "could not enqueue webhook delivery %s; the sweeper will retry it", delivery_id, exc_info=True
            )


def webhook_emit(*, workspace_id: Any, event: str, data: dict[str, Any]) -> list[UUID]:
    """Queue ``event`` for every active endpoint of the workspace subscribed to it.

    Safe inside a transaction: the rows are written with it, and the tasks are
    enqueued only once it commits (nothing is sent for a rolled-back job).
    Returns the delivery ids (empty when no endpoint listens).
    """
    if event not in EVENTS:
        raise ValueError(f"unknown webhook event {event!r}; known: {', '.join(EVENTS)}")
    # events is a JSON list; filtering it in Python works the same on SQLite and
    # PostgreSQL and a workspace has a handful of endpoints at most.
    endpoints = [
        e
        for e in WebhookEndpoint.objects.filter(workspace_id=workspace_id, is_active=True)
        if event in (e.events or [])
    ]
    if not endpoints:
        return []
    now = timezone.now()
    # Round-trip through JSON now so that what is stored is exactly what is sent
    # (UUIDs, datetimes and Decimals become strings once, here).
    clean_data = json.loads(json.dumps(data, cls=DjangoJSONEncoder))
    event_id = uuid.uuid4()
    deliveries = []
    for endpoint in endpoints:
        payload = {
            "id": str(event_id),
            "event": event,
            "created_at": now.isoformat().replace("+00:00", "Z"),
            "workspace_id": str(workspace_id),
            "data": clean_data,
        }
        deliveries.append(
            WebhookDelivery(
                endpoint=endpoint,
                event=event,
                payload=payload,
                status=WebhookDelivery.Status.PENDING,
                next_attempt_at=now,
                dispatched_at=now,
            )
        )
    WebhookDelivery.objects.bulk_create(deliveries)
    ids = [d.id for d in deliveries]
    transaction.on_commit(lambda: _dispatch(ids))
    return ids


def webhook_delivery_retry(*, delivery_ids: Iterable[Any]) -> int:
    """Make deliveries due now (again), whether failed or waiting for their backoff;
    used by the admin. Delivered ones, and ones a worker is attempting right now,
    are left alone (the latter would be sent twice). Returns how many were made due."""
    ids = list(delivery_ids)
    now = timezone.now()
    count = (
        WebhookDelivery.objects.filter(pk__in=ids)
        .filter(Q(leased_until__isnull=True) | Q(leased_until__lte=now))
        .exclude(status=WebhookDelivery.Status.DELIVERED)
        .update(
            status=WebhookDelivery.Status.PENDING, next_attempt_at=now, attempts=0, dispatched_at=now, leased_until=None
        )
    )  # an expired lease: its lost attempt is forgiven with the rest
    due = list(
        WebhookDelivery.objects.filter(
            pk__in=ids, status=WebhookDelivery.Status.PENDING, next_attempt_at__lte=now
        ).values_list("pk", flat=True)
    )
    transaction.on_commit(lambda: _dispatch(due))
    return count


# --- Delivering -----------------------------------------------------------------------
class _Deadline:
    """Cuts a POST off at a wall-clock deadline by shutting its socket down.

    requests' read timeout bounds each socket read, not the response: a receiver
    that drips its answer a byte at a time would keep the attempt on the wire past
    its lease, and a second worker would then send the delivery again meanwhile.
    """

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.expired = False
        self._connections: list[Any] = []
        self._lock = threading.Lock()
        self._timer = threading.Timer(max(0.0, seconds), self._expire)
        self._timer.daemon = True

    def watch(self, connection: Any) -> None:
        with self._lock:
            if self.expired:
                raise requests.Timeout(f"no complete answer within {self.seconds:.0f} s")
            self._connections.append(connection)

    def _expire(self) -> None:
        with self._lock:
            self.expired = True
            for connection in self._connections:
                sock = getattr(connection, "sock", None)
                if sock is not None:
                    # The plain socket's shutdown, also under TLS: it wakes the reading thread
                    # without touching the TLS object it is using. A socket already closed is fine.
                    with contextlib.suppress(OSError):
                        socket.socket.shutdown(sock, socket.SHUT_RDWR)

    def start(self) -> None:
        self._timer.start()

    def disarm(self) -> None:
        """Called once the answer is read (or failed): the timer may not touch the
        connection after it is closed or handed back to its pool."""
        with self._lock:
            self._timer.cancel()
            self._connections.clear()


class _PinnedAdapter(HTTPAdapter):
    """Connects to the checked IP while TLS still verifies the certificate for, and
    sends SNI of, the URL's host name; every connection it opens is watched by the
    attempt's deadline."""

    def __init__(self, host: str, deadline: _Deadline, **kwargs: Any) -> None:
        self._host = host
        self._deadline = deadline
        super().__init__(**kwargs)

    def init_poolmanager(self, connections: int, maxsize: int, block: bool = False, **pool_kwargs: Any) -> None:
        pool_kwargs["server_hostname"] = self._host
        pool_kwargs["assert_hostname"] = self._host
        super().init_poolmanager(connections, maxsize, block=block, **pool_kwargs)

    def get_connection_with_tls_context(self, *args: Any, **kwargs: Any) -> urllib3.HTTPConnectionPool:
        pool = super().get_connection_with_tls_context(*args, **kwargs)
        if not isinstance(pool, urllib3.HTTPConnectionPool):  # an HTTPS pool is one too
            raise TypeError(f"unexpected connection pool {type(pool).__name__}")
        deadline = self._deadline
        base = pool.ConnectionCls

        # A subclass of the pool's own connection class (HTTP or HTTPS), made per attempt.
        class WatchedConnection(base):  # type: ignore[valid-type, misc]  # a base chosen at run time: no static type
            def connect(self) -> None:
                deadline.watch(self)
                super().connect()

        pool.ConnectionCls = WatchedConnection
        return pool


def _post(target: ssrf.Target, body: bytes, headers: dict[str, str], *, deadline: float) -> requests.Response:
    """POST ``body``; ``deadline`` (time.monotonic()) is when the attempt must be over."""
    connect_timeout, read_timeout = delivery_timeouts()
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        # DNS or the database took the attempt's whole budget: sending now could
        # outlive the lease.
        raise requests.Timeout("no time left in the attempt's lease to send")
    watchdog = _Deadline(remaining)
    session = requests.Session()
    session.trust_env = False  # no proxies from the environment: we connect to the checked address only
    session.mount(f"{target.scheme}://", _PinnedAdapter(target.host, watchdog, max_retries=0))
    watchdog.start()
    try:
        try:
            response = session.post(
                target.pinned_url,
                data=body,
                headers={**headers, "Host": target.host_header},
                timeout=(min(connect_timeout, remaining), min(read_timeout, remaining)),
                allow_redirects=False,
                stream=True,
            )
            # Read at most a little of the body: we only keep the status code.
            response.raw.read(4096, decode_content=False)
        except (requests.RequestException, urllib3.exceptions.HTTPError) as exc:
            if watchdog.expired:
                raise requests.Timeout(f"no complete answer within {connect_timeout + read_timeout} s") from None
            if isinstance(exc, urllib3.exceptions.ReadTimeoutError):  # raw.read() is not wrapped by requests
                raise requests.ReadTimeout(str(exc)) from None
            if isinstance(exc, urllib3.exceptions.HTTPError):
                raise requests.ConnectionError(str(exc)) from None
            raise
        finally:
            watchdog.disarm()
        if watchdog.expired:
            # Cut off mid-answer: http.client takes the EOF after a partial header
            # line for the end of the headers, so what was parsed is not an answer.
            raise requests.Timeout(f"no complete answer within {connect_timeout + read_timeout} s")
        response.close()
        return response
    finally:
        session.close()


def _claim(delivery_id: Any, now: datetime) -> bool:
    # Conditional UPDATE: exactly one worker wins a due delivery; a duplicate task
    # (redelivered message, sweeper copy) finds it leased, not yet due, or done.
    # Pushing next_attempt_at keeps the sweeper off it; leased_until tells "in flight"
    # from "waiting for its backoff" (the admin's retry must not touch the former).
    # A lease still set here expired without an outcome: that attempt was lost (its
    # worker was killed) and is counted, so a delivery that kills workers ends failed.
    # dispatched_at is cleared: the queued task is taken, the lease now decides when
    # the sweeper may send another.
    lease_end = now + in_flight_lease()
    lost = Q(leased_until__isnull=False)
    return (
        WebhookDelivery.objects.filter(
            Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now),
            Q(leased_until__isnull=True) | Q(leased_until__lte=now),
            pk=delivery_id,
            status=WebhookDelivery.Status.PENDING,
        ).update(
            next_attempt_at=lease_end,
            leased_until=lease_end,
            dispatched_at=None,
            attempts=Case(
                When(lost, then=F("attempts") + 1), default=F("attempts"), output_field=models.PositiveIntegerField()
            ),
            last_error=Case(
                When(lost, then=Value(LOST_ATTEMPT_ERROR)), default=F("last_error"), output_field=models.TextField()
            ),
        )
        == 1
    )


def webhook_delivery_attempt(*, delivery_id: Any) -> str:
    """One attempt at one delivery. Returns the delivery's status afterwards
    ("skipped" when another worker holds it or it is not due)."""
    # The POST's deadline is counted from before the claim, so it ends within the lease.
    deadline = time.monotonic() + sum(delivery_timeouts())
    now = timezone.now()
    if not _claim(delivery_id, now):
        return "skipped"
    delivery = WebhookDelivery.objects.select_related("endpoint").get(pk=delivery_id)
    endpoint = delivery.endpoint
    if delivery.attempts >= max_attempts():  # the last ones were lost attempts
        WebhookDelivery.objects.filter(pk=delivery.pk).update(
            status=WebhookDelivery.Status.FAILED, next_attempt_at=None, leased_until=None
        )
        return str(WebhookDelivery.Status.FAILED)
    attempts = delivery.attempts + 1
    body = payload_body(delivery.payload)
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "LeadLex-Webhooks/1.0",
        EVENT_HEADER: delivery.event,
        DELIVERY_HEADER: str(delivery.pk),
        SIGNATURE_HEADER: webhook_signature(endpoint.secret, body),
    }
    status_code: int | None = None
    error = ""
    if not endpoint.is_active:
        error = "endpoint disabled"
    else:
        try:
            # Checked on every attempt, not only at registration: DNS can change.
            target = ssrf.target_resolve(endpoint.url, allow_private=settings.LEADLEX_WEBHOOKS_ALLOW_PRIVATE)
            response = _post(target, body, headers, deadline=deadline)
            status_code = response.status_code
            if not 200 <= status_code < 300:
                error = f"HTTP {status_code}" + (" (redirects are not followed)" if 300 <= status_code < 400 else "")
        except ssrf.UnsafeUrl as exc:
            error = f"refused: {exc}"
        except requests.RequestException as exc:
            error = f"{type(exc).__name__}: {exc}"
    done = timezone.now()
    fields: dict[str, Any] = {
        "attempts": attempts,
        "last_status_code": status_code,
        "last_error": error[:_ERROR_MAX],
        "dispatched_at": None,
        "leased_until": None,
    }
    if not error:
        fields.update(status=WebhookDelivery.Status.DELIVERED, delivered_at=done, next_attempt_at=None)
    elif attempts >= max_attempts() or not endpoint.is_active:
        fields.update(status=WebhookDelivery.Status.FAILED, next_attempt_at=None)
    else:
        fields.update(next_attempt_at=done + backoff_for(attempts))
    WebhookDelivery.objects.filter(pk=delivery.pk).update(**fields)
    logger.info(
        "webhook %s delivery %s attempt %d to endpoint %s: %s",
        delivery.event,
        delivery.pk,
        attempts,
        endpoint.pk,
        "delivered" if not error else error[:200],
    )
    return str(fields.get("status", WebhookDelivery.Status.PENDING))


def webhook_sweep(*, now: datetime | None = None, batch: int = SWEEP_BATCH) -> int:
    """Dispatch due deliveries (lock-and-skip, so two sweepers split the work)."""
    now = now or timezone.now()
    with transaction.atomic():
        qs = WebhookDelivery.objects.filter(status=WebhookDelivery.Status.PENDING, next_attempt_at__lte=now).order_by(
            "next_attempt_at"
        )
        if connection.features.has_select_for_update_skip_locked:
            qs = qs.select_for_update(skip_locked=True)
        qs = qs.filter(Q(dispatched_at__isnull=True) | Q(dispatched_at__lte=now - dispatch_lease()))
        ids = list(qs.values_list("pk", flat=True)[:batch])
        if ids:
            WebhookDelivery.objects.filter(pk__in=ids).update(dispatched_at=now)
            transaction.on_commit(lambda: _dispatch(ids))
    return len(ids)
