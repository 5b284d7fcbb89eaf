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
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

import phonenumbers
from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.validators import URLValidator
from django.db.models import Field, Model
from email_validator import SPECIAL_USE_DOMAIN_NAMES, EmailNotValidError, validate_email
from email_validator.rfc_constants import (
    ATEXT,
    CASE_INSENSITIVE_MAILBOX_NAMES,
    DOMAIN_MAX_LENGTH,
    EMAIL_MAX_LENGTH,
)

from contacts.models import Company, Contact, Tag

UTC = dt.UTC


def _max_length(model: type[Model], name: str) -> int:
    field = model._meta.get_field(name)
    length = field.max_length if isinstance(field, Field) else None
    if length is None:  # a column without a bound has nothing to check against
        raise TypeError(f"{model.__name__}.{name} has no max_length")
    return length


def _max_lengths(model: type[Model], names: Iterable[str]) -> dict[str, int]:
    return {name: _max_length(model, name) for name in names}


# Derived from the models so that a migration that widens a column widens the check too.
CONTACT_MAX_LENGTHS: dict[str, int] = _max_lengths(
    Contact, ("full_name", "email", "phone", "job_title", "company_name", "linkedin_url")
)
COMPANY_MAX_LENGTHS: dict[str, int] = _max_lengths(Company, ("name", "url", "status"))
TAG_MAX_LENGTH: int = _max_length(Tag, "name")
MAX_TAGS = 100
# A phone column holds E.164 (at most 16 chars), but raw input may carry spaces,
# dashes and an extension; anything longer than this is not a phone number.
MAX_RAW_PHONE_LENGTH = 64
MAX_CUSTOM_BYTES = 64 * 1024

