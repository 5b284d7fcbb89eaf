"""POST /v1/import/contacts and GET /v1/import/contacts/{job_id}: thin views over
imports.services.

Bodies accepted by POST:
- ``application/json``: ``{"rows": [...]}`` or ``{"csv": "...", "mapping": {...}, "has_header": true}``
  plus ``update_existing`` and ``tags``;
- ``application/x-ndjson``: one contact object per line (an NDJSON export file as it is);
  ``update_existing`` and ``tags`` as query parameters;
- ``text/csv``: the file itself; ``mapping`` (JSON or ``col=field,col=field``),
  ``has_header``, ``update_existing``, ``tags`` as query parameters;
- ``multipart/form-data`` with the file in ``file`` (``curl -F file=@contacts.csv``);
  the other parameters as form fields or query parameters.
"""

from __future__ import annotations

from typing import Any

from django.http import QueryDict
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.parsers import BaseParser, FormParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response

from imports.models import JOB_ID_PREFIX, ImportJob
from imports.services import (
    RESPONSE_ERRORS,
    ImportInput,
    ImportParams,
    import_idempotent,
    import_job_errors_url,
    import_params_clean,
    import_request,
    request_hash,
)
from leadlex.api import WorkspaceAPIView, get_in_workspace
from leadlex.errors import NotFound, ValidationFailed
from leadlex.parsers import JSONBodyParser, json_loads_checked


class CSVTextParser(BaseParser):
    """A body that is the CSV file itself."""

    media_type = "text/csv"

    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> dict[str, Any]:
        data = stream.read() if stream is not None else b""
        return {"__csv_body__": data}


class _CSVPlainParser(CSVTextParser):
    media_type = "text/plain"


class NDJSONParser(BaseParser):
    """One contact object per line, e.g. an NDJSON export file sent back as it is."""

    media_type = "application/x-ndjson"

    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> dict[str, Any]:
        return {"__ndjson_body__": stream.read() if stream is not None else b""}


_error_item = inline_serializer(
    "ImportRowError",
    fields={
        "row": serializers.IntegerField(),
        "field": serializers.CharField(),
        "code": serializers.CharField(),
        "message": serializers.CharField(),
    },
)
_job_fields = {
    "job_id": serializers.CharField(),
    "status": serializers.CharField(),
    "created_count": serializers.IntegerField(),
    "updated_count": serializers.IntegerField(),
    "skipped_count": serializers.IntegerField(),
    "errors": serializers.ListField(child=_error_item),
}
_create_response = inline_serializer(
    "ImportResponse", fields={"data": inline_serializer("ImportResponseData", fields=_job_fields)}
)
_status_response = inline_serializer(
    "ImportStatusResponse",
    fields={
        "data": inline_serializer(
            "ImportStatusData",
            fields={
                **_job_fields,
                "total_rows": serializers.IntegerField(allow_null=True),
                "processed_rows": serializers.IntegerField(),
                "progress_percent": serializers.IntegerField(allow_null=True),
                "error_count": serializers.IntegerField(),
                "errors_url": serializers.CharField(allow_null=True),
                "error": serializers.CharField(allow_null=True),
                "created_at": serializers.DateTimeField(),
                "completed_at": serializers.DateTimeField(allow_null=True),
                "request_id": serializers.CharField(
                    allow_null=True,
                    help_text="X-Request-ID of the request that created the import; null when none did.",
                ),
            },
        )
    },
)
_create_request = inline_serializer(
    "ImportRequest",
    fields={
        "rows": serializers.ListField(child=serializers.DictField(), required=False),
        "csv": serializers.CharField(required=False),
        "mapping": serializers.DictField(required=False),
        "has_header": serializers.BooleanField(default=True),
        "update_existing": serializers.BooleanField(default=False),
        "tags": serializers.ListField(child=serializers.CharField(), required=False),
    },
)


def job_summary(job: ImportJob) -> dict[str, Any]:
    return {
        "job_id": job.public_id,
        "status": job.status,
        "created_count": job.created_count,
        "updated_count": job.updated_count,
        "skipped_count": job.skipped_count,
        "errors": list(job.first_errors or [])[:RESPONSE_ERRORS],
    }


