"""Workflows of the Close-style exports: validate a request into engine parameters
and create the job (on the one export engine), the signed e-mail link, and the
"done" e-mail itself."""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime
from typing import Any

from django.conf import settings
from django.core import signing
from django.core.mail import send_mail
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils.dateparse import parse_date, parse_datetime
from rest_framework import serializers as drf_serializers

from exports.close.ids import export_public_id, export_type
from exports.close.query import QueryError, compile_query, compile_sort, validate_results_limit
from exports.close.serializers import (
    OPPORTUNITY_FILTERS,
    LeadExportRequestSerializer,
    OpportunityExportRequestSerializer,
)
from exports.engine import export_job_create
from exports.models import CLOSE_KINDS, LEAD_KINDS, OPPORTUNITY_KIND, ExportJob
from leadlex.errors import NotFound, ValidationFailed
from leadlex.models import ApiKey, Workspace

logger = logging.getLogger("exports.close")

_TOKEN_SALT = "exports.close.download-link"


def _validated(serializer_class: type, data: Any) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise ValidationFailed("The request body must be a JSON object.")
    serializer = serializer_class(data=data)
    try:
        serializer.is_valid(raise_exception=True)
    except drf_serializers.ValidationError as exc:
        field, messages = next(iter(exc.detail.items())) if isinstance(exc.detail, dict) else ("body", exc.detail)
        message = messages[0] if isinstance(messages, list) and messages else messages
        if isinstance(message, dict):  # a nested error (e.g. fields[2])
            key, inner = next(iter(message.items()))
            field, message = f"{field}[{key}]", inner[0] if isinstance(inner, list) else inner
        raise ValidationFailed(f"{field}: {message}", details={"field": field}) from None
    return dict(serializer.validated_data)


def _query_error(exc: QueryError, parameter: str) -> ValidationFailed:
    # The message names the node inside the parameter (queries[1].condition.mode: ...).
    return ValidationFailed(str(exc), details={"parameter": parameter, "path": exc.path})


def close_lead_export_parameters(*, workspace: Workspace, data: Any, now: datetime | None = None) -> dict[str, Any]:
    """The request body of POST /export/lead/ as job parameters, or ValidationFailed (400)."""
    attrs = _validated(LeadExportRequestSerializer, data)
    now = now or datetime.now(UTC)
    try:
        compile_query(attrs["s_query"], object_type="lead", now=now, tz=workspace.tzinfo)
    except QueryError as exc:
        raise _query_error(exc, "s_query") from None
    try:
        compile_sort(attrs["sort"])
        validate_results_limit(attrs["results_limit"])
    except QueryError as exc:
        raise _query_error(exc, exc.path.split(".")[0].split("[")[0]) from None
    return {
        "type": attrs["type"],
        "s_query": attrs["s_query"],
        "sort": attrs["sort"] or [],
        "results_limit": attrs["results_limit"],
        "date_format": attrs["date_format"],
        "fields": attrs.get("fields") or None,
        "include_activities": attrs["include_activities"],
        "include_smart_fields": attrs["include_smart_fields"],
        "send_done_email": attrs["send_done_email"],
        "now": now.isoformat(),
        "tz": workspace.timezone,
    }


def _as_list(value: Any, name: str) -> list[str]:
    values = value if isinstance(value, list) else [value]
    if not values or not all(isinstance(v, str) and v for v in values):
        raise ValidationFailed(f"params.{name}: expected a string or a list of strings", details={"field": name})
    return values


def opportunity_filters_parse(raw: dict[str, Any], *, workspace: Workspace) -> dict[str, Any]:
    """Normalise Close-style opportunity filters; every bad value → 400 naming it."""
    filters: dict[str, Any] = {}
    for name, value in raw.items():
        if name not in OPPORTUNITY_FILTERS:
            raise ValidationFailed(f"params.{name}: unknown filter", details={"field": name})
        if value is None:
            continue
        if name in ("status", "status_type"):
            statuses = _as_list(value, name)
            bad = [s for s in statuses if s not in ("active", "won", "lost")]
            if bad:
                raise ValidationFailed(
                    f"params.{name}: unknown status {bad[0]!r} (expected active, won or lost)", details={"field": name}
                )
            filters["status"] = sorted(set(filters.get("status", [])) | set(statuses))
        elif name in ("lead_id", "contact_id"):
            ids = _as_list(value, name)
            try:
                filters[name] = [str(uuid.UUID(i)) for i in ids]
            except ValueError:
                raise ValidationFailed(f"params.{name}: not a valid id", details={"field": name}) from None
        elif name.startswith(("value__", "confidence__")):
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ValidationFailed(f"params.{name}: expected a number", details={"field": name})
            filters[name] = value
        elif name.startswith("date_won__"):
            day = parse_date(value) if isinstance(value, str) else None
            if day is None:
                raise ValidationFailed(f"params.{name}: expected a date YYYY-MM-DD", details={"field": name})
            filters[name] = day.isoformat()
        else:  # date_created__* / date_updated__*: ISO 8601, read in the workspace's zone without an offset
            moment = None
            if isinstance(value, str):
                try:
                    moment = parse_datetime(value.replace("z", "Z"))
                    if moment is None and (day := parse_date(value)) is not None:
                        moment = datetime.combine(day, datetime.min.time())
                except ValueError:
                    moment = None
            if moment is None:
                raise ValidationFailed(
                    f"params.{name}: expected an ISO 8601 date or date-time", details={"field": name}
                )
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=workspace.tzinfo)
            filters[name] = moment.isoformat()
    return filters


