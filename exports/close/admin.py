"""Admin for Close-style exports: the jobs with their parameters readable, and a
form to start one with a pasted ``s_query`` (the same service as the API)."""

from __future__ import annotations

import json
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html

from exports.close import render, services
from exports.close.ids import export_public_id, public_status
from exports.engine import export_job_cancel, export_job_download_url, export_job_retry
from exports.models import CloseExport
from leadlex.errors import ApiError
from leadlex.models import Workspace


def _json_field(label: str, required: bool = False) -> forms.CharField:
    return forms.CharField(
        label=label,
        required=required,
        widget=forms.Textarea(attrs={"rows": 12, "cols": 90, "class": "vLargeTextField"}),
    )


class CloseExportStartForm(forms.Form):
    workspace = forms.ModelChoiceField(queryset=Workspace.objects.order_by("name"))
    type = forms.ChoiceField(choices=[(t, t) for t in render.TYPES])
    format = forms.ChoiceField(choices=[(f, f) for f in render.FORMATS])
    date_format = forms.ChoiceField(choices=[(d, d) for d in render.DATE_FORMATS], initial="original")
    s_query = _json_field("s_query (JSON, empty = every lead)")
    sort = forms.CharField(
        label="sort (JSON list, optional)", required=False, widget=forms.Textarea(attrs={"rows": 3, "cols": 90})
    )
    results_limit = forms.IntegerField(required=False, min_value=0)
    fields = forms.CharField(label="fields (comma-separated, optional)", required=False)
    include_activities = forms.BooleanField(required=False)
    include_smart_fields = forms.BooleanField(required=False)
    send_done_email = forms.BooleanField(required=False, help_text="E-mails you (your staff e-mail address).")

    def _json(self, name: str) -> Any:
        raw = (self.cleaned_data.get(name) or "").strip()
        if not raw:
            return None
        try:
            return json.loads(raw)
        except json.JSONDecodeError as exc:
            raise forms.ValidationError(f"Not valid JSON: {exc}") from None

    def clean_s_query(self) -> Any:
        return self._json("s_query")

    def clean_sort(self) -> Any:
        return self._json("sort")

    def body(self) -> dict[str, Any]:
        data = self.cleaned_data
        body: dict[str, Any] = {
            key: data[key]
            for key in (
                "type",
                "format",
                "date_format",
                "s_query",
                "sort",
                "results_limit",
                "include_activities",
                "include_smart_fields",
                "send_done_email",
            )
        }
        if data.get("fields"):
            body["fields"] = [f.strip() for f in data["fields"].split(",") if f.strip()]
        return body


@admin.register(CloseExport)
class CloseExportAdmin(admin.ModelAdmin):
    list_display = ("public_id", "workspace", "export_type", "format", "close_status", "progress", "created_at")
    list_filter = ("kind", "format", "status")
    list_select_related = ("workspace",)
    search_fields = ("id", "workspace__name", "=request_id")
    ordering = ("-created_at",)
    actions = ("cancel_selected", "retry_selected")
    change_list_template = "exports/close_admin_change_list.html"
    readonly_fields = (
        "public_id",
        "workspace",
        "kind",
        "format",
        "close_status",
        "progress",
        "created_by",
        "request_id",
        "parameters_pretty",
        "download",
        "error",
        "error_kind",
        "attempts",
        "created_at",
        "started_at",
        "completed_at",
        "expires_at",
        "row_count",
        "byte_size",
        "sha256",
    )
    fields = readonly_fields

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # started from the form below, which validates the s_query

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.display(description="id")
    def public_id(self, obj: CloseExport) -> str:
        return export_public_id(obj)

    @admin.display(description="type")
    def export_type(self, obj: CloseExport) -> str:
        return (obj.parameters or {}).get("type", "")

    @admin.display(description="status")
    def close_status(self, obj: CloseExport) -> str:
        return f"{public_status(obj)} ({obj.status})"

    @admin.display(description="progress")
    def progress(self, obj: CloseExport) -> str:
        total = "?" if obj.total_count is None else obj.total_count
        return f"{obj.processed_count} / {total}"

    @admin.display(description="created by")
    def created_by(self, obj: CloseExport) -> str:
        if obj.api_key_id:
            return f"API key {obj.api_key_id}"
        return str(obj.created_by_user or "")

    @admin.display(description="parameters")
    def parameters_pretty(self, obj: CloseExport) -> str:
        shown = {k: v for k, v in (obj.parameters or {}).items() if not k.startswith("_")}
        return format_html(
            "<pre style='white-space: pre-wrap'>{}</pre>", json.dumps(shown, indent=2, ensure_ascii=False)
        )

    @admin.display(description="download")
    def download(self, obj: CloseExport) -> str:
        url = export_job_download_url(obj)
        return format_html('<a href="{}">download</a>', url) if url else "—"

    @admin.action(description="Cancel selected Close-style exports")
    def cancel_selected(self, request: HttpRequest, queryset: Any) -> None:
        count = sum(export_job_cancel(job=job) for job in queryset)
        self.message_user(request, f"Cancelled {count} export(s).")

    @admin.action(description="Retry selected Close-style exports")
    def retry_selected(self, request: HttpRequest, queryset: Any) -> None:
        count = sum(export_job_retry(job=job) for job in queryset)
        self.message_user(request, f"Re-queued {count} export(s).")

    def get_urls(self) -> list:
        start = path("start/", self.admin_site.admin_view(self.start_view), name="exports_closeexport_start")
        return [start, *super().get_urls()]

    def start_view(self, request: HttpRequest) -> HttpResponse:
        if not self.has_view_permission(request):
            return HttpResponseRedirect(reverse("admin:index"))
        form = CloseExportStartForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            try:
                job = services.close_export_request(
                    workspace=form.cleaned_data["workspace"], endpoint="lead", data=form.body(), user=request.user
                )
            except ApiError as exc:
                form.add_error(None, exc.message)
            else:
                self.message_user(request, f"Started {export_public_id(job)}.", messages.SUCCESS)
                return HttpResponseRedirect(reverse("admin:exports_closeexport_change", args=[job.pk]))
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "form": form,
            "title": "Start a Close-style export",
        }
        return TemplateResponse(request, "exports/close_admin_start.html", context)
