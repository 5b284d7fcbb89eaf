"""The Close dialect's request bodies and export object (docs/close-exports.md).

Requests are validated here into plain parameters; the export object is shaped
from an ``ExportJob`` field for field as Close's own export API answers it.
"""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from exports.close import render
from exports.close.ids import export_public_id, export_type, job_fields, public_status
from exports.models import OPPORTUNITY_KIND, ExportJob

LEAD_BODY_KEYS = {
    "s_query",
    "results_limit",
    "sort",
    "format",
    "type",
    "date_format",
    "fields",
    "include_activities",
    "include_smart_fields",
    "send_done_email",
}


class StrictBoolean(serializers.BooleanField):
    """JSON booleans only (and 0/1): "yes" is an error, not a guess."""

    TRUE_VALUES = {True}
    FALSE_VALUES = {False}
    NULL_VALUES: set = set()


class LeadExportRequestSerializer(serializers.Serializer):
    format = serializers.ChoiceField(choices=render.FORMATS)
    type = serializers.ChoiceField(choices=render.TYPES)
    date_format = serializers.ChoiceField(choices=render.DATE_FORMATS, required=False, default="original")
    # The body's "fields" member: the serializer metaclass takes declared fields out of the class
    # body, so Serializer.fields (the bound fields) is untouched; the stubs cannot know that.
    fields = serializers.ListField(  # type: ignore[assignment]  # a field named "fields", see above
        child=serializers.CharField(max_length=200), required=False, allow_null=True, allow_empty=False, max_length=500
    )
    s_query = serializers.JSONField(required=False, allow_null=True, default=None)
    sort = serializers.JSONField(required=False, allow_null=True, default=None)
    results_limit = serializers.JSONField(required=False, allow_null=True, default=None)
    include_activities = StrictBoolean(required=False, default=False)
    include_smart_fields = StrictBoolean(required=False, default=False)
    send_done_email = StrictBoolean(required=False, default=True)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        unknown = sorted(set(self.initial_data) - LEAD_BODY_KEYS)
        if unknown:
            raise serializers.ValidationError({unknown[0]: ["Unknown parameter."]})
        fields = attrs.get("fields")
        if fields:
            for name in fields:
                if not render.is_known_field(attrs["type"], name):
                    raise serializers.ValidationError(
                        {"fields": [f"Unknown field {name!r} for type {attrs['type']!r}."]}
                    )
            if len(set(fields)) != len(fields):
                raise serializers.ValidationError({"fields": ["A field is listed twice."]})
        return attrs


OPPORTUNITY_BODY_KEYS = {
    "format",
    "date_format",
    "fields",
    "include_smart_fields",
    "send_done_email",
    "params",
    "s_query",
}


class OpportunityExportRequestSerializer(serializers.Serializer):
    format = serializers.ChoiceField(choices=render.FORMATS)
    date_format = serializers.ChoiceField(choices=render.DATE_FORMATS, required=False, default="original")
    # The body's "fields" member: the serializer metaclass takes declared fields out of the class
    # body, so Serializer.fields (the bound fields) is untouched; the stubs cannot know that.
    fields = serializers.ListField(  # type: ignore[assignment]  # a field named "fields", see above
        child=serializers.CharField(max_length=200), required=False, allow_null=True, allow_empty=False, max_length=500
    )
    include_smart_fields = StrictBoolean(required=False, default=False)
    send_done_email = StrictBoolean(required=False, default=True)
    params = serializers.DictField(required=False, default=dict)
    s_query = serializers.JSONField(required=False, allow_null=True, default=None)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        unknown = sorted(set(self.initial_data) - OPPORTUNITY_BODY_KEYS - set(OPPORTUNITY_FILTERS))
        if unknown:
            raise serializers.ValidationError({unknown[0]: ["Unknown parameter."]})
        for name in attrs.get("fields") or []:
            if not render.is_known_field("lead_opps", name):
                raise serializers.ValidationError({"fields": [f"Unknown field {name!r} for opportunities."]})
        return attrs