def close_opportunity_export_parameters(
    *, workspace: Workspace, data: Any, now: datetime | None = None
) -> dict[str, Any]:
    attrs = _validated(OpportunityExportRequestSerializer, data)
    now = now or datetime.now(UTC)
    raw = dict(attrs.get("params") or {})
    raw.update({k: v for k, v in data.items() if k in OPPORTUNITY_FILTERS})
    filters = opportunity_filters_parse(raw, workspace=workspace)
    if attrs.get("s_query") is not None:
        try:
            compile_query(attrs["s_query"], object_type="lead", now=now, tz=workspace.tzinfo)
        except QueryError as exc:
            raise _query_error(exc, "s_query") from None
        filters["lead_query"] = attrs["s_query"]
    return {
        "type": "lead_opps",
        "filters": filters,
        "date_format": attrs["date_format"],
        "fields": attrs.get("fields") or None,
        "include_smart_fields": attrs["include_smart_fields"],
        "send_done_email": attrs["send_done_email"],
        "now": now.isoformat(),
        "tz": workspace.timezone,
    }


def close_export_request(
    *, workspace: Workspace, endpoint: str, data: Any, api_key: ApiKey | None = None, user: Any = None
) -> ExportJob:
    """Validate a Close-style export request and queue it on the export engine."""
    if endpoint == "lead":
        params = close_lead_export_parameters(workspace=workspace, data=data)
        kind = LEAD_KINDS[params["type"]]
        fmt = data["format"]
    elif endpoint == "opportunity":
        params = close_opportunity_export_parameters(workspace=workspace, data=data)
        kind = OPPORTUNITY_KIND
        fmt = data["format"]
    else:  # pragma: no cover - callers pass a literal
        raise ValueError(endpoint)
    return export_job_create(workspace=workspace, kind=kind, format=fmt, parameters=params, api_key=api_key, user=user)


# --- The e-mail link ----------------------------------------------------------------------------
def close_export_download_token(*, job: ExportJob) -> str:
    """A signed token naming one export; it does not expire by itself (the file
    does, after the retention period), and it never contains a presigned URL."""
    return signing.dumps({"j": job.pk.hex, "w": job.workspace_id.hex}, salt=_TOKEN_SALT, compress=True)


def close_export_from_token(*, export_id: uuid.UUID, token: str) -> ExportJob:
    try:
        data = signing.loads(token, salt=_TOKEN_SALT)
    except signing.BadSignature:
        raise NotFound("This download link is not valid.") from None
    if not isinstance(data, dict) or data.get("j") != export_id.hex or not isinstance(data.get("w"), str):
        raise NotFound("This download link is not valid.")
    job = ExportJob.objects.filter(pk=export_id, kind__in=CLOSE_KINDS, workspace_id=data["w"]).first()
    if job is None:
        raise NotFound("This download link is not valid.")
    return job


def close_export_link(*, job: ExportJob) -> str:
    path = reverse("close:export-download", args=[export_public_id(job)])
    return f"{settings.LEADLEX_PUBLIC_URL}{path}?token={close_export_download_token(job=job)}"


def close_export_send_done_email(*, job: ExportJob) -> bool:
    """E-mail the requesting key's owner a link that stays valid: it leads through
    LeadLex, which signs a fresh presigned URL on each click."""
    recipient = job.api_key.owner_email if job.api_key_id and job.api_key else ""
    if not recipient and job.created_by_user_id and job.created_by_user:
        recipient = job.created_by_user.email
    if not recipient:
        logger.info("export %s: no e-mail address to notify", job.pk)
        return False
    context = {
        "job": job,
        "export_id": export_public_id(job),
        "link": close_export_link(job=job),
        "rows": job.row_count,
        "type": export_type(job),
        "format": job.format,
        "expires_at": job.expires_at,
    }
    send_mail(
        subject=render_to_string("exports/close_export_done_subject.txt", context).strip(),
        message=render_to_string("exports/close_export_done.txt", context),
        html_message=render_to_string("exports/close_export_done.html", context),
        from_email=None,
        recipient_list=[recipient],
    )
    return True
