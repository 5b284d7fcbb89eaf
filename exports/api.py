"""The LeadLex contact export endpoints: parse, call one service, shape the reply."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.http import StreamingHttpResponse
from django.utils import timezone
from rest_framework.request import Request
from rest_framework.response import Response

from exports import conf, services
from exports.engine import export_job_download_url
from exports.models import ExportJob
from leadlex.api import WorkspaceAPIView, get_in_workspace


class ContactExportStreamApi(WorkspaceAPIView):
    """GET /v1/contacts/export: CSV streamed in keyset batches (flat memory)."""

    rate_limit_group = "contacts_export"

    def get(self, request: Request) -> StreamingHttpResponse:
        job, next_token = services.contact_export_sync_prepare(workspace=self.workspace, query=request.query_params)
        response = StreamingHttpResponse(services.contact_export_sync_stream(job=job),
                                         content_type="text/csv; charset=utf-8")
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
    required_scope = "read:contacts"  # an export only reads contacts

    def post(self, request: Request) -> Response:
        data: Any = request.data if request.data else request.query_params.dict()
        job = services.contact_export_request(workspace=self.workspace, data=data, api_key=request.user.api_key)
        return Response({"id": str(job.pk), "status": job.status}, status=202)


# Statuses outside the contract's list are shown as the nearest one it has.
_PUBLIC_STATUS = {ExportJob.Status.CANCELLED: "failed"}


def export_status_body(job: ExportJob, *, base_url: str) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": str(job.pk),
        "status": _PUBLIC_STATUS.get(job.status, job.status),
        "total_contacts": job.total_count,
        "processed_contacts": job.processed_count,
        "created_at": job.created_at,
        "completed_at": job.completed_at,
        "error": job.error or ("Export was cancelled." if job.status == ExportJob.Status.CANCELLED else None),
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

    def get(self, request: Request, export_id: str) -> Response:
        job: ExportJob = get_in_workspace(ExportJob.objects.filter(kind="contacts"), workspace=self.workspace,
                                          pk=export_id)  # type: ignore[assignment]
        return Response(export_status_body(job, base_url=request.build_absolute_uri("/")))
