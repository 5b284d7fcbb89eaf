"""The LeadLex contact export endpoints: parse, call one service, shape the reply."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.http import StreamingHttpResponse
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from exports import conf
from exports.engine import export_job_download_url
from exports.leadlex import services
from exports.models import ExportJob
from leadlex.api import WorkspaceAPIView, get_in_workspace

_STATUS = inline_serializer(
    "ContactExportStatus",
    {
        "id": serializers.UUIDField(),
        "status": serializers.ChoiceField(choices=["queued", "processing", "completed", "failed", "expired"]),
        "total_contacts": serializers.IntegerField(allow_null=True),
        "processed_contacts": serializers.IntegerField(),
        "created_at": serializers.DateTimeField(),
        "completed_at": serializers.DateTimeField(allow_null=True),
        "error": serializers.CharField(allow_null=True),
        "request_id": serializers.CharField(
            allow_null=True,
            help_text="X-Request-ID of the request that created the export; null when none did (e.g. a command).",
        ),
        "download_url": serializers.URLField(
            required=False, help_text="Presigned, valid 15 minutes, signed afresh on each read; only when completed."
        ),
        "expires_at": serializers.DateTimeField(required=False, help_text="When download_url stops working."),
        "file_expires_at": serializers.DateTimeField(required=False, help_text="When the file is deleted (retention)."),
    },
)


class ContactExportStreamApi(WorkspaceAPIView):
    """GET /v1/contacts/export: CSV streamed in keyset batches (flat memory)."""

    rate_limit_group = "contacts_export"

    @extend_schema(
        summary="Export contacts as CSV (streamed)",
        description="Rows ordered by (created_at, id); header row always first; `tags` comma-joined in one cell; "
        "RFC 4180 quoting; formula-like cells neutralised (docs/exports.md). When more rows match than "
        '`limit`, `Link: <...>; rel="next"` gives the next page. 10 requests per hour per workspace.',
        parameters=[
            OpenApiParameter("limit", int, description="Rows per response, default 10,000, max 50,000."),
            OpenApiParameter(
                "created_after",
                OpenApiTypes.DATETIME,
                description="ISO 8601, exclusive; without an offset read in the workspace's time zone.",
            ),
            OpenApiParameter("created_before", OpenApiTypes.DATETIME, description="ISO 8601, exclusive; as above."),
            OpenApiParameter("list_id", OpenApiTypes.UUID, description="Only members of this list."),
            OpenApiParameter("tag", str, many=True, description="Repeatable; every tag must be carried."),
            OpenApiParameter(
                "fields",
                str,
                description="Comma-separated columns; default id,full_name,email,phone,"
                "job_title,company_name,linkedin_url,tags,created_at.",
            ),
            OpenApiParameter("cursor", str, description="From a previous response's Link rel=next."),
        ],
        responses={(200, "text/csv"): OpenApiTypes.STR},
    )
    def get(self, request: Request) -> StreamingHttpResponse:
        job, next_token = services.contact_export_sync_prepare(workspace=self.workspace, query=request.query_params)
        response = StreamingHttpResponse(
            services.contact_export_sync_stream(job=job), content_type="text/csv; charset=utf-8"
        )
        response["Content-Disposition"] = 'attachment; filename="contacts-export.csv"'
        if next_token:
            query = request.query_params.copy()
            query["cursor"] = next_token
            url = request.build_absolute_uri(request.path) + "?" + query.urlencode()
            response["Link"] = f'<{url}>; rel="next"'
        return response


class ContactExportCreateApi(WorkspaceAPIView):
    """POST /v1/contacts/exports: queue an async NDJSON export."""

    rate_limit_group = "contacts_exports_create"
    json_refusal_status = 422  # this endpoint answers bad parameters, malformed JSON aside, with a 422
    required_scope = "read:contacts"  # an export only reads contacts

    @extend_schema(
        summary="Create a contact export (gzipped NDJSON)",
        description="Queues an export of the contacts created between `start_date` and `end_date`; poll "
        "`GET /v1/contacts/exports/{id}` for its progress and download URL. The parameters may also be "
        "sent as query parameters. 5 requests per minute per workspace.",
        request=inline_serializer(
            "ContactExportCreate",
            {
                "start_date": serializers.CharField(
                    help_text="YYYY-MM-DD HH:MM:SS (workspace time zone), or an ISO "
                    "8601 date-time such as 2020-01-01T00:00:00Z: with Z or an "
                    "offset it is that instant, without one a time of the "
                    "workspace time zone. Anything else: 422."
                ),
                "end_date": serializers.CharField(
                    help_text="Same forms as start_date, after it; inclusive (a whole "
                    "second includes that whole second)."
                ),
                "include_comet_tokens": serializers.ChoiceField(choices=[0, 1], required=False),
                "include_all_emails": serializers.ChoiceField(choices=[0, 1], required=False),
            },
        ),
        responses={
            202: inline_serializer(
                "ContactExportCreated", {"id": serializers.UUIDField(), "status": serializers.CharField()}
            ),
            422: OpenApiResponse(
                description="validation_error: a date is missing or malformed, or "
                "end_date is not after start_date (details name it)."
            ),
        },
    )
    def post(self, request: Request) -> Response:
        data: Any = request.data if request.data else request.query_params.dict()
        job = services.contact_export_request(workspace=self.workspace, data=data, api_key=self.principal.api_key)
        return Response({"id": str(job.pk), "status": job.status}, status=202)


# Statuses outside the contract's list are shown as the nearest one it has.
_PUBLIC_STATUS: dict[str, str] = {ExportJob.Status.CANCELLED: "failed"}


def export_status_body(job: ExportJob, *, base_url: str) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": str(job.pk),
        "status": _PUBLIC_STATUS.get(job.status, job.status),
        "total_contacts": job.total_count,
        "processed_contacts": job.processed_count,
        "created_at": job.created_at,
        "completed_at": job.completed_at,
        "error": job.error or ("Export was cancelled." if job.status == ExportJob.Status.CANCELLED else None),
        "request_id": job.request_id or None,
    }
    if job.status == ExportJob.Status.COMPLETED:
        # Signed on every read: a URL never outlives this response by more than the TTL.
        body["download_url"] = export_job_download_url(job, base_url=base_url)
        body["expires_at"] = timezone.now() + timedelta(seconds=conf.download_ttl())
        body["file_expires_at"] = job.expires_at
    return body


class ContactExportDetailApi(WorkspaceAPIView):
    """GET /v1/contacts/exports/{id}: status, progress and a fresh download URL."""

    rate_limit_group = "contacts_exports_status"

    @extend_schema(
        summary="Get a contact export",
        responses={200: _STATUS},
        description="Status and progress; when completed, a `download_url` signed afresh on each read "
        "(valid 15 minutes). 30 requests per minute per workspace.",
    )
    def get(self, request: Request, export_id: str) -> Response:
        job: ExportJob = get_in_workspace(
            ExportJob.objects.filter(kind="contacts"), workspace=self.workspace, pk=export_id
        )
        return Response(export_status_body(job, base_url=request.build_absolute_uri("/")))
