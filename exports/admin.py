"""Admin for export jobs, of both dialects in one list, and the export actions that
the contacts and workspace admins offer.

No page contains a download URL that works by itself (a presigned S3 URL or a
signed local link): the download link points at an admin view that checks the
user's permission and redirects to a URL signed at that moment.
"""

from __future__ import annotations

import json
from typing import Any

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.defaultfilters import filesizeformat
from django.urls import path, reverse
from django.utils.html import format_html

from exports.close.admin import close_export_start_view
from exports.close.ids import export_id_parse, export_public_id, public_status
from exports.engine import export_job_cancel, export_job_download_url, export_job_retry
from exports.models import CLOSE_KINDS, ExportJob


def _is_close(job: ExportJob) -> bool:
    return job.kind in CLOSE_KINDS


class DialectFilter(admin.SimpleListFilter):
    """Which API dialect queued the job: LeadLex (``/v1/contacts/exports``) or Close (``/v1/export/…``)."""

    title = "dialect"
    parameter_name = "dialect"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, str]]:
        return [("leadlex", "LeadLex"), ("close", "Close")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[ExportJob]) -> QuerySet[ExportJob]:
        if self.value() == "close":
            return queryset.filter(kind__in=CLOSE_KINDS)
        if self.value() == "leadlex":
            return queryset.exclude(kind__in=CLOSE_KINDS)
        return queryset


@admin.register(ExportJob)
class ExportJobAdmin(admin.ModelAdmin):
    list_display = (
        "public_id",
        "workspace",
        "dialect",
        "kind",
        "format",
        "status",
        "progress_bar",
        "counts",
        "size",
        "created_at",
        "completed_at",
    )
    list_filter = (DialectFilter, "status", "kind", "format")
    list_select_related = ("workspace",)
    search_fields = ("=id", "workspace__name", "=request_id")
    date_hierarchy = "created_at"
    actions = ["cancel_jobs", "retry_jobs"]
    change_list_template = "admin/exports/exportjob/change_list.html"  # adds "Start a Close-style export"
    fields = (
        "id",
        "public_id",
        "workspace",
        "dialect",
        "kind",
        "format",
        "status",
        "public_status",
        "progress_bar",
        "counts",
        "row_count",
        "size",
        "download_link",
        "parameters_pretty",
        "api_key",
        "created_by_user",
        "sha256",
        "storage_key",
        "request_id",
        "attempts",
        "error",
        "error_kind",
        "created_at",
        "started_at",
        "heartbeat_at",
        "completed_at",
        "expires_at",
        "checkpoint",
    )
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # jobs are started by the API, the command, the Close start form and the actions below

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[ExportJob], search_term: str
    ) -> tuple[QuerySet[ExportJob], bool]:
        # A Close id (expo_ + hex) as an admin pastes it from an API response or an e-mail.
        pk = export_id_parse(search_term.strip())
        if pk is not None:
            return queryset.filter(pk=pk), False
        return super().get_search_results(request, queryset, search_term)

    @admin.display(description="id", ordering="id")
    def public_id(self, obj: ExportJob) -> str:
        """The id the job's API dialect shows its clients."""
        return export_public_id(obj) if _is_close(obj) else str(obj.pk)

    @admin.display(description="dialect")
    def dialect(self, obj: ExportJob) -> str:
        return "Close" if _is_close(obj) else "LeadLex"

    @admin.display(description="status in the API")
    def public_status(self, obj: ExportJob) -> str:
        return public_status(obj) if _is_close(obj) else obj.status

    @admin.display(description="progress")
    def progress_bar(self, obj: ExportJob) -> str:
        percent = obj.progress_percent
        if percent is None:
            return "—"
        return format_html('<progress value="{}" max="100" style="width:8em"></progress> {}%', percent, percent)

    @admin.display(description="rows (done / total)")
    def counts(self, obj: ExportJob) -> str:
        total = "?" if obj.total_count is None else f"{obj.total_count:,}"
        return f"{obj.processed_count:,} / {total}"

    @admin.display(description="size")
    def size(self, obj: ExportJob) -> str:
        return filesizeformat(obj.byte_size) if obj.byte_size is not None else "—"

    @admin.display(description="parameters")
    def parameters_pretty(self, obj: ExportJob) -> str:
        # Keys starting with "_" are the engine's working state (e.g. the columns it settled on), not the request.
        shown = {k: v for k, v in (obj.parameters or {}).items() if not k.startswith("_")}
        return format_html(
            "<pre style='white-space: pre-wrap'>{}</pre>", json.dumps(shown, indent=2, ensure_ascii=False)
        )

    @admin.display(description="download")
    def download_link(self, obj: ExportJob) -> str:
        if obj.status != ExportJob.Status.COMPLETED:
            return "—"
        url = reverse("admin:exports_exportjob_download", args=[obj.pk])
        return format_html('<a href="{}">Download ({})</a>', url, self.size(obj))

    def get_urls(self) -> list:
        download = self.admin_site.admin_view(self.download_view)
        start = self.admin_site.admin_view(self.close_start_view)
        return [
            path("<uuid:job_id>/download/", download, name="exports_exportjob_download"),
            path("close/start/", start, name="exports_exportjob_close_start"),
            *super().get_urls(),
        ]

    def download_view(self, request: HttpRequest, job_id: Any) -> HttpResponse:
        job = get_object_or_404(ExportJob, pk=job_id)
        if not self.has_view_permission(request, job):
            raise PermissionDenied
        url = export_job_download_url(job, base_url=request.build_absolute_uri("/"))
        if not url:
            self.message_user(request, "This export has no file (any more).", messages.WARNING)
            return HttpResponseRedirect(reverse("admin:exports_exportjob_change", args=[job.pk]))
        return HttpResponseRedirect(url)

    def close_start_view(self, request: HttpRequest) -> HttpResponse:
        return close_export_start_view(self, request)

    @admin.action(description="Cancel selected export jobs")
    def cancel_jobs(self, request: HttpRequest, queryset: QuerySet[ExportJob]) -> None:
        done = sum(export_job_cancel(job=job) for job in queryset)
        self.message_user(request, f"Cancelled {done} export job(s).", messages.SUCCESS if done else messages.WARNING)

    @admin.action(description="Retry selected export jobs")
    def retry_jobs(self, request: HttpRequest, queryset: QuerySet[ExportJob]) -> None:
        done = sum(export_job_retry(job=job) for job in queryset)
        self.message_user(
            request, f"Queued {done} export job(s) again.", messages.SUCCESS if done else messages.WARNING
        )
