"""The import workflow: ``import_request`` starts an import from any surface (the API,
the admin, the ``import_contacts`` command).

    import_request ─┬─ ≤ 500 rows: one batch in the request → job "completed"
                    └─ more: payload → storage, job "queued" → task → imports.engine.import_job_run
"""

from __future__ import annotations

import dataclasses
import uuid
from typing import Any

from django.db import transaction
from django.utils import timezone

from imports import conf
from imports.dialect import Dialect, DialectError, resolve_dialect
from imports.engine import import_job_enqueue_on_commit, import_job_run_inline
from imports.models import ImportJob
from imports.parsing import (
    MappingError,
    count_csv_records,
    iter_csv,
    iter_rows,
    rows_to_ndjson,
)
from imports.serializers import ImportInput, ImportParams
from leadlex import storage
from leadlex.errors import ValidationFailed
from leadlex.middleware import current_request_id
from leadlex.models import ApiKey, Workspace

SYNC_MAX_ROWS = 500


MAX_ROWS = 1_000_000


def import_input_count(*, data: ImportInput, params: ImportParams) -> int:
    if data.rows is not None:
        return len(data.rows)
    return count_csv_records(
        data.csv_data or "",
        has_header=params.has_header,
        encoding=params.encoding or "utf-8",
        delimiter=params.delimiter or ",",
    )


def import_dialect_resolve(*, data: str | bytes, params: ImportParams) -> Dialect:
    """The encoding and delimiter to read a CSV with: declared, or found from its first
    bytes (imports.dialect). A file that does not decode there is a 400."""
    sample_bytes = conf.sniff_bytes()
    try:
        return resolve_dialect(
            data[:sample_bytes],
            complete=len(data) <= sample_bytes,
            encoding=params.encoding,
            delimiter=params.delimiter,
        )
    except DialectError as exc:
        raise ValidationFailed(str(exc), details={"field": exc.field}) from None


def import_request(
    *,
    workspace: Workspace,
    data: ImportInput,
    params: ImportParams,
    api_key: ApiKey | None = None,
    user: Any | None = None,
    force_queue: bool = False,
    enqueue: bool = True,
    request_id: str | None = None,
) -> ImportJob:
    """Start an import: ≤ 500 rows run now (the returned job is finished), more are
    stored and queued. Raises ``ValidationFailed`` for an unusable request.

    ``force_queue`` always stores and queues; ``enqueue=False`` leaves the queued job
    for the caller to run in-process (the ``import_contacts`` command). ``request_id``
    defaults to the id of the request being served (API or admin)."""
    if data.rows is None and data.csv_data is None:
        raise ValidationFailed("Give either rows or csv.")
    if data.csv_data is not None:
        dialect = import_dialect_resolve(data=data.csv_data, params=params)
        params = dataclasses.replace(params, encoding=dialect.encoding, delimiter=dialect.delimiter)
        _check_csv_header(data.csv_data, params)
    total = import_input_count(data=data, params=params)
    if total > MAX_ROWS:
        raise ValidationFailed(
            f"Too many rows ({total}); at most {MAX_ROWS:,} per import.", details={"rows": total, "limit": MAX_ROWS}
        )
    job_id = uuid.uuid4()
    common = dict(
        id=job_id,
        workspace=workspace,
        api_key=api_key,
        created_by_user=user,
        source=data.source,
        params=params.as_json(),
        total_rows=total,
        request_id=current_request_id() if request_id is None else request_id,
    )
    if total <= SYNC_MAX_ROWS and not force_queue:
        job = ImportJob.objects.create(
            status=ImportJob.Status.PROCESSING,
            attempts=1,
            lease_token=uuid.uuid4().hex,  # this request's run holds the job (leadlex.jobs)
            started_at=timezone.now(),
            heartbeat_at=timezone.now(),
            **common,
        )
        source = (
            iter_rows(data.rows)
            if data.rows is not None
            else iter_csv(
                data.csv_data or "",
                has_header=params.has_header,
                mapping=params.mapping,
                encoding=params.encoding or "utf-8",
                delimiter=params.delimiter or ",",
            )
        )
        return import_job_run_inline(
            job=job, source=source, params=params, batch_size=max(SYNC_MAX_ROWS, conf.batch_size())
        )

    # Queued: the payload goes to storage first (no slow I/O inside a transaction),
    # then the job row, and the task only once that row is committed.
    suffix = "ndjson" if data.rows is not None else "csv"
    payload_key = f"imports/{job_id.hex}/payload.{suffix}"
    writer = storage.open_writer(
        payload_key, storage.ObjectMeta(content_type="application/x-ndjson" if suffix == "ndjson" else "text/csv")
    )
    try:
        if data.rows is not None:
            buffer = bytearray()
            for line in rows_to_ndjson(data.rows):
                buffer += line
                if len(buffer) >= 1024 * 1024:
                    writer.write(bytes(buffer))
                    buffer.clear()
            writer.write(bytes(buffer))
        else:
            raw = data.csv_data
            writer.write(raw.encode("utf-8") if isinstance(raw, str) else (raw or b""))
        writer.close()
    except BaseException:
        writer.abort()
        raise
    with transaction.atomic():
        job = ImportJob.objects.create(status=ImportJob.Status.QUEUED, payload_key=payload_key, **common)
        if enqueue:
            import_job_enqueue_on_commit(job_id=job.id)
    return job


def _check_csv_header(data: str | bytes, params: ImportParams) -> None:
    """Mapping and header must fit before anything is stored or counted."""
    try:
        rows = iter_csv(
            data,
            has_header=params.has_header,
            mapping=params.mapping,
            encoding=params.encoding or "utf-8",
            delimiter=params.delimiter or ",",
        )
        next(iter(rows), None)
    except MappingError as exc:
        raise ValidationFailed(str(exc), details={"field": "mapping"}) from None
