"""Pure rendering of Close-style export rows: JSON objects and CSV cells, the
three date formats and the field lists of each export type. No I/O.

Row data comes from ``exports.close.selectors`` as plain dicts (``values()``
rows with their related rows attached), so that this module can be tested
without a database.

Date formats (Close's three; CSV only, JSON always uses ISO 8601 in UTC with
microseconds, as Close's API does):

* ``original``: ``2024-01-10 13:00:00.000000+01:00`` (microseconds, offset; in
  the workspace's time zone)
* ``iso8601``: ``2024-01-10T13:00:00+01:00`` (no microseconds; workspace zone)
* ``excel``: ``2024-01-10 12:00:00 PM`` (always UTC, no zone, 12-hour clock)
* a date without time is ``YYYY-MM-DD`` in all three.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, date, datetime, tzinfo
from typing import Any

import orjson

from exports.writers import csv_row, jsonb_text

DATE_FORMATS = ("original", "iso8601", "excel")
TYPES = ("leads", "contacts", "lead_opps")
FORMATS = ("csv", "json", "ndjson")


# --- Dates ---------------------------------------------------------------------------
def format_datetime(value: datetime | None, date_format: str, tz: tzinfo) -> str:
    if value is None:
        return ""
    if date_format == "excel":
        return value.astimezone(UTC).strftime("%Y-%m-%d %I:%M:%S %p")
    local = value.astimezone(tz)
    if date_format == "iso8601":
        return local.isoformat(timespec="seconds")
    return local.isoformat(sep=" ", timespec="microseconds")


def json_datetime(value: datetime | None) -> str | None:
    return None if value is None else value.astimezone(UTC).isoformat(timespec="microseconds")


def json_date(value: date | None) -> str | None:
    return None if value is None else value.isoformat()


# --- Small helpers ------------------------------------------------------------------------
def status_id(label: str) -> str | None:
    slug = re.sub(r"[^a-z0-9]+", "_", label.lower()).strip("_")
    return f"stat_{slug}" if slug else None


def money(cents: int | None, currency: str) -> str:
    if cents is None:
        return ""
    sign = "-" if cents < 0 else ""
    units, rest = divmod(abs(cents), 100)
    return f"{sign}{units:,}.{rest:02d} {currency}"


def _str(value: Any) -> str | None:
    return None if value is None else str(value)


def cell(value: Any) -> str:
    """A JSON value as CSV cell text (dates are formatted before they get here)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        return jsonb_text(value) if value else ""
    return str(value)


# --- JSON objects --------------------------------------------------------------------------
ACTIVITY_TYPE_LABELS = {"note": "Note", "call": "Call", "email": "Email", "meeting": "Meeting"}
SMART_FIELDS = ("num_contacts", "num_opportunities", "num_activities", "num_emails", "last_activity_date")


def contact_json(c: dict[str, Any]) -> dict[str, Any]:
    emails = [{"email": e, "type": "office"} for e in c.get("all_emails") or ([c["email"]] if c.get("email") else [])]
    return {
        "id": str(c["id"]),
        "lead_id": _str(c["company_id"]),
        "name": c["full_name"],
        "display_name": c["full_name"],
        "title": c["job_title"],
        "emails": emails,
        "phones": [{"phone": c["phone"], "type": "office"}] if c.get("phone") else [],
        "urls": [{"url": c["linkedin_url"], "type": "url"}] if c.get("linkedin_url") else [],
        "tags": c.get("tag_names") or [],
        "custom": c.get("custom") or {},
        "date_created": json_datetime(c["created_at"]),
        "date_updated": json_datetime(c["updated_at"]),
    }


def opportunity_json(o: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": str(o["id"]),
        "lead_id": _str(o["company_id"]),
        "contact_id": _str(o["contact_id"]),
        "contact_name": o.get("contact__full_name"),
        "status_type": o["status"],
        "status_label": o["status"].capitalize(),
        "value": o["value"],
        "value_currency": o["currency"],
        "value_formatted": money(o["value"], o["currency"]) or None,
        "confidence": o["confidence"],
        "note": o["note"],
        "date_won": json_date(o["date_won"]),
        "date_created": json_datetime(o["created_at"]),
        "date_updated": json_datetime(o["updated_at"]),
    }


def activity_json(a: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": str(a["id"]),
        "_type": ACTIVITY_TYPE_LABELS.get(a["type"], a["type"]),
        "lead_id": _str(a["company_id"]),
        "contact_id": _str(a["contact_id"]),
        "note": a["body"],
        "activity_at": json_datetime(a["occurred_at"]),
        "date_created": json_datetime(a["created_at"]),
    }


