"""Export jobs: one row per export, whatever surface started it (API dialect,
admin, command). The engine moves it through its states and checkpoints it."""

from __future__ import annotations

import uuid
from typing import ClassVar

from django.conf import settings
from django.db import models
from django.utils import timezone

from leadlex.jobs import FailureKind
from leadlex.models import ApiKey, Workspace


class ExportJob(models.Model):
    class Status(models.TextChoices):
        QUEUED = "queued"
        PROCESSING = "processing"
        COMPLETED = "completed"
        FAILED = "failed"
        CANCELLED = "cancelled"
        EXPIRED = "expired"

    class Format(models.TextChoices):
        NDJSON = "ndjson"
        CSV = "csv"
        JSON = "json"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="export_jobs")
    api_key = models.ForeignKey(ApiKey, on_delete=models.SET_NULL, null=True, blank=True, related_name="export_jobs")
    created_by_user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="export_jobs"
    )
    # What is exported and how: "contacts" (the LeadLex dialect) or one of CLOSE_KINDS.
    kind = models.CharField(max_length=40)
    format = models.CharField(max_length=10, choices=Format.choices)
    parameters = models.JSONField(default=dict, blank=True)

    status = models.CharField(max_length=12, choices=Status.choices, default=Status.QUEUED)
    total_count = models.BigIntegerField(null=True, blank=True)
    processed_count = models.BigIntegerField(default=0)
    row_count = models.BigIntegerField(null=True, blank=True)
    byte_size = models.BigIntegerField(null=True, blank=True)
    sha256 = models.CharField(max_length=64, blank=True)
    storage_key = models.CharField(max_length=200, blank=True)
    # Where a resumed run picks up: keyset cursor, multipart upload id and parts.
    checkpoint = models.JSONField(default=dict, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    # Set by the worker that claimed the job; every checkpoint and the final update
    # are conditional on it, so a worker that lost its claim (cancelled, or taken
    # over after it went stale) can never write over the new owner's progress.
    lease_token = models.CharField(max_length=32, blank=True, editable=False)
    error = models.TextField(blank=True)
    error_kind = models.CharField(max_length=20, blank=True, choices=FailureKind.choices)
    # X-Request-ID of the request (API or admin) that created the job; "" from a
    # command. The worker's log lines for the job carry it (leadlex.middleware).
    request_id = models.CharField(max_length=128, blank=True, editable=False)

    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(auto_now=True)
    started_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["workspace", "kind", "-created_at"], name="exportjob_ws_kind_created"),
            models.Index(fields=["status", "heartbeat_at"], name="exportjob_status_heartbeat"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} export {self.id} ({self.status})"

    @property
    def progress_percent(self) -> int | None:
        if not self.total_count:
            return 100 if self.status == self.Status.COMPLETED else None
        return min(100, int(self.processed_count * 100 / self.total_count))


# --- The Close dialect's kinds -----------------------------------------------------------
# POST /v1/export/lead/ queues one of LEAD_KINDS (by the body's ``type``), POST
# /v1/export/opportunity/ queues OPPORTUNITY_KIND. Every other kind is the LeadLex dialect's.
LEAD_KINDS = {"leads": "close_leads", "contacts": "close_contacts", "lead_opps": "close_lead_opps"}
OPPORTUNITY_KIND = "close_opportunities"
CLOSE_KINDS = (*LEAD_KINDS.values(), OPPORTUNITY_KIND)


class CloseExportManager(models.Manager["CloseExport"]):
    def get_queryset(self) -> models.QuerySet[CloseExport]:
        return super().get_queryset().filter(kind__in=CLOSE_KINDS)


class CloseExport(ExportJob):
    """The Close-style jobs as a model of their own: a proxy (no table), whose
    manager sees only ``CLOSE_KINDS``. The job admin shows them under its dialect filter."""

    objects: ClassVar[CloseExportManager] = CloseExportManager()  # a proxy narrows its manager to its kinds

    class Meta:
        proxy = True
        verbose_name = "Close-style export"
        verbose_name_plural = "Close-style exports"
