"""Uploads: files sent straight to storage, for imports and previews of any size.

    upload_create ── pending: links to PUT the file in one part, or in parts
        (S3: presigned URLs; the embedded profile: signed links Django streams to disk)
    upload_complete ── completed: every part there, in its size; joined into one file
        (an import or a preview naming a pending upload completes it)
    imports and previews read ``upload.key`` from storage, streamed
    uploads_sweep_expired ── expired: the bytes deleted, unless an unfinished import reads them

An upload can be read by several imports and previews (a preview, then the import; an
import again with a better mapping) until it expires or is deleted.
"""

from __future__ import annotations

import logging
import math
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db import transaction
from django.utils import timezone

from imports import conf
from imports.models import UPLOAD_ID_PREFIX, ImportJob, Upload
from leadlex import storage
from leadlex.errors import ApiError, NotFound, PayloadTooLarge, ValidationFailed
from leadlex.models import ApiKey, Workspace

logger = logging.getLogger("leadlex.imports")

MIN_PART_SIZE = 16 * 1024 * 1024  # S3 wants >= 5 MiB for every part but the last
MAX_PARTS = 1000  # S3 allows 10,000; 1,000 links keep the answer small


class UploadIncomplete(ApiError):
    status_code = 409
    code = "upload_incomplete"


class UploadInUse(ApiError):
    status_code = 409
    code = "upload_in_use"


class UploadExpired(ApiError):
    status_code = 410
    code = "upload_expired"


@dataclass(frozen=True)
class PartLink:
    part_number: int
    url: str
    size: int | None  # the part's exact size; None: any size up to the one-PUT limit

    def as_dict(self) -> dict[str, Any]:
        return {"part_number": self.part_number, "url": self.url, "size": self.size}


_UNFINISHED_JOBS = (ImportJob.Status.QUEUED, ImportJob.Status.PROCESSING)


def parse_upload_id(value: Any) -> uuid.UUID | None:
    """``upl_<32 hex>`` (also a bare UUID) → the row's UUID; None for anything else."""
    if not isinstance(value, str):
        return None
    text = value[len(UPLOAD_ID_PREFIX) :] if value.startswith(UPLOAD_ID_PREFIX) else value
    try:
        return uuid.UUID(text)
    except ValueError:
        return None


def _too_large(size: int | None = None, *, field: str | None = None) -> PayloadTooLarge:
    """413 for a file over the upload limit (``size``: its size, when known)."""
    limit = conf.upload_max_bytes()
    details: dict[str, Any] = {"limit_bytes": limit, **({"field": field} if field else {})}
    told = f" ({size:,} bytes)" if size is not None else ""
    return PayloadTooLarge(f"The file{told} exceeds the {limit:,} bytes an upload takes.", details=details)


def _part_plan(size: int | None, multipart: bool) -> tuple[int, int]:
    """(part size, part count) of a file of ``size`` bytes (None: not declared)."""
    single_max = conf.upload_single_part_max_bytes()
    if size is None:
        if multipart:
            raise ValidationFailed("size is required for an upload in parts.", details={"field": "size"})
        return single_max, 1
    if size > conf.upload_max_bytes():
        raise _too_large(size, field="size")
    if not multipart and size <= single_max:
        return size, 1
    mib = 1024 * 1024
    part_size = max(MIN_PART_SIZE, math.ceil(size / MAX_PARTS / mib) * mib)
    return part_size, max(1, math.ceil(size / part_size))


def upload_create(
    *,
    workspace: Workspace,
    api_key: ApiKey | None,
    file_name: str = "",
    size: int | None = None,
    multipart: bool = False,
    content_type: str = "",
) -> Upload:
    """A pending upload and its storage-side multipart upload. A file larger than one
    PUT takes is always sent in parts."""
    if size is not None and size > conf.upload_single_part_max_bytes():
        multipart = True
    part_size, part_count = _part_plan(size, multipart)
    upload_id = uuid.uuid4()
    key = f"uploads/{upload_id.hex}"
    multipart_id = storage.multipart_start(key)  # slow I/O before the row
    now = timezone.now()
    return Upload.objects.create(
        id=upload_id,
        workspace=workspace,
        api_key=api_key,
        file_name=file_name,
        content_type=content_type,
        size=size,
        part_size=part_size,
        part_count=part_count,
        key=key,
        multipart_id=multipart_id,
        created_at=now,
        expires_at=now + timedelta(seconds=conf.upload_ttl_seconds()),
    )


