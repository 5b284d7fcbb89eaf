"""Row validation for imports: a candidate row → clean contact values or row errors.

The rules are those of ``contacts.validation`` (the same as POST /v1/contacts);
this module adds only what an import needs on top of them:

- email and phone go straight to ``normalize_email`` / ``normalize_phone`` (their
  shortcuts for plain ASCII addresses and E.164 numbers live there, with the rules
  they must agree with), and text fields skip ``clean_contact_input``'s per-field
  bookkeeping: a million-row import runs this once a row;
- ``lists`` given by id *or* by name (an export file names lists by id of the
  source workspace; a spreadsheet names them), resolved per batch by the service;
- "a row must identify someone": an email, a phone or a name.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass, field
from typing import Any

from contacts.validation import (
    CONTACT_INPUT_FIELDS,
    CONTACT_MAX_LENGTHS,
    ContactInputError,
    clean_contact_input,
    normalize_email,
    normalize_phone,
)
from imports.parsing import RowError

# Contact fields an import row may carry besides lists (handled here).
_GENERAL_FIELDS = tuple(name for name in CONTACT_INPUT_FIELDS if name != "lists")
_TEXT_FIELDS = ("full_name", "job_title", "company_name")


@dataclass
class CleanRow:
    row: int
    values: dict[str, Any]  # model-ready values of the fields present
    tags: list[str] = field(default_factory=list)
    list_ids: list[uuid.UUID] = field(default_factory=list)
    list_names: list[str] = field(default_factory=list)

    @property
    def email_key(self) -> str | None:
        email = self.values.get("email")
        return email.lower() if email else None

    @property
    def phone(self) -> str | None:
        return self.values.get("phone") or None


def _quick_text(value: Any, name: str) -> str | None:
    if isinstance(value, str):
        text = value.strip()
        if len(text) <= CONTACT_MAX_LENGTHS[name]:
            return text
    return None  # let the general validator produce its message


def validate_row(row: int, data: dict[str, Any], *, tz: dt.tzinfo) -> tuple[CleanRow | None, list[RowError]]:
    errors: list[RowError] = []
    general: dict[str, Any] = {}
    values: dict[str, Any] = {}
    list_ids: list[uuid.UUID] = []
    list_names: list[str] = []

    for key, value in data.items():
        if key == "lists":
            ok = _split_lists(value, list_ids, list_names)
            if not ok:
                errors.append(RowError(row, "lists", "invalid_lists", "lists must be a list of list ids or names."))
        elif key in _TEXT_FIELDS:
            text = _quick_text(value, key)
            if text is None:
                general[key] = value
            else:
                values[key] = text
        elif key == "email" and isinstance(value, str) and value.strip():
            try:
                values["email"] = normalize_email(value)
            except ValueError as exc:
                errors.append(RowError(row, "email", "invalid_email", str(exc)))
        elif key == "phone" and isinstance(value, str) and value.strip():
            try:
                values["phone"] = normalize_phone(value)
            except ValueError as exc:
                errors.append(RowError(row, "phone", "invalid_phone", str(exc)))
        elif key in _GENERAL_FIELDS:
            general[key] = value
        else:
            errors.append(RowError(row, key, "unknown_field", f"Unknown field {key!r}."))

    if general:
        try:
            values.update(clean_contact_input(general, tz=tz))
        except ContactInputError as exc:
            errors.extend(RowError(row, e.field, e.code, e.message) for e in exc.errors)

    if errors:
        return None, errors
    if not (values.get("email") or values.get("phone") or values.get("full_name")):
        return None, [RowError(row, "", "missing_identity", "A row needs at least an email, a phone or a full_name.")]
    tags = values.pop("tags", None) or []
    return CleanRow(row=row, values=values, tags=tags, list_ids=list_ids, list_names=list_names), []


def _split_lists(value: Any, ids: list[uuid.UUID], names: list[str]) -> bool:
    if value is None:
        return True
    if isinstance(value, str):
        value = [item for item in value.split(",")]
    if not isinstance(value, (list, tuple)):
        return False
    for item in value:
        if not isinstance(item, str):
            return False
        text = item.strip()
        if not text:
            continue
        try:
            ids.append(uuid.UUID(text))
        except ValueError:
            if len(text) > 200:
                return False
            names.append(text)
    return True