# Fields a client may send for a contact (POST /v1/contacts, import rows).
CONTACT_INPUT_FIELDS: tuple[str, ...] = (
    "full_name",
    "email",
    "phone",
    "job_title",
    "company_name",
    "company_id",
    "linkedin_url",
    "tags",
    "custom",
    "created_at",
    "lists",
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
    """The one stored form of a mailbox, whichever door it comes in by (API, import, filter).

    That form is ``email_validator``'s normalised address: the domain lower-cased and,
    when internationalised, in Unicode (``info@xn--bcher-kva.de`` → ``info@bücher.de``:
    the ASCII form does not exist for a Unicode local part, so Unicode is the one form
    every address has); the local part kept as given except RFC 2142 role mailboxes
    (``INFO@`` → ``info@``), NFC-normalised. Special-use domains (``.local``, ``.test``,
    ``.invalid``, ``.localhost``, ``.onion``, ``.arpa``) are refused: no mail reaches them.

    Deliverability (DNS) is not checked: imports of a million rows cannot wait on
    DNS, and an address that does not resolve today is still the customer's data.

    Plain ASCII addresses take a shortcut (``_fast_email``: an import is made of them,
    and the library costs ~50 µs an address) that returns exactly what the full rules
    would (tests/imports/test_fast_path_agreement.py checks it); all else, errors
    included, is ``normalize_email_general``.
    """
    if isinstance(value, str):
        fast = _fast_email(value)
        if fast is not None:
            return fast
    return normalize_email_general(value)


def normalize_email_general(value: Any) -> str:
    """``normalize_email`` without its shortcut: the definition itself."""
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


# A plain ASCII address: a dot-atom local part spelt with email_validator's own ATEXT
# (the library's first test of a local part: one that passes comes back unchanged, no
# quotes to drop and nothing for NFC to change), then LDH labels of at most 63
# characters, no hyphen at either end, two labels at least, the last ending in a letter.
_PLAIN_ADDRESS = re.compile(
    f"(?P<local>[{ATEXT}]+(?:\\.[{ATEXT}]+)*)"
    r"@(?P<domain>(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?\.)+(?:[a-zA-Z0-9][a-zA-Z0-9-]{0,61})?[a-zA-Z])\Z"
)
_ROLE_MAILBOXES = frozenset(CASE_INSENSITIVE_MAILBOX_NAMES)
_SPECIAL_USE_SUFFIXES = tuple("." + name for name in SPECIAL_USE_DOMAIN_NAMES)
_SPECIAL_USE_NAMES = frozenset(SPECIAL_USE_DOMAIN_NAMES)
_PLAIN_MAX_LENGTH = min(CONTACT_MAX_LENGTHS["email"], EMAIL_MAX_LENGTH)


def _fast_email(value: str) -> str | None:
    """``normalize_email_general(value)`` for a plain ASCII address, or ``None`` when
    the shortcut cannot be sure (the caller then runs the full rules).

    For such a domain email_validator's rules come down to: at most 253 characters;
    UTS 46 mapping lower-cases it; labels as ``_PLAIN_ADDRESS`` has them and none
    starting "??--" unless Punycode; no special-use name; and a domain with "xn--"
    is decoded to Unicode. Ruling out "--" anywhere covers the last two. The local
    part comes back as given unless it is an RFC 2142 role mailbox (lower-cased).
    Characters and UTF-8 bytes being the same for ASCII, the library's three length
    checks (input, normalised, IDNA form) reduce to the one on ``candidate``.
    tests/imports/test_fast_path_agreement.py checks all this against the library.
    """
    candidate = value.strip()
    if len(candidate) > _PLAIN_MAX_LENGTH:
        return None
    match = _PLAIN_ADDRESS.match(candidate)
    if match is None:
        return None
    local, domain = match["local"], match["domain"].lower()
    if (
        local.lower() in _ROLE_MAILBOXES
        or "--" in domain
        or len(domain) > DOMAIN_MAX_LENGTH
        or domain.endswith(_SPECIAL_USE_SUFFIXES)
        or domain in _SPECIAL_USE_NAMES
    ):
        return None
    return f"{local}@{domain}"


_E164_SHAPE = re.compile(r"\+([1-9][0-9]{6,14})\Z")


def normalize_phone(value: Any, *, region: str = "US") -> str:
    """E.164 (``+14155552671``). A number without a country code is read in ``region``.

    Input already written in E.164 takes a shortcut (``_fast_phone``) that returns what
    ``phonenumbers`` would (checked by tests/imports/test_fast_path_agreement.py); all
    else, errors included, is ``normalize_phone_general``.
    """
    if isinstance(value, str):
        fast = _fast_phone(value)
        if fast is not None:
            return fast
    return normalize_phone_general(value, region=region)


def normalize_phone_general(value: Any, *, region: str = "US") -> str:
    """``normalize_phone`` without its shortcut: the definition itself."""
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


def _fast_phone(value: str) -> str | None:
    """``value`` itself when it is E.164 and ``phonenumbers`` would keep it as it is;
    ``None`` when the shortcut cannot be sure.

    Parsing ``+<cc><national>`` takes the first 1-3 digits that are a calling code
    (as here), then may rewrite the national number: strip or transform a national
    prefix when ``national_prefix_for_parsing`` matches its start (San Marino's
    ``0549``, Madagascar's ``20``, China's carrier codes: the numbers the shortcut
    used to get wrong), and keep leading zeros. Neither can happen when that pattern
    does not match and there is no leading zero; what is left is the length check
    ``is_possible_number`` makes, on the same metadata.
    """
    match = _E164_SHAPE.match(value.strip())
    if match is None:
        return None
    digits = match[1]
    for cc_len in (1, 2, 3):
        country_code = int(digits[:cc_len])
        if country_code in phonenumbers.COUNTRY_CODE_TO_REGION_CODE:
            national = digits[cc_len:]
            if _national_kept_as_is(country_code, national):
                return "+" + digits
            return None
    return None


@lru_cache(maxsize=1024)
def _phone_rules(country_code: int) -> tuple[re.Pattern[str] | None, frozenset[int], frozenset[int]] | None:
    """Per calling code: the national-prefix pattern parsing applies, the possible
    lengths and the local-only ones (``None``: no metadata, let the full rules say)."""
    region = phonenumbers.region_code_for_country_code(country_code)
    metadata = phonenumbers.PhoneMetadata.metadata_for_region_or_calling_code(country_code, region)
    if metadata is None:
        return None
    general = metadata.general_desc
    lengths = tuple(general.possible_length or ()) if general is not None else ()
    if general is None or not lengths or lengths[0] == -1:
        return None
    prefix = metadata.national_prefix_for_parsing
    pattern = re.compile(prefix) if prefix else None
    local = frozenset(general.possible_length_local_only or ())
    return pattern, frozenset(lengths), local


def _national_kept_as_is(country_code: int, national: str) -> bool:
    rules = _phone_rules(country_code)
    if rules is None or national[:1] == "0" or not 2 <= len(national) <= 17:
        return False
    pattern, lengths, local = rules
    if pattern is not None and pattern.match(national):
        return False
    return len(national) in lengths or len(national) in local


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
    data: Mapping[str, Any],
    *,
    tz: dt.tzinfo | str = UTC,
    phone_region: str = "US",
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
        attempt(
            "phone", "invalid_phone", lambda v: None if v in (None, "") else normalize_phone(v, region=phone_region)
        )
    if "linkedin_url" in data:
        attempt(
            "linkedin_url",
            "invalid_url",
            lambda v: validate_url(v, max_length=CONTACT_MAX_LENGTHS["linkedin_url"], what="linkedin_url"),
        )
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