# Filters of POST /export/opportunity/, given in "params" (Close) or at the top level.
OPPORTUNITY_FILTERS = (
    "status",
    "status_type",
    "lead_id",
    "contact_id",
    "value__gt",
    "value__gte",
    "value__lt",
    "value__lte",
    "confidence__gt",
    "confidence__gte",
    "confidence__lt",
    "confidence__lte",
    "date_won__gt",
    "date_won__gte",
    "date_won__lt",
    "date_won__lte",
    "date_created__gt",
    "date_created__gte",
    "date_created__lt",
    "date_created__lte",
    "date_updated__gt",
    "date_updated__gte",
    "date_updated__lt",
    "date_updated__lte",
)


# --- The export object ---------------------------------------------------------------------
class ExportObjectSerializer(serializers.Serializer):
    """Documentation of the export object (OpenAPI); the body is built by ``export_body``."""

    id = serializers.CharField(help_text="expo_ + 32 hex characters")
    status = serializers.ChoiceField(choices=["created", "started", "in_progress", "done", "error"])
    n_docs = serializers.IntegerField(allow_null=True)
    n_docs_processed = serializers.IntegerField()
    download_url = serializers.URLField(allow_null=True, help_text="presigned, 15 minutes; signed afresh per read")
    # A field named "fields" (taken out of the class body, as above).
    fields = serializers.ListField(child=serializers.CharField())  # type: ignore[assignment]  # see above
    format = serializers.ChoiceField(choices=render.FORMATS)
    type = serializers.ChoiceField(choices=render.TYPES)
    s_query = serializers.JSONField(allow_null=True)
    results_limit = serializers.IntegerField(allow_null=True)
    sort = serializers.JSONField()
    date_format = serializers.ChoiceField(choices=render.DATE_FORMATS)
    send_done_email = serializers.BooleanField()
    date_created = serializers.DateTimeField()
    date_updated = serializers.DateTimeField()
    created_by = serializers.CharField(allow_null=True)
    updated_by = serializers.CharField(allow_null=True)
    organization_id = serializers.CharField()
    request_id = serializers.CharField(
        allow_null=True,
        help_text="X-Request-ID of the request that created the export (a LeadLex addition); null when none did.",
    )


class ExportListSerializer(serializers.Serializer):
    has_more = serializers.BooleanField()
    # A field named "data": the metaclass takes it out of the class body, so Serializer.data stays.
    data = ExportObjectSerializer(many=True)  # type: ignore[assignment]  # a field named "data", see above


def _timestamp(value: Any) -> str | None:
    return render.json_datetime(value)


def _actor(job: ExportJob) -> str | None:
    if job.api_key_id:
        return f"key_{job.api_key_id.hex}"
    if job.created_by_user_id:
        return f"user_{job.created_by_user_id}"
    return None


def export_body(job: ExportJob, *, download_url: str | None) -> dict[str, Any]:
    p = job.parameters or {}
    body: dict[str, Any] = {
        "created_by": _actor(job),
        "date_created": _timestamp(job.created_at),
        "date_format": p.get("date_format", "original"),
        "date_updated": _timestamp(job.updated_at),
        "download_url": download_url,
        "fields": sorted(job_fields(job)),
        "format": job.format,
        "id": export_public_id(job),
        "n_docs": job.total_count,
        "n_docs_processed": job.processed_count,
        "organization_id": str(job.workspace_id),
        "request_id": job.request_id or None,
        "results_limit": p.get("results_limit"),
        "s_query": p.get("s_query"),
        "send_done_email": bool(p.get("send_done_email")),
        "sort": p.get("sort") or [],
        "status": public_status(job),
        "type": export_type(job),
        "updated_by": _actor(job),
    }
    for flag in ("include_activities", "include_smart_fields"):
        if p.get(flag):
            body[flag] = True
    if job.kind == OPPORTUNITY_KIND:
        body["params"] = p.get("filters") or {}
    if body["status"] == "error":
        body["error"] = job.error or ("The export was cancelled." if job.status == ExportJob.Status.CANCELLED else None)
    return body
