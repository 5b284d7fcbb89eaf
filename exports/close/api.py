"""The Close dialect of the export API (Close.com's bulk export): thin views that parse, call
one service and shape the export object. Authentication (Basic with the key as
user name, or Bearer), scopes and rate limits come from ``WorkspaceAPIView``."""

from __future__ import annotations

from typing import Any

from django.http import HttpResponseRedirect
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from exports.close import services
from exports.close.ids import export_id_parse
from exports.close.serializers import (
    ExportListSerializer,
    ExportObjectSerializer,
    LeadExportRequestSerializer,
    OpportunityExportRequestSerializer,
    export_body,
)
from exports.engine import export_job_download_url
from exports.models import CLOSE_KINDS, ExportJob
from leadlex.api import WorkspaceAPIView
from leadlex.auth import ApiKeyAuthentication, request_principal
from leadlex.errors import ApiError, NotFound, ValidationFailed
from leadlex.models import SCOPE_READ_CONTACTS

MAX_PAGE = 100


def _body(request: Request) -> Any:
    try:
        return request.data
    except RecursionError:  # absurdly nested JSON: refuse it, never a 500
        raise ValidationFailed("The request body is nested too deeply.") from None


def _get_export(workspace: Any, export_id: str) -> ExportJob:
    pk = export_id_parse(export_id)
    job = ExportJob.objects.filter(pk=pk, workspace=workspace, kind__in=CLOSE_KINDS).first() if pk else None
    if job is None:
        raise NotFound()
    return job


def _export_response(job: ExportJob, request: Request, status: int = 200) -> Response:
    url = export_job_download_url(job, base_url=request.build_absolute_uri("/"))
    return Response(export_body(job, download_url=url), status=status)


class LeadExportCreateApi(WorkspaceAPIView):
    """POST /v1/export/lead/: export leads (companies), contacts or lead_opps matching an s_query."""

    required_scope = SCOPE_READ_CONTACTS  # an export only reads

    @extend_schema(
        operation_id="close_export_lead",
        request=LeadExportRequestSerializer,
        responses={200: ExportObjectSerializer},
        tags=["Close-style exports"],
        summary="Export leads (companies), their contacts or lead_opps",
        description="Close.com's bulk export: the leads matching `s_query`, as csv, json or ndjson, "
        "gzip-compressed. Answers the export object; poll `GET /v1/export/{id}/` until "
        "`status` is `done`, then fetch `download_url`. See docs/close-exports.md.",
    )
    def post(self, request: Request) -> Response:
        job = services.close_export_request(
            workspace=self.workspace, endpoint="lead", data=_body(request), api_key=self.principal.api_key
        )
        return _export_response(job, request)


class OpportunityExportCreateApi(WorkspaceAPIView):
    """POST /v1/export/opportunity/: export opportunities matching opportunity filters."""

    required_scope = SCOPE_READ_CONTACTS

    @extend_schema(
        operation_id="close_export_opportunity",
        request=OpportunityExportRequestSerializer,
        responses={200: ExportObjectSerializer},
        tags=["Close-style exports"],
        summary="Export opportunities",
        description="The opportunities matching the filters (in `params` or at the top level), as csv, "
        "json or ndjson, gzip-compressed. Answers the export object, as for leads.",
    )
    def post(self, request: Request) -> Response:
        job = services.close_export_request(
            workspace=self.workspace, endpoint="opportunity", data=_body(request), api_key=self.principal.api_key
        )
        return _export_response(job, request)


