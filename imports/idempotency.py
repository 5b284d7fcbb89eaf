"""The Idempotency-Key ledger of the import endpoint: a repeat of a request within
24 hours is answered from the first one, concurrent repeats wait for it, and a key
used with a different body is a conflict."""

from __future__ import annotations

import datetime as dt
import hashlib
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import orjson
from django.db import IntegrityError, transaction
from django.utils import timezone

from imports.models import ImportIdempotencyKey, ImportJob
from leadlex.env import env_int
from leadlex.errors import IdempotencyConflict, ValidationFailed
from leadlex.models import Workspace

IDEMPOTENCY_TTL = timedelta(hours=24)


# How long a request waits for a concurrent request with the same Idempotency-Key.
IDEMPOTENCY_WAIT_SECONDS = env_int("LEADLEX_IMPORT_IDEMPOTENCY_WAIT_SECONDS", 60)


# The key of a request that died half-way (process killed) is freed after this.
IDEMPOTENCY_ABANDONED_AFTER = timedelta(minutes=10)


def request_hash(payload: Any) -> str:
    """A hash of what the request *means* (canonical JSON of its parameters and
    rows), so a re-sent multipart upload with a new boundary still matches."""
    return hashlib.sha256(orjson.dumps(payload, option=orjson.OPT_SORT_KEYS, default=str)).hexdigest()


def import_idempotent(
    *, workspace: Workspace, key: str, body_hash: str, run: Callable[[], tuple[int, dict[str, Any], ImportJob | None]]
) -> tuple[int, dict[str, Any]]:
    """Run ``run`` once per (workspace, key). The key row is inserted first, "in
    progress": of concurrent requests exactly one wins the unique constraint; the
    others wait for its stored response (or see it at once when done)."""
    if not key or len(key) > 255:
        raise ValidationFailed("Idempotency-Key must be 1 to 255 characters.", details={"header": "Idempotency-Key"})
    deadline = time.monotonic() + IDEMPOTENCY_WAIT_SECONDS
    while True:
        ImportIdempotencyKey.objects.filter(
            workspace=workspace, key=key, created_at__lt=timezone.now() - IDEMPOTENCY_TTL
        ).delete()
        try:
            with transaction.atomic():
                record = ImportIdempotencyKey.objects.create(workspace=workspace, key=key, body_hash=body_hash)
            break  # we won: do the work
        except IntegrityError:
            pass
        existing = ImportIdempotencyKey.objects.filter(workspace=workspace, key=key).first()
        if existing is None:
            continue  # expired and deleted between our two statements: try again
        if existing.body_hash != body_hash:
            raise IdempotencyConflict(
                "This Idempotency-Key was used with a different request body.", details={"idempotency_key": key}
            )
        if existing.state == ImportIdempotencyKey.State.DONE:
            return existing.response_status or 200, existing.response_body or {}
        if timezone.now() - existing.created_at > IDEMPOTENCY_ABANDONED_AFTER:
            # The first request died half-way (its process was killed): free the key.
            ImportIdempotencyKey.objects.filter(pk=existing.pk, state=ImportIdempotencyKey.State.IN_PROGRESS).delete()
            continue
        if time.monotonic() > deadline:
            raise IdempotencyConflict(
                "A request with this Idempotency-Key is still being processed; retry shortly.",
                details={"idempotency_key": key, "in_progress": True},
            )
        time.sleep(0.1)
    try:
        status_code, body, job = run()
    except BaseException:
        # A request that failed (bad input, crash) leaves nothing behind: the key can be
        # used again, as if the request had never arrived.
        ImportIdempotencyKey.objects.filter(pk=record.pk).delete()
        raise
    ImportIdempotencyKey.objects.filter(pk=record.pk).update(
        state=ImportIdempotencyKey.State.DONE, response_status=status_code, response_body=body, job=job
    )
    return status_code, body


def idempotency_keys_sweep_expired(*, now: dt.datetime, limit: int = 5000) -> int:
    """Keys live 24 hours; drop the expired ones a slice at a time (the import sweeper calls this)."""
    expired = list(
        ImportIdempotencyKey.objects.filter(created_at__lt=now - IDEMPOTENCY_TTL).values_list("pk", flat=True)[:limit]
    )
    if expired:
        ImportIdempotencyKey.objects.filter(pk__in=expired).delete()
    return len(expired)
