"""The import workflow: ``import_request`` starts an import from any surface (the API,
the admin, the ``import_contacts`` command).

    import_request ─┬─ ≤ 500 rows: one batch in the request → job "completed"
                    └─ more: payload → storage, job "queued" → task → imports.engine.import_job_run
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import uuid
import zlib
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from typing import IO, Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from imports import conf
from imports.dialect import Dialect, DialectError, encoding_label, resolve_dialect
from imports.engine import import_job_enqueue_on_commit, import_job_run_inline
from imports.formats import FileFormatError, open_csv_bytes, sniff_format, zip_is_workbook
from imports.models import ImportJob, ImportMapping, Upload
from imports.parsing import (
    MappingError,
    count_file_records,
    file_records,
    iter_file,
    iter_rows,
    rows_to_ndjson,
    validate_mapping,
)
from imports.proposal import propose_mapping, proposed_mapping
from imports.serializers import ImportInput, ImportParams
from imports.uploads import upload_check_alive, upload_delete, upload_for_reading
from leadlex import storage
from leadlex.errors import ApiError, ValidationFailed
from leadlex.middleware import current_request_id
from leadlex.models import ApiKey, Workspace

SYNC_MAX_ROWS = 500

# At most this many rows in a file counted before its import starts (one sent in the
# request, or stored and no larger than a request body may be); a larger stored file
# (an upload, the command's file) is bounded by its size instead and counted as it runs.
MAX_ROWS = 1_000_000


# Opens a file as a binary stream; an Opener may also give the text of a csv string
# (parsing reads both).
BinaryOpener = Callable[[], AbstractContextManager[IO[bytes]]]
Opener = Callable[[], AbstractContextManager[IO[bytes] | str]]


def _opener(data: ImportInput) -> Opener:
    """Opens the request's file (its bytes, a csv string, or a stored file) as often as
    it is read: once for its start, once for its header, once to count."""
    raw = data.csv_data
    if isinstance(raw, str):  # read as the text it is (no encoded copy)
        return lambda: contextlib.nullcontext(raw)
    return _binary_opener(data)


def _binary_opener(data: ImportInput) -> BinaryOpener:
    if data.upload is not None:
        key = data.upload.key
        return lambda: storage.open_reader(key)
    raw = data.csv_data if isinstance(data.csv_data, bytes) else b""
    return lambda: contextlib.nullcontext(io.BytesIO(raw))


def import_file_resolve(*, data: ImportInput, params: ImportParams) -> tuple[ImportParams, Dialect | None]:
    """``params`` with what the file is and how to read it: its format and compression
    (imports.formats), and for CSV its encoding and delimiter, declared or found from
    its first bytes (imports.dialect), with the reasons for a person (None for a
    workbook). A file that cannot be read so is a 400."""
    if isinstance(data.csv_data, str):  # a csv string of a JSON body: text already
        return _with_dialect(params, sample=data.csv_data, complete=True, compression=None)
    return import_file_sniff(open_file=_binary_opener(data), params=params)


def import_file_sniff(*, open_file: BinaryOpener, params: ImportParams) -> tuple[ImportParams, Dialect | None]:
    """What the file ``open_file()`` opens is and how to read it (see ``import_file_resolve``),
    with the reasons for a person (None for a workbook). It reads only the file's start
    (a zip or a workbook: its directory too)."""
    with open_file() as fh:
        head = fh.read(4096)
    file_format, compression = sniff_format(head, file_name=params.file_name)
    if compression == "zip":
        with open_file() as fh:
            if zip_is_workbook(fh):
                file_format, compression = "xlsx", None
    if file_format == "xlsx":
        if params.encoding or params.delimiter:
            field = "encoding" if params.encoding else "delimiter"
            raise ValidationFailed(f"{field} applies to CSV files, not to Excel workbooks.", details={"field": field})
        return dataclasses.replace(params, format="xlsx", compression=None), None
    sample_bytes = conf.sniff_bytes()
    with open_file() as fh, _refused_as_400():
        try:
            stream = open_csv_bytes(fh, compression, conf.expand_limits())
            sample = stream.read(sample_bytes)
            complete = len(sample) < sample_bytes or not stream.read(1)
        except (OSError, EOFError, zlib.error) as exc:
            raise ValidationFailed(f"The {compression} file is broken: {exc}.", details={"field": "file"}) from None
    return _with_dialect(params, sample=sample, complete=complete, compression=compression)


@contextlib.contextmanager
def _refused_as_400() -> Iterator[None]:
    """A file the readers refuse (its dialect, its format, its header against the
    mapping) is the request's 400, naming the field."""
    try:
        yield
    except (DialectError, FileFormatError) as exc:
        raise ValidationFailed(str(exc), details={"field": exc.field}) from None
    except MappingError as exc:
        raise ValidationFailed(str(exc), details={"field": "mapping"}) from None


