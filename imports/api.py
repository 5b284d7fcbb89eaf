"""POST /v1/import/contacts and GET /v1/import/contacts/{job_id}: thin views over
imports.services (request parsing is in imports.serializers).

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

import uuid
from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response

from contacts.serializers import StrictMixin, envelope
from imports.dialect import encoding_label
from imports.engine import import_job_errors_url
from imports.idempotency import import_idempotent, request_hash
from imports.models import JOB_ID_PREFIX, ImportJob, ImportMapping, Upload
from imports.serializers import (
    CSVPlainParser,
    CSVTabParser,
    CSVTextParser,
    FileBodyParser,
    GzipParser,
    NDJSONParser,
    XLSXParser,
    ZipParser,
    import_request_read,
    job_summary,
)
from imports.services import import_mapping_create, import_preview, import_request
from imports.uploads import (
    upload_complete,
    upload_create,
    upload_delete,
    upload_get,
    upload_links,
    upload_parts_received,
)
from leadlex.api import WorkspaceAPIView, get_in_workspace
from leadlex.errors import NotFound
from leadlex.models import SCOPE_WRITE_CONTACTS
from leadlex.parsers import JSONBodyParser

_error_item = inline_serializer(
    "ImportRowError",
    fields={
        "row": serializers.IntegerField(),
        "field": serializers.CharField(),
        "code": serializers.CharField(),
        "message": serializers.CharField(),
    },
)
_job_fields: dict[str, serializers.Field] = {
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
                "total_rows": serializers.IntegerField(
                    allow_null=True, help_text="null until counted (a file larger than a request body: at the end)"
                ),
                "processed_rows": serializers.IntegerField(),
                "total_bytes": serializers.IntegerField(
                    allow_null=True, help_text="The stored file's size (an upload's); null for a request's own body."
                ),
                "processed_bytes": serializers.IntegerField(
                    help_text="How much of the stored file the run has read (progress of a file counted as it is read)."
                ),
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
                "encoding": serializers.CharField(
                    allow_null=True,
                    help_text="The encoding the CSV was read in (declared or found, e.g. utf-8, windows-1252); "
                    "null for rows.",
                ),
                "delimiter": serializers.CharField(
                    allow_null=True, help_text="The CSV's delimiter (, ; | or a tab); null for rows."
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
        "mapping_preset": serializers.CharField(
            required=False, help_text="the name of a saved mapping (GET /v1/import/mappings), instead of mapping"
        ),
        "delimiter": serializers.ChoiceField(
            choices=[",", ";", "\t", "|", "comma", "semicolon", "tab", "pipe"],
            required=False,
            help_text="The csv's delimiter; found from its header and first lines when not given.",
        ),
        "upload_id": serializers.CharField(
            required=False,
            help_text="An upload's id (POST /v1/uploads), instead of rows or csv: the file is the upload's, of "
            "any size, read from storage (up to 500 rows at once, more as a queued job). encoding and sheet apply.",
        ),
        "encoding": serializers.CharField(
            required=False, help_text="With upload_id: the file's encoding (found from its first bytes when not given)."
        ),
        "sheet": serializers.CharField(
            required=False, help_text="With upload_id: an Excel workbook's sheet, by name (default: the first)."
        ),
    },
)
_upload_reading_errors = {
    404: OpenApiResponse(description="not_found: no upload with this upload_id in this workspace."),
    409: OpenApiResponse(
        description="idempotency_conflict: this Idempotency-Key was used with a different body; "
        "upload_incomplete: the named upload is missing parts (details list them)."
    ),
    410: OpenApiResponse(description="upload_expired: the named upload expired and its file is deleted."),
}
_preview_reading_errors = {
    **_upload_reading_errors,
    409: OpenApiResponse(description="upload_incomplete: the named upload is missing parts (details list them)."),
}
_file_parameters = [
    OpenApiParameter(
        "encoding",
        str,
        OpenApiParameter.QUERY,
        required=False,
        description="The encoding of a text/csv or multipart file (e.g. utf-8, windows-1252, iso-8859-15); "
        "also taken from the Content-Type's charset. Found from the file's first bytes when not given.",
    ),
    OpenApiParameter(
        "delimiter",
        str,
        OpenApiParameter.QUERY,
        required=False,
        enum=[",", ";", "\t", "|", "comma", "semicolon", "tab", "pipe"],
        description="The file's delimiter; found from its header and first lines when not given.",
    ),
    OpenApiParameter(
        "mapping_preset",
        str,
        OpenApiParameter.QUERY,
        required=False,
        description="The name of a saved mapping (GET /v1/import/mappings), instead of mapping.",
    ),
    OpenApiParameter(
        "sheet",
        str,
        OpenApiParameter.QUERY,
        required=False,
        description="An Excel workbook's sheet to import, by name (default: the first).",
    ),
]


def _bodies(upload_name: str) -> dict[str, Any]:
    """The body forms of the import endpoints (their multipart forms are named apart)."""
    return {
        "application/json": _create_request,
        "text/csv": str,
        # Also accepted (same bytes, not listed so that client generators take the document
        # as it is): text/tab-separated-values, application/gzip, application/zip and the
        # .xlsx media type; what a file is comes from its first bytes.
        "application/octet-stream": OpenApiTypes.BINARY,
        "multipart/form-data": inline_serializer(upload_name, fields={"file": serializers.FileField()}),
    }


class ImportContactsView(WorkspaceAPIView):
    rate_limit_group = "import_contacts"
    # A NUL in one row's cell is that row's error (one bad row never aborts the good ones).
    json_strings_checked_per_row = frozenset({"rows", "csv"})
    parser_classes = [
        JSONBodyParser,
        NDJSONParser,
        CSVTextParser,
        CSVTabParser,
        CSVPlainParser,
        XLSXParser,
        GzipParser,
        ZipParser,
        FileBodyParser,
        MultiPartParser,
        FormParser,
    ]

    @extend_schema(
        operation_id="import_contacts",
        request=_bodies("ImportUpload"),
        parameters=[
            *_file_parameters,
            OpenApiParameter(
                "Idempotency-Key",
                str,
                OpenApiParameter.HEADER,
                required=False,
                description="A key of your choosing; a repeat within 24 hours is answered from the first request.",
            ),
        ],
        responses={200: _create_response, 202: _create_response, **_upload_reading_errors},
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
        "of columns to fields), as JSON; or the file itself (`text/csv`, `application/octet-stream`, or a "
        "`file` in `multipart/form-data`): a CSV or TSV in any common encoding and delimiter (found from "
        "the file, or `encoding` / `delimiter`), an Excel workbook (`sheet`), or a gzip or zip of one CSV. "
        "A row matches an existing contact by email or phone: "
        "`update_existing` decides whether it is updated or skipped. Up to 500 rows answer 200 with "
        "`status: completed`; more answer 202 with `status: queued` and a `job_id` to poll. A bad row "
        "is reported in `errors` and skipped. The same `Idempotency-Key` with the same body within 24 "
        "hours answers the first response again; with a different body, 409. 60 requests per minute "
        "per workspace.",
    )
    def post(self, request: Request) -> Response:
        data, params, canonical = import_request_read(request)
        key = request.headers.get("Idempotency-Key")

        def run() -> tuple[int, dict[str, Any], ImportJob]:
            job = import_request(workspace=self.workspace, data=data, params=params, api_key=self.principal.api_key)
            status_code = 202 if job.status == ImportJob.Status.QUEUED else 200
            return status_code, {"data": job_summary(job)}, job

        if key is None:
            status_code, body, _job = run()
        else:
            status_code, body = import_idempotent(
                workspace=self.workspace, key=key, body_hash=request_hash(canonical), run=run
            )
        return Response(body, status=status_code)


_preview_response = inline_serializer(
    "ImportPreviewResponse",
    fields={
        "data": inline_serializer(
            "ImportPreviewData",
            fields={
                "format": serializers.ChoiceField(choices=["csv", "xlsx"]),
                "compression": serializers.ChoiceField(choices=["gzip", "zip"], allow_null=True),
                "sheet": serializers.CharField(allow_null=True),
                "encoding": serializers.CharField(allow_null=True, help_text="null for a workbook"),
                "encoding_reason": serializers.CharField(allow_null=True),
                "delimiter": serializers.CharField(allow_null=True),
                "delimiter_reason": serializers.CharField(allow_null=True),
                "has_header": serializers.BooleanField(),
                "header": serializers.ListField(child=serializers.CharField(allow_blank=True), allow_null=True),
                "rows": serializers.ListField(
                    child=serializers.ListField(child=serializers.CharField(allow_blank=True))
                ),
                "row_count": serializers.IntegerField(
                    allow_null=True, help_text="null for an upload larger than a request body may be (20 MB)"
                ),
                "proposed_mapping": serializers.DictField(child=serializers.CharField()),
                "columns": serializers.ListField(
                    child=inline_serializer(
                        "ImportPreviewColumn",
                        fields={
                            "column": serializers.CharField(allow_blank=True),
                            "field": serializers.CharField(allow_null=True),
                            "reason": serializers.CharField(),
                        },
                    )
                ),
            },
        )
    },
)


class ImportContactsPreviewView(ImportContactsView):
    """The import's body forms, read and described; nothing is written."""

    @extend_schema(
        operation_id="import_contacts_preview",
        request=_bodies("ImportPreviewUpload"),
        parameters=_file_parameters,
        responses={200: _preview_response, **_preview_reading_errors},
        summary="Preview an import: encoding, delimiter, header, first 20 rows and a proposed mapping; writes nothing",
    )
    def post(self, request: Request) -> Response:
        data, params, _canonical = import_request_read(request)
        return Response({"data": import_preview(workspace=self.workspace, data=data, params=params)})


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
            "total_bytes": job.total_bytes,
            "processed_bytes": job.processed_bytes,
            "progress_percent": job.progress_percent,
            "error_count": job.error_count,
            "errors_url": import_job_errors_url(job=job, base_url=request.build_absolute_uri("/")),
            "error": job.error or None,
            "created_at": job.created_at,
            "completed_at": job.completed_at,
            "request_id": job.request_id or None,
            "encoding": encoding_label(job.params["encoding"]) if job.params.get("encoding") else None,
            "delimiter": job.params.get("delimiter") or None,
        }
        return Response({"data": data})


