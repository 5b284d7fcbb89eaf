"""Pure validation and normalisation of contact input.

Shared by the REST API (``POST/PATCH /v1/contacts``), the import engine and the
demo seeder, so that a contact is cleaned the same way whichever door it comes
through. Nothing here touches the database: existence checks (company, lists)
and uniqueness belong to the services.

Every function raises ``ValueError`` (or its subclass ``FieldError``) with a
message a user can act on.
"""

from __future__ import annotations

import datetime as dt
import re
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

import phonenumbers
from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.validators import URLValidator
from email_validator import EmailNotValidError, validate_email

from contacts.models import Company, Contact, Tag

UTC = dt.timezone.utc


def _max_lengths(model: type, names: Iterable[str]) -> dict[str, int]:
    return {name: model._meta.get_field(name).max_length for name in names}


# Derived from the models so that a migration that widens a column widens the check too.
CONTACT_MAX_LENGTHS: dict[str, int] = _max_lengths(
    Contact, ("full_name", "email", "phone", "job_title", "company_name", "linkedin_url")
)
COMPANY_MAX_LENGTHS: dict[str, int] = _max_lengths(Company, ("name", "url", "status"))
TAG_MAX_LENGTH: int = Tag._meta.get_field("name").max_length
MAX_TAGS = 100
# A phone column holds E.164 (at most 16 chars), but raw input may carry spaces,
# dashes and an extension; anything longer than this is not a phone number.
MAX_RAW_PHONE_LENGTH = 64
MAX_CUSTOM_BYTES = 64 * 1024

# Fields a client may send for a contact (POST /v1/contacts, import rows).
CONTACT_INPUT_FIELDS: tuple[str, ...] = (
    "full_name", "email", "phone", "job_title", "company_name", "company_id",
    "linkedin_url", "tags", "custom", "created_at", "lists",
)


@dataclass
class FieldError(ValueError):
    """One bad field: what the import report and the API error details show."""

    field: str
    code: str
    message: str

    def __str__(self) -> str:
        return f"{self.field}: {self.message}"

    def as_dict(self) -> dict[str, str]:
        return {"field": self.field, "code": self.code, "message": self.message}


