"""Admin for import jobs, and the CSV upload form (upload → map columns → import).

The error-file link points at an admin view that signs a fresh URL when clicked,
so a page never embeds a link that expires while it is open.
"""

from __future__ import annotations

import re
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.defaultfilters import filesizeformat
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html

from imports.dialect import DELIMITERS, Dialect, encoding_label
from imports.engine import import_job_errors_url, import_job_retry
from imports.models import ImportJob, ImportMapping, Upload
from imports.parsing import CONTACT_FIELDS, CUSTOM_PREFIX, NAME_PARTS, MappingError
from imports.proposal import Proposal, propose_mapping
from imports.serializers import ImportInput, ImportParams, import_params_clean
from imports.services import import_file_head, import_file_sniff, import_request
from imports.uploads import upload_store
from leadlex import storage
from leadlex.errors import ApiError
from leadlex.models import Workspace

_SESSION_KEY = "imports_admin_upload"


class UploadForm(forms.Form):
    workspace = forms.ModelChoiceField(queryset=Workspace.objects.order_by("name"))
    file = forms.FileField(
        help_text="CSV or TSV in any common encoding and delimiter, an Excel workbook (.xlsx), "
        "or a .gz or .zip of one CSV."
    )
    has_header = forms.BooleanField(required=False, initial=True, help_text="The first row names the columns.")
    update_existing = forms.BooleanField(required=False, help_text="Update contacts that match by email or phone.")
    tags = forms.CharField(required=False, help_text="Comma-separated tags added to every imported contact.")


# The encodings the mapping step offers (any other can be given to the API or the command).
_ENCODING_CHOICES = [
    (name, encoding_label(name))
    for name in ("utf-8", "utf-8-sig", "utf-16", "cp1252", "cp1250", "iso8859-15", "iso8859-1", "iso8859-2", "cp1251")
]


def custom_field_name(column: str, index: int) -> str:
    """``custom.<name>`` for a column kept as a custom field: its header, folded to a key."""
    slug = re.sub(r"[^0-9a-z]+", "_", column.strip().lower()).strip("_")
    return f"{CUSTOM_PREFIX}{slug or f'column_{index + 1}'}"