def parse_job_id(value: str) -> str:
    """``imp_<32 hex>`` (also a bare UUID) → the row's UUID; anything else is not found."""
    text = value[len(JOB_ID_PREFIX) :] if value.startswith(JOB_ID_PREFIX) else value
    try:
        return str(uuid.UUID(text))
    except ValueError:
        raise NotFound() from None


# --- saved mappings --------------------------------------------------------------------------


class ImportMappingSerializer(StrictMixin, serializers.ModelSerializer):
    name = serializers.CharField(max_length=ImportMapping._meta.get_field("name").max_length)
    mapping = serializers.DictField(
        child=serializers.CharField(), help_text="column → contact field, as an import's mapping"
    )

    class Meta:
        model = ImportMapping
        fields = ["id", "name", "mapping", "created_at", "updated_at"]
        read_only_fields = ["id", "created_at", "updated_at"]


_mapping_list = inline_serializer("ImportMappingList", fields={"data": ImportMappingSerializer(many=True)})


class ImportMappingsView(WorkspaceAPIView):
    @extend_schema(
        operation_id="import_mappings_list",
        responses={200: _mapping_list},
        summary="The workspace's saved import mappings, by name",
    )
    def get(self, request: Request) -> Response:
        mappings = ImportMapping.objects.filter(workspace=self.workspace)
        return Response({"data": ImportMappingSerializer(mappings, many=True).data})

    @extend_schema(
        operation_id="import_mappings_create",
        request=ImportMappingSerializer,
        responses={201: envelope(ImportMappingSerializer)},
        summary="Save a named mapping; an import names it with mapping_preset",
    )
    def post(self, request: Request) -> Response:
        serializer = ImportMappingSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        created = import_mapping_create(workspace=self.workspace, **serializer.validated_data)
        return Response({"data": ImportMappingSerializer(created).data}, status=201)


