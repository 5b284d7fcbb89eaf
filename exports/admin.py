"""Admin for export jobs, and the export actions other apps' admins append.

A download link never embeds a presigned URL in the page: it points at an admin
view that signs a fresh one when clicked.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.defaultfilters import filesizeformat
from django.urls import path, reverse
from django.utils.html import format_html

from exports import services
from exports.engine import export_job_cancel, export_job_download_url, export_job_retry
from exports.models import ExportJob


@admin.register(ExportJob)
class ExportJobAdmin(admin.ModelAdmin):
    list_display = (
        "id",
        "workspace",
        "kind",
        "format",
        "status",
        "progress_bar",
        "counts",
        "size",
        "created_at",
        "completed_at",
    )
    list_filter = ("status", "kind", "format")
    list_select_related = ("workspace",)
    search_fields = ("=id", "workspace__name", "=request_id")
    date_hierarchy = "created_at"
    actions = ["cancel_jobs", "retry_jobs"]
    readonly_fields = (
        "id",
        "workspace",
        "kind",
        "format",
        "status",
        "progress_bar",
        "counts",
        "size",
        "download_link",
        "parameters",
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
    fields = readonly_fields

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # jobs are started by the API, the command and the contact/workspace actions

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

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

    @admin.display(description="download")
    def download_link(self, obj: ExportJob) -> str:
        if obj.status != ExportJob.Status.COMPLETED:
            return "—"
        url = reverse("admin:exports_exportjob_download", args=[obj.pk])
        return format_html('<a href="{}">Download ({})</a>', url, self.size(obj))

    def get_urls(self) -> list:
        view = self.admin_site.admin_view(self.download_view)
        return [path("<uuid:job_id>/download/", view, name="exports_exportjob_download"), *super().get_urls()]

    def download_view(self, request: HttpRequest, job_id: Any) -> HttpResponse:
        job = get_object_or_404(ExportJob, pk=job_id)
        url = export_job_download_url(job, base_url=request.build_absolute_uri("/"))
        if not url:
            self.message_user(request, "This export has no file (any more).", messages.WARNING)
            return HttpResponseRedirect(reverse("admin:exports_exportjob_change", args=[job.pk]))
        return HttpResponseRedirect(url)

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


# --- Actions for other admins (contacts.ContactAdmin, leadlex.WorkspaceAdmin) ----------
def _show_jobs(modeladmin: admin.ModelAdmin, request: HttpRequest, jobs: list[ExportJob]) -> HttpResponse:
    modeladmin.message_user(request, f"Queued {len(jobs)} export job(s).", messages.SUCCESS)
    if len(jobs) == 1:
        return HttpResponseRedirect(reverse("admin:exports_exportjob_change", args=[jobs[0].pk]))
    return HttpResponseRedirect(reverse("admin:exports_exportjob_changelist") + "?status__exact=queued")


def _export_selected(fmt: str) -> Any:
    def action(modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet) -> HttpResponse | None:
        # One job per workspace: a job never mixes two workspaces' contacts.
        by_workspace: dict[Any, list[Any]] = {}
        for workspace_id, pk in queryset.values_list("workspace_id", "pk"):
            by_workspace.setdefault(workspace_id, []).append(pk)
        from leadlex.models import Workspace

        jobs = [
            services.contact_export_start(
                workspace=Workspace.objects.get(pk=ws), format=fmt, contact_ids=ids, user=request.user
            )
            for ws, ids in by_workspace.items()
        ]
        return _show_jobs(modeladmin, request, jobs)

    action.__name__ = f"export_selected_contacts_{fmt}"
    return admin.action(description=f"Export selected contacts ({fmt.upper()})")(action)


def _export_workspace(fmt: str) -> Any:
    def action(modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet) -> HttpResponse | None:
        jobs = [services.contact_export_start(workspace=ws, format=fmt, user=request.user) for ws in queryset]
        return _show_jobs(modeladmin, request, jobs)

    action.__name__ = f"export_all_contacts_{fmt}"
    return admin.action(description=f"Export all contacts ({fmt.upper()})")(action)


CONTACT_EXPORT_ACTIONS = [_export_selected("csv"), _export_selected("ndjson")]
WORKSPACE_EXPORT_ACTIONS = [_export_workspace("csv"), _export_workspace("ndjson")]


# Appended from here so that the contacts and workspace admins need no import of
# exports (their ``actions`` are plain lists kept open for this).
def _append_actions() -> None:
    from contacts.admin import ContactAdmin
    from leadlex.admin import WorkspaceAdmin

    ContactAdmin.actions = [*ContactAdmin.actions, *CONTACT_EXPORT_ACTIONS]
    WorkspaceAdmin.actions = [*WorkspaceAdmin.actions, *WORKSPACE_EXPORT_ACTIONS]


_append_actions()

import exports.close.admin  # noqa: E402,F401  (the Close-style jobs' admin, engineer-owned in exports/close)
