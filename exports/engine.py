"""The one export engine: every export surface (LeadLex API, Close-style API, admin,
``export_contacts``) goes through it.

Pipeline::

    ExportKindSpec.iter_batches  ──bytes──▶  GzipMember  ──chunk──▶  resumable writer (leadlex.storage)
    (selector + writer, keyset batches)      (one member per chunk)   (S3 part / fsync'd local append)
                                                        └── checkpoint on ExportJob: cursor + writer state

Interface (stable; exports/close builds on it)
----------------------------------------------
* ``ExportBatch(data: bytes, rows: int, cursor: JSON)`` – one batch of rendered rows
  and the keyset cursor *after* its last row (JSON-serialisable: it is stored in
  ``ExportJob.checkpoint``).
* ``ExportKindSpec`` – what a kind provides (all callables take the job; a job may be
  an unsaved ``ExportJob`` for streamed exports):

  - ``iter_batches(job, after) -> Iterator[ExportBatch]``: rows strictly after the
    cursor ``after`` (``None`` = from the start), in a stable order, never empty
    batches. A batch that is not the document's first must carry its own separator
    (e.g. the ``,`` between JSON array items: see ``writers.join_json_items``; the
    first batch is the one produced when ``after is None``).
  - ``header(job) -> bytes`` / ``footer(job) -> bytes``: CSV header row, ``[`` / ``]``.
  - ``count(job) -> int | None``: rows expected (progress); ``None`` if unknown.
  - ``content_type(job) -> str`` and ``filename(job) -> str`` for downloads.
  - ``on_finished(job)``: called once after the job completed (e.g. send an email).
  - ``webhooks``: emit ``export.completed`` / ``export.failed`` (default True).
* ``register_export_kind(kind, spec)`` / ``get_export_kind(kind)``.
* Services (keyword-only):

  - ``export_job_create(*, workspace, kind, format, parameters, api_key=None, user=None, enqueue=True)``
    → ``ExportJob`` (status ``queued``; the run task is enqueued on commit unless
    ``enqueue=False``, for a caller that runs it in-process).
  - ``export_job_run(*, job_id, on_progress=None)``: claims the job (``leadlex.jobs``),
    resumes from its checkpoint, streams gzip into storage, finishes. Safe to call
    twice; re-raises a transient error (``leadlex.jobs.is_transient``) for the task to
    retry. ``on_progress(rows, total)`` is the progress signature of every job kind.
  - ``export_job_cancel(*, job)``, ``export_job_retry(*, job)``,
    ``export_job_fail(*, job_id, error, error_kind)``.
  - ``export_job_download_url(job, *, base_url=None) -> str | None``: a fresh
    presigned GET (``download_ttl()`` seconds), ``None`` unless completed.
  - ``export_stream(job) -> Iterator[bytes]``: the same rows, uncompressed, for a
    streamed HTTP response (no storage, no checkpoints).
  - ``export_jobs_sweep_stale()``, ``export_jobs_sweep_expired()`` (beat tasks).

Claiming, the lease, retries, failure kinds and the stale-job sweeper are the job
runtime's (``leadlex.jobs``, configured by ``RUNTIME`` below); this module supplies
the steps of an export.

Resume: each checkpoint is taken when the current gzip member has reached
``conf.chunk_bytes()``: the member is closed, committed as one S3 part (or an
fsync'd local append) and ``{"cursor", "rows", "writer": <storage state>}`` is saved
in the same short UPDATE that renews the heartbeat. A worker killed at any point
leaves a job whose next run re-opens the upload from that state (bytes after the
last checkpoint are overwritten), continues from the cursor, and so writes every
row exactly once.
"""

from __future__ import annotations

import hashlib
import logging
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from django.db import DatabaseError, transaction
from django.utils import timezone

from exports import conf
from exports.models import ExportJob
from exports.writers import GzipMember
from leadlex import storage
from leadlex.jobs import FailureKind, JobRuntime, Lease, LeaseLost, Progress
from leadlex.middleware import current_request_id
from leadlex.models import ApiKey, Workspace

logger = logging.getLogger("exports.engine")

Cursor = Any  # JSON-serialisable keyset position


@dataclass(frozen=True)
class ExportBatch:
    data: bytes
    rows: int
    cursor: Cursor


def _no_bytes(job: ExportJob) -> bytes:
    return b""


def _no_count(job: ExportJob) -> int | None:
    return None