class ImportMappingDetailView(WorkspaceAPIView):
    @extend_schema(
        operation_id="import_mappings_get",
        responses={200: envelope(ImportMappingSerializer)},
        summary="One saved import mapping",
    )
    def get(self, request: Request, mapping_id: uuid.UUID) -> Response:
        mapping = get_in_workspace(ImportMapping.objects.all(), workspace=self.workspace, pk=mapping_id)
        return Response({"data": ImportMappingSerializer(mapping).data})

    @extend_schema(
        operation_id="import_mappings_delete", responses={204: None}, summary="Delete a saved import mapping"
    )
    def delete(self, request: Request, mapping_id: uuid.UUID) -> Response:
        mapping = get_in_workspace(ImportMapping.objects.all(), workspace=self.workspace, pk=mapping_id)
        mapping.delete()
        return Response(status=204)


# --- uploads --------------------------------------------------------------------------------


class UploadCreateSerializer(StrictMixin, serializers.Serializer):
    file_name = serializers.CharField(
        max_length=255,
        required=False,
        allow_blank=True,
        help_text="The file's name (its extension helps: .tsv, .xlsx).",
    )
    size = serializers.IntegerField(
        min_value=0,
        required=False,
        help_text="The file's size in bytes. Required for an upload in parts; when given, the parts' sizes follow "
        "from it and the upload completes only at exactly this size.",
    )
    multipart = serializers.BooleanField(
        default=False,
        help_text="Send the file in parts (each one PUT, retried alone if it fails). Always so for a file larger "
        "than one PUT takes (5 GiB).",
    )
    content_type = serializers.CharField(max_length=255, required=False, allow_blank=True)


