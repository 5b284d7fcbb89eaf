"""The import job runner: batches, checkpoint, finish.

    import_job_run: claim (queued → processing) → for each batch of the stream:
        validate (pure, outside any transaction) →
        one transaction { lock job row, contact_upsert_batch, row errors, counters + checkpoint }
    → errors CSV to storage → "completed" + webhook in one transaction.

A batch and its checkpoint commit together, so a worker killed at any point
resumes at the first uncommitted batch and the end result equals an
uninterrupted run. Claiming, the lease, retries, failure kinds and the stale-job
sweeper are the job runtime's (``leadlex.jobs``, configured by ``RUNTIME`` below);
this module supplies the steps of an import.
"""

from __future__ import annotations

import contextlib
import csv
import datetime as dt
import io
import logging
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from datetime import timedelta
from typing import IO, Any

from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from imports import conf
from imports.formats import FileFormatError
from imports.idempotency import idempotency_keys_sweep_expired
from imports.models import JOB_ID_PREFIX, ImportJob, ImportRowError
from imports.parsing import (
    MappingError,
    RowError,
    SourceRow,
    iter_file,
    iter_ndjson,
)
from imports.serializers import RESPONSE_ERRORS, ImportParams
from imports.upsert import _RaceDetected, contact_upsert_batch
from imports.validation import CleanRow, validate_row
from leadlex import storage
from leadlex.errors import ApiError
from leadlex.jobs import JobRuntime, Lease, Progress
from leadlex.prefetch import fork_prefetch, thread_prefetch

logger = logging.getLogger("leadlex.imports")


class ImportUserError(ApiError):
    """The input itself is unusable (bad mapping, unreadable file): fails the job
    as a user error, or answers 400 in a request."""


# --- The job runtime's view of an import -------------------------------------------------
def _dispatch(job_id: str) -> None:
    from imports.tasks import import_job_run_task

    # A dedicated queue is optional (a deployment may give imports their own workers).
    queue = conf.queue()
    options: dict[str, Any] = {"queue": queue} if queue else {}
    import_job_run_task.apply_async(kwargs={"job_id": job_id}, **options)


def _on_failed(job: ImportJob) -> None:
    if job.payload_key:  # events are for queued imports; a request answered for itself
        _emit(job, "import.failed")


def _user_message(exc: BaseException) -> str:
    return exc.message if isinstance(exc, ApiError) else str(exc)


def _system_message(exc: BaseException) -> str:
    return "The import failed unexpectedly; it can be retried."


def _exhausted_message(job: ImportJob, runs: int) -> str:
    return f"The import was interrupted {runs} times and was given up."


def _resumable(job: ImportJob) -> bool:
    # No payload: a synchronous import whose request died; its client saw an error.
    return bool(job.payload_key)


def _display_id(job_id: Any) -> str:
    return JOB_ID_PREFIX + uuid.UUID(str(job_id)).hex


RUNTIME = JobRuntime(
    model=ImportJob,
    label="import",
    dispatch=_dispatch,
    stale_seconds=conf.stale_seconds,
    max_attempts=conf.max_attempts,
    user_errors=(ApiError, FileFormatError),
    user_message=_user_message,
    system_message=_system_message,
    exhausted_message=_exhausted_message,
    resumable=_resumable,
    abandoned_message="The import was interrupted before it finished; the committed rows stay imported.",
    on_failed=_on_failed,
    display_id=_display_id,
)


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
    RUNTIME.enqueue(job_id)


class _Tally:
    """The payload as read, counting its bytes: the progress of a file too large to be
    counted in rows before the run (``ImportJob.processed_bytes``)."""

    def __init__(self, inner: IO[bytes]) -> None:
        self._inner = inner
        self.count = 0

    def read(self, size: int = -1) -> bytes:
        data = self._inner.read(size)
        self.count += len(data)
        return data

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        try:
            return bool(self._inner.seekable())
        except (AttributeError, OSError):
            return False

    def seek(self, offset: int, whence: int = 0) -> int:
        return self._inner.seek(offset, whence)

    def tell(self) -> int:
        return self._inner.tell()

    def close(self) -> None:
        self._inner.close()


def _open_source(job: ImportJob, params: ImportParams) -> tuple[Iterator[SourceRow], _Tally]:
    fh = _Tally(storage.open_reader(job.payload_key))
    if job.source == ImportJob.Source.ROWS:
        return iter_ndjson(fh, skip_records=job.next_record), fh  # type: ignore[arg-type]  # a reader as any
    rows = iter_file(
        fh,  # type: ignore[arg-type]  # read(), and seek() where the stored file can
        params.file_spec(),
        has_header=params.has_header,
        mapping=params.mapping,
        skip_records=job.next_record,
    )
    return rows, fh