def _with_dialect(
    params: ImportParams, *, sample: str | bytes, complete: bool, compression: str | None
) -> tuple[ImportParams, Dialect]:
    """``params`` of a CSV read with the dialect ``sample`` shows (or the request declared)."""
    with _refused_as_400():
        dialect = resolve_dialect(sample, complete=complete, encoding=params.encoding, delimiter=params.delimiter)
    resolved = dataclasses.replace(
        params, format="csv", compression=compression, encoding=dialect.encoding, delimiter=dialect.delimiter
    )
    return resolved, dialect


PREVIEW_ROWS = 20


def import_upload_resolve(
    *, workspace: Workspace, data: ImportInput, params: ImportParams
) -> tuple[ImportInput, ImportParams]:
    """An input naming an upload, as its stored file (the upload completed if it was
    pending); any other input as it is."""
    if data.upload_id is None:
        return data, params
    upload = upload_for_reading(workspace=workspace, upload_id=data.upload_id)
    data = dataclasses.replace(data, upload=upload)
    return data, dataclasses.replace(params, file_name=params.file_name or upload.file_name)


def _countable(data: ImportInput) -> bool:
    """Whether a file is counted before its import starts: one in the request, or an
    upload no larger than a request body may be."""
    return data.upload is None or (data.upload.size or 0) <= settings.LEADLEX_MAX_BODY_BYTES


def import_preview(*, workspace: Workspace, data: ImportInput, params: ImportParams) -> dict[str, Any]:
    """What an import of this file would read, without writing anything: its format,
    encoding and delimiter (with the reasons), its header and first rows as parsed, and
    a proposed mapping (imports.proposal). ``row_count`` is None for a stored file too
    large to count in a request."""
    data, params = import_upload_resolve(workspace=workspace, data=data, params=params)
    if data.csv_data is None and data.upload is None:
        raise ValidationFailed(
            "A preview reads a file (csv); rows are contact objects already.", details={"field": "rows"}
        )
    resolved, dialect = import_file_resolve(data=data, params=params)
    open_file = _opener(data)
    records = import_file_head(
        open_file=open_file, params=resolved, limit=PREVIEW_ROWS + (1 if params.has_header else 0)
    )
    header = records[0] if params.has_header and records else None
    rows = records[1:] if params.has_header else records
    width = max((len(record) for record in records), default=0)
    columns = header if header is not None else [str(index) for index in range(width)]
    proposals = propose_mapping(columns, rows)
    return {
        "format": resolved.format,
        "compression": resolved.compression,
        "sheet": resolved.sheet,
        "encoding": encoding_label(resolved.encoding or "utf-8") if dialect else None,
        "encoding_reason": dialect.encoding_reason if dialect else None,
        "delimiter": resolved.delimiter if dialect else None,
        "delimiter_reason": dialect.delimiter_reason if dialect else None,
        "has_header": params.has_header,
        "header": header,
        "rows": rows,
        "row_count": _count(open_file, resolved) if _countable(data) else None,
        "proposed_mapping": proposed_mapping(proposals),
        "columns": [proposal.as_dict() for proposal in proposals],
    }


MAX_MAPPINGS = 500


def import_mapping_create(*, workspace: Workspace, name: str, mapping: Any) -> ImportMapping:
    """Save a named mapping (column → contact field) for the workspace's imports."""
    with _refused_as_400():
        clean = validate_mapping(mapping, has_header=True)
    if clean is None:
        raise ValidationFailed("mapping is required.", details={"field": "mapping"})
    if ImportMapping.objects.filter(workspace=workspace).count() >= MAX_MAPPINGS:
        raise ValidationFailed(f"A workspace keeps at most {MAX_MAPPINGS} mappings.", details={"field": "name"})
    try:
        with transaction.atomic():
            return ImportMapping.objects.create(workspace=workspace, name=name, mapping=clean)
    except IntegrityError:
        raise ValidationFailed(
            f"A mapping named {name!r} already exists in this workspace.", details={"field": "name"}
        ) from None


