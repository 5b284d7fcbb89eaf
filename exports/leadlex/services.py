"""Workflows of the LeadLex contact export surfaces. They turn the surface's input
into an engine job (or stream) and nothing else: the rows, files, checkpoints and
webhooks are the engine's (exports/engine.py)."""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterable, Iterator
from datetime import datetime, time, timedelta
from typing import Any
from uuid import UUID

import orjson
from django.utils.dateparse import parse_date, parse_datetime

from contacts.models import ContactList
from exports.engine import export_job_create, export_stream
from exports.leadlex import kinds as contact_kind
from exports.leadlex.selectors import ContactFilter, contact_export_boundary, cursor_decode
from exports.models import ExportJob
from leadlex.errors import UnprocessableEntity, ValidationFailed
from leadlex.models import ApiKey, Workspace

SYNC_DEFAULT_LIMIT = 10_000
SYNC_MAX_LIMIT = 50_000
# The documented "YYYY-MM-DD HH:MM:SS", or an ISO 8601 / RFC 3339 date-time with an
# optional offset. Checked before parsing because datetime.fromisoformat (which
# Django's parser tries first) also takes bare dates, week dates and basic forms.
_ASYNC_DATE_RE = re.compile(
    r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?(Z|[+-]\d{2}(:?\d{2})?)?", re.IGNORECASE
)
_ASYNC_DATE_FORMS = (
    "expected YYYY-MM-DD HH:MM:SS (workspace time zone) or an ISO 8601 date-time such as "
    "2020-01-01T00:00:00Z (with Z or an offset; without one, workspace time zone)"
)


# --- Time ---------------------------------------------------------------------------
def local_to_aware(value: datetime, workspace: Workspace) -> datetime:
    """A wall-clock time in the workspace's zone as an aware instant. zoneinfo
    applies the offset in force on that date (DST-correct); for a repeated hour
    (fall back) the first occurrence is taken, for a skipped one (spring forward)
    the offset before the change, as PEP 495 defines."""
    if value.tzinfo is not None:
        return value
    return value.replace(tzinfo=workspace.tzinfo)


def parse_iso_bound(raw: str, *, workspace: Workspace, field: str) -> datetime:
    """ISO 8601 date or date-time; without an offset it is read in the workspace's zone."""
    text = raw.strip()
    value: datetime | None = None
    try:
        value = parse_datetime(text.replace("z", "Z"))
        if value is None:
            day = parse_date(text)
            value = datetime.combine(day, time.min) if day else None
    except ValueError:
        value = None
    if value is None:
        raise ValidationFailed(f"{field}: not an ISO 8601 date or date-time: {raw!r}", details={"field": field})
    return local_to_aware(value, workspace)


# --- Sync CSV export (GET /v1/contacts/export) ---------------------------------------
def _cursor_token(cursor: list) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(cursor)).decode().rstrip("=")


def _cursor_from_token(token: str) -> list:
    try:
        cursor = orjson.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        cursor_decode(cursor)
        return cursor
    except (ValueError, TypeError, IndexError, binascii.Error, orjson.JSONDecodeError):
        raise ValidationFailed("cursor: not a valid cursor", details={"field": "cursor"}) from None


def _list_in_workspace(*, workspace: Workspace, raw: str) -> str:
    try:
        list_id = UUID(raw.strip())
    except ValueError:
        raise ValidationFailed("list_id: not a valid list id", details={"field": "list_id"}) from None
    if not ContactList.objects.filter(workspace=workspace, pk=list_id).exists():
        # Another workspace's list reads exactly like a list that does not exist.
        raise ValidationFailed("list_id: no such list", details={"field": "list_id"})
    return str(list_id)


def parse_fields(raw: str | None, *, default: Iterable[str]) -> list[str]:
    if raw is None or not raw.strip():
        return list(default)
    fields = [f.strip() for f in raw.split(",") if f.strip()]
    unknown = [f for f in fields if f not in contact_kind.FIELDS]
    if unknown or not fields:
        raise ValidationFailed(
            f"fields: unknown field(s): {', '.join(unknown) or '(none given)'}",
            details={"field": "fields", "unknown": unknown, "allowed": list(contact_kind.ALL_FIELDS)},
        )
    if len(set(fields)) != len(fields):
        raise ValidationFailed("fields: a field is listed twice", details={"field": "fields"})
    return fields


def contact_export_sync_prepare(*, workspace: Workspace, query: Any) -> tuple[ExportJob, str | None]:
    """Validate the sync export's query string; returns the (unsaved) job to stream
    and the cursor token of the next page, if more rows match than ``limit``."""
    allowed = {"limit", "created_after", "created_before", "list_id", "tag", "fields", "cursor"}
    unknown = sorted(set(query.keys()) - allowed)
    if unknown:
        raise ValidationFailed(f"unknown parameter(s): {', '.join(unknown)}", details={"unknown": unknown})
    raw_limit = query.get("limit")
    limit = SYNC_DEFAULT_LIMIT
    if raw_limit not in (None, ""):
        try:
            limit = int(raw_limit)
        except ValueError:
            raise ValidationFailed("limit: must be an integer", details={"field": "limit"}) from None
        if not 1 <= limit <= SYNC_MAX_LIMIT:
            raise ValidationFailed(f"limit: must be between 1 and {SYNC_MAX_LIMIT:,}", details={"field": "limit"})
    params: dict[str, Any] = {"fields": parse_fields(query.get("fields"), default=contact_kind.CSV_DEFAULT_FIELDS)}
    after = before = None
    if query.get("created_after"):
        after = parse_iso_bound(query["created_after"], workspace=workspace, field="created_after")
        params["created_after"] = after.isoformat()
    if query.get("created_before"):
        before = parse_iso_bound(query["created_before"], workspace=workspace, field="created_before")
        params["created_before"] = before.isoformat()
    if after and before and before <= after:
        raise ValidationFailed("created_before must be after created_after", details={"field": "created_before"})
    if query.get("list_id"):
        params["list_id"] = _list_in_workspace(workspace=workspace, raw=query["list_id"])
    tags = [t.strip() for t in query.getlist("tag") if t.strip()]
    if tags:
        params["tags"] = sorted(set(tags))
    if query.get("cursor"):
        params["start_after"] = _cursor_from_token(query["cursor"])
    # Fix the page's last row before streaming: the Link header must be sent first,
    # and rows created meanwhile must not stretch the page past ``limit``.
    until = contact_export_boundary(workspace=workspace, filters=ContactFilter.from_parameters(params), limit=limit)
    if until:
        params["until"] = until
    job = ExportJob(workspace=workspace, kind=contact_kind.KIND, format=ExportJob.Format.CSV, parameters=params)
    return job, _cursor_token(until) if until else None