def import_job_run(*, job_id: uuid.UUID, progress: Progress | None = None) -> ImportJob | None:
    """Run (or resume) a queued job to the end. Transient errors propagate after the
    job is put back to "queued" (the task retries); anything else fails the job.
    None when this run did not get the job (or lost it)."""
    finished: list[ImportJob] = []

    def body(lease: Lease) -> str:
        job = ImportJob.objects.select_related("workspace").get(id=job_id)
        params = ImportParams.from_json(job.params)
        source, fh = _open_source(job, params)
        try:
            _run_batches(
                job=job,
                source=source,
                params=params,
                batch_size=conf.batch_size(),
                lease=lease,
                progress=progress,
                background=True,
                tally=fh,
            )
        finally:
            # Closing a finished stream must not hide the real error.
            with contextlib.suppress(Exception):
                fh.close()
        finished.append(_job_finish(job_id=job.id, lease=lease, emit_webhook=True))
        return finished[0].status

    result = RUNTIME.run(job_id, body)
    if result.lease_lost or (not result.claimed and result.status != ImportJob.Status.FAILED):
        return None
    # The finished job as it is, with no further query: the task logs the outcome at once.
    return finished[0] if finished else ImportJob.objects.get(id=job_id)


def import_job_run_inline(
    *, job: ImportJob, source: Iterator[SourceRow], params: ImportParams, batch_size: int
) -> ImportJob:
    """Run a small import inside the request that made it (the job was created
    "processing" under a lease token); its client sees the result, so no webhook is
    sent. A failure is recorded on the job (never retried: the rows are not stored)
    and raised to the request."""
    lease = Lease(RUNTIME, job.id, job.lease_token, job.attempts)
    try:
        _run_batches(job=job, source=source, params=params, batch_size=batch_size, lease=lease)
    except Exception as exc:
        lease.record_failure(exc, retryable=False)
        raise
    return _job_finish(job_id=job.id, lease=lease, emit_webhook=False)


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
    lease: Lease,
    progress: Progress | None = None,
    background: bool = False,
    tally: _Tally | None = None,
) -> None:
    tz = job.workspace.tzinfo

    def prepared() -> Iterator[Prepared]:
        for batch, next_record in _batches(source, batch_size):
            clean, errors = rows_validate(batch, tz=tz)  # pure: no database, no transaction
            # How far the file has been read (in the process that reads it).
            yield batch, next_record, clean, errors, tally.count if tally is not None else None

    try:
        # Parsing and validating the next batch (Python) overlaps with writing this one.
        # In a child process when it can (the other core: no GIL shared with the
        # upsert's own Python work), else in a thread.
        if not background:
            staged: Iterator[Staged] = ((len(b), n, c, e, o) for b, n, c, e, o in prepared())
        elif conf.parse_in_process():
            staged = _prepare_in_process(prepared)
        else:
            staged = thread_prefetch(((len(b), n, c, e, o) for b, n, c, e, o in prepared()), name="import-prefetch")
        for n_rows, next_record, clean, errors, offset in staged:
            for tries in range(4):
                try:
                    with transaction.atomic():
                        _batch_commit(
                            job=job,
                            clean=clean,
                            errors=errors,
                            params=params,
                            lease=lease,
                            next_record=next_record,
                            n_rows=n_rows,
                            offset=offset,
                        )
                    break
                except (_RaceDetected, IntegrityError):
                    # A concurrent writer took an address between our match and insert:
                    # the batch rolled back whole; matching again sees their row.
                    if tries == 3:
                        raise
                    time.sleep(0.05 * (tries + 1))
            if progress is not None:
                progress(job.processed_rows, job.total_rows)
    except MappingError as exc:
        raise ImportUserError(str(exc)) from None


# A batch as read and validated (rows, the record after it, clean rows, row errors, the
# bytes of the file read so far), and as staged for its transaction (the row count
# instead of the rows).
Prepared = tuple[list[SourceRow], int, list[CleanRow], list[RowError], int | None]
Staged = tuple[int, int, list[CleanRow], list[RowError], int | None]