_part_link = inline_serializer(
    "UploadPart",
    fields={
        "part_number": serializers.IntegerField(),
        "url": serializers.CharField(help_text="PUT the part's bytes here (no other header needed)."),
        "size": serializers.IntegerField(
            allow_null=True, help_text="The part's exact size; null: any size up to 5 GiB."
        ),
    },
)
_upload_fields: dict[str, serializers.Field] = {
    "upload_id": serializers.CharField(),
    "status": serializers.ChoiceField(choices=Upload.Status.values),
    "file_name": serializers.CharField(allow_blank=True),
    "content_type": serializers.CharField(allow_blank=True),
    "size": serializers.IntegerField(allow_null=True, help_text="Declared, then as stored once completed."),
    "part_size": serializers.IntegerField(),
    "part_count": serializers.IntegerField(),
    "url": serializers.CharField(
        allow_null=True, help_text="The one PUT that sends the whole file (an upload of one part, pending)."
    ),
    "parts": serializers.ListField(child=_part_link, help_text="Where to PUT each part (pending uploads)."),
    "parts_received": serializers.ListField(
        child=serializers.IntegerField(), help_text="Parts stored whole so far (pending uploads)."
    ),
    "created_at": serializers.DateTimeField(),
    "completed_at": serializers.DateTimeField(allow_null=True),
    "expires_at": serializers.DateTimeField(
        help_text="The links work until then; then the file is deleted (unless an import is reading it)."
    ),
}
_upload_response = inline_serializer(
    "UploadResponse", fields={"data": inline_serializer("UploadData", fields=_upload_fields)}
)
_upload_errors = {
    409: OpenApiResponse(
        description="upload_incomplete: a part is missing or of the wrong size (details list them), or still "
        "being sent; upload_in_use: an unfinished import reads the upload (DELETE)."
    ),
    410: OpenApiResponse(description="upload_expired: the upload expired or was deleted, and its file with it."),
}