def import_mapping_apply(*, workspace: Workspace, params: ImportParams) -> ImportParams:
    """``params`` with the mapping of the preset it names (this workspace's only)."""
    if params.mapping_preset is None:
        return params
    preset = ImportMapping.objects.filter(workspace=workspace, name=params.mapping_preset).first()
    if preset is None:
        raise ValidationFailed(
            f"This workspace has no mapping named {params.mapping_preset!r} (GET /v1/import/mappings lists them).",
            details={"field": "mapping_preset"},
        )
    try:
        mapping = validate_mapping(preset.mapping, has_header=params.has_header)
    except MappingError as exc:
        raise ValidationFailed(f"mapping_preset {preset.name!r}: {exc}", details={"field": "mapping_preset"}) from None
    return dataclasses.replace(params, mapping=mapping)


def import_file_head(*, open_file: Opener, params: ImportParams, limit: int = 6) -> list[list[str]]:
    """The first ``limit`` non-blank records of a file read with ``params`` (resolved)."""
    records: list[list[str]] = []
    with open_file() as fh, _refused_as_400():
        for fields, _problem in file_records(fh, params.file_spec()):
            if fields and any(cell.strip() for cell in fields):
                records.append(fields)
                if len(records) >= limit:
                    break
    return records


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
    if data.rows is None and data.csv_data is None and data.upload_id is None:
        raise ValidationFailed("Give either rows or csv.")
    data, params = import_upload_resolve(workspace=workspace, data=data, params=params)
    params = import_mapping_apply(workspace=workspace, params=params)
    total: int | None
    if data.rows is not None:
        total = len(data.rows)
    else:
        params, _dialect_found = import_file_resolve(data=data, params=params)
        open_file = _opener(data)
        _check_header(open_file, params)  # mapping and header must fit before anything is stored
        total = _count(open_file, params) if _countable(data) else None
    if total is not None and total > MAX_ROWS:
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
        total_bytes=data.upload.size if data.upload is not None else None,
        upload=data.upload,
        request_id=current_request_id() if request_id is None else request_id,
    )
    if total is not None and total <= SYNC_MAX_ROWS and not force_queue:
        job = ImportJob.objects.create(
            status=ImportJob.Status.PROCESSING,
            attempts=1,
            lease_token=uuid.uuid4().hex,  # this request's run holds the job (leadlex.jobs)
            started_at=timezone.now(),
            heartbeat_at=timezone.now(),
            **common,
        )
        batch_size = max(SYNC_MAX_ROWS, conf.batch_size())
        if data.rows is not None:
            return import_job_run_inline(job=job, source=iter_rows(data.rows), params=params, batch_size=batch_size)
        with open_file() as fh:
            source = iter_file(fh, params.file_spec(), has_header=params.has_header, mapping=params.mapping)
            finished = import_job_run_inline(job=job, source=source, params=params, batch_size=batch_size)
        # An upload's file stays for other imports until it expires, unless it was one import's.
        if data.upload is not None and data.upload.single_use:  # one import's file (the admin's)
            with contextlib.suppress(ApiError):  # read by another import meanwhile: it expires later
                upload_delete(upload=data.upload)
        return finished

    if data.upload is not None:  # the file is in storage already: the job reads it there
        with transaction.atomic():
            _upload_still_there(data.upload)
            job = ImportJob.objects.create(status=ImportJob.Status.QUEUED, payload_key=data.upload.key, **common)
            if enqueue:
                import_job_enqueue_on_commit(job_id=job.id)
        return job

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


def _upload_still_there(upload: Upload) -> None:
    """Inside the transaction that creates the job: the upload is not expiring under it
    (the sweeper skips an upload an unfinished job reads, and waits for this lock)."""
    upload_check_alive(Upload.objects.select_for_update().get(id=upload.id))


def _check_header(open_file: Opener, params: ImportParams) -> None:
    with open_file() as fh, _refused_as_400():
        next(iter(iter_file(fh, params.file_spec(), has_header=params.has_header, mapping=params.mapping)), None)


def _count(open_file: Opener, params: ImportParams) -> int:
    with open_file() as fh, _refused_as_400():
        return count_file_records(fh, params.file_spec(), has_header=params.has_header)