def upload_store(
    *,
    workspace: Workspace,
    chunks: Iterable[bytes],
    file_name: str = "",
    api_key: ApiKey | None = None,
    single_use: bool = False,
) -> Upload:
    """A completed upload of bytes this process holds (the admin's upload form, the
    ``import_contacts`` command's file), written to storage as they come: read by
    imports as any upload is, and deleted when it expires if no import took it.
    ``single_use``: deleted as soon as an import of it completed."""
    upload_id = uuid.uuid4()
    key = f"uploads/{upload_id.hex}"
    limit = conf.upload_max_bytes()
    writer = storage.open_writer(key, storage.ObjectMeta())
    try:
        for chunk in chunks:
            if writer.size + len(chunk) > limit:
                raise _too_large()
            writer.write(chunk)
        size = writer.close()
    except BaseException:
        writer.abort()
        raise
    now = timezone.now()
    return Upload.objects.create(
        id=upload_id,
        workspace=workspace,
        api_key=api_key,
        status=Upload.Status.COMPLETED,
        file_name=file_name,
        size=size,
        part_size=size,
        part_count=1,
        key=key,
        multipart_id="",
        single_use=single_use,
        created_at=now,
        completed_at=now,
        expires_at=now + timedelta(seconds=conf.upload_ttl_seconds()),
    )


def upload_links(*, upload: Upload, base_url: str | None = None) -> list[PartLink]:
    """Where to PUT each part of a pending upload (none once it is completed); the links
    work until the upload expires."""
    if upload.status != Upload.Status.PENDING:
        return []
    expires = max(1, int((upload.expires_at - timezone.now()).total_seconds()))
    links = []
    for number in range(1, upload.part_count + 1):
        exact = _expected_size(upload, number)
        url = storage.presigned_part(
            upload.key,
            upload_id=upload.multipart_id,
            part_number=number,
            part_size=upload.part_size,
            expires=expires,
            base_url=base_url,
        )
        links.append(PartLink(number, url, exact))
    return links


def _expected_size(upload: Upload, number: int) -> int | None:
    if upload.size is None:
        return None
    if number < upload.part_count:
        return upload.part_size
    return upload.size - upload.part_size * (upload.part_count - 1)


def upload_parts_received(*, upload: Upload) -> list[int]:
    """The numbers of the parts storage holds whole so far (of a pending upload)."""
    if upload.status != Upload.Status.PENDING:
        return []
    return sorted(storage.multipart_parts(upload.key, upload.multipart_id))


def upload_complete(*, upload: Upload) -> Upload:
    """Join the parts into the stored file (idempotent): every part must be there in its
    size, else 409 ``upload_incomplete`` naming the missing and mis-sized ones."""
    if upload.status == Upload.Status.COMPLETED:
        return upload
    upload_check_alive(upload)
    size = storage.stored_size(upload.key)
    if size is None:  # not joined yet (a request that joined it and died leaves it joined)
        try:
            received = storage.multipart_parts(upload.key, upload.multipart_id)
        except Exception:  # the storage's upload is gone: completed by a concurrent request?
            if (size := storage.stored_size(upload.key)) is not None:
                return _mark_completed(upload, size)
            raise
        missing = [n for n in range(1, upload.part_count + 1) if n not in received]
        if missing and (size := storage.stored_size(upload.key)) is not None:  # joined meanwhile
            return _mark_completed(upload, size)
        wrong = [
            {"part_number": n, "size": received[n], "expected": expected}
            for n in range(1, upload.part_count + 1)
            if n in received and (expected := _expected_size(upload, n)) is not None and received[n] != expected
        ]
        extra = sorted(n for n in received if n > upload.part_count)
        if missing or wrong or extra:
            raise UploadIncomplete(_incomplete_message(missing, wrong, extra), details=_details(missing, wrong, extra))
        size = sum(received[n] for n in range(1, upload.part_count + 1))
        if size > conf.upload_max_bytes():
            raise _too_large(size)
        try:
            storage.multipart_finish(upload.key, upload.multipart_id, part_count=upload.part_count, size=size)
        except storage.UploadBusy:
            raise UploadIncomplete(
                "A part of this upload is still being sent; complete it once every PUT has answered.",
                details={"busy": True},
            ) from None
        except Exception:
            # Another request completed it meanwhile: its answer is ours.
            upload.refresh_from_db()
            if upload.status == Upload.Status.COMPLETED or storage.stored_size(upload.key) is not None:
                return _mark_completed(upload, storage.stored_size(upload.key))
            raise
    return _mark_completed(upload, size)


def _mark_completed(upload: Upload, size: int | None) -> Upload:
    now = timezone.now()
    Upload.objects.filter(id=upload.id, status=Upload.Status.PENDING).update(
        status=Upload.Status.COMPLETED, size=size, completed_at=now
    )
    upload.refresh_from_db()
    if upload.status != Upload.Status.COMPLETED:  # expired or deleted meanwhile
        upload_check_alive(upload)
    return upload