def _parse_mapping_param(value: str | None) -> Any:
    """Query/form mapping: JSON (``{"Email": "email"}``) or ``Email=email,Name=full_name``."""
    if value is None or value == "":
        return None
    text = value.strip()
    if text.startswith("{"):
        return text  # validate_mapping parses and reports bad JSON
    mapping: dict[str, str] = {}
    for pair in text.split(","):
        source, sep, target = pair.partition("=")
        if not sep:
            raise ValidationFailed(
                "mapping must be JSON or column=field pairs separated by commas.", details={"field": "mapping"}
            )
        mapping[source.strip()] = target.strip()
    return mapping


def _param_tags(values: list[str]) -> list[str] | None:
    if not values:
        return None
    return [tag for value in values for tag in value.split(",")]


class ImportContactsView(WorkspaceAPIView):
    rate_limit_group = "import_contacts"
    # A NUL in one row's cell is that row's error (one bad row never aborts the good ones).
    json_strings_checked_per_row = frozenset({"rows", "csv"})
    parser_classes = [JSONBodyParser, NDJSONParser, CSVTextParser, _CSVPlainParser, MultiPartParser, FormParser]

    @extend_schema(
        operation_id="import_contacts",
        request={
            "application/json": _create_request,
            "text/csv": str,
            "multipart/form-data": inline_serializer("ImportUpload", fields={"file": serializers.FileField()}),
        },
        parameters=[
            OpenApiParameter(
                "Idempotency-Key",
                str,
                OpenApiParameter.HEADER,
                required=False,
                description="A key of your choosing; a repeat within 24 hours is answered from the first request.",
            )
        ],
        responses={200: _create_response, 202: _create_response},
        examples=[
            OpenApiExample(
                "rows",
                request_only=True,
                media_type="application/json",
                value={
                    "rows": [{"full_name": "Ada Lovelace", "email": "ada@example.com", "tags": ["vip"]}],
                    "update_existing": True,
                    "tags": ["imported"],
                },
            ),
            OpenApiExample(
                "csv",
                request_only=True,
                media_type="application/json",
                value={
                    "csv": "Name,E-mail\nGrace Hopper,grace@example.com\n",
                    "mapping": {"Name": "full_name", "E-mail": "email"},
                    "has_header": True,
                },
            ),
        ],
        summary="Import contacts (rows or CSV); ≤ 500 rows synchronously, more as a queued job",
        description="Send `rows` (contact objects as for `POST /v1/contacts`) or `csv` (with an optional `mapping` "
        "of columns to fields), as JSON; or the CSV itself (`text/csv`, or a `file` in "
        "`multipart/form-data`). A row matches an existing contact by email or phone: "
        "`update_existing` decides whether it is updated or skipped. Up to 500 rows answer 200 with "
        "`status: completed`; more answer 202 with `status: queued` and a `job_id` to poll. A bad row "
        "is reported in `errors` and skipped. The same `Idempotency-Key` with the same body within 24 "
        "hours answers the first response again; with a different body, 409. 60 requests per minute "
        "per workspace.",
    )
    def post(self, request: Request) -> Response:
        data, params, canonical = self._read(request)
        key = request.headers.get("Idempotency-Key")

        def run() -> tuple[int, dict[str, Any], ImportJob]:
            job = import_request(workspace=self.workspace, data=data, params=params, api_key=request.user.api_key)  # type: ignore[union-attr]
            status_code = 202 if job.status == ImportJob.Status.QUEUED else 200
            return status_code, {"data": job_summary(job)}, job

        if key is None:
            status_code, body, _job = run()
        else:
            status_code, body = import_idempotent(
                workspace=self.workspace, key=key, body_hash=request_hash(canonical), run=run
            )
        return Response(body, status=status_code)

    def _read(self, request: Request) -> tuple[ImportInput, ImportParams, dict[str, Any]]:
        query = request.query_params
        body = request.data
        if "__ndjson_body__" in body:
            rows = []
            for number, line in enumerate(body["__ndjson_body__"].splitlines(), start=1):
                if line.strip():
                    rows.append(
                        json_loads_checked(line, where=f"line {number}", require_object=False, check_strings=False)
                    )
            params = import_params_clean(
                update_existing=query.get("update_existing", False), tags=_param_tags(query.getlist("tags"))
            )
            return ImportInput(rows=rows), params, self._canonical(None, rows, params)
        if "__csv_body__" in body:  # text/csv
            csv_data: Any = body["__csv_body__"]
            params = import_params_clean(
                update_existing=query.get("update_existing", False),
                tags=_param_tags(query.getlist("tags")),
                mapping=_parse_mapping_param(query.get("mapping")),
                has_header=query.get("has_header", True),
            )
            return ImportInput(csv_data=csv_data), params, self._canonical(csv_data, None, params)
        if isinstance(body, QueryDict):  # multipart / form
            upload = request.FILES.get("file") or request.FILES.get("csv")
            if upload is None and not body.get("csv"):
                raise ValidationFailed("Send the CSV file in the 'file' field.", details={"field": "file"})
            csv_data = upload.read() if upload is not None else body.get("csv")

            def pick(name: str, default: Any = None) -> Any:
                return body.get(name, query.get(name, default))

            params = import_params_clean(
                update_existing=pick("update_existing", False),
                tags=_param_tags(body.getlist("tags") or query.getlist("tags")),
                mapping=_parse_mapping_param(pick("mapping")),
                has_header=pick("has_header", True),
                file_name=getattr(upload, "name", "") or "",
            )
            return ImportInput(csv_data=csv_data), params, self._canonical(csv_data, None, params)
        if not isinstance(body, dict):
            raise ValidationFailed("The body must be a JSON object with rows or csv.")
        rows, csv_text = body.get("rows"), body.get("csv")
        if rows is None and csv_text is None:
            raise ValidationFailed("Give either rows or csv.", details={"fields": ["rows", "csv"]})
        if rows is not None and csv_text is not None:
            raise ValidationFailed("Give either rows or csv, not both.", details={"fields": ["rows", "csv"]})
        unknown = sorted(set(body) - {"rows", "csv", "mapping", "has_header", "update_existing", "tags"})
        if unknown:
            raise ValidationFailed(f"Unknown parameter {unknown[0]!r}.", details={"field": unknown[0]})
        if rows is not None and not isinstance(rows, list):
            raise ValidationFailed("rows must be a list of contact objects.", details={"field": "rows"})
        if csv_text is not None and not isinstance(csv_text, str):
            raise ValidationFailed("csv must be a string (the CSV text).", details={"field": "csv"})
        if rows is not None and body.get("mapping") is not None:
            raise ValidationFailed("mapping applies to csv only.", details={"field": "mapping"})
        params = import_params_clean(
            update_existing=body.get("update_existing", False),
            tags=body.get("tags"),
            mapping=body.get("mapping") if csv_text is not None else None,
            has_header=body.get("has_header", True),
        )
        return ImportInput(rows=rows, csv_data=csv_text), params, self._canonical(csv_text, rows, params)

    @staticmethod
    def _canonical(csv_data: Any, rows: Any, params: ImportParams) -> dict[str, Any]:
        if isinstance(csv_data, bytes):
            csv_data = csv_data.decode("utf-8", errors="replace").lstrip("\ufeff")
        return {"csv": csv_data, "rows": rows, "params": {**params.as_json(), "file_name": None}}


class ImportContactsStatusView(WorkspaceAPIView):
    @extend_schema(
        operation_id="import_contacts_status",
        responses={200: _status_response},
        summary="Status, progress, counts and errors of an import job",
    )
    def get(self, request: Request, job_id: str) -> Response:
        job = get_in_workspace(ImportJob.objects.all(), workspace=self.workspace, pk=parse_job_id(job_id))
        assert isinstance(job, ImportJob)
        data = {
            **job_summary(job),
            "total_rows": job.total_rows,
            "processed_rows": job.processed_rows,
            "progress_percent": job.progress_percent,
            "error_count": job.error_count,
            "errors_url": import_job_errors_url(job=job, base_url=request.build_absolute_uri("/")),
            "error": job.error or None,
            "created_at": job.created_at,
            "completed_at": job.completed_at,
            "request_id": job.request_id or None,
        }
        return Response({"data": data})


def parse_job_id(value: str) -> str:
    """``imp_<32 hex>`` (also a bare UUID) → the row's UUID; anything else is not found."""
    text = value[len(JOB_ID_PREFIX) :] if value.startswith(JOB_ID_PREFIX) else value
    import uuid

    try:
        return str(uuid.UUID(text))
    except ValueError:
        raise NotFound() from None