def _prepare_in_process(prepared: Callable[[], Iterator[Prepared]]) -> Iterator[Staged]:
    """Run ``prepared()`` (read the payload, parse, validate: no database) in a forked
    child (``leadlex.prefetch.fork_prefetch``) that sends each ready batch back. The
    child owns the payload stream from the fork on."""

    def encoded() -> Iterator[tuple[int, int, list[tuple[Any, ...]], list[tuple[Any, ...]], int | None]]:
        for batch, next_record, clean, errors, offset in prepared():
            # Plain tuples: unpickling them costs the parent a fraction of what
            # dataclass instances would (it is the parent's core that is busy).
            yield (
                len(batch),
                next_record,
                [(r.row, r.values, r.tags, r.list_ids, r.list_names) for r in clean],
                [(e.row, e.field, e.code, e.message) for e in errors],
                offset,
            )

    for n_rows, next_record, clean, errors, offset in fork_prefetch(encoded):
        yield (n_rows, next_record, [CleanRow(*r) for r in clean], [RowError(*e) for e in errors], offset)


def _batch_commit(
    *,
    job: ImportJob,
    clean: list[CleanRow],
    errors: list[RowError],
    params: ImportParams,
    lease: Lease,
    next_record: int,
    n_rows: int,
    offset: int | None = None,
) -> None:
    current = lease.lock("first_errors", "error_count")  # LeaseLost when another run has the job
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
    lease.checkpoint(
        created_count=F("created_count") + result.created,
        updated_count=F("updated_count") + result.updated,
        skipped_count=F("skipped_count") + result.skipped,
        error_count=F("error_count") + len(all_errors),
        processed_rows=F("processed_rows") + n_rows,
        next_record=next_record,
        first_errors=first,
        **({"processed_bytes": offset} if offset is not None else {}),
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


def _job_finish(*, job_id: uuid.UUID, lease: Lease, emit_webhook: bool) -> ImportJob:
    job = ImportJob.objects.select_related("workspace").get(id=job_id)
    errors_key = _errors_csv_write(job=job) if job.error_count else ""  # slow I/O before the transaction
    counted = {} if job.total_rows is not None else {"total_rows": job.processed_rows}  # known now
    if job.total_bytes is not None:
        counted["processed_bytes"] = job.total_bytes
    with transaction.atomic():
        done = lease.complete(errors_key=errors_key, **counted)
        if done:
            ImportRowError.objects.filter(job_id=job_id).delete()  # the CSV holds them now
            job.refresh_from_db()
            if emit_webhook:
                _emit(job, "import.completed")
    if done and job.payload_key:
        _payload_let_go(job)  # the raw rows are personal data: keep them no longer than needed
    job.refresh_from_db()
    return job


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


def _payload_let_go(job: ImportJob) -> None:
    """A completed job's file goes (the raw rows are personal data: kept no longer than
    needed), unless it is an upload that other imports may read until it expires."""
    if job.upload_id is None:
        _delete_quietly(job.payload_key)
        return
    from imports.uploads import upload_delete

    upload = job.upload
    if upload is not None and upload.single_use:
        with contextlib.suppress(ApiError):  # another import reads it meanwhile: it expires later instead
            upload_delete(upload=upload)


def _delete_quietly(key: str) -> None:
    try:
        storage.delete(key)
    except Exception:  # noqa: BLE001 - a leftover payload is swept later, not worth failing a finished job
        logger.warning("could not delete import payload %s", key)


def import_jobs_sweep(*, stale_after: timedelta | None = None, limit: int = 100) -> list[uuid.UUID]:
    """Requeue jobs whose worker died and re-dispatch queued jobs whose message was
    lost (the ids returned); fail jobs that used up their attempts or cannot resume.
    Also drops expired Idempotency-Keys and the files of expired uploads."""
    from imports.uploads import uploads_sweep_expired

    swept = RUNTIME.sweep(stale_after=stale_after, limit=limit)
    idempotency_keys_sweep_expired(now=timezone.now())
    uploads_sweep_expired(now=timezone.now())
    return swept.requeued


def import_job_retry(*, job: ImportJob) -> bool:
    """Admin: run a failed job again from its checkpoint (needs its stored payload)."""
    if job.status != ImportJob.Status.FAILED or not job.payload_key or not storage.exists(job.payload_key):
        return False
    with transaction.atomic():
        # attempts start again: the job gets its full share of runs.
        changed = ImportJob.objects.filter(id=job.id, status=ImportJob.Status.FAILED).update(
            status=ImportJob.Status.QUEUED, error="", error_kind="", completed_at=None, attempts=0, lease_token=""
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