def _incomplete_message(missing: list[int], wrong: list[dict[str, int]], extra: list[int]) -> str:
    parts = []
    if missing:
        shown = ", ".join(str(n) for n in missing[:10]) + (", …" if len(missing) > 10 else "")
        parts.append(f"{len(missing)} part(s) not received yet ({shown})")
    if wrong:
        first = wrong[0]
        parts.append(
            f"{len(wrong)} part(s) of the wrong size (part {first['part_number']}: "
            f"{first['size']:,} bytes, expected {first['expected']:,})"
        )
    if extra:
        parts.append(f"parts beyond the last one ({', '.join(str(n) for n in extra[:10])})")
    return "The upload is not complete: " + "; ".join(parts) + ". PUT them (again) and complete it."


def _details(missing: list[int], wrong: list[dict[str, int]], extra: list[int]) -> dict[str, Any]:
    return {"missing_parts": missing[:1000], "wrong_size_parts": wrong[:1000], "extra_parts": extra[:1000]}


def upload_check_alive(upload: Upload) -> None:
    """410 for an upload whose time is up, swept or not yet."""
    if upload.status == Upload.Status.EXPIRED or upload.expires_at <= timezone.now():
        raise UploadExpired(
            f"Upload {upload.public_id} has expired and its file is deleted; upload the file again.",
            details={"upload_id": upload.public_id},
        )


def upload_get(*, workspace: Workspace, upload_id: Any, field: str | None = None) -> Upload:
    """The workspace's upload of that id (``upl_…`` or a bare UUID); 404 otherwise, as for
    another workspace's (``field``: the parameter that named it)."""
    parsed = parse_upload_id(upload_id)
    upload = Upload.objects.filter(workspace=workspace, id=parsed).first() if parsed else None
    if upload is None:
        raise NotFound(f"No upload {upload_id!r} in this workspace.", details={"field": field} if field else None)
    return upload


def upload_for_reading(*, workspace: Workspace, upload_id: Any) -> Upload:
    """The workspace's upload an import or preview names, completed (a pending one is
    completed now); 404 for an unknown id, 409 or 410 for one that cannot be read."""
    upload = upload_get(workspace=workspace, upload_id=upload_id, field="upload_id")
    upload_check_alive(upload)
    return upload_complete(upload=upload)


def upload_delete(*, upload: Upload) -> Upload:
    """Delete the upload's bytes now (its row stays, "expired"); 409 while an import reads it."""
    with transaction.atomic():
        locked = Upload.objects.select_for_update().get(id=upload.id)
        if locked.import_jobs.filter(status__in=_UNFINISHED_JOBS).exists():
            raise UploadInUse(
                f"An import is reading upload {upload.public_id}; delete it once the import has finished.",
                details={"upload_id": upload.public_id},
            )
        was = locked.status
        Upload.objects.filter(id=upload.id).update(status=Upload.Status.EXPIRED)
    if was != Upload.Status.EXPIRED:
        _discard(locked, was_pending=was == Upload.Status.PENDING)
    upload.refresh_from_db()
    return upload


def _discard(upload: Upload, *, was_pending: bool) -> None:
    if was_pending:
        storage.multipart_abort(upload.key, upload.multipart_id)
    storage.delete(upload.key)


def uploads_sweep_expired(*, now: datetime | None = None, limit: int = 200) -> int:
    """Delete the bytes of uploads past their expiry that no unfinished import reads;
    the number swept."""
    now = now or timezone.now()
    due = (
        Upload.objects.filter(status__in=(Upload.Status.PENDING, Upload.Status.COMPLETED), expires_at__lt=now)
        .exclude(import_jobs__status__in=_UNFINISHED_JOBS)
        .order_by("expires_at")[:limit]
    )
    swept = 0
    for upload in list(due):
        with transaction.atomic():
            claimed = (
                Upload.objects.filter(id=upload.id, status=upload.status)
                .exclude(import_jobs__status__in=_UNFINISHED_JOBS)
                .update(status=Upload.Status.EXPIRED)
            )
        if claimed and Upload.objects.filter(id=upload.id, import_jobs__status__in=_UNFINISHED_JOBS).exists():
            # An import that created its job while the claim waited for its lock: the
            # claim's check could not see that job, this fresh statement does.
            Upload.objects.filter(id=upload.id).update(status=upload.status)
            continue
        if claimed:
            try:
                _discard(upload, was_pending=upload.status == Upload.Status.PENDING)
            except Exception:  # storage down: the next sweep tries again
                Upload.objects.filter(id=upload.id).update(status=upload.status)
                logger.warning("could not delete the bytes of expired upload %s", upload.public_id, exc_info=True)
                continue
            swept += 1
    return swept
