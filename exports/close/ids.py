"""How the Close dialect names an export job in public: its ``expo_`` id, its
status, its ``type`` and the fields it renders.

It reads the job row and the field lists of ``render`` and nothing else, so the
dialect's kinds, services, serializers, API and admin all import it without
importing each other.
"""

from __future__ import annotations

import uuid

from exports.close import render
from exports.models import OPPORTUNITY_KIND, ExportJob

ID_PREFIX = "expo_"


def export_public_id(job: ExportJob) -> str:
    return ID_PREFIX + job.pk.hex


def export_id_parse(value: str) -> uuid.UUID | None:
    if not value.startswith(ID_PREFIX):
        return None
    try:
        return uuid.UUID(hex=value[len(ID_PREFIX) :])
    except ValueError:
        return None


def public_status(job: ExportJob) -> str:
    s = ExportJob.Status
    if job.status == s.QUEUED:
        return "created"
    if job.status == s.PROCESSING:
        return "in_progress" if job.processed_count else "started"
    if job.status in (s.COMPLETED, s.EXPIRED):
        return "done"
    return "error"


def export_type(job: ExportJob) -> str:
    return "lead_opps" if job.kind == OPPORTUNITY_KIND else job.parameters.get("type", "leads")


def effective_fields(
    *, export_type: str, fmt: str, fields: list[str] | None, include_activities: bool, include_smart_fields: bool
) -> list[str]:
    """The fields a job renders: the requested ones, or the type's defaults, plus
    what the include_* switches add to the types and formats they apply to."""
    chosen = list(fields) if fields else list(render.DEFAULT_FIELDS[export_type])
    if include_activities and export_type == "leads" and fmt != "csv" and "activities" not in chosen:
        chosen.append("activities")
    if include_smart_fields and (fmt == "csv" or export_type == "leads"):
        prefix = "" if export_type == "leads" else "lead_"
        chosen += [f"{prefix}{s}" for s in render.SMART_FIELDS if f"{prefix}{s}" not in chosen]
    return chosen


def job_fields(job: ExportJob) -> list[str]:
    p = job.parameters
    return effective_fields(
        export_type=export_type(job),
        fmt=job.format,
        fields=p.get("fields"),
        include_activities=bool(p.get("include_activities")),
        include_smart_fields=bool(p.get("include_smart_fields")),
    )
