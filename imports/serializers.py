"""Request parsing of the import endpoint: the body forms it accepts (JSON rows or CSV,
the CSV file itself, NDJSON, a multipart upload), their parameters, and the
canonical form an Idempotency-Key compares. Pure: no database, no storage."""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from typing import Any

from django.http import QueryDict
from rest_framework.parsers import BaseParser
from rest_framework.request import Request

from contacts.validation import parse_tags
from imports import conf
from imports.dialect import DialectError, delimiter_clean, encoding_clean
from imports.formats import XLSX_CONTENT_TYPE
from imports.models import ImportJob, Upload
from imports.parsing import (
    FileSpec,
    MappingError,
    validate_mapping,
)
from leadlex.errors import ValidationFailed
from leadlex.parsers import json_loads_checked

# The row errors a response (and the job row) carries; all of them are in the errors CSV.
RESPONSE_ERRORS = 100


@dataclass
class ImportParams:
    update_existing: bool = False
    tags: list[str] = field(default_factory=list)
    mapping: dict[str, str] | None = None
    has_header: bool = True
    file_name: str = ""
    # As the request declared them (None: find them from the file); once the import
    # starts, what it reads the file with (imports.dialect), which the job keeps.
    encoding: str | None = None
    delimiter: str | None = None
    sheet: str | None = None  # a workbook's sheet (None: the first)
    mapping_preset: str | None = None  # a saved mapping's name (ImportMapping); the job keeps both
    # Found from the file when the import starts (imports.formats): csv or xlsx, and
    # for csv its compression (None, gzip or zip).
    format: str | None = None
    compression: str | None = None

    def file_spec(self) -> FileSpec:
        """How the engine reads the file (jobs from before these were kept: UTF-8, commas)."""
        return FileSpec(
            format=self.format or "csv",
            compression=self.compression,
            encoding=self.encoding or "utf-8",
            delimiter=self.delimiter or ",",
            sheet=self.sheet,
            limits=conf.expand_limits(),
        )

    def as_json(self) -> dict[str, Any]:
        return {
            "update_existing": self.update_existing,
            "tags": self.tags,
            "mapping": self.mapping,
            "has_header": self.has_header,
            "file_name": self.file_name,
            "encoding": self.encoding,
            "delimiter": self.delimiter,
            "sheet": self.sheet,
            "mapping_preset": self.mapping_preset,
            "format": self.format,
            "compression": self.compression,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ImportParams:
        return cls(
            update_existing=bool(data.get("update_existing")),
            tags=list(data.get("tags") or []),
            mapping=data.get("mapping"),
            has_header=data.get("has_header", True) is not False,
            file_name=data.get("file_name") or "",
            encoding=data.get("encoding"),
            delimiter=data.get("delimiter"),
            sheet=data.get("sheet"),
            mapping_preset=data.get("mapping_preset"),
            format=data.get("format"),
            compression=data.get("compression"),
        )


def import_params_clean(
    *,
    update_existing: Any = False,
    tags: Any = None,
    mapping: Any = None,
    has_header: Any = True,
    file_name: str = "",
    encoding: Any = None,
    delimiter: Any = None,
    sheet: Any = None,
    mapping_preset: Any = None,
) -> ImportParams:
    """Validate the request-level parameters (a 400 for the whole request when bad)."""
    update_existing = _as_bool(update_existing, "update_existing")
    try:
        clean_encoding = encoding_clean(encoding) if _given(encoding, "encoding") else None
        clean_delimiter = delimiter_clean(delimiter) if _given(delimiter, "delimiter") else None
    except DialectError as exc:
        raise ValidationFailed(str(exc), details={"field": exc.field}) from None
    has_header = _as_bool(has_header, "has_header")
    try:
        clean_tags = parse_tags(tags)
    except ValueError as exc:
        raise ValidationFailed(f"tags: {exc}", details={"field": "tags"}) from None
    try:
        clean_mapping = validate_mapping(mapping, has_header=has_header)
    except MappingError as exc:
        raise ValidationFailed(str(exc), details={"field": "mapping"}) from None
    preset = mapping_preset.strip() if _given(mapping_preset, "mapping_preset") else None
    if preset is not None and clean_mapping is not None:
        raise ValidationFailed(
            "Give either mapping or mapping_preset, not both.", details={"fields": ["mapping", "mapping_preset"]}
        )
    return ImportParams(
        update_existing=update_existing,
        tags=clean_tags,
        mapping=clean_mapping,
        has_header=has_header,
        file_name=file_name[:200],
        encoding=clean_encoding,
        delimiter=clean_delimiter,
        sheet=sheet.strip() if _given(sheet, "sheet") else None,
        mapping_preset=preset,
    )


def _given(value: Any, name: str) -> bool:
    if value is None or value == "":
        return False
    if not isinstance(value, str):
        raise ValidationFailed(f"{name} must be a string.", details={"field": name})
    return True


def _as_bool(value: Any, name: str) -> bool:
    if isinstance(value, bool):
        return value
    if value is None:
        raise ValidationFailed(f"{name} must be true or false.", details={"field": name})
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off", ""):
        return False
    raise ValidationFailed(f"{name} must be true or false.", details={"field": name})


@dataclass
class ImportInput:
    """What a request hands to the engine: JSON rows or CSV text/bytes."""

    rows: list[Any] | None = None
    csv_data: str | bytes | None = None
    # An upload (POST /v1/uploads, the admin's form, the command's file) as the request
    # named it; imports.services resolves it into ``upload``, whose file (of any size) is
    # streamed from storage, never held.
    upload_id: str | None = None
    upload: Upload | None = None

    @property
    def source(self) -> str:
        return ImportJob.Source.ROWS if self.rows is not None else ImportJob.Source.CSV


# --- the body forms of POST /v1/import/contacts -----------------------------------------


class CSVTextParser(BaseParser):
    """A body that is the CSV file itself."""

    media_type = "text/csv"

    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> dict[str, Any]:
        data = stream.read() if stream is not None else b""
        return {"__file_body__": data, "__charset__": _charset(media_type)}


def _charset(content_type: str | None) -> str | None:
    """The ``charset`` parameter of a Content-Type, if any."""
    for part in (content_type or "").split(";")[1:]:
        name, _, value = part.partition("=")
        if name.strip().lower() == "charset" and value.strip():
            return value.strip().strip('"')
    return None


class CSVTabParser(CSVTextParser):
    """A tab-separated file (``text/tab-separated-values``)."""

    media_type = "text/tab-separated-values"

    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> dict[str, Any]:
        return {**super().parse(stream, media_type, parser_context), "__delimiter__": "\t"}


class CSVPlainParser(CSVTextParser):
    media_type = "text/plain"


class FileBodyParser(CSVTextParser):
    """A workbook, a gzip or zip archive, or any file sent as bytes; what it is comes
    from its first bytes (imports.formats.sniff_format)."""

    media_type = "application/octet-stream"


class XLSXParser(CSVTextParser):
    media_type = XLSX_CONTENT_TYPE


class GzipParser(CSVTextParser):
    media_type = "application/gzip"


class ZipParser(CSVTextParser):
    media_type = "application/zip"


class NDJSONParser(BaseParser):
    """One contact object per line, e.g. an NDJSON export file sent back as it is."""

    media_type = "application/x-ndjson"

    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> dict[str, Any]:
        return {"__ndjson_body__": stream.read() if stream is not None else b""}


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


def import_request_read(request: Request) -> tuple[ImportInput, ImportParams, dict[str, Any]]:
    """What an import request asks for, from any of its body forms: the input, the
    parameters, and the canonical form an Idempotency-Key compares."""
    query = request.query_params
    body = request.data
    # Every parser of this endpoint gives a dict: the JSON one refuses anything but an
    # object, the form ones give a QueryDict, and the CSV and NDJSON ones wrap the body.
    if not isinstance(body, dict):
        raise ValidationFailed("The body must be a JSON object with rows or csv.")
    if "__ndjson_body__" in body:
        ndjson_rows = []
        for number, line in enumerate(body["__ndjson_body__"].splitlines(), start=1):
            if line.strip():
                ndjson_rows.append(
                    json_loads_checked(line, where=f"line {number}", require_object=False, check_strings=False)
                )
        params = import_params_clean(
            update_existing=query.get("update_existing", False), tags=_param_tags(query.getlist("tags"))
        )
        return ImportInput(rows=ndjson_rows), params, _canonical(None, ndjson_rows, params)
    if "__file_body__" in body:  # the file itself (CSV, compressed CSV, a workbook)
        csv_data: Any = body["__file_body__"]
        params = import_params_clean(
            update_existing=query.get("update_existing", False),
            tags=_param_tags(query.getlist("tags")),
            mapping=_parse_mapping_param(query.get("mapping")),
            has_header=query.get("has_header", True),
            # An explicit parameter wins over the Content-Type's charset.
            encoding=query.get("encoding") or body.get("__charset__"),
            delimiter=query.get("delimiter") or body.get("__delimiter__"),
            sheet=query.get("sheet"),
            mapping_preset=query.get("mapping_preset"),
        )
        return ImportInput(csv_data=csv_data), params, _canonical(csv_data, None, params)
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
            encoding=pick("encoding") or getattr(upload, "charset", None),
            delimiter=pick("delimiter") or ("\t" if _is_tsv(upload) else None),
            sheet=pick("sheet"),
            mapping_preset=pick("mapping_preset"),
        )
        return ImportInput(csv_data=csv_data), params, _canonical(csv_data, None, params)
    if "upload_id" in body:
        return _upload_request_read(body)
    rows, csv_text = body.get("rows"), body.get("csv")
    if rows is None and csv_text is None:
        raise ValidationFailed("Give either rows, csv or upload_id.", details={"fields": ["rows", "csv", "upload_id"]})
    if rows is not None and csv_text is not None:
        raise ValidationFailed("Give either rows or csv, not both.", details={"fields": ["rows", "csv"]})
    unknown = sorted(set(body) - _JSON_PARAMS)
    if unknown == ["encoding"]:
        raise ValidationFailed(
            "encoding applies to a CSV file body (text/csv or multipart); a csv string in JSON is text already.",
            details={"field": "encoding"},
        )
    if unknown:
        raise ValidationFailed(f"Unknown parameter {unknown[0]!r}.", details={"field": unknown[0]})
    if rows is not None and body.get("delimiter") is not None:
        raise ValidationFailed("delimiter applies to csv only.", details={"field": "delimiter"})
    if rows is not None and not isinstance(rows, list):
        raise ValidationFailed("rows must be a list of contact objects.", details={"field": "rows"})
    if csv_text is not None and not isinstance(csv_text, str):
        raise ValidationFailed("csv must be a string (the CSV text).", details={"field": "csv"})
    if rows is not None and body.get("mapping") is not None:
        raise ValidationFailed("mapping applies to csv only.", details={"field": "mapping"})
    if rows is not None and body.get("mapping_preset") is not None:
        raise ValidationFailed("mapping_preset applies to csv only.", details={"field": "mapping_preset"})
    params = import_params_clean(
        update_existing=body.get("update_existing", False),
        tags=body.get("tags"),
        mapping=body.get("mapping") if csv_text is not None else None,
        has_header=body.get("has_header", True),
        delimiter=body.get("delimiter"),
        mapping_preset=body.get("mapping_preset"),
    )
    return ImportInput(rows=rows, csv_data=csv_text), params, _canonical(csv_text, rows, params)