def upload_data(upload: Upload, *, base_url: str, received: bool) -> dict[str, Any]:
    links = upload_links(upload=upload, base_url=base_url)
    return {
        "upload_id": upload.public_id,
        "status": upload.status,
        "file_name": upload.file_name,
        "content_type": upload.content_type,
        "size": upload.size,
        "part_size": upload.part_size,
        "part_count": upload.part_count,
        "url": links[0].url if len(links) == 1 else None,
        "parts": [link.as_dict() for link in links],
        "parts_received": upload_parts_received(upload=upload) if received else [],
        "created_at": upload.created_at,
        "completed_at": upload.completed_at,
        "expires_at": upload.expires_at,
    }


def _upload_in_workspace(view: WorkspaceAPIView, upload_id: str) -> Upload:
    return upload_get(workspace=view.workspace, upload_id=upload_id)


class UploadsView(WorkspaceAPIView):
    required_scope = SCOPE_WRITE_CONTACTS  # its links write: reading an upload is a write key's business too

    @extend_schema(
        operation_id="uploads_create",
        request=UploadCreateSerializer,
        responses={201: _upload_response},
        summary="Start an upload: where to PUT a file of any size (one PUT, or parts) for imports and previews",
        description="Answers where to send the file's bytes: `url` for one `PUT` of the whole file, or `parts` "
        "(`multipart: true`, or a file over 5 GiB; `size` required), each a `PUT` that can be retried alone. "
        "On S3 the links are presigned URLs of the bucket; on the embedded profile, signed links of this "
        "server. Then `POST /v1/uploads/{upload_id}/complete` (or name the upload in an import or preview, "
        'which completes it), and `POST /v1/import/contacts` with `{"upload_id": …}`. An upload and its '
        "file are deleted when it expires (24 hours by default).",
        examples=[
            OpenApiExample("one PUT", request_only=True, value={"file_name": "contacts.csv"}),
            OpenApiExample(
                "in parts",
                request_only=True,
                value={"file_name": "contacts.csv.gz", "size": 1_200_000_000, "multipart": True},
            ),
        ],
    )
    def post(self, request: Request) -> Response:
        serializer = UploadCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        upload = upload_create(workspace=self.workspace, api_key=self.principal.api_key, **serializer.validated_data)
        data = upload_data(upload, base_url=request.build_absolute_uri("/"), received=False)
        return Response({"data": data}, status=201)


class UploadDetailView(WorkspaceAPIView):
    required_scope = SCOPE_WRITE_CONTACTS

    @extend_schema(
        operation_id="uploads_get",
        responses={200: _upload_response},
        summary="An upload: its status, fresh links, and the parts received so far",
    )
    def get(self, request: Request, upload_id: str) -> Response:
        upload = _upload_in_workspace(self, upload_id)
        return Response({"data": upload_data(upload, base_url=request.build_absolute_uri("/"), received=True)})

    @extend_schema(
        operation_id="uploads_delete",
        responses={200: _upload_response, 409: _upload_errors[409]},
        summary="Delete an upload's file now (the upload is then expired)",
    )
    def delete(self, request: Request, upload_id: str) -> Response:
        upload = upload_delete(upload=_upload_in_workspace(self, upload_id))
        return Response({"data": upload_data(upload, base_url=request.build_absolute_uri("/"), received=False)})


class UploadCompleteView(WorkspaceAPIView):
    required_scope = SCOPE_WRITE_CONTACTS

    @extend_schema(
        operation_id="uploads_complete",
        request=None,
        responses={200: _upload_response, **_upload_errors},
        summary="Complete an upload: its parts checked and joined into one file (idempotent)",
    )
    def post(self, request: Request, upload_id: str) -> Response:
        upload = upload_complete(upload=_upload_in_workspace(self, upload_id))
        return Response({"data": upload_data(upload, base_url=request.build_absolute_uri("/"), received=False)})