def _int_param(request: Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ValidationFailed(f"{name}: expected a whole number", details={"field": name}) from None
    if not low <= value <= high:
        raise ValidationFailed(f"{name}: must be between {low} and {high}", details={"field": name})
    return value


class ExportListApi(WorkspaceAPIView):
    """GET /v1/export/: the workspace's Close-style exports, newest first, with
    Close's ``_skip`` / ``_limit`` paging and ``has_more``."""

    @extend_schema(
        operation_id="close_export_list",
        responses={200: ExportListSerializer},
        parameters=[
            OpenApiParameter("_skip", int, description="Exports to skip (default 0)."),
            OpenApiParameter("_limit", int, description="Page size: 1 to 100 (default 100)."),
        ],
        tags=["Close-style exports"],
        summary="List Close-style exports, newest first",
        description="Paged with `_skip` and `_limit`; `has_more` says whether another page follows.",
    )
    def get(self, request: Request) -> Response:
        skip = _int_param(request, "_skip", 0, 0, 10**9)
        limit = _int_param(request, "_limit", MAX_PAGE, 1, MAX_PAGE)
        jobs = list(
            ExportJob.objects.filter(workspace=self.workspace, kind__in=CLOSE_KINDS).order_by("-created_at", "-id")[
                skip : skip + limit + 1
            ]
        )
        base_url = request.build_absolute_uri("/")
        data = [export_body(job, download_url=export_job_download_url(job, base_url=base_url)) for job in jobs[:limit]]
        return Response({"has_more": len(jobs) > limit, "data": data})


class ExportDetailApi(WorkspaceAPIView):
    """GET /v1/export/{id}/: one export; ``download_url`` is signed afresh on each read."""

    @extend_schema(
        operation_id="close_export_retrieve",
        responses={200: ExportObjectSerializer},
        tags=["Close-style exports"],
        summary="Get a Close-style export",
        description="`download_url` is signed afresh on each read (valid 15 minutes) once `status` is `done`.",
    )
    def get(self, request: Request, export_id: str) -> Response:
        return _export_response(_get_export(self.workspace, export_id), request)


class ExportDownloadApi(APIView):
    """GET /v1/export/{id}/download?token=…: the e-mailed link. The signed token (or
    a key of the export's workspace) is checked, then 302 to a fresh presigned URL,
    so the link outlives any presigned URL."""

    authentication_classes = [ApiKeyAuthentication]
    permission_classes = [AllowAny]

    @extend_schema(
        operation_id="close_export_download",
        parameters=[OpenApiParameter("token", str, description="the signed token of the e-mailed link")],
        responses={
            302: OpenApiResponse(description="Redirect (Location) to a fresh presigned URL of the file."),
            401: OpenApiResponse(description="invalid_key: neither a token nor a valid API key was sent."),
            403: OpenApiResponse(description="insufficient_permissions or subscription_inactive."),
            404: OpenApiResponse(description="not_found: no such export, or the token is not valid."),
            409: OpenApiResponse(description="export_not_ready: the export has not finished (details.status)."),
            410: OpenApiResponse(description="export_expired: the file was deleted (retention)."),
        },
        tags=["Close-style exports"],
        summary="Download an export (the e-mailed link)",
        description="Send the link's `token`, or an API key of the export's workspace instead. Answers "
        "302 to a fresh presigned URL, so the link outlives any one presigned URL.",
    )
    def get(self, request: Request, export_id: str) -> HttpResponseRedirect:
        pk = export_id_parse(export_id)
        if pk is None:
            raise NotFound()
        token = request.query_params.get("token")
        if token:
            job = services.close_export_from_token(export_id=pk, token=token)
        elif (principal := request_principal(request)) is not None:
            if SCOPE_READ_CONTACTS not in principal.scopes:
                raise ApiError(
                    "This API key lacks the read:contacts permission.", status_code=403, code="insufficient_permissions"
                )
            job = _get_export(principal.workspace, export_id)
        else:
            raise ApiError("Send the link's token or an API key.", status_code=401, code="invalid_key")
        if not job.workspace.is_active:
            raise ApiError("This workspace's subscription is inactive.", status_code=403, code="subscription_inactive")
        if job.status == ExportJob.Status.EXPIRED:
            raise ApiError("This export has expired and its file was deleted.", status_code=410, code="export_expired")
        url = export_job_download_url(job, base_url=request.build_absolute_uri("/"))
        if url is None:
            raise ApiError(
                "This export is not ready for download.",
                status_code=409,
                code="export_not_ready",
                details={"status": export_body(job, download_url=None)["status"]},
            )
        response = HttpResponseRedirect(url)
        response["Cache-Control"] = "no-store"  # the target is short-lived; never cache the redirect
        return response