def lead_json(lead: dict[str, Any], *, organization_id: str) -> dict[str, Any]:
    """Every field a lead object can have; ``select`` narrows it."""
    obj: dict[str, Any] = {
        "id": str(lead["id"]),
        "display_name": lead["name"],
        "name": lead["name"],
        "description": lead["description"],
        "url": lead["url"] or None,
        "status_id": status_id(lead["status"]),
        "status_label": lead["status"],
        "organization_id": organization_id,
        "created_by": None,
        "created_by_name": None,
        "updated_by": None,
        "updated_by_name": None,
        "date_created": json_datetime(lead["created_at"]),
        "date_updated": json_datetime(lead["updated_at"]),
        "addresses": lead.get("addresses") or [],
        "custom": lead.get("custom") or {},
        "contacts": [contact_json(c) for c in lead.get("contacts", [])],
        "opportunities": [opportunity_json(o) for o in lead.get("opportunities", [])],
    }
    if "activities" in lead:
        obj["activities"] = [activity_json(a) for a in lead["activities"]]
    for name in SMART_FIELDS:
        if name in lead:
            obj[name] = json_datetime(lead[name]) if name == "last_activity_date" else lead[name]
    return obj


def lead_summary_json(lead: dict[str, Any], *, organization_id: str) -> dict[str, Any]:
    """The lead's own columns that contacts / lead_opps rows carry as ``lead_*``."""
    full = lead_json({**lead, "contacts": [], "opportunities": []}, organization_id=organization_id)
    return {
        f"lead_{k}": v
        for k, v in full.items()
        if k not in ("contacts", "opportunities", "activities", "organization_id")
    }


# --- Field lists ---------------------------------------------------------------------------
# The default fields of each type, in CSV column order. ``custom`` (and
# ``lead_custom``) expand to one ``custom.<key>`` column per key in CSV.
LEAD_FIELDS = (
    "id",
    "display_name",
    "name",
    "description",
    "url",
    "status_id",
    "status_label",
    "date_created",
    "date_updated",
    "created_by",
    "created_by_name",
    "updated_by",
    "updated_by_name",
    "addresses",
    "contacts",
    "opportunities",
    "custom",
)
_LEAD_PREFIXED = tuple(f"lead_{f}" for f in LEAD_FIELDS if f not in ("id", "contacts", "opportunities"))
CONTACT_FIELDS = (
    "id",
    "lead_id",
    "name",
    "display_name",
    "title",
    "emails",
    "phones",
    "urls",
    "tags",
    "date_created",
    "date_updated",
    "custom",
    *_LEAD_PREFIXED,
)
OPP_FIELDS = (
    "id",
    "lead_id",
    "contact_id",
    "contact_name",
    "status_type",
    "status_label",
    "value",
    "value_currency",
    "value_formatted",
    "confidence",
    "note",
    "date_won",
    "date_created",
    "date_updated",
    *_LEAD_PREFIXED,
)
DEFAULT_FIELDS = {"leads": LEAD_FIELDS, "contacts": CONTACT_FIELDS, "lead_opps": OPP_FIELDS}
# Extra fields a client may ask for by name even when not in the default list.
OPTIONAL_FIELDS = {
    "leads": ("activities", "organization_id", *SMART_FIELDS),
    "contacts": tuple(f"lead_{s}" for s in SMART_FIELDS),
    "lead_opps": tuple(f"lead_{s}" for s in SMART_FIELDS),
}
DATETIME_FIELDS = {"date_created", "date_updated", "last_activity_date", "activity_at"}
DATE_FIELDS = {"date_won"}


def is_known_field(export_type: str, name: str) -> bool:
    if name in DEFAULT_FIELDS[export_type] or name in OPTIONAL_FIELDS[export_type]:
        return True
    prefix = "lead_custom." if export_type != "leads" and name.startswith("lead_custom.") else "custom."
    if name.startswith(prefix) and len(name) > len(prefix):
        return export_type != "lead_opps" or prefix == "lead_custom."
    return False


def _base_field(name: str) -> str:
    return name[5:] if name.startswith("lead_") else name


# --- CSV -------------------------------------------------------------------------------------
def _contacts_summary(contacts: list[dict[str, Any]]) -> str:
    parts = []
    for c in contacts:
        email = c.get("email")
        parts.append(f"{c['full_name']} <{email}>" if email else c["full_name"])
    return "; ".join(parts)


def _opps_summary(opps: list[dict[str, Any]]) -> str:
    parts = []
    for o in opps:
        text = o["status"].capitalize()
        if o["value"] is not None:
            text += f" {money(o['value'], o['currency'])}"
        if o["confidence"] is not None:
            text += f" ({o['confidence']}%)"
        parts.append(text)
    return "; ".join(parts)


def _addresses_summary(addresses: Any) -> str:
    if not isinstance(addresses, list):
        return cell(addresses)
    parts = []
    for a in addresses:
        if isinstance(a, dict):
            keys = ("address_1", "address_2", "city", "state", "zipcode", "country")
            values = [str(a[k]) for k in keys if a.get(k)] or [str(v) for v in a.values() if v not in (None, "")]
            parts.append(", ".join(values))
        else:
            parts.append(str(a))
    return "; ".join(parts)