_JSON_PARAMS = frozenset(
    {"rows", "csv", "mapping", "mapping_preset", "has_header", "update_existing", "tags", "delimiter"}
)
# An upload is a file: its encoding and sheet can be declared, as for a file body.
_UPLOAD_PARAMS = (_JSON_PARAMS - {"rows", "csv"}) | {"upload_id", "encoding", "sheet"}


def _upload_request_read(body: dict[str, Any]) -> tuple[ImportInput, ImportParams, dict[str, Any]]:
    """``{"upload_id": …}`` with a file's parameters: the file is the upload's."""
    clash = sorted({"rows", "csv"} & set(body))
    if clash:
        raise ValidationFailed(f"Give either upload_id or {clash[0]}, not both.", details={"field": clash[0]})
    unknown = sorted(set(body) - _UPLOAD_PARAMS)
    if unknown:
        raise ValidationFailed(f"Unknown parameter {unknown[0]!r}.", details={"field": unknown[0]})
    upload_id = body["upload_id"]
    if not isinstance(upload_id, str) or not upload_id:
        raise ValidationFailed("upload_id must be the id POST /v1/uploads gave.", details={"field": "upload_id"})
    for name in ("encoding", "sheet"):
        if body.get(name) is not None and not isinstance(body[name], str):
            raise ValidationFailed(f"{name} must be a string.", details={"field": name})
    params = import_params_clean(
        update_existing=body.get("update_existing", False),
        tags=body.get("tags"),
        mapping=body.get("mapping"),
        has_header=body.get("has_header", True),
        delimiter=body.get("delimiter"),
        encoding=body.get("encoding"),
        sheet=body.get("sheet"),
        mapping_preset=body.get("mapping_preset"),
    )
    canonical = {"upload_id": upload_id, "params": params.as_json()}
    return ImportInput(upload_id=upload_id), params, canonical


def _is_tsv(upload: Any) -> bool:
    name = (getattr(upload, "name", "") or "").lower()
    return name.endswith((".tsv", ".tab")) or (getattr(upload, "content_type", "") or "") == "text/tab-separated-values"


def _canonical(csv_data: Any, rows: Any, params: ImportParams) -> dict[str, Any]:
    if isinstance(csv_data, bytes):
        try:
            csv_data = csv_data.decode("utf-8").lstrip("\ufeff")
        except UnicodeDecodeError:
            # Not UTF-8: compared byte for byte (a replacement character would make
            # two different files one request).
            csv_data = {"base64": base64.b64encode(csv_data).decode()}
    return {"csv": csv_data, "rows": rows, "params": {**params.as_json(), "file_name": None}}
