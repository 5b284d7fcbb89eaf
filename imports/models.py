"""Import jobs, their row errors, and the Idempotency-Key ledger.

Every import, synchronous (≤ 500 rows, done in the request) or queued, is one
``ImportJob`` row: the API, the admin upload form and the ``import_contacts``
command all go through the same engine and leave the same record.
"""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.utils import timezone

from leadlex.jobs import FailureKind
from leadlex.models import ApiKey, Workspace

JOB_ID_PREFIX = "imp_"
UPLOAD_ID_PREFIX = "upl_"


class Upload(models.Model):
    """A file a client sends straight to storage (imports.uploads), in one PUT or in
    parts, for imports and previews to read by ``upload_id``. Its bytes are deleted
    when it expires (or is deleted), never while an import that reads it is unfinished."""

    class Status(models.TextChoices):
        PENDING = "pending"  # waiting for its bytes
        COMPLETED = "completed"  # stored whole: imports and previews can read it
        EXPIRED = "expired"  # its bytes are gone (expired or deleted)

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="uploads")
    api_key = models.ForeignKey(ApiKey, on_delete=models.SET_NULL, null=True, blank=True, related_name="uploads")
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.PENDING)
    file_name = models.CharField(max_length=255, blank=True)
    content_type = models.CharField(max_length=255, blank=True)
    # Declared by the client (None: not said; then one part up to the single-PUT limit),
    # then the stored size once completed.
    size = models.BigIntegerField(null=True, blank=True)
    part_size = models.BigIntegerField()
    part_count = models.PositiveIntegerField()
    key = models.CharField(max_length=200, editable=False)
    multipart_id = models.CharField(max_length=1024, editable=False)  # the storage's upload id
    # The admin's and the command's uploads are one import's file: deleted once it completed.
    single_use = models.BooleanField(default=False)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    completed_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField()

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["status", "expires_at"], name="upload_status_expires")]

    def __str__(self) -> str:
        return f"upload {self.public_id} ({self.status})"

    @property
    def public_id(self) -> str:
        return UPLOAD_ID_PREFIX + self.id.hex


class ImportJob(models.Model):
    class Status(models.TextChoices):
        QUEUED = "queued"
        PROCESSING = "processing"
        COMPLETED = "completed"
        FAILED = "failed"

    class Source(models.TextChoices):
        ROWS = "rows"  # JSON objects; stored as NDJSON when queued
        CSV = "csv"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="import_jobs")
    api_key = models.ForeignKey(ApiKey, on_delete=models.SET_NULL, null=True, blank=True, related_name="import_jobs")
    created_by_user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="import_jobs"
    )
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.QUEUED)
    source = models.CharField(max_length=8, choices=Source.choices)
    # mapping, has_header, update_existing, tags, file name: everything but the rows.
    params = models.JSONField(default=dict, blank=True)
    # The raw rows of a queued import live in storage, never in a DB row.
    payload_key = models.CharField(max_length=200, blank=True)
    # The upload the payload is (its bytes are the upload's: the job does not delete them).
    upload = models.ForeignKey(Upload, on_delete=models.SET_NULL, null=True, blank=True, related_name="import_jobs")

    total_rows = models.BigIntegerField(null=True, blank=True)  # None until counted (a large stored file: at the end)
    processed_rows = models.BigIntegerField(default=0)
    # The stored file's size and how far the run has read it: the progress of a file too
    # large to count before it starts.
    total_bytes = models.BigIntegerField(null=True, blank=True)
    processed_bytes = models.BigIntegerField(default=0)
    created_count = models.BigIntegerField(default=0)
    updated_count = models.BigIntegerField(default=0)
    skipped_count = models.BigIntegerField(default=0)
    error_count = models.BigIntegerField(default=0)
    first_errors = models.JSONField(default=list, blank=True, help_text="The first 100 row errors.")
    errors_key = models.CharField(max_length=200, blank=True, help_text="Storage key of the full error CSV.")
    # Number of source records (data rows, header excluded) already committed: a
    # resumed run skips exactly these. Written in the same transaction as the batch.
    next_record = models.BigIntegerField(default=0)
    attempts = models.PositiveIntegerField(default=0)
    # Set by the run that claimed the job (leadlex.jobs); every batch's checkpoint and
    # the final update are conditional on it, so a run that lost the job (taken over
    # after it went stale) can never write over the new owner's progress.
    lease_token = models.CharField(max_length=32, blank=True, editable=False)
    heartbeat_at = models.DateTimeField(null=True, blank=True)

    error = models.TextField(blank=True)
    error_kind = models.CharField(max_length=20, blank=True, choices=FailureKind.choices)
    # X-Request-ID of the request (API or admin) that created the job; "" from a
    # command. The worker's log lines for the job carry it (leadlex.middleware).
    request_id = models.CharField(max_length=128, blank=True, editable=False)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(auto_now=True)
    started_at = models.DateTimeField(null=True, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["workspace", "-created_at"], name="importjob_ws_created"),
            models.Index(fields=["status", "heartbeat_at"], name="importjob_status_heartbeat"),
        ]

    def __str__(self) -> str:
        return f"import {self.public_id} ({self.status})"

    @property
    def public_id(self) -> str:
        return JOB_ID_PREFIX + self.id.hex

    @property
    def is_finished(self) -> bool:
        return self.status in (self.Status.COMPLETED, self.Status.FAILED)

    @property
    def progress_percent(self) -> int | None:
        if self.status == self.Status.COMPLETED:
            return 100
        if self.total_rows:
            return min(100, int(self.processed_rows * 100 / self.total_rows))
        if self.total_bytes:
            return min(99, int(self.processed_bytes * 100 / self.total_bytes))
        return None


class ImportRowError(models.Model):
    """One rejected row. Written in the batch's transaction (so a resumed job neither
    loses nor repeats errors) and turned into the downloadable CSV at the end."""

    job = models.ForeignKey(ImportJob, on_delete=models.CASCADE, related_name="row_errors")
    row = models.BigIntegerField()
    field = models.CharField(max_length=100, blank=True)
    code = models.CharField(max_length=50)
    message = models.TextField()

    class Meta:
        indexes = [models.Index(fields=["job", "row"], name="importrowerror_job_row")]

    def __str__(self) -> str:
        return f"row {self.row} {self.field}: {self.code}"


class ImportIdempotencyKey(models.Model):
    """``Idempotency-Key`` of POST /v1/import/contacts, per workspace, for 24 hours.

    The row is inserted *first*, as "in progress", so that of two concurrent requests
    with one key exactly one wins the unique constraint and does the import.
    """

    class State(models.TextChoices):
        IN_PROGRESS = "in_progress"
        DONE = "done"

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="import_idempotency_keys")
    key = models.CharField(max_length=255)
    body_hash = models.CharField(max_length=64)
    state = models.CharField(max_length=12, choices=State.choices, default=State.IN_PROGRESS)
    response_status = models.PositiveSmallIntegerField(null=True, blank=True)
    response_body = models.JSONField(null=True, blank=True)
    job = models.ForeignKey(ImportJob, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["workspace", "key"], name="import_idempotency_key_unique")]
        indexes = [models.Index(fields=["created_at"], name="import_idem_created")]

    def __str__(self) -> str:
        return f"Idempotency-Key {self.key} ({self.state})"


class ImportMapping(models.Model):
    """A workspace's saved mapping (column → contact field), named so that an import can
    use it by name (``mapping_preset``) instead of sending the mapping each time."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="import_mappings")
    name = models.CharField(max_length=100)
    mapping = models.JSONField()
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["workspace", "name"], name="import_mapping_name_unique")]
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name
