"""The import job runner: claim, batches, checkpoint, finish, fail, sweep.

    import_job_run: claim (queued → processing) → for each batch of the stream:
        validate (pure, outside any transaction) →
        one transaction { lock job row, contact_upsert_batch, row errors, counters + checkpoint }
    → errors CSV to storage → "completed" + webhook in one transaction.

A batch and its checkpoint commit together, so a worker killed at any point
resumes at the first uncommitted batch and the end result equals an
uninterrupted run.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import logging
import os
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from datetime import timedelta
from typing import IO, Any

from django.db import IntegrityError, InterfaceError, OperationalError, transaction
from django.db.models import F, Q
from django.utils import timezone

from imports.idempotency import idempotency_keys_sweep_expired
from imports.models import ImportJob, ImportRowError
from imports.parsing import (
    MappingError,
    RowError,
    SourceRow,
    iter_csv,
    iter_ndjson,
)
from imports.serializers import RESPONSE_ERRORS, ImportParams
from imports.upsert import _RaceDetected, contact_upsert_batch
from imports.validation import CleanRow, validate_row
from leadlex import storage
from leadlex.env import env_int
from leadlex.errors import ApiError

logger = logging.getLogger("leadlex.imports")


BATCH_SIZE = env_int("LEADLEX_IMPORT_BATCH_SIZE", 5000)


# Queued jobs parse and validate in a forked child process (the second core), not a
# thread; 0 turns that off (a platform without fork, or to debug in one process).
PARSE_IN_PROCESS = bool(env_int("LEADLEX_IMPORT_PARSE_PROCESS", 1)) and hasattr(os, "fork")


MAX_ATTEMPTS = env_int("LEADLEX_IMPORT_MAX_ATTEMPTS", 5)


# A processing job whose heartbeat is older than this is considered abandoned
# (its worker died) and is queued again by the sweeper.
STALE_AFTER = timedelta(seconds=env_int("LEADLEX_IMPORT_STALE_SECONDS", 300))


TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (OperationalError, InterfaceError, ConnectionError, TimeoutError)


def is_transient(exc: BaseException) -> bool:
    """Worth retrying: the database or the storage service was briefly unreachable.
    (Checked by module so that only leadlex.storage imports the S3 client library.)"""
    module = type(exc).__module__ or ""
    if any(k.__name__ == "ClientError" and k.__module__.startswith("botocore") for k in type(exc).__mro__):
        # An S3 answer (NoSuchKey, AccessDenied...): only throttling and 5xx are worth a retry.
        code = str(getattr(exc, "response", {}).get("Error", {}).get("Code", ""))
        return code in _TRANSIENT_S3_CODES
    return isinstance(exc, TRANSIENT_ERRORS) or module.startswith(("botocore", "urllib3", "s3transfer"))


_TRANSIENT_S3_CODES = {
    "SlowDown",
    "RequestTimeout",
    "RequestTimeTooSkewed",
    "InternalError",
    "ServiceUnavailable",
    "500",
    "502",
    "503",
    "504",
}


class ImportUserError(ApiError):
    """The input itself is unusable (bad mapping, unreadable file): fails the job
    as a user error, or answers 400 in a request."""


def rows_validate(source_rows: Iterable[SourceRow], *, tz: dt.tzinfo) -> tuple[list[CleanRow], list[RowError]]:
    clean: list[CleanRow] = []
    errors: list[RowError] = []
    for source in source_rows:
        if source.error is not None:
            errors.append(source.error)
            continue
        row, row_errors = validate_row(source.row, source.data or {}, tz=tz)
        if row is not None:
            clean.append(row)
        errors.extend(row_errors)
    return clean, errors


def import_job_enqueue_on_commit(*, job_id: uuid.UUID) -> None:
    from django.conf import settings

    from imports.tasks import import_job_run_task

    # A dedicated queue is optional (a deployment may give imports their own workers).
    queue = getattr(settings, "LEADLEX_IMPORT_QUEUE", None)
    options = {"queue": queue} if queue else {}
    transaction.on_commit(lambda: import_job_run_task.apply_async(kwargs={"job_id": str(job_id)}, **options))


def import_job_claim(*, job_id: uuid.UUID) -> int | None:
    """queued → processing with a conditional UPDATE. Returns this run's attempt number
    (the ownership token every batch checks), or None when someone else has it."""
    now = timezone.now()
    claimed = ImportJob.objects.filter(id=job_id, status=ImportJob.Status.QUEUED).update(
        status=ImportJob.Status.PROCESSING,
        attempts=F("attempts") + 1,
        heartbeat_at=now,
        started_at=now,
        error="",
        error_kind="",
    )
    if not claimed:
        return None
    return ImportJob.objects.filter(id=job_id).values_list("attempts", flat=True).first()


def _open_source(job: ImportJob, params: ImportParams) -> tuple[Iterator[SourceRow], IO[bytes]]:
    fh = storage.open_reader(job.payload_key)
    if job.source == ImportJob.Source.ROWS:
        return iter_ndjson(fh, skip_records=job.next_record), fh
    return iter_csv(fh, has_header=params.has_header, mapping=params.mapping, skip_records=job.next_record), fh


def import_job_run(*, job_id: uuid.UUID, progress: Callable[[ImportJob], None] | None = None) -> ImportJob | None:
    """Run (or resume) a queued job to the end. Transient errors propagate after the
    job is put back to "queued" (the task retries); anything else fails the job."""
    attempt = import_job_claim(job_id=job_id)
    if attempt is None:
        return None
    job = ImportJob.objects.select_related("workspace").get(id=job_id)
    params = ImportParams.from_json(job.params)
    fh = None
    try:
        source, fh = _open_source(job, params)
        _run_batches(
            job=job,
            source=source,
            params=params,
            batch_size=BATCH_SIZE,
            attempt=attempt,
            progress=progress,
            background=True,
        )
    except _LostOwnership:
        logger.warning("import %s: another run took the job over; stopping this one", job_id)
        return None
    except Exception as exc:
        if is_transient(exc):
            ImportJob.objects.filter(id=job_id, attempts=attempt, status=ImportJob.Status.PROCESSING).update(
                status=ImportJob.Status.QUEUED, error=str(exc)[:1000], error_kind="transient"
            )
            raise
        _job_fail(job_id=job_id, exc=exc, attempt=attempt)
        return ImportJob.objects.get(id=job_id)
    finally:
        if fh is not None:
            try:
                fh.close()
            except Exception:  # noqa: BLE001 - closing a finished stream must not hide the real error
                pass
    return _job_finish(job_id=job_id, emit_webhook=True, attempt=attempt)


def import_job_run_inline(
    *, job: ImportJob, source: Iterator[SourceRow], params: ImportParams, batch_size: int
) -> ImportJob:
    """Run a small import inside the request that made it (the job is already
    "processing"); its client sees the result, so no webhook is sent."""
    try:
        _run_batches(job=job, source=source, params=params, batch_size=batch_size)
    except Exception as exc:
        _job_fail(job_id=job.id, exc=exc)
        raise
    return _job_finish(job_id=job.id, emit_webhook=False)


class _LostOwnership(Exception):
    pass


def _batches(source: Iterator[SourceRow], size: int) -> Iterator[tuple[list[SourceRow], int]]:
    """Batches of rows with the record index just after the batch (the checkpoint)."""
    batch: list[SourceRow] = []
    for item in source:
        batch.append(item)
        if len(batch) >= size:
            yield batch, item.record + 1
            batch = []
    if batch:
        yield batch, batch[-1].record + 1


def _run_batches(
    *,
    job: ImportJob,
    source: Iterator[SourceRow],
    params: ImportParams,
    batch_size: int,
    attempt: int | None = None,
    progress: Callable[[ImportJob], None] | None = None,
    background: bool = False,
) -> None:
    tz = job.workspace.tzinfo

    def prepared() -> Iterator[tuple[list[SourceRow], int, list[CleanRow], list[RowError]]]:
        for batch, next_record in _batches(source, batch_size):
            clean, errors = rows_validate(batch, tz=tz)  # pure: no database, no transaction
            yield batch, next_record, clean, errors

    try:
        # Parsing and validating the next batch (Python) overlaps with writing this one.
        # In a child process when it can (the other core: no GIL shared with the
        # upsert's own Python work), else in a thread.
        if not background:
            staged: Iterator[tuple[int, int, list[CleanRow], list[RowError]]] = (
                (len(b), n, c, e) for b, n, c, e in prepared()
            )
        elif PARSE_IN_PROCESS:
            staged = _prepare_in_process(prepared)
        else:
            staged = _prefetch((len(b), n, c, e) for b, n, c, e in prepared())
        for n_rows, next_record, clean, errors in staged:
            for tries in range(4):
                try:
                    with transaction.atomic():
                        _batch_commit(
                            job=job,
                            clean=clean,
                            errors=errors,
                            params=params,
                            attempt=attempt,
                            next_record=next_record,
                            n_rows=n_rows,
                        )
                    break
                except (_RaceDetected, IntegrityError):
                    # A concurrent writer took an address between our match and insert:
                    # the batch rolled back whole; matching again sees their row.
                    if tries == 3:
                        raise
                    time.sleep(0.05 * (tries + 1))
            if progress is not None:
                progress(job)
    except MappingError as exc:
        raise ImportUserError(str(exc)) from None


def _prepare_in_process(
    prepared: Callable[[], Iterator[tuple[list[SourceRow], int, list[CleanRow], list[RowError]]]],
) -> Iterator[tuple[int, int, list[CleanRow], list[RowError]]]:
    """Run ``prepared()`` (read the payload, parse, validate: no database) in a forked
    child that sends each ready batch back through a pipe. The pipe's small buffer
    keeps the child about one batch ahead. The child owns the payload stream from
    the fork on (this process must not read it); it ends on its own when this
    process dies (its next send fails), and is killed when the consumer stops early.

    A bare ``os.fork``, not ``multiprocessing.Process``: Celery's prefork pool runs
    tasks in daemonic processes, which multiprocessing forbids to have children."""
    import multiprocessing
    import signal

    receiver, sender = multiprocessing.get_context("fork").Pipe(duplex=False)
    pid = os.fork()
    if pid == 0:  # the child: never returns, never runs the parent's cleanup or atexit hooks
        code = 0
        try:
            receiver.close()
            try:
                for batch, next_record, clean, errors in prepared():
                    # Plain tuples: unpickling them costs the parent a fraction of what
                    # dataclass instances would (it is the parent's core that is busy).
                    sender.send(
                        (
                            len(batch),
                            next_record,
                            [(r.row, r.values, r.tags, r.list_ids, r.list_names) for r in clean],
                            [(e.row, e.field, e.code, e.message) for e in errors],
                        )
                    )
                sender.send(None)
            except (BrokenPipeError, ConnectionResetError):
                code = 1  # the parent is gone
            except BaseException as exc:  # noqa: BLE001 - handed to the parent, raised there
                try:
                    sender.send(exc)
                except Exception:  # noqa: BLE001 - unpicklable: keep its kind (transient or not) and text
                    kind = ConnectionError if is_transient(exc) else RuntimeError
                    sender.send(kind(f"{type(exc).__name__}: {exc}"))
        except BaseException:  # noqa: BLE001 - whatever happens, the child must not return
            code = 1
        finally:
            os._exit(code)
    sender.close()
    finished = False
    try:
        while True:
            try:
                item = receiver.recv()
            except EOFError:
                raise RuntimeError("the import's parser process ended unexpectedly") from None
            if item is None:
                finished = True
                return
            if isinstance(item, BaseException):
                finished = True
                raise item
            n_rows, next_record, clean, errors = item
            yield (n_rows, next_record, [CleanRow(*r) for r in clean], [RowError(*e) for e in errors])
    finally:
        receiver.close()
        if not finished:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        os.waitpid(pid, 0)


def _prefetch(items: Iterator[Any], *, enabled: bool = True, depth: int = 2) -> Iterator[Any]:
    """Run ``items`` in a background thread, ``depth`` ahead of the consumer. The
    producer must not touch the database (Django connections are per thread)."""
    if not enabled:
        yield from items
        return
    import queue
    import threading

    buffer: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()
    done = object()

    def produce() -> None:
        try:
            for item in items:
                while not stop.is_set():
                    try:
                        buffer.put((item, None), timeout=0.2)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            buffer.put((done, None))
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer, raised there
            buffer.put((None, exc))

    thread = threading.Thread(target=produce, name="import-prefetch", daemon=True)
    thread.start()
    try:
        while True:
            item, exc = buffer.get()
            if exc is not None:
                raise exc
            if item is done:
                return
            yield item
    finally:
        stop.set()
        while thread.is_alive():
            try:
                buffer.get_nowait()
            except queue.Empty:
                thread.join(timeout=0.2)


def _batch_commit(
    *,
    job: ImportJob,
    clean: list[CleanRow],
    errors: list[RowError],
    params: ImportParams,
    attempt: int | None,
    next_record: int,
    n_rows: int,
) -> None:
    locked = ImportJob.objects.select_for_update().filter(id=job.id, status=ImportJob.Status.PROCESSING)
    if attempt is not None:
        locked = locked.filter(attempts=attempt)
    current = locked.values("first_errors", "error_count").first()
    if current is None:
        raise _LostOwnership()
    result = contact_upsert_batch(
        workspace=job.workspace, rows=clean, update_existing=params.update_existing, tags=params.tags, job_id=job.id
    )
    all_errors = sorted(errors + result.errors, key=lambda e: (e.row, e.field))
    if all_errors:
        ImportRowError.objects.bulk_create(
            [
                ImportRowError(job_id=job.id, row=e.row, field=e.field[:100], code=e.code[:50], message=e.message)
                for e in all_errors
            ],
            batch_size=1000,
        )
    first = current["first_errors"] or []
    if len(first) < RESPONSE_ERRORS and all_errors:
        first = first + [e.as_dict() for e in all_errors[: RESPONSE_ERRORS - len(first)]]
    ImportJob.objects.filter(id=job.id).update(
        created_count=F("created_count") + result.created,
        updated_count=F("updated_count") + result.updated,
        skipped_count=F("skipped_count") + result.skipped,
        error_count=F("error_count") + len(all_errors),
        processed_rows=F("processed_rows") + n_rows,
        next_record=next_record,
        first_errors=first,
        heartbeat_at=timezone.now(),
    )
    job.refresh_from_db(
        fields=["processed_rows", "created_count", "updated_count", "skipped_count", "error_count", "next_record"]
    )


def _errors_csv_write(*, job: ImportJob) -> str:
    """The full error list as CSV in storage (written in pieces, never whole in memory)."""
    key = f"imports/{job.id.hex}/errors.csv"
    writer = storage.open_writer(key, storage.ObjectMeta(content_type="text/csv", filename="import-errors.csv"))
    try:
        text = io.StringIO()
        out = csv.writer(text, lineterminator="\r\n")
        out.writerow(["row", "field", "code", "message"])
        for row in (
            ImportRowError.objects.filter(job_id=job.id)
            .order_by("row", "id")
            .values_list("row", "field", "code", "message")
            .iterator(chunk_size=2000)
        ):
            out.writerow(row)
            if text.tell() > 256 * 1024:
                writer.write(text.getvalue().encode())
                text.seek(0)
                text.truncate()
        writer.write(text.getvalue().encode())
        writer.close()
    except BaseException:
        writer.abort()
        raise
    return key


def _job_finish(*, job_id: uuid.UUID, emit_webhook: bool, attempt: int | None = None) -> ImportJob:
    job = ImportJob.objects.select_related("workspace").get(id=job_id)
    errors_key = _errors_csv_write(job=job) if job.error_count else ""  # slow I/O before the transaction
    with transaction.atomic():
        qs = ImportJob.objects.filter(id=job_id, status=ImportJob.Status.PROCESSING)
        if attempt is not None:
            qs = qs.filter(attempts=attempt)
        done = qs.update(
            status=ImportJob.Status.COMPLETED,
            completed_at=timezone.now(),
            errors_key=errors_key,
            heartbeat_at=timezone.now(),
        )
        if done:
            ImportRowError.objects.filter(job_id=job_id).delete()  # the CSV holds them now
            job.refresh_from_db()
            if emit_webhook:
                _emit(job, "import.completed")
    if done and job.payload_key:
        _delete_quietly(job.payload_key)  # the raw rows are personal data: keep them no longer than needed
    job.refresh_from_db()
    return job


def _job_fail(*, job_id: uuid.UUID, exc: BaseException, attempt: int | None = None) -> None:
    kind = "user" if isinstance(exc, ApiError) else "system"
    message = exc.message if isinstance(exc, ApiError) else "The import failed unexpectedly; it can be retried."
    if kind == "system":
        logger.exception("import %s failed", job_id)
    with transaction.atomic():
        qs = ImportJob.objects.filter(id=job_id, status__in=[ImportJob.Status.PROCESSING, ImportJob.Status.QUEUED])
        if attempt is not None:
            qs = qs.filter(attempts=attempt)
        if qs.update(status=ImportJob.Status.FAILED, error=message, error_kind=kind, completed_at=timezone.now()):
            job = ImportJob.objects.get(id=job_id)
            if job.payload_key:
                _emit(job, "import.failed")


def _emit(job: ImportJob, event: str) -> None:
    from leadlex.webhooks import webhook_emit

    webhook_emit(workspace_id=job.workspace_id, event=event, data=import_job_event_data(job=job))


def import_job_event_data(*, job: ImportJob) -> dict[str, Any]:
    return {
        "job_id": job.public_id,
        "status": job.status,
        "total_rows": job.total_rows,
        "created_count": job.created_count,
        "updated_count": job.updated_count,
        "skipped_count": job.skipped_count,
        "error_count": job.error_count,
        "error": job.error or None,
        "request_id": job.request_id or None,
    }


def _delete_quietly(key: str) -> None:
    try:
        storage.delete(key)
    except Exception:  # noqa: BLE001 - a leftover payload is swept later, not worth failing a finished job
        logger.warning("could not delete import payload %s", key)


def import_jobs_sweep(*, stale_after: timedelta = STALE_AFTER, limit: int = 100) -> list[uuid.UUID]:
    """Requeue jobs whose worker died (processing, heartbeat too old) and re-dispatch
    queued jobs whose message was lost; fail jobs that used up their attempts.
    Locks and skips, so two sweepers never handle one job."""
    now = timezone.now()
    cutoff = now - stale_after
    dispatched: list[uuid.UUID] = []
    with transaction.atomic():
        stale = list(
            ImportJob.objects.select_for_update(skip_locked=True)
            .filter(
                Q(status=ImportJob.Status.PROCESSING, heartbeat_at__lt=cutoff)
                | Q(status=ImportJob.Status.QUEUED, updated_at__lt=cutoff)
            )
            .order_by("created_at")[:limit]
        )
        for job in stale:
            if job.status == ImportJob.Status.PROCESSING and (job.attempts >= MAX_ATTEMPTS or not job.payload_key):
                # No payload: a synchronous import whose request died; its client saw an error.
                message = (
                    f"The import was interrupted {job.attempts} times and was given up."
                    if job.payload_key
                    else "The import was interrupted before it finished; the committed rows stay imported."
                )
                ImportJob.objects.filter(id=job.id).update(
                    status=ImportJob.Status.FAILED, error_kind="system", completed_at=now, error=message
                )
                job.refresh_from_db()
                if job.payload_key:  # events are for queued imports; a request answered for itself
                    _emit(job, "import.failed")
                continue
            ImportJob.objects.filter(id=job.id).update(status=ImportJob.Status.QUEUED, heartbeat_at=now)
            import_job_enqueue_on_commit(job_id=job.id)
            dispatched.append(job.id)
    idempotency_keys_sweep_expired(now=now)
    return dispatched


def import_job_retry(*, job: ImportJob) -> bool:
    """Admin: run a failed job again from its checkpoint (needs its stored payload)."""
    if job.status != ImportJob.Status.FAILED or not job.payload_key or not storage.exists(job.payload_key):
        return False
    with transaction.atomic():
        changed = ImportJob.objects.filter(id=job.id, status=ImportJob.Status.FAILED).update(
            status=ImportJob.Status.QUEUED, error="", error_kind="", completed_at=None
        )
        if changed:
            import_job_enqueue_on_commit(job_id=job.id)
    return bool(changed)


def import_job_errors_url(*, job: ImportJob, base_url: str | None = None) -> str | None:
    if not job.errors_key:
        return None
    return storage.presigned_get(
        job.errors_key,
        meta=storage.ObjectMeta(content_type="text/csv", filename="import-errors.csv"),
        base_url=base_url,
    )