@dataclass(frozen=True)
class ExportKindSpec:
    iter_batches: Callable[[ExportJob, Cursor], Iterator[ExportBatch]]
    content_type: Callable[[ExportJob], str]
    filename: Callable[[ExportJob], str]
    header: Callable[[ExportJob], bytes] = _no_bytes
    footer: Callable[[ExportJob], bytes] = _no_bytes
    count: Callable[[ExportJob], int | None] = _no_count
    on_finished: Callable[[ExportJob], None] | None = None
    webhooks: bool = True
    extra: dict[str, Any] = field(default_factory=dict)


_REGISTRY: dict[str, ExportKindSpec] = {}


def register_export_kind(kind: str, spec: ExportKindSpec) -> None:
    _REGISTRY[kind] = spec


def get_export_kind(kind: str) -> ExportKindSpec:
    try:
        return _REGISTRY[kind]
    except KeyError:
        raise LookupError(f"unknown export kind {kind!r}; registered: {sorted(_REGISTRY)}") from None


# --- Errors -------------------------------------------------------------------------
class ExportUserError(Exception):
    """The job's own parameters make it impossible (shown to the user as is)."""


# --- The job runtime's view of an export ---------------------------------------------
def _dispatch(job_id: str) -> None:
    from exports.tasks import export_job_run_task

    export_job_run_task.delay(job_id=job_id)


def _on_failed(job: ExportJob) -> None:
    _emit(job, "export.failed")


def _after_failed(job: ExportJob) -> None:
    _discard_partial(job.storage_key, (job.checkpoint or {}).get("writer"))  # storage I/O, after the commit


def _system_message(exc: BaseException) -> str:
    return f"Export failed: {type(exc).__name__}"


RUNTIME = JobRuntime(
    model=ExportJob,
    label="export",
    dispatch=_dispatch,
    stale_seconds=conf.stale_seconds,
    max_attempts=conf.max_attempts,
    user_errors=(ExportUserError,),
    system_message=_system_message,
    on_failed=_on_failed,
    after_failed=_after_failed,
)


# --- Creating, cancelling, retrying -------------------------------------------------
def _enqueue(job_id: Any) -> None:
    RUNTIME.enqueue(job_id)


def export_job_create(
    *,
    workspace: Workspace,
    kind: str,
    format: str,
    parameters: dict[str, Any],
    api_key: ApiKey | None = None,
    user: Any = None,
    enqueue: bool = True,
    request_id: str | None = None,
) -> ExportJob:
    """``request_id`` defaults to the id of the request being served (API or admin)."""
    get_export_kind(kind)  # fail early on a typo, not in the worker
    if format not in ExportJob.Format.values:
        raise ValueError(f"unknown export format {format!r}")
    with transaction.atomic():
        job = ExportJob.objects.create(
            workspace=workspace,
            kind=kind,
            format=format,
            parameters=parameters,
            api_key=api_key,
            created_by_user=user if getattr(user, "pk", None) else None,
            request_id=current_request_id() if request_id is None else request_id,
        )
        if enqueue:
            _enqueue(job.pk)
    return job


def export_job_cancel(*, job: ExportJob) -> bool:
    """Cancel a queued or running job; a running worker notices at its next
    heartbeat and stops. Returns False when the job had already ended."""
    changed = ExportJob.objects.filter(
        pk=job.pk,
        status__in=[ExportJob.Status.QUEUED, ExportJob.Status.PROCESSING],
    ).update(status=ExportJob.Status.CANCELLED, completed_at=timezone.now(), lease_token="")
    if changed:
        _discard_partial(job.storage_key, (job.checkpoint or {}).get("writer"))
        job.refresh_from_db()
    return bool(changed)


def export_job_retry(*, job: ExportJob) -> bool:
    """Run a failed or cancelled job again, from scratch, under a new object name."""
    changed = ExportJob.objects.filter(
        pk=job.pk,
        status__in=[ExportJob.Status.FAILED, ExportJob.Status.CANCELLED],
    ).update(
        status=ExportJob.Status.QUEUED,
        checkpoint={},
        storage_key="",
        processed_count=0,
        row_count=None,
        byte_size=None,
        sha256="",
        error="",
        error_kind="",
        attempts=0,
        completed_at=None,
        heartbeat_at=None,
        lease_token="",
    )
    if changed:
        _discard_partial(job.storage_key, (job.checkpoint or {}).get("writer"))
        with transaction.atomic():
            _enqueue(job.pk)
        job.refresh_from_db()
    return bool(changed)


def _discard_partial(key: str, writer_state: dict[str, Any] | None) -> None:
    if not key:
        return
    try:
        storage.abort_resumable(key, writer_state)
    except Exception:
        logger.warning("could not discard the partial upload of %s", key, exc_info=True)