def _csv_value(name: str, obj: dict[str, Any], raw: dict[str, Any], date_format: str, tz: tzinfo) -> str:
    base = _base_field(name)
    value = obj.get(name)
    if base in DATETIME_FIELDS:
        source = raw.get(name)
        return format_datetime(source, date_format, tz) if isinstance(source, datetime) else cell(value)
    if base in DATE_FIELDS:
        return cell(value)
    if name == "contacts":
        return _contacts_summary(raw.get("contacts", []))
    if name == "opportunities":
        return _opps_summary(raw.get("opportunities", []))
    if base == "addresses":
        return _addresses_summary(value)
    if name in ("emails",):
        return "; ".join(e["email"] for e in value or [])
    if name == "phones":
        return "; ".join(p["phone"] for p in value or [])
    if name == "urls":
        return "; ".join(u["url"] for u in value or [])
    if name == "tags":
        return ", ".join(value or [])
    return cell(value)


class Columns:
    """The resolved output of one job: the fields to render and, for CSV, the
    header with custom fields expanded to one column per key."""

    def __init__(
        self,
        export_type: str,
        fields: Sequence[str],
        custom_keys: Iterable[str] = (),
        lead_custom_keys: Iterable[str] = (),
    ) -> None:
        self.export_type = export_type
        self.fields = list(fields)
        self.custom_keys = list(custom_keys)
        self.lead_custom_keys = list(lead_custom_keys)

    def header(self) -> list[str]:
        out: list[str] = []
        for name in self.fields:
            if name == "custom":
                out += [f"custom.{k}" for k in self.custom_keys]
            elif name == "lead_custom":
                out += [f"lead_custom.{k}" for k in self.lead_custom_keys]
            else:
                out.append(name)
        return out

    def json_object(self, full: dict[str, Any]) -> dict[str, Any]:
        obj: dict[str, Any] = {}
        for name in self.fields:
            if name.startswith(("custom.", "lead_custom.")):
                group, _, key = name.partition(".")
                obj.setdefault(group, {})
                source = full.get(group) or {}
                if key in source:
                    obj[group][key] = source[key]
            elif name in full:
                obj[name] = full[name]
        return obj

    def csv_cells(self, full: dict[str, Any], raw: dict[str, Any], date_format: str, tz: tzinfo) -> list[str]:
        cells: list[str] = []
        for name in self.fields:
            if name in ("custom", "lead_custom"):
                source = full.get(name) or {}
                keys = self.custom_keys if name == "custom" else self.lead_custom_keys
                cells += [cell(source.get(k)) for k in keys]
            elif name.startswith(("custom.", "lead_custom.")):
                group, _, key = name.partition(".")
                cells.append(cell((full.get(group) or {}).get(key)))
            else:
                cells.append(_csv_value(name, full, raw, date_format, tz))
        return cells


def raw_dates(prefix: str, row: dict[str, Any]) -> dict[str, Any]:
    """The datetimes of a row under their output names, for CSV date formatting."""
    return {
        f"{prefix}date_created": row.get("created_at"),
        f"{prefix}date_updated": row.get("updated_at"),
        f"{prefix}last_activity_date": row.get("last_activity_date"),
    }


# --- Rows of each type ------------------------------------------------------------------------
RowRenderer = Callable[[dict[str, Any], dict[str, Any]], tuple[dict[str, Any], dict[str, Any]]]


def lead_row(lead: dict[str, Any], *, organization_id: str) -> tuple[dict[str, Any], dict[str, Any]]:
    full = lead_json(lead, organization_id=organization_id)
    raw = {**raw_dates("", lead), "contacts": lead.get("contacts", []), "opportunities": lead.get("opportunities", [])}
    return full, raw


def _lead_smart(lead: dict[str, Any]) -> dict[str, Any]:
    return {
        f"lead_{name}": (json_datetime(lead[name]) if name == "last_activity_date" else lead[name])
        for name in SMART_FIELDS
        if name in lead
    }


def contact_row(contact: dict[str, Any], lead: dict[str, Any], *, organization_id: str) -> tuple[dict, dict]:
    full = {**contact_json(contact), **lead_summary_json(lead, organization_id=organization_id), **_lead_smart(lead)}
    raw = {**raw_dates("", contact), **raw_dates("lead_", lead)}
    return full, raw


def opportunity_row(opp: dict[str, Any], lead: dict[str, Any] | None, *, organization_id: str) -> tuple[dict, dict]:
    full = opportunity_json(opp)
    raw = raw_dates("", opp)
    if lead is not None:
        full.update(lead_summary_json(lead, organization_id=organization_id))
        full.update(_lead_smart(lead))
        raw.update(raw_dates("lead_", lead))
    return full, raw


def encode_json(obj: dict[str, Any]) -> bytes:
    return orjson.dumps(obj)


def encode_csv(cells: list[str]) -> bytes:
    return csv_row(cells).encode()
