"""The Close dialect's part of the job admin (``exports.admin.ExportJobAdmin``): a
form to start an export with a pasted ``s_query``, validated by the same service as
the API."""

from __future__ import annotations

import json
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse

from exports.close import render, services
from exports.close.ids import export_public_id
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
    # A form field named "fields": the form metaclass takes it out of the class body, so
    # BaseForm.fields (the dict of fields) is untouched; the stubs cannot know that.
    fields = forms.CharField(  # type: ignore[assignment]  # a form field named "fields", see above
        label="fields (comma-separated, optional)", required=False
    )
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


def close_export_start_view(model_admin: admin.ModelAdmin, request: HttpRequest) -> HttpResponse:
    """The job admin's "Start a Close-style export" page: the form above, then the
    same service as ``POST /v1/export/lead/``; a started job opens on its change page."""
    if not model_admin.has_view_permission(request):
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
            model_admin.message_user(request, f"Started {export_public_id(job)}.", messages.SUCCESS)
            return HttpResponseRedirect(reverse("admin:exports_exportjob_change", args=[job.pk]))
    context = {
        **model_admin.admin_site.each_context(request),
        "opts": model_admin.model._meta,
        "form": form,
        "title": "Start a Close-style export",
    }
    return TemplateResponse(request, "admin/exports/exportjob/close_start.html", context)