def export_job_fail(
    *, job_id: Any, error: str, error_kind: FailureKind = FailureKind.SYSTEM, lease_token: str | None = None
) -> bool:
    """Mark a job failed (from any unfinished state, or only under ``lease_token``);
    ``export.failed`` is recorded with it, the partial upload discarded after."""
    return RUNTIME.fail(job_id=job_id, error=error, kind=error_kind, token=lease_token)


# --- Reading ------------------------------------------------------------------------
def export_object_meta(job: ExportJob) -> storage.ObjectMeta:
    spec = get_export_kind(job.kind)
    return storage.ObjectMeta(content_type=spec.content_type(job), content_encoding="gzip", filename=spec.filename(job))


def export_job_download_url(job: ExportJob, *, base_url: str | None = None) -> str | None:
    """A freshly signed URL each call (never stored): it outlives no status read by
    more than ``download_ttl()`` seconds."""
    if job.status != ExportJob.Status.COMPLETED or not job.storage_key:
        return None
    return storage.presigned_get(
        job.storage_key, expires=conf.download_ttl(), meta=export_object_meta(job), base_url=base_url
    )


@contextmanager
def _batches(spec: ExportKindSpec, job: ExportJob, after: Cursor) -> Iterator[Iterator[ExportBatch]]:
    """A kind's batches, closed on the way out whatever happens: a generator that
    renders ahead on threads (``leadlex.prefetch``) stops them and their connections
    now, not whenever it is garbage-collected."""
    batches = spec.iter_batches(job, after)
    try:
        yield batches
    finally:
        close = getattr(batches, "close", None)
        if close is not None:
            close()


def export_stream(job: ExportJob) -> Iterator[bytes]:
    """The rows of an (unsaved) job as plain bytes, for a streamed HTTP response."""
    spec = get_export_kind(job.kind)
    yield spec.header(job)
    with _batches(spec, job, None) as batches:  # a client gone mid-stream stops them at once
        for batch in batches:
            yield batch.data
    footer = spec.footer(job)
    if footer:
        yield footer


# --- Running ------------------------------------------------------------------------
def export_job_run(*, job_id: Any, on_progress: Progress | None = None) -> str:
    """Run (or resume) one job. Returns the job's status afterwards, or "skipped"
    when another worker holds it or it already ended."""

    def body(lease: Lease) -> str:
        job = ExportJob.objects.select_related("workspace").get(pk=job_id)
        _run_claimed(job, get_export_kind(job.kind), lease, on_progress)
        return ExportJob.Status.COMPLETED

    return RUNTIME.run(job_id, body).status