class ContactInputError(ValueError):
    """All the bad fields of one contact input, collected rather than stopping at the first."""

    def __init__(self, errors: list[FieldError]) -> None:
        super().__init__("; ".join(str(e) for e in errors))
        self.errors = errors

    def by_field(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for error in self.errors:
            out.setdefault(error.field, []).append(error.message)
        return out


# --- single values ------------------------------------------------------------------


def check_length(value: str, *, max_length: int, what: str = "value") -> str:
    # PostgreSQL cannot store NUL in text; refusing it here keeps both databases alike.
    if "\x00" in value:
        raise ValueError(f"{what} must not contain NUL characters.")
    if len(value) > max_length:
        raise ValueError(f"{what} is too long ({len(value)} characters; at most {max_length}).")
    return value


def normalize_email(value: Any) -> str:
    """The normalised address (domain lower-cased and IDNA-checked, local part kept).

    Deliverability (DNS) is not checked: imports of a million rows cannot wait on
    DNS, and an address that does not resolve today is still the customer's data.
    """
    if not isinstance(value, str):
        raise ValueError("Email must be a string.")
    candidate = value.strip()
    if not candidate:
        raise ValueError("Email is empty.")
    if len(candidate) > CONTACT_MAX_LENGTHS["email"]:
        raise ValueError(f"Email is too long (at most {CONTACT_MAX_LENGTHS['email']} characters).")
    try:
        result = validate_email(candidate, check_deliverability=False)
    except EmailNotValidError as exc:
        raise ValueError(f"{candidate!r} is not a valid email address: {exc}") from None
    return result.normalized


def normalize_phone(value: Any, *, region: str = "US") -> str:
    """E.164 (``+14155552671``). A number without a country code is read in ``region``."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        raise ValueError("Phone must be a string.")
    candidate = value.strip()
    if not candidate:
        raise ValueError("Phone is empty.")
    if len(candidate) > MAX_RAW_PHONE_LENGTH:
        raise ValueError(f"Phone is too long (at most {MAX_RAW_PHONE_LENGTH} characters).")
    try:
        number = phonenumbers.parse(candidate, region)
    except phonenumbers.NumberParseException:
        raise ValueError(f"{candidate!r} is not a phone number.") from None
    # "Possible" (right length for the country) rather than "valid" (an assigned
    # range): demo and test data use 555 numbers that are not assigned anywhere.
    if not phonenumbers.is_possible_number(number):
        raise ValueError(f"{candidate!r} is not a possible phone number.")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


_url_validator = URLValidator(schemes=["http", "https"])
_HAS_SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*://")


def validate_url(value: Any, *, max_length: int = 1000, what: str = "URL") -> str:
    """An http(s) URL; a bare ``www.linkedin.com/in/x`` gets ``https://``. Empty → ""."""
    if value is None:
        return ""
    if not isinstance(value, str):
        raise ValueError(f"{what} must be a string.")
    candidate = value.strip()
    if not candidate:
        return ""
    if not _HAS_SCHEME.match(candidate):
        candidate = "https://" + candidate
    check_length(candidate, max_length=max_length, what=what)
    try:
        _url_validator(candidate)
    except DjangoValidationError:
        raise ValueError(f"{value!r} is not a valid http(s) URL.") from None
    return candidate


def parse_created_at(value: Any, *, tz: dt.tzinfo | str = UTC) -> dt.datetime:
    """ISO 8601 → an aware datetime. A value without an offset is read in ``tz``
    (the workspace's time zone); a bare date means its midnight."""
    if isinstance(tz, str):
        tz = ZoneInfo(tz)
    if isinstance(value, dt.datetime):
        parsed = value
    elif isinstance(value, dt.date):
        parsed = dt.datetime.combine(value, dt.time())
    elif isinstance(value, str):
        candidate = value.strip()
        if not candidate:
            raise ValueError("Date-time is empty.")
        try:
            # Python 3.11 reads the ISO 8601 forms people send: "Z", offsets, a space
            # instead of "T", fractions, bare dates.
            parsed = dt.datetime.fromisoformat(candidate)
        except ValueError:
            raise ValueError(f"{candidate!r} is not an ISO 8601 date-time (e.g. 2024-05-01T12:00:00Z).") from None
    else:
        raise ValueError("Date-time must be an ISO 8601 string.")
    if parsed.tzinfo is None or parsed.utcoffset() is None:
        parsed = parsed.replace(tzinfo=tz)
    return parsed


def parse_tags(value: Any) -> list[str]:
    """A list of strings or one comma-separated string → stripped, de-duplicated tags in order."""
    if value is None:
        return []
    if isinstance(value, str):
        items: list[Any] = value.split(",")
    elif isinstance(value, (list, tuple)):
        items = list(value)
    else:
        raise ValueError("Tags must be a list of strings or a comma-separated string.")
    tags: list[str] = []
    seen: set[str] = set()
    for item in items:
        if not isinstance(item, str):
            raise ValueError("Every tag must be a string.")
        tag = item.strip()
        if not tag:
            continue
        check_length(tag, max_length=TAG_MAX_LENGTH, what=f"Tag {tag[:20]!r}…")
        if tag not in seen:
            seen.add(tag)
            tags.append(tag)
    if len(tags) > MAX_TAGS:
        raise ValueError(f"Too many tags ({len(tags)}; at most {MAX_TAGS}).")
    return tags


def validate_custom(value: Any) -> dict[str, Any]:
    """Custom field values: a JSON object with string keys, of bounded size."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ValueError("Custom fields must be a JSON object.")
    if not all(isinstance(key, str) and key for key in value):
        raise ValueError("Custom field names must be non-empty strings.")
    import json

    try:
        encoded = json.dumps(value, allow_nan=False)
    except (TypeError, ValueError):
        raise ValueError("Custom field values must be JSON values.") from None
    if "\\u0000" in encoded:  # PostgreSQL's jsonb refuses NUL
        raise ValueError("Custom field values must not contain NUL characters.")
    size = len(encoded)
    if size > MAX_CUSTOM_BYTES:
        raise ValueError(f"Custom fields are too large ({size} bytes; at most {MAX_CUSTOM_BYTES}).")
    return dict(value)


def parse_uuid(value: Any, *, what: str = "id") -> uuid.UUID:
    if isinstance(value, uuid.UUID):
        return value
    if not isinstance(value, str):
        raise ValueError(f"{what} must be a UUID string.")
    try:
        return uuid.UUID(value.strip())
    except ValueError:
        raise ValueError(f"{value!r} is not a valid {what} (a UUID).") from None


def _text(value: Any, *, field: str) -> str:
    if value is None:
        return ""
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise ValueError(f"{field} must be a string.")
    text = str(value).strip()
    return check_length(text, max_length=CONTACT_MAX_LENGTHS[field], what=field)


# --- a whole contact -----------------------------------------------------------------


def clean_contact_input(
    data: Mapping[str, Any], *, tz: dt.tzinfo | str = UTC, phone_region: str = "US",
    allowed: Iterable[str] = CONTACT_INPUT_FIELDS,
) -> dict[str, Any]:
    """Validate and normalise the fields present in ``data`` (absent fields stay absent,
    so the same function serves create and partial update).

    Returns model-ready values: ``email``/``phone`` normalised or ``None``, text
    stripped, ``tags`` a list, ``created_at`` aware, ``company_id`` a UUID or
    ``None``, ``lists`` a list of UUIDs. Raises ``ContactInputError`` listing every
    bad field, unknown fields included (code ``unknown_field``).
    """
    allowed_set = set(allowed)
    errors: list[FieldError] = []
    cleaned: dict[str, Any] = {}
    unknown = sorted(str(key) for key in data if key not in allowed_set)
    for key in unknown:
        errors.append(FieldError(key, "unknown_field", f"Unknown field {key!r}."))

    def attempt(field: str, code: str, fn: Any) -> None:
        try:
            cleaned[field] = fn(data[field])
        except FieldError as exc:
            errors.append(exc)
        except ValueError as exc:
            errors.append(FieldError(field, code, str(exc)))

    for field in ("full_name", "job_title", "company_name"):
        if field in data:
            attempt(field, "invalid", lambda v, f=field: _text(v, field=f))
    if "email" in data:
        attempt("email", "invalid_email", lambda v: None if v in (None, "") else normalize_email(v))
    if "phone" in data:
        attempt("phone", "invalid_phone",
                lambda v: None if v in (None, "") else normalize_phone(v, region=phone_region))
    if "linkedin_url" in data:
        attempt("linkedin_url", "invalid_url",
                lambda v: validate_url(v, max_length=CONTACT_MAX_LENGTHS["linkedin_url"], what="linkedin_url"))
    if "tags" in data:
        attempt("tags", "invalid_tags", parse_tags)
    if "custom" in data:
        attempt("custom", "invalid_custom", validate_custom)
    if "created_at" in data:
        attempt("created_at", "invalid_datetime", lambda v: None if v in (None, "") else parse_created_at(v, tz=tz))
    if "company_id" in data:
        attempt("company_id", "invalid_id", lambda v: None if v in (None, "") else parse_uuid(v, what="company_id"))
    if "lists" in data:
        def _lists(v: Any) -> list[uuid.UUID]:
            if v is None:
                return []
            if not isinstance(v, (list, tuple)):
                raise ValueError("lists must be a list of list ids.")
            return list(dict.fromkeys(parse_uuid(item, what="list id") for item in v))

        attempt("lists", "invalid_id", _lists)
    if errors:
        raise ContactInputError(errors)
    return cleaned