class MappingForm(forms.Form):
    """A choice of contact field per column, pre-filled with the proposed mapping
    (imports.proposal) or a saved one: every field, first and last name (joined into
    full_name), the column as a custom field, or nothing (ignored)."""

    def __init__(self, *args: Any, columns: list[str], proposals: list[Proposal], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.columns = columns
        fields = [f for f in CONTACT_FIELDS if f != "custom"]
        for index, (name, proposal) in enumerate(zip(columns, proposals, strict=True)):
            custom = custom_field_name(name, index)
            choices = [
                ("", "— ignore —"),
                *[(f, f) for f in (*fields, *NAME_PARTS)],
                (custom, f"{custom} (custom field)"),
            ]
            if proposal.field and proposal.field not in dict(choices):  # a saved mapping's own custom field
                choices.append((proposal.field, f"{proposal.field} (custom field)"))
            self.fields[f"col_{index}"] = forms.ChoiceField(
                required=False,
                choices=choices,
                initial=proposal.field or "",
                label=name or f"Column {index + 1}",
                help_text=proposal.reason,
            )

    def mapping(self, *, has_header: bool) -> dict[str, str]:
        mapping = {}
        for index, name in enumerate(self.columns):
            target = (self.cleaned_data.get(f"col_{index}") or "").strip()
            if target:
                mapping[name if has_header else str(index)] = target
        return mapping


@admin.register(ImportMapping)
class ImportMappingAdmin(admin.ModelAdmin):
    """Saved mappings (created through the API, used by name by imports and the upload form)."""

    list_display = ("name", "workspace", "updated_at")
    list_filter = ("workspace",)
    search_fields = ("name",)


@admin.register(Upload)
class UploadAdmin(admin.ModelAdmin):
    """Files sent for imports (POST /v1/uploads, this upload form, the command); read-only."""

    list_display = ("public_id", "workspace", "file_name", "status", "size", "created_at", "expires_at")
    list_filter = ("status",)
    list_select_related = ("workspace",)
    search_fields = ("=id", "file_name", "workspace__name")
    readonly_fields = (
        "public_id",
        "workspace",
        "api_key",
        "status",
        "file_name",
        "content_type",
        "size",
        "part_size",
        "part_count",
        "key",
        "created_at",
        "completed_at",
        "expires_at",
    )
    fields = readonly_fields

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # the row says what became of the file: DELETE /v1/uploads/{id} or expiry deletes it

    @admin.display(description="upload id", ordering="id")
    def public_id(self, obj: Upload) -> str:
        return obj.public_id


@admin.register(ImportJob)
class ImportJobAdmin(admin.ModelAdmin):
    list_display = (
        "public_id",
        "workspace",
        "source",
        "status",
        "progress_bar",
        "created_count",
        "updated_count",
        "skipped_count",
        "error_count",
        "error_file",
        "created_at",
        "completed_at",
    )
    list_filter = ("status", "source")
    list_select_related = ("workspace",)
    search_fields = ("=id", "workspace__name", "=request_id")
    date_hierarchy = "created_at"
    actions = ["retry_jobs"]
    readonly_fields = (
        "public_id",
        "workspace",
        "source",
        "status",
        "progress_bar",
        "total_rows",
        "processed_rows",
        "total_bytes",
        "processed_bytes",
        "created_count",
        "updated_count",
        "skipped_count",
        "error_count",
        "error_file",
        "first_errors",
        "params",
        "api_key",
        "created_by_user",
        "request_id",
        "upload",
        "payload_key",
        "next_record",
        "attempts",
        "error",
        "error_kind",
        "created_at",
        "started_at",
        "heartbeat_at",
        "completed_at",
    )
    fields = readonly_fields
    change_list_template = "admin/imports/importjob/change_list.html"

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # imports start from the upload form, the API or the command

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.display(description="job id", ordering="id")
    def public_id(self, obj: ImportJob) -> str:
        return obj.public_id

    @admin.display(description="progress")
    def progress_bar(self, obj: ImportJob) -> str:
        percent = obj.progress_percent
        if percent is None:
            return "—"
        if obj.total_rows is None and obj.total_bytes:  # a large file, counted as it is read
            return format_html(
                '<progress value="{}" max="100" style="width:8em"></progress> {}% ({} rows, {} of {})',
                percent,
                percent,
                f"{obj.processed_rows:,}",
                filesizeformat(obj.processed_bytes),
                filesizeformat(obj.total_bytes),
            )
        return format_html(
            '<progress value="{}" max="100" style="width:8em"></progress> {}% ({} / {})',
            percent,
            percent,
            obj.processed_rows,
            obj.total_rows or "?",
        )

    @admin.display(description="errors file")
    def error_file(self, obj: ImportJob) -> str:
        if not obj.errors_key:
            return "—"
        url = reverse("admin:imports_importjob_errors", args=[obj.pk])
        return format_html('<a href="{}">errors.csv ({})</a>', url, obj.error_count)

    @admin.action(description="Retry selected failed import jobs")
    def retry_jobs(self, request: HttpRequest, queryset: QuerySet) -> None:
        count = sum(1 for job in queryset if import_job_retry(job=job))
        self.message_user(request, f"{count} import job(s) queued again.", messages.SUCCESS)

    def get_urls(self) -> list:
        site = self.admin_site
        return [
            path("<uuid:job_id>/errors/", site.admin_view(self.errors_view), name="imports_importjob_errors"),
            path("upload/", site.admin_view(self.upload_view), name="imports_importjob_upload"),
            path("upload/map/", site.admin_view(self.mapping_view), name="imports_importjob_map"),
            *super().get_urls(),
        ]

    def errors_view(self, request: HttpRequest, job_id: Any) -> HttpResponse:
        job = get_object_or_404(ImportJob, pk=job_id)
        url = import_job_errors_url(job=job, base_url=request.build_absolute_uri("/"))
        if not url:
            self.message_user(request, "This import has no error file.", messages.WARNING)
            return HttpResponseRedirect(reverse("admin:imports_importjob_change", args=[job.pk]))
        return HttpResponseRedirect(url)

    def _context(self, request: HttpRequest, **extra: Any) -> dict[str, Any]:
        return {**self.admin_site.each_context(request), "opts": self.model._meta, **extra}

    def upload_view(self, request: HttpRequest) -> HttpResponse:
        """Step 1: the file and the import options. The file goes to storage (it may be
        large; the session only keeps its key)."""
        if not self.has_view_permission(request) or not request.user.has_perm("contacts.add_contact"):
            return HttpResponse(status=403)
        form = UploadForm(request.POST or None, request.FILES or None)
        if request.method == "POST" and form.is_valid():
            # An upload as the API's are (imports.uploads): read from storage by the mapping
            # step and the import, deleted once the import completed (or when it expires).
            upload = upload_store(
                workspace=form.cleaned_data["workspace"],
                chunks=form.cleaned_data["file"].chunks(),
                file_name=form.cleaned_data["file"].name,
                single_use=True,
            )
            request.session[_SESSION_KEY] = {
                "upload_id": upload.public_id,
                "key": upload.key,
                "workspace": str(form.cleaned_data["workspace"].pk),
                "has_header": form.cleaned_data["has_header"],
                "update_existing": form.cleaned_data["update_existing"],
                "tags": form.cleaned_data["tags"],
                "file_name": form.cleaned_data["file"].name,
            }
            return HttpResponseRedirect(reverse("admin:imports_importjob_map"))
        return TemplateResponse(
            request, "admin/imports/upload.html", self._context(request, form=form, title="Import contacts from CSV")
        )

    def mapping_view(self, request: HttpRequest) -> HttpResponse:
        """Step 2: map each column to a contact field, then start the import."""
        upload = request.session.get(_SESSION_KEY)
        if not upload or "upload_id" not in upload or not request.user.has_perm("contacts.add_contact"):
            return HttpResponseRedirect(reverse("admin:imports_importjob_upload"))
        # How to read the file: found from it, or what the user chose here (CSV only).
        chosen = request.POST if request.method == "POST" else request.GET

        def open_file() -> Any:
            return storage.open_reader(upload["key"])

        def read(**declared: Any) -> tuple[ImportParams, Dialect | None, list[list[str]]]:
            params = import_params_clean(file_name=upload["file_name"], has_header=upload["has_header"], **declared)
            resolved, dialect = import_file_sniff(open_file=open_file, params=params)
            return resolved, dialect, import_file_head(open_file=open_file, params=resolved)

        try:
            resolved, dialect, preview = read(
                encoding=chosen.get("encoding") or None,
                delimiter=chosen.get("delimiter") or None,
                sheet=chosen.get("sheet") or None,
            )
        except ApiError as exc:
            self.message_user(request, exc.message, messages.ERROR)
            try:
                resolved, dialect, preview = read()
            except ApiError:
                return HttpResponseRedirect(reverse("admin:imports_importjob_upload"))
        if not preview:
            if resolved.format != "xlsx":
                self.message_user(request, "The file is empty.", messages.ERROR)
                return HttpResponseRedirect(reverse("admin:imports_importjob_upload"))
            # A workbook's first sheet is often a cover page: let staff name another.
            self.message_user(request, "This sheet is empty; name the sheet that holds the contacts.", messages.ERROR)
            preview = [[]]
        width = max(len(r) for r in preview)
        columns = preview[0] if upload["has_header"] else [f"Column {i + 1}" for i in range(width)]
        sample = preview[1:] if upload["has_header"] else preview
        proposals = propose_mapping(columns, sample)
        presets = ImportMapping.objects.filter(workspace_id=upload["workspace"])
        preset = presets.filter(name=chosen.get("preset") or "").first()
        if preset is not None:  # a saved mapping fills the columns it names
            proposals = [
                Proposal(p.column, preset.mapping[p.column], f"from the saved mapping {preset.name!r}")
                if p.column in preset.mapping
                else Proposal(p.column, None, f"not in the saved mapping {preset.name!r}")
                for p in proposals
            ]
        form = MappingForm(request.POST or None, columns=columns, proposals=proposals)
        if request.method == "POST" and form.is_valid():
            workspace = get_object_or_404(Workspace, pk=upload["workspace"])
            try:
                params = import_params_clean(
                    update_existing=upload["update_existing"],
                    tags=upload["tags"],
                    mapping=form.mapping(has_header=upload["has_header"]) or None,
                    has_header=upload["has_header"],
                    file_name=upload["file_name"],
                    encoding=resolved.encoding if resolved.format == "csv" else None,
                    delimiter=resolved.delimiter if resolved.format == "csv" else None,
                    sheet=resolved.sheet,
                )
                # Read from storage as it imports (a queued job takes the file over), never held whole.
                job = import_request(
                    workspace=workspace,
                    data=ImportInput(upload_id=upload["upload_id"]),
                    params=params,
                    user=request.user,
                )
            except (ApiError, MappingError) as exc:
                form.add_error(None, getattr(exc, "message", str(exc)))
            else:
                request.session.pop(_SESSION_KEY, None)
                self.message_user(
                    request,
                    f"Import {job.public_id} {job.status}: {job.created_count} created, "
                    f"{job.updated_count} updated, {job.skipped_count} skipped, "
                    f"{job.error_count} errors so far.",
                    messages.SUCCESS,
                )
                return HttpResponseRedirect(reverse("admin:imports_importjob_change", args=[job.pk]))
        return TemplateResponse(
            request,
            "admin/imports/mapping.html",
            self._context(
                request,
                form=form,
                sample=sample,
                columns=columns,
                upload=upload,
                dialect=dialect,
                presets=presets,
                preset=preset,
                delimiter_name=DELIMITERS.get(resolved.delimiter or ",", "comma"),
                sheet=resolved.sheet,
                encodings=_ENCODING_CHOICES,
                delimiters=list(DELIMITERS.items()),
                title="Map the columns",
            ),
        )