def _run_claimed(job: ExportJob, spec: ExportKindSpec, lease: Lease, on_progress: Progress | None) -> None:
    checkpoint: dict[str, Any] = dict(job.checkpoint or {})
    if not job.storage_key:
        # A random name: the object's key reveals nothing and cannot be guessed.
        job.storage_key = f"exports/{uuid.uuid4()}"
        lease.beat(storage_key=job.storage_key)
    if job.total_count is None:
        job.total_count = spec.count(job)
        lease.beat(total_count=job.total_count)

    meta = export_object_meta(job)
    try:
        writer = storage.open_resumable_writer(job.storage_key, meta, state=checkpoint.get("writer"))
    except storage.ResumeFailed:
        logger.warning("export %s: checkpoint no longer matches storage; starting over", job.pk)
        checkpoint = {}
        writer = storage.open_resumable_writer(job.storage_key, meta, state=None)
    writer_state = checkpoint.get("writer") or {}
    resumed = bool(writer_state.get("offset") or writer_state.get("parts"))  # any bytes committed yet?
    if not resumed:
        checkpoint = {}
        # Recorded before any part exists, so that a failure or a cancel can abort
        # the upload instead of leaving it behind.
        lease.beat(checkpoint={"writer": writer.state(), "cursor": None, "rows": 0})
    cursor = checkpoint.get("cursor")
    rows = int(checkpoint.get("rows") or 0)
    if resumed:
        logger.info("export %s: resuming after row %d (attempt %d)", job.pk, rows, job.attempts)
    # Only a run that wrote the whole file can hash it as it goes.
    hasher = None if resumed else hashlib.sha256()
    chunk_bytes, level = conf.chunk_bytes(), conf.gzip_level()
    progress_every = conf.progress_rows()
    last_progress_rows, last_beat = rows, time.monotonic()

    member = GzipMember(level)
    if not resumed:
        member.write(spec.header(job))
    try:
        with _batches(spec, job, cursor) as batches:
            for batch in batches:
                member.write(batch.data)
                rows += batch.rows
                cursor = batch.cursor
                if member.compressed_size >= chunk_bytes:
                    chunk = member.finish()
                    state = writer.commit_chunk(chunk)
                    if hasher:
                        hasher.update(chunk)
                    lease.beat(checkpoint={"cursor": cursor, "rows": rows, "writer": state}, processed_count=rows)
                    member = GzipMember(level)
                    last_progress_rows, last_beat = rows, time.monotonic()
                elif rows - last_progress_rows >= progress_every or time.monotonic() - last_beat > 10:
                    lease.beat(processed_count=rows)
                    last_progress_rows, last_beat = rows, time.monotonic()
                if on_progress:
                    on_progress(rows, job.total_count)
        member.write(spec.footer(job))
        chunk = member.finish()
        writer.commit_chunk(chunk)
        if hasher:
            hasher.update(chunk)
        # Last look before the upload becomes visible: a job cancelled meanwhile is dropped.
        lease.beat(processed_count=rows)
        size = writer.complete()
    except LeaseLost:
        if ExportJob.objects.filter(pk=job.pk, status=ExportJob.Status.CANCELLED).exists():
            writer.abort()
        raise

    sha256 = hasher.hexdigest() if hasher else _sha256_of(job.storage_key)
    with transaction.atomic():  # the status and its webhook delivery row commit together
        changed = lease.complete(
            processed_count=rows,
            row_count=rows,
            byte_size=size,
            sha256=sha256,
            expires_at=timezone.now() + timedelta(days=conf.retention_days()),
            checkpoint={},
        )
        if changed:
            job.refresh_from_db()
            if spec.webhooks:
                _emit(job, "export.completed")
    if not changed:  # cancelled between the last heartbeat and now
        storage.delete(job.storage_key)
        raise LeaseLost()
    if on_progress:
        on_progress(rows, job.total_count)
    if spec.on_finished:
        try:
            spec.on_finished(job)
        except Exception:
            logger.exception("export %s: on_finished hook failed", job.pk)


def _sha256_of(key: str) -> str:
    digest = hashlib.sha256()
    for chunk in storage.iter_bytes(key):
        digest.update(chunk)
    return digest.hexdigest()


def export_job_payload(job: ExportJob) -> dict[str, Any]:
    return {
        "id": str(job.pk),
        "kind": job.kind,
        "format": job.format,
        "status": job.status,
        "row_count": job.row_count,
        "byte_size": job.byte_size,
        "sha256": job.sha256 or None,
        "error": job.error or None,
        "created_at": job.created_at,
        "completed_at": job.completed_at,
        "request_id": job.request_id or None,
    }


def _emit(job: ExportJob, event: str) -> None:
    spec = _REGISTRY.get(job.kind)
    if spec is not None and not spec.webhooks:
        return
    try:
        from leadlex.webhooks import webhook_emit

        webhook_emit(workspace_id=job.workspace_id, event=event, data=export_job_payload(job))
    except DatabaseError:
        raise
    except Exception:
        logger.exception("export %s: could not emit %s", job.pk, event)


# --- Sweepers -----------------------------------------------------------------------
def export_jobs_sweep_stale(*, limit: int = 100) -> list[str]:
    """Re-queue processing jobs whose worker stopped beating (killed, lost) and queued
    jobs whose task was lost, and fail those whose last allowed run died; returns the
    ids it re-dispatched or failed."""
    swept = RUNTIME.sweep(limit=limit)
    return [str(i) for i in swept.requeued + swept.failed]


def export_jobs_sweep_expired(*, limit: int = 500) -> int:
    """Delete files past their retention and mark their jobs expired."""
    now = timezone.now()
    with transaction.atomic():
        jobs = list(
            ExportJob.objects.select_for_update(skip_locked=True)
            .filter(status=ExportJob.Status.COMPLETED, expires_at__lte=now)
            .values_list("pk", "storage_key")[:limit]
        )
        ExportJob.objects.filter(pk__in=[pk for pk, _ in jobs]).update(status=ExportJob.Status.EXPIRED)
    # Deleting is I/O: after the short transaction. A failed delete is retried by hand
    # at worst; the job already says expired and no URL is signed for it any more.
    for pk, key in jobs:
        if key:
            try:
                storage.delete(key)
            except Exception:
                logger.warning("export %s: could not delete %s", pk, key, exc_info=True)
    return len(jobs)