def contact_export_sync_stream(*, job: ExportJob) -> Iterator[bytes]:
    return export_stream(job)


# --- Async export (POST /v1/contacts/exports) ----------------------------------------
def _parse_async_date(value: Any, *, field: str, workspace: Workspace) -> datetime:
    """A date-time with an offset is that instant; one without is a wall-clock time
    of the workspace's zone (the documented "YYYY-MM-DD HH:MM:SS" is such a one)."""
    text = value.strip() if isinstance(value, str) else ""
    parsed: datetime | None = None
    if _ASYNC_DATE_RE.fullmatch(text):
        try:
            parsed = parse_datetime(text[:10] + "T" + text[11:].upper())
        except ValueError:  # well formed but impossible: 2020-02-30, 25:00, +25:00
            parsed = None
    if parsed is None:
        raise UnprocessableEntity(f"{field}: {_ASYNC_DATE_FORMS}; got {value!r}", details={"field": field})
    return local_to_aware(parsed, workspace)


def _parse_flag(value: Any, *, field: str) -> bool:
    if value is None or value == "":
        return False
    if isinstance(value, bool):
        return value
    # A JSON number is compared by value (1.0 is 1); text must be exactly "0" or "1".
    if isinstance(value, (int, float)) and value in (0, 1):
        return value == 1
    if value in ("0", "1"):
        return value == "1"
    raise UnprocessableEntity(f"{field}: must be 0 or 1", details={"field": field})


def contact_export_request(*, workspace: Workspace, data: dict[str, Any], api_key: ApiKey | None = None) -> ExportJob:
    """Validate the async export's body (422 on any problem) and queue the job."""
    if not isinstance(data, dict):
        raise UnprocessableEntity("The body must be a JSON object.")
    allowed = {"start_date", "end_date", "include_comet_tokens", "include_all_emails"}
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise UnprocessableEntity(f"unknown parameter(s): {', '.join(unknown)}", details={"unknown": unknown})
    for field in ("start_date", "end_date"):
        if data.get(field) in (None, ""):
            raise UnprocessableEntity(f"{field}: required", details={"field": field})
    start = _parse_async_date(data["start_date"], field="start_date", workspace=workspace)
    end = _parse_async_date(data["end_date"], field="end_date", workspace=workspace)
    if end <= start:
        raise UnprocessableEntity("end_date must be after start_date", details={"field": "end_date"})
    # The end is inclusive: "until 23:59:59" covers that whole second; an end with a
    # fraction of a second covers up to that instant (microseconds, as stored).
    inclusive = timedelta(microseconds=1) if end.microsecond else timedelta(seconds=1)
    params = {
        "created_from": start.isoformat(),
        "created_before": (end + inclusive).isoformat(),
        "include_comet_tokens": _parse_flag(data.get("include_comet_tokens"), field="include_comet_tokens"),
        "include_all_emails": _parse_flag(data.get("include_all_emails"), field="include_all_emails"),
        "start_date": data["start_date"].strip(),
        "end_date": data["end_date"].strip(),
    }
    return export_job_create(
        workspace=workspace, kind=contact_kind.KIND, format=ExportJob.Format.NDJSON, parameters=params, api_key=api_key
    )


# --- Admin and command ---------------------------------------------------------------
def contact_export_start(
    *,
    workspace: Workspace,
    format: str,
    contact_ids: list[Any] | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
    user: Any = None,
    include_comet_tokens: bool = False,
    include_all_emails: bool = False,
    enqueue: bool = True,
) -> ExportJob:
    """An export of a whole workspace, a date range of it, or chosen contacts
    (``enqueue=False``: the caller runs it itself, as ``export_contacts`` does)."""
    if format not in (ExportJob.Format.CSV, ExportJob.Format.NDJSON):
        raise ValidationFailed("format: expected csv or ndjson", details={"field": "format"})
    params: dict[str, Any] = {"include_comet_tokens": include_comet_tokens, "include_all_emails": include_all_emails}
    if contact_ids is not None:
        params["contact_ids"] = sorted(str(i) for i in contact_ids)
    if start:
        params["created_from"] = local_to_aware(start, workspace).isoformat()
    if end:
        params["created_before"] = local_to_aware(end, workspace).isoformat()
    return export_job_create(
        workspace=workspace, kind=contact_kind.KIND, format=format, parameters=params, user=user, enqueue=enqueue
    )


def parse_local_bound(raw: str, *, workspace: Workspace, field: str) -> datetime:
    """Command-line dates: ``YYYY-MM-DD`` or ``YYYY-MM-DD HH:MM[:SS]`` (workspace zone) or ISO 8601."""
    return parse_iso_bound(raw.replace(" ", "T", 1) if len(raw) > 10 else raw, workspace=workspace, field=field)
