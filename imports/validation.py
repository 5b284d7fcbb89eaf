"""Row validation for imports: a candidate row → clean contact values or row errors.

The rules are those of ``contacts.validation`` (the same as POST /v1/contacts);
this module adds only what an import needs on top of them:

- fast paths for the overwhelmingly common input (plain ASCII addresses, numbers
  already in E.164), because the general validators cost ~130 µs a row and an
  import of a million rows would spend minutes there. Anything the fast path is
  not sure about goes to the general validator, so results are identical;
- ``lists`` given by id *or* by name (an export file names lists by id of the
  source workspace; a spreadsheet names them), resolved per batch by the service;
- "a row must identify someone": an email, a phone or a name.
"""

from __future__ import annotations

import datetime as dt
import re
import uuid
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import phonenumbers

from contacts.validation import (
    CONTACT_MAX_LENGTHS,
    ContactInputError,
    clean_contact_input,
    normalize_email,
    normalize_phone,
)
from imports.parsing import RowError

# Contact fields an import row may carry besides lists (handled here).
_GENERAL_FIELDS = ("full_name", "email", "phone", "job_title", "company_name", "company_id",
                   "linkedin_url", "tags", "custom", "created_at")
_TEXT_FIELDS = ("full_name", "job_title", "company_name")

# A conservative subset of addresses whose normalised form is certain without the
# full RFC machinery: dot-atom ASCII local part, LDH labels, alphabetic TLD.
_SIMPLE_EMAIL = re.compile(
    r"^(?P<local>[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*)"
    r"@(?P<domain>(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63})$"
)
_E164 = re.compile(r"^\+([1-9]\d{6,14})$")


@dataclass
class CleanRow:
    row: int
    values: dict[str, Any]          # model-ready values of the fields present
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


def fast_email(value: str) -> str:
    candidate = value.strip()
    match = _SIMPLE_EMAIL.match(candidate)
    if match and len(candidate) <= CONTACT_MAX_LENGTHS["email"] and len(match["local"]) <= 64:
        return f"{match['local']}@{match['domain'].lower()}"
    return normalize_email(value)  # IDNA, quoted local parts, errors: the general rules


@lru_cache(maxsize=4096)
def _possible_length(country_code: int, national_length: int) -> bool:
    """Whether numbers of this calling code and national length are "possible":
    in libphonenumber that depends on nothing else, so it is computed once."""
    region = phonenumbers.region_code_for_country_code(country_code)
    metadata = phonenumbers.PhoneMetadata.metadata_for_region_or_calling_code(country_code, region)
    if metadata is None:
        return False
    lengths = metadata.general_desc.possible_length or ()
    local = metadata.general_desc.possible_length_local_only or ()
    return national_length in lengths or national_length in local


def fast_phone(value: Any) -> str:
    if isinstance(value, str):
        candidate = value.strip()
        match = _E164.match(candidate)
        if match:
            digits = match[1]
            for cc_len in (1, 2, 3):
                country_code = int(digits[:cc_len])
                if country_code in phonenumbers.COUNTRY_CODE_TO_REGION_CODE:
                    national = digits[cc_len:]
                    # A leading 0 may be a national prefix that parsing strips: general path.
                    if national[:1] != "0" and _possible_length(country_code, len(national)):
                        return candidate
                    break
    return normalize_phone(value)


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
                values["email"] = fast_email(value)
            except ValueError as exc:
                errors.append(RowError(row, "email", "invalid_email", str(exc)))
        elif key == "phone" and isinstance(value, str) and value.strip():
            try:
                values["phone"] = fast_phone(value)
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
