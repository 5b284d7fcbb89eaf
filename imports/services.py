"""The import engine: requests, jobs, batches, the set-based contact upsert.

Flow of one import::

    import_request ─┬─ ≤ 500 rows: one batch in the request → job "completed"
                    └─ more: payload → storage, job "queued" → task → import_job_run
    import_job_run: claim (queued → processing) → for each batch of the stream:
        validate (pure, outside any transaction) →
        one transaction { lock job row, contact_upsert_batch, row errors, counters + checkpoint }
    → errors CSV to storage → "completed" + webhook in one transaction.

A batch and its checkpoint commit together, so a worker killed at any point
resumes at the first uncommitted batch and the end result equals an
uninterrupted run.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import logging
import os
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import IO, Any

import orjson
from django.db import IntegrityError, InterfaceError, OperationalError, connection, transaction
from django.db.models import F, Q
from django.utils import timezone

from contacts.models import Company, Contact, ContactEmail, ContactList, ContactTag, ListMembership, Tag
from contacts.validation import parse_tags
from imports.models import ImportIdempotencyKey, ImportJob, ImportRowError
from imports.parsing import (
    MappingError,
    RowError,
    SourceRow,
    count_csv_records,
    iter_csv,
    iter_ndjson,
    iter_rows,
    rows_to_ndjson,
    validate_mapping,
)
from imports.validation import CleanRow, validate_row
from leadlex import storage
from leadlex.env import env_int
from leadlex.errors import ApiError, IdempotencyConflict, ValidationFailed
from leadlex.middleware import current_request_id
from leadlex.models import ApiKey, Workspace

logger = logging.getLogger("leadlex.imports")

SYNC_MAX_ROWS = 500
MAX_ROWS = 1_000_000
RESPONSE_ERRORS = 100
BATCH_SIZE = env_int("LEADLEX_IMPORT_BATCH_SIZE", 5000)
# Queued jobs parse and validate in a forked child process (the second core), not a
# thread; 0 turns that off (a platform without fork, or to debug in one process).
PARSE_IN_PROCESS = bool(env_int("LEADLEX_IMPORT_PARSE_PROCESS", 1)) and hasattr(os, "fork")
MAX_ATTEMPTS = env_int("LEADLEX_IMPORT_MAX_ATTEMPTS", 5)
# A processing job whose heartbeat is older than this is considered abandoned
# (its worker died) and is queued again by the sweeper.
STALE_AFTER = timedelta(seconds=env_int("LEADLEX_IMPORT_STALE_SECONDS", 300))
IDEMPOTENCY_TTL = timedelta(hours=24)
# How long a request waits for a concurrent request with the same Idempotency-Key.
IDEMPOTENCY_WAIT_SECONDS = env_int("LEADLEX_IMPORT_IDEMPOTENCY_WAIT_SECONDS", 60)
# The key of a request that died half-way (process killed) is freed after this.
IDEMPOTENCY_ABANDONED_AFTER = timedelta(minutes=10)

TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (OperationalError, InterfaceError, ConnectionError, TimeoutError)


def is_transient(exc: BaseException) -> bool:
    """Worth retrying: the database or the storage service was briefly unreachable.
    (Checked by module so that only leadlex.storage imports the S3 client library.)"""
    module = type(exc).__module__ or ""
    if any(k.__name__ == "ClientError" and k.__module__.startswith("botocore") for k in type(exc).__mro__):
        # An S3 answer (NoSuchKey, AccessDenied...): only throttling and 5xx are worth a retry.
        code = str(getattr(exc, "response", {}).get("Error", {}).get("Code", ""))
        return code in _TRANSIENT_S3_CODES
    return isinstance(exc, TRANSIENT_ERRORS) or module.startswith(("botocore", "urllib3", "s3transfer"))


_TRANSIENT_S3_CODES = {
    "SlowDown",
    "RequestTimeout",
    "RequestTimeTooSkewed",
    "InternalError",
    "ServiceUnavailable",
    "500",
    "502",
    "503",
    "504",
}

_TEXT_DEFAULTS = {"full_name": "", "job_title": "", "company_name": "", "linkedin_url": ""}
# Columns an import writes, in a fixed order (the bit of each in the "present" mask).
_COLUMNS = (
    "full_name",
    "email",
    "phone",
    "job_title",
    "company_name",
    "company_id",
    "linkedin_url",
    "custom",
    "created_at",
)
_BIT = {name: 1 << index for index, name in enumerate(_COLUMNS)}


class ImportUserError(ApiError):
    """The input itself is unusable (bad mapping, unreadable file): fails the job
    as a user error, or answers 400 in a request."""


# --- parameters -------------------------------------------------------------------------


@dataclass
class ImportParams:
    update_existing: bool = False
    tags: list[str] = field(default_factory=list)
    mapping: dict[str, str] | None = None
    has_header: bool = True
    file_name: str = ""

    def as_json(self) -> dict[str, Any]:
        return {
            "update_existing": self.update_existing,
            "tags": self.tags,
            "mapping": self.mapping,
            "has_header": self.has_header,
            "file_name": self.file_name,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ImportParams:
        return cls(
            update_existing=bool(data.get("update_existing")),
            tags=list(data.get("tags") or []),
            mapping=data.get("mapping"),
            has_header=data.get("has_header", True) is not False,
            file_name=data.get("file_name") or "",
        )


def import_params_clean(
    *, update_existing: Any = False, tags: Any = None, mapping: Any = None, has_header: Any = True, file_name: str = ""
) -> ImportParams:
    """Validate the request-level parameters (a 400 for the whole request when bad)."""
    update_existing = _as_bool(update_existing, "update_existing")
    has_header = _as_bool(has_header, "has_header")
    try:
        clean_tags = parse_tags(tags)
    except ValueError as exc:
        raise ValidationFailed(f"tags: {exc}", details={"field": "tags"}) from None
    try:
        clean_mapping = validate_mapping(mapping, has_header=has_header)
    except MappingError as exc:
        raise ValidationFailed(str(exc), details={"field": "mapping"}) from None
    return ImportParams(
        update_existing=update_existing,
        tags=clean_tags,
        mapping=clean_mapping,
        has_header=has_header,
        file_name=file_name[:200],
    )


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


# --- upsert -----------------------------------------------------------------------------


@dataclass
class BatchResult:
    created: int = 0
    updated: int = 0
    skipped: int = 0
    errors: list[RowError] = field(default_factory=list)
    # For callers that want them (admin, tests): ids of contacts written.
    contact_ids: list[uuid.UUID] = field(default_factory=list)


@dataclass
class _Entry:
    """One contact-to-be: a row, plus the later rows of the same batch that share
    its email or phone (the later row updates the earlier)."""

    rows: list[int]
    values: dict[str, Any]
    tags: set[str]
    list_ids: set[uuid.UUID]
    match: Any = None  # Contact (ORM path) or _Existing (PostgreSQL path)
    match_id: uuid.UUID | None = None
    old_email: str | None = None  # the matched contact's address before this batch
    new_id: uuid.UUID | None = None
    action: str = ""  # "c"reate, "u"pdate, "s"kip
    # The match keys, computed once (they are read several times per row per batch)
    # and refreshed when a later row's values are absorbed.
    email_key: str | None = field(init=False, default=None)
    phone: str | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        self._keys()

    def _keys(self) -> None:
        email = self.values.get("email")
        self.email_key = email.lower() if email else None
        self.phone = self.values.get("phone") or None

    def absorb(self, other: _Entry) -> None:
        self.rows.extend(other.rows)
        custom = self.values.get("custom")
        self.values.update(other.values)
        if isinstance(custom, dict) and isinstance(other.values.get("custom"), dict):
            self.values["custom"] = {**custom, **other.values["custom"]}
        self.tags |= other.tags
        self.list_ids |= other.list_ids
        self._keys()


def job_contact_id(job_id: uuid.UUID | None) -> uuid.UUID:
    """A new contact id. Within a job it starts with 48 bits of the job's id, so a
    later batch can tell "a contact this very import created" (a duplicate row:
    it updates the earlier one, whatever ``update_existing`` says) from a contact
    that existed before — with no per-job state to keep or to lose on a crash."""
    raw = bytearray(os.urandom(16))
    if job_id is not None:
        raw[:6] = job_id.bytes[:6]
    raw[6] = (raw[6] & 0x0F) | 0x40  # version 4
    raw[8] = (raw[8] & 0x3F) | 0x80  # RFC 4122 variant
    return uuid.UUID(bytes=bytes(raw))


def _created_by(contact_id: uuid.UUID, job_id: uuid.UUID | None) -> bool:
    return job_id is not None and contact_id.bytes[:6] == job_id.bytes[:6]


def contact_upsert_batch(
    *,
    workspace: Workspace,
    rows: list[CleanRow],
    update_existing: bool,
    tags: Iterable[str] = (),
    job_id: uuid.UUID | None = None,
) -> BatchResult:
    """Create or update the contacts of one batch of clean rows, set-based.

    Must run inside a transaction (the caller's batch transaction). Counts are per
    row: every row is created, updated, skipped or an error. A concurrent insert of
    the same email (another import, the API) is caught by the database's unique
    constraint and the row becomes a match instead; the batch is retried when a
    race is detected.
    """
    result = BatchResult()
    if not rows:
        return result
    entries = _resolve_references(workspace=workspace, rows=rows, result=result)
    entries = _dedupe(entries)
    if not entries:
        return result
    global_tags = list(dict.fromkeys(tags))
    use_pg = connection.vendor == "postgresql"
    if use_pg:
        # Imports of one workspace take turns batch by batch, so two imports cannot
        # both create the same phone-only contact (phones carry no unique constraint).
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", [f"leadlex-import:{workspace.pk}"])
    _match(workspace=workspace, entries=entries, use_pg=use_pg)
    entries = _merge_same_match(entries)
    _decide(entries, update_existing=update_existing, job_id=job_id)
    written = [e for e in entries if e.action in ("c", "u")]
    if use_pg:
        _write_postgres(workspace=workspace, entries=entries, global_tags=global_tags)
    else:
        _write_orm(workspace=workspace, entries=entries)
        _sync_primary_emails(entries)
        _add_tags(workspace=workspace, entries=written, global_tags=global_tags)
        _add_lists(entries=written)
    for entry in entries:
        n = len(entry.rows)
        if entry.action == "c":
            result.created += 1
            result.updated += n - 1  # later rows of the file updated the contact the first created
        elif entry.action == "u":
            result.updated += n
        else:
            result.skipped += n
    result.contact_ids = [e.new_id or e.match_id for e in written]  # type: ignore[misc]
    return result


def _resolve_references(*, workspace: Workspace, rows: list[CleanRow], result: BatchResult) -> list[_Entry]:
    """Companies and lists named by the rows must be this workspace's; lists given by
    name are created. Rows naming an unknown company or list id are errors."""
    company_ids = {r.values["company_id"] for r in rows if r.values.get("company_id")}
    list_ids = {i for r in rows for i in r.list_ids}
    list_names = {n for r in rows for n in r.list_names}
    known_companies = (
        set(Company.objects.filter(workspace=workspace, id__in=company_ids).values_list("id", flat=True))
        if company_ids
        else set()
    )
    known_lists = (
        set(ContactList.objects.filter(workspace=workspace, id__in=list_ids).values_list("id", flat=True))
        if list_ids
        else set()
    )
    lists_by_name: dict[str, uuid.UUID] = {}
    if list_names:
        lists_by_name = dict(
            ContactList.objects.filter(workspace=workspace, name__in=list_names).values_list("name", "id")
        )
        missing = [n for n in list_names if n not in lists_by_name]
        if missing:
            ContactList.objects.bulk_create(
                [ContactList(workspace=workspace, name=n) for n in missing], ignore_conflicts=True
            )
            lists_by_name = dict(
                ContactList.objects.filter(workspace=workspace, name__in=list_names).values_list("name", "id")
            )
    entries = []
    for row in rows:
        company_id = row.values.get("company_id")
        if company_id and company_id not in known_companies:
            result.errors.append(
                RowError(row.row, "company_id", "unknown_company", f"No company {company_id} in this workspace.")
            )
            continue
        unknown = [str(i) for i in row.list_ids if i not in known_lists]
        if unknown:
            result.errors.append(RowError(row.row, "lists", "unknown_list", f"No list {unknown[0]} in this workspace."))
            continue
        ids = set(row.list_ids)
        if row.list_names:
            ids.update(lists_by_name[n] for n in row.list_names)
        # values copied: entries absorb later rows, and a retried batch reuses its rows.
        entries.append(_Entry(rows=[row.row], values=dict(row.values), tags=set(row.tags), list_ids=ids))
    return entries


def _dedupe(entries: list[_Entry]) -> list[_Entry]:
    """Rows with the same email or phone inside one batch become one entry; the later
    row's values win (documented in docs/imports.md)."""
    by_email: dict[str, _Entry] = {}
    by_phone: dict[str, _Entry] = {}
    out: list[_Entry] = []
    for entry in entries:
        target = None
        if entry.email_key and entry.email_key in by_email:
            target = by_email[entry.email_key]
        elif entry.phone and entry.phone in by_phone:
            target = by_phone[entry.phone]
        if target is None:
            out.append(entry)
            target = entry
        else:
            target.absorb(entry)
        if target.email_key:
            by_email[target.email_key] = target
        if target.phone:
            by_phone[target.phone] = target
    return out


@dataclass
class _Existing:
    """What the PostgreSQL path needs of a matched contact (no model instances)."""

    id: uuid.UUID
    email: str | None
    phone: str | None


def _match(*, workspace: Workspace, entries: list[_Entry], use_pg: bool) -> None:
    """Two queries a batch: existing contacts by lower(email), then by phone for the
    rows the email did not match (email wins when both would match)."""
    emails = [e.email_key for e in entries if e.email_key]
    by_email: dict[str, Any] = {}
    if emails:
        if use_pg:
            # One array parameter, not thousands of placeholders: psycopg would spend
            # longer composing the query than PostgreSQL spends running it.
            with connection.cursor() as cursor:
                cursor.execute(
                    f"SELECT id, email, phone FROM {Contact._meta.db_table} "
                    "WHERE workspace_id = %s AND lower(email) = ANY(%s)",
                    [workspace.pk, emails],
                )
                for pk, email, phone in cursor.fetchall():
                    by_email[email.lower()] = _Existing(pk, email, phone)
        else:
            from django.db.models.functions import Lower

            for contact in (
                Contact.objects.filter(workspace=workspace)
                .annotate(email_lower=Lower("email"))
                .filter(email_lower__in=emails)
            ):
                by_email[contact.email_lower] = contact  # type: ignore[attr-defined]
    for entry in entries:
        if entry.email_key and entry.email_key in by_email:
            entry.match = by_email[entry.email_key]
    phones = [e.phone for e in entries if e.match is None and e.phone]
    if phones:
        by_phone: dict[str, Any] = {}
        if use_pg:
            with connection.cursor() as cursor:
                cursor.execute(
                    f"SELECT id, email, phone FROM {Contact._meta.db_table} "
                    "WHERE workspace_id = %s AND phone = ANY(%s) ORDER BY created_at, id",
                    [workspace.pk, phones],
                )
                for pk, email, phone in cursor.fetchall():
                    by_phone.setdefault(phone, _Existing(pk, email, phone))  # oldest wins
        else:
            for contact in Contact.objects.filter(workspace=workspace, phone__in=phones).order_by("created_at", "id"):
                by_phone.setdefault(contact.phone, contact)  # type: ignore[arg-type]  # oldest wins
        for entry in entries:
            if entry.match is None and entry.phone in by_phone:
                entry.match = by_phone[entry.phone]  # type: ignore[index]
    for entry in entries:
        entry.match_id = entry.match.id if entry.match else None
        entry.old_email = entry.match.email if entry.match else None


def _merge_same_match(entries: list[_Entry]) -> list[_Entry]:
    """Two entries that match one existing contact (one by email, one by phone) are
    duplicates of each other: the later updates the earlier."""
    seen: dict[uuid.UUID, _Entry] = {}
    out = []
    for entry in entries:
        if entry.match_id is not None and entry.match_id in seen:
            seen[entry.match_id].absorb(entry)
            continue
        if entry.match_id is not None:
            seen[entry.match_id] = entry
        out.append(entry)
    return out


def _decide(entries: list[_Entry], *, update_existing: bool, job_id: uuid.UUID | None) -> None:
    for entry in entries:
        if entry.match_id is None:
            entry.action = "c"
            entry.new_id = job_contact_id(job_id)
        elif update_existing or _created_by(entry.match_id, job_id):
            entry.action = "u"
        else:
            entry.action = "s"


def _new_contact(workspace: Workspace, entry: _Entry, now: dt.datetime) -> Contact:
    values = {**_TEXT_DEFAULTS, "custom": {}, **entry.values}
    values.setdefault("created_at", now)
    if values.get("created_at") is None:
        values["created_at"] = now
    return Contact(id=entry.new_id, workspace=workspace, updated_at=now, **values)


def _write_orm(*, workspace: Workspace, entries: list[_Entry]) -> None:
    """SQLite (and any non-PostgreSQL database): batched bulk_create/bulk_update.
    SQLite runs write transactions one at a time (IMMEDIATE), so the match above
    cannot be overtaken by a concurrent writer before these statements."""
    now = timezone.now()
    creates = [_new_contact(workspace, e, now) for e in entries if e.action == "c"]
    if creates:
        Contact.objects.bulk_create(creates, batch_size=500)
    updates = [e for e in entries if e.action == "u"]
    if updates:
        fields: set[str] = set()
        objs = []
        for entry in updates:
            contact = entry.match
            assert contact is not None
            for name, value in entry.values.items():
                if name == "custom":
                    value = {**(contact.custom or {}), **(value or {})}
                elif name == "created_at" and value is None:
                    continue
                elif name in _TEXT_DEFAULTS and value is None:
                    value = ""
                setattr(contact, name, value)
                fields.add(name)
            contact.updated_at = now
            objs.append(contact)
        Contact.objects.bulk_update(objs, sorted(fields | {"updated_at"}), batch_size=500)


_STAGE_DDL = """
CREATE TEMPORARY TABLE leadlex_import_stage (
    id uuid NOT NULL,
    action char(1) NOT NULL,
    present integer NOT NULL,
    email_changed boolean NOT NULL,
    full_name text, email text, phone text, job_title text, company_name text, company_id uuid,
    linkedin_url text, custom jsonb, created_at timestamptz
) ON COMMIT DROP
"""
_LINKS_DDL = """
CREATE TEMPORARY TABLE leadlex_import_links (contact_id uuid NOT NULL, tag text, list_id uuid) ON COMMIT DROP
"""


def _write_postgres(*, workspace: Workspace, entries: list[_Entry], global_tags: list[str]) -> None:
    """PostgreSQL: COPY the batch into a temporary stage, then set-based statements:
    one INSERT … ON CONFLICT for new contacts, one UPDATE … FROM for matched ones,
    and INSERT … SELECT for addresses, tags and list memberships."""
    now = timezone.now()
    writes = [e for e in entries if e.action in ("c", "u")]
    if not writes:
        return
    contacts = Contact._meta.db_table
    with connection.cursor() as cursor:
        # Safe to relax here: a batch and its checkpoint commit together, so a batch
        # lost to a database crash is simply redone by the resumed job.
        cursor.execute("SET LOCAL synchronous_commit TO OFF")
        cursor.execute("DROP TABLE IF EXISTS leadlex_import_stage")
        cursor.execute("DROP TABLE IF EXISTS leadlex_import_links")
        cursor.execute(_STAGE_DDL)
        cursor.execute(_LINKS_DDL)
        raw = cursor.cursor  # the psycopg cursor: COPY is not part of the DB-API
        links = 0
        with raw.copy(
            "COPY leadlex_import_stage (id, action, present, email_changed, full_name, email, phone, "
            "job_title, company_name, company_id, linkedin_url, custom, created_at) FROM STDIN"
        ) as copy:
            for e in writes:
                v = e.values
                present = 0
                for name in v:
                    present |= _BIT.get(name, 0)
                custom = v.get("custom")
                email = v.get("email")
                changed = e.action == "u" and "email" in v and (email or "").lower() != (e.old_email or "").lower()
                copy.write_row(
                    (
                        e.new_id or e.match_id,
                        e.action,
                        present,
                        changed,
                        v.get("full_name"),
                        email,
                        v.get("phone"),
                        v.get("job_title"),
                        v.get("company_name"),
                        v.get("company_id"),
                        v.get("linkedin_url"),
                        orjson.dumps(custom).decode() if custom is not None else None,
                        v.get("created_at"),
                    )
                )
        if any(e.tags or e.list_ids for e in writes):
            with raw.copy("COPY leadlex_import_links (contact_id, tag, list_id) FROM STDIN") as copy:
                for e in writes:
                    contact_id = e.new_id or e.match_id
                    for tag in e.tags:
                        copy.write_row((contact_id, tag, None))
                    for list_id in e.list_ids:
                        copy.write_row((contact_id, None, list_id))
                    links += len(e.tags) + len(e.list_ids)
        cursor.execute(
            f"""
            INSERT INTO {contacts} (id, workspace_id, full_name, email, phone, job_title, company_name, company_id,
                                    linkedin_url, custom, created_at, updated_at)
            SELECT s.id, %s, COALESCE(s.full_name, ''), s.email, s.phone, COALESCE(s.job_title, ''),
                   COALESCE(s.company_name, ''), s.company_id, COALESCE(s.linkedin_url, ''),
                   COALESCE(s.custom, '{{}}'::jsonb), COALESCE(s.created_at, %s), %s
            FROM leadlex_import_stage s WHERE s.action = 'c'
            ON CONFLICT (lower(email), workspace_id) WHERE email IS NOT NULL DO NOTHING
            """,
            [workspace.pk, now, now],
        )
        expected = sum(1 for e in writes if e.action == "c")
        if cursor.rowcount != expected:
            # Someone (another import, the API) inserted some of these addresses after
            # our match: roll the batch back and match again; the retry sees their rows.
            raise _RaceDetected(f"{expected - cursor.rowcount} addresses were inserted concurrently")

        def bit(name: str) -> str:
            return f"(s.present & {_BIT[name]}) <> 0"

        n_updates = sum(1 for e in writes if e.action == "u")
        if n_updates:
            # The stage has no statistics and the workspace's contacts often stale ones
            # (a fresh import): the planner would hash-join by scanning every contact of
            # the workspace, once per batch. Looking each row up by primary key is right.
            cursor.execute("SET LOCAL enable_hashjoin TO off")
            cursor.execute("SET LOCAL enable_mergejoin TO off")
            cursor.execute(
                f"""
                UPDATE {contacts} c SET
                    full_name = CASE WHEN {bit("full_name")} THEN COALESCE(s.full_name, '') ELSE c.full_name END,
                    email = CASE WHEN {bit("email")} THEN s.email ELSE c.email END,
                    phone = CASE WHEN {bit("phone")} THEN s.phone ELSE c.phone END,
                    job_title = CASE WHEN {bit("job_title")} THEN COALESCE(s.job_title, '') ELSE c.job_title END,
                    company_name = CASE WHEN {bit("company_name")} THEN COALESCE(s.company_name, '')
                                        ELSE c.company_name END,
                    company_id = CASE WHEN {bit("company_id")} THEN s.company_id ELSE c.company_id END,
                    linkedin_url = CASE WHEN {bit("linkedin_url")} THEN COALESCE(s.linkedin_url, '')
                                        ELSE c.linkedin_url END,
                    custom = CASE WHEN {bit("custom")} THEN c.custom || COALESCE(s.custom, '{{}}'::jsonb)
                                  ELSE c.custom END,
                    created_at = CASE WHEN {bit("created_at")} AND s.created_at IS NOT NULL THEN s.created_at
                                      ELSE c.created_at END,
                    updated_at = %s
                FROM leadlex_import_stage s
                WHERE s.action = 'u' AND c.id = s.id AND c.workspace_id = %s
                """,
                [now, workspace.pk],
            )
            cursor.execute("SET LOCAL enable_hashjoin TO on")
            cursor.execute("SET LOCAL enable_mergejoin TO on")
        # contacts.ContactEmail: every address a contact has had, the current one primary.
        emails = ContactEmail._meta.db_table
        cursor.execute(
            f"""
            INSERT INTO {emails} (contact_id, email, is_primary, created_at)
            SELECT s.id, s.email, s.action = 'c', %s FROM leadlex_import_stage s
            WHERE s.email IS NOT NULL AND (s.action = 'c' OR s.email_changed)
            ON CONFLICT DO NOTHING
            """,
            [now],
        )
        cursor.execute(
            f"""
            UPDATE {emails} e SET is_primary = COALESCE(lower(e.email) = lower(s.email), FALSE)
            FROM leadlex_import_stage s WHERE s.email_changed AND e.contact_id = s.id
            """
        )
        tag_table, link_table = Tag._meta.db_table, ContactTag._meta.db_table
        if global_tags or links:
            cursor.execute(
                f"""
                INSERT INTO {tag_table} (workspace_id, name)
                SELECT %s, name FROM (SELECT unnest(%s::text[]) AS name
                                      UNION SELECT DISTINCT tag FROM leadlex_import_links WHERE tag IS NOT NULL) n
                ON CONFLICT DO NOTHING
                """,
                [workspace.pk, global_tags],
            )
        if global_tags:
            cursor.execute(
                f"""
                INSERT INTO {link_table} (contact_id, tag_id)
                SELECT s.id, t.id FROM leadlex_import_stage s
                JOIN {tag_table} t ON t.workspace_id = %s AND t.name = ANY(%s)
                ON CONFLICT DO NOTHING
                """,
                [workspace.pk, global_tags],
            )
        if links:
            cursor.execute(
                f"""
                INSERT INTO {link_table} (contact_id, tag_id)
                SELECT l.contact_id, t.id FROM leadlex_import_links l
                JOIN {tag_table} t ON t.workspace_id = %s AND t.name = l.tag
                ON CONFLICT DO NOTHING
                """,
                [workspace.pk],
            )
            cursor.execute(
                f"""
                INSERT INTO {ListMembership._meta.db_table} (contact_list_id, contact_id, added_at)
                SELECT l.list_id, l.contact_id, %s FROM leadlex_import_links l WHERE l.list_id IS NOT NULL
                ON CONFLICT DO NOTHING
                """,
                [now],
            )


class _RaceDetected(Exception):
    pass


def _sync_primary_emails(entries: list[_Entry]) -> None:
    """contacts.ContactEmail keeps every address of a contact and marks the current
    one primary: new contacts get their row; a changed address becomes the primary."""
    rows = []
    changed: list[uuid.UUID] = []
    for e in entries:
        email = e.values.get("email")
        if e.action == "c" and email:
            rows.append(ContactEmail(contact_id=e.new_id, email=email, is_primary=True))
        elif e.action == "u" and "email" in e.values:
            old = (e.old_email or "").lower()
            if (email or "").lower() != old:
                changed.append(e.match_id)  # type: ignore[arg-type]
                if email:
                    rows.append(ContactEmail(contact_id=e.match_id, email=email, is_primary=False))
    if rows:
        ContactEmail.objects.bulk_create(rows, batch_size=1000, ignore_conflicts=True)
    if changed:
        emails = ContactEmail._meta.db_table
        contacts = Contact._meta.db_table
        for start in range(0, len(changed), 900):
            chunk = changed[start : start + 900]
            placeholders = ", ".join(["%s"] * len(chunk))
            with connection.cursor() as cursor:
                cursor.execute(
                    f"UPDATE {emails} SET is_primary = COALESCE(lower(email) = (SELECT lower(c.email) FROM "
                    f"{contacts} c WHERE c.id = {emails}.contact_id), FALSE) WHERE contact_id IN ({placeholders})",
                    [_db_uuid(i) for i in chunk],
                )


def _db_uuid(value: uuid.UUID) -> Any:
    # Django stores UUIDs as 32-char hex on SQLite; raw SQL must match that.
    return value if connection.vendor == "postgresql" else value.hex


def _add_tags(*, workspace: Workspace, entries: list[_Entry], global_tags: list[str]) -> None:
    names = set(global_tags)
    for e in entries:
        names |= e.tags
    if not names:
        return
    Tag.objects.bulk_create([Tag(workspace=workspace, name=n) for n in names], ignore_conflicts=True)
    tag_ids = dict(Tag.objects.filter(workspace=workspace, name__in=names).values_list("name", "id"))
    links = []
    for e in entries:
        contact_id = e.new_id or e.match_id
        for name in set(global_tags) | e.tags:
            links.append(ContactTag(contact_id=contact_id, tag_id=tag_ids[name]))
    ContactTag.objects.bulk_create(links, batch_size=2000, ignore_conflicts=True)


def _add_lists(*, entries: list[_Entry]) -> None:
    links = [
        ListMembership(contact_list_id=list_id, contact_id=e.new_id or e.match_id)
        for e in entries
        for list_id in e.list_ids
    ]
    if links:
        ListMembership.objects.bulk_create(links, batch_size=2000, ignore_conflicts=True)


# --- validation of a batch ------------------------------------------------------------


def rows_validate(source_rows: Iterable[SourceRow], *, tz: dt.tzinfo) -> tuple[list[CleanRow], list[RowError]]:
    clean: list[CleanRow] = []
    errors: list[RowError] = []
    for source in source_rows:
        if source.error is not None:
            errors.append(source.error)
            continue
        row, row_errors = validate_row(source.row, source.data or {}, tz=tz)
        if row is not None:
            clean.append(row)
        errors.extend(row_errors)
    return clean, errors


# --- requests -----------------------------------------------------------------------------


@dataclass
class ImportInput:
    """What a request hands to the engine: JSON rows or CSV text/bytes."""

    rows: list[Any] | None = None
    csv_data: str | bytes | None = None

    @property
    def source(self) -> str:
        return ImportJob.Source.ROWS if self.rows is not None else ImportJob.Source.CSV


def import_input_count(*, data: ImportInput, params: ImportParams) -> int:
    if data.rows is not None:
        return len(data.rows)
    return count_csv_records(data.csv_data or "", has_header=params.has_header)


def import_request(
    *,
    workspace: Workspace,
    data: ImportInput,
    params: ImportParams,
    api_key: ApiKey | None = None,
    user: Any | None = None,
    force_queue: bool = False,
    enqueue: bool = True,
    request_id: str | None = None,
) -> ImportJob:
    """Start an import: ≤ 500 rows run now (the returned job is finished), more are
    stored and queued. Raises ``ValidationFailed`` for an unusable request.

    ``force_queue`` always stores and queues; ``enqueue=False`` leaves the queued job
    for the caller to run in-process (the ``import_contacts`` command). ``request_id``
    defaults to the id of the request being served (API or admin)."""
    if data.rows is None and data.csv_data is None:
        raise ValidationFailed("Give either rows or csv.")
    if data.csv_data is not None:
        _check_csv_header(data.csv_data, params)
    total = import_input_count(data=data, params=params)
    if total > MAX_ROWS:
        raise ValidationFailed(
            f"Too many rows ({total}); at most {MAX_ROWS:,} per import.", details={"rows": total, "limit": MAX_ROWS}
        )
    job_id = uuid.uuid4()
    common = dict(
        id=job_id,
        workspace=workspace,
        api_key=api_key,
        created_by_user=user,
        source=data.source,
        params=params.as_json(),
        total_rows=total,
        request_id=current_request_id() if request_id is None else request_id,
    )
    if total <= SYNC_MAX_ROWS and not force_queue:
        job = ImportJob.objects.create(
            status=ImportJob.Status.PROCESSING,
            attempts=1,
            started_at=timezone.now(),
            heartbeat_at=timezone.now(),
            **common,
        )
        source = (
            iter_rows(data.rows)
            if data.rows is not None
            else iter_csv(data.csv_data or "", has_header=params.has_header, mapping=params.mapping)
        )
        try:
            _run_batches(job=job, source=source, params=params, batch_size=max(SYNC_MAX_ROWS, BATCH_SIZE))
        except Exception as exc:
            _job_fail(job_id=job.id, exc=exc)
            raise
        return _job_finish(job_id=job.id, emit_webhook=False)

    # Queued: the payload goes to storage first (no slow I/O inside a transaction),
    # then the job row, and the task only once that row is committed.
    suffix = "ndjson" if data.rows is not None else "csv"
    payload_key = f"imports/{job_id.hex}/payload.{suffix}"
    writer = storage.open_writer(
        payload_key, storage.ObjectMeta(content_type="application/x-ndjson" if suffix == "ndjson" else "text/csv")
    )
    try:
        if data.rows is not None:
            buffer = bytearray()
            for line in rows_to_ndjson(data.rows):
                buffer += line
                if len(buffer) >= 1024 * 1024:
                    writer.write(bytes(buffer))
                    buffer.clear()
            writer.write(bytes(buffer))
        else:
            raw = data.csv_data
            writer.write(raw.encode("utf-8") if isinstance(raw, str) else (raw or b""))
        writer.close()
    except BaseException:
        writer.abort()
        raise
    with transaction.atomic():
        job = ImportJob.objects.create(status=ImportJob.Status.QUEUED, payload_key=payload_key, **common)
        if enqueue:
            import_job_enqueue_on_commit(job_id=job.id)
    return job


def import_job_enqueue_on_commit(*, job_id: uuid.UUID) -> None:
    from django.conf import settings

    from imports.tasks import import_job_run_task

    # A dedicated queue is optional (a deployment may give imports their own workers).
    queue = getattr(settings, "LEADLEX_IMPORT_QUEUE", None)
    options = {"queue": queue} if queue else {}
    transaction.on_commit(lambda: import_job_run_task.apply_async(kwargs={"job_id": str(job_id)}, **options))


def _check_csv_header(data: str | bytes, params: ImportParams) -> None:
    """Mapping and header must fit before anything is stored or counted."""
    try:
        next(iter(iter_csv(data, has_header=params.has_header, mapping=params.mapping)), None)
    except MappingError as exc:
        raise ValidationFailed(str(exc), details={"field": "mapping"}) from None


# --- jobs --------------------------------------------------------------------------------


def import_job_claim(*, job_id: uuid.UUID) -> int | None:
    """queued → processing with a conditional UPDATE. Returns this run's attempt number
    (the ownership token every batch checks), or None when someone else has it."""
    now = timezone.now()
    claimed = ImportJob.objects.filter(id=job_id, status=ImportJob.Status.QUEUED).update(
        status=ImportJob.Status.PROCESSING,
        attempts=F("attempts") + 1,
        heartbeat_at=now,
        started_at=now,
        error="",
        error_kind="",
    )
    if not claimed:
        return None
    return ImportJob.objects.filter(id=job_id).values_list("attempts", flat=True).first()


def _open_source(job: ImportJob, params: ImportParams) -> tuple[Iterator[SourceRow], IO[bytes]]:
    fh = storage.open_reader(job.payload_key)
    if job.source == ImportJob.Source.ROWS:
        return iter_ndjson(fh, skip_records=job.next_record), fh
    return iter_csv(fh, has_header=params.has_header, mapping=params.mapping, skip_records=job.next_record), fh


def import_job_run(*, job_id: uuid.UUID, progress: Callable[[ImportJob], None] | None = None) -> ImportJob | None:
    """Run (or resume) a queued job to the end. Transient errors propagate after the
    job is put back to "queued" (the task retries); anything else fails the job."""
    attempt = import_job_claim(job_id=job_id)
    if attempt is None:
        return None
    job = ImportJob.objects.select_related("workspace").get(id=job_id)
    params = ImportParams.from_json(job.params)
    fh = None
    try:
        source, fh = _open_source(job, params)
        _run_batches(
            job=job,
            source=source,
            params=params,
            batch_size=BATCH_SIZE,
            attempt=attempt,
            progress=progress,
            background=True,
        )
    except _LostOwnership:
        logger.warning("import %s: another run took the job over; stopping this one", job_id)
        return None
    except Exception as exc:
        if is_transient(exc):
            ImportJob.objects.filter(id=job_id, attempts=attempt, status=ImportJob.Status.PROCESSING).update(
                status=ImportJob.Status.QUEUED, error=str(exc)[:1000], error_kind="transient"
            )
            raise
        _job_fail(job_id=job_id, exc=exc, attempt=attempt)
        return ImportJob.objects.get(id=job_id)
    finally:
        if fh is not None:
            try:
                fh.close()
            except Exception:  # noqa: BLE001 - closing a finished stream must not hide the real error
                pass
    return _job_finish(job_id=job_id, emit_webhook=True, attempt=attempt)


class _LostOwnership(Exception):
    pass


def _batches(source: Iterator[SourceRow], size: int) -> Iterator[tuple[list[SourceRow], int]]:
    """Batches of rows with the record index just after the batch (the checkpoint)."""
    batch: list[SourceRow] = []
    for item in source:
        batch.append(item)
        if len(batch) >= size:
            yield batch, item.record + 1
            batch = []
    if batch:
        yield batch, batch[-1].record + 1


def _run_batches(
    *,
    job: ImportJob,
    source: Iterator[SourceRow],
    params: ImportParams,
    batch_size: int,
    attempt: int | None = None,
    progress: Callable[[ImportJob], None] | None = None,
    background: bool = False,
) -> None:
    tz = job.workspace.tzinfo

    def prepared() -> Iterator[tuple[list[SourceRow], int, list[CleanRow], list[RowError]]]:
        for batch, next_record in _batches(source, batch_size):
            clean, errors = rows_validate(batch, tz=tz)  # pure: no database, no transaction
            yield batch, next_record, clean, errors

    try:
        # Parsing and validating the next batch (Python) overlaps with writing this one.
        # In a child process when it can (the other core: no GIL shared with the
        # upsert's own Python work), else in a thread.
        if not background:
            staged: Iterator[tuple[int, int, list[CleanRow], list[RowError]]] = (
                (len(b), n, c, e) for b, n, c, e in prepared()
            )
        elif PARSE_IN_PROCESS:
            staged = _prepare_in_process(prepared)
        else:
            staged = _prefetch((len(b), n, c, e) for b, n, c, e in prepared())
        for n_rows, next_record, clean, errors in staged:
            for tries in range(4):
                try:
                    with transaction.atomic():
                        _batch_commit(
                            job=job,
                            clean=clean,
                            errors=errors,
                            params=params,
                            attempt=attempt,
                            next_record=next_record,
                            n_rows=n_rows,
                        )
                    break
                except (_RaceDetected, IntegrityError):
                    # A concurrent writer took an address between our match and insert:
                    # the batch rolled back whole; matching again sees their row.
                    if tries == 3:
                        raise
                    time.sleep(0.05 * (tries + 1))
            if progress is not None:
                progress(job)
    except MappingError as exc:
        raise ImportUserError(str(exc)) from None


def _prepare_in_process(
    prepared: Callable[[], Iterator[tuple[list[SourceRow], int, list[CleanRow], list[RowError]]]],
) -> Iterator[tuple[int, int, list[CleanRow], list[RowError]]]:
    """Run ``prepared()`` (read the payload, parse, validate: no database) in a forked
    child that sends each ready batch back through a pipe. The pipe's small buffer
    keeps the child about one batch ahead. The child owns the payload stream from
    the fork on (this process must not read it); it ends on its own when this
    process dies (its next send fails), and is killed when the consumer stops early.

    A bare ``os.fork``, not ``multiprocessing.Process``: Celery's prefork pool runs
    tasks in daemonic processes, which multiprocessing forbids to have children."""
    import multiprocessing
    import signal

    receiver, sender = multiprocessing.get_context("fork").Pipe(duplex=False)
    pid = os.fork()
    if pid == 0:  # the child: never returns, never runs the parent's cleanup or atexit hooks
        code = 0
        try:
            receiver.close()
            try:
                for batch, next_record, clean, errors in prepared():
                    # Plain tuples: unpickling them costs the parent a fraction of what
                    # dataclass instances would (it is the parent's core that is busy).
                    sender.send(
                        (
                            len(batch),
                            next_record,
                            [(r.row, r.values, r.tags, r.list_ids, r.list_names) for r in clean],
                            [(e.row, e.field, e.code, e.message) for e in errors],
                        )
                    )
                sender.send(None)
            except (BrokenPipeError, ConnectionResetError):
                code = 1  # the parent is gone
            except BaseException as exc:  # noqa: BLE001 - handed to the parent, raised there
                try:
                    sender.send(exc)
                except Exception:  # noqa: BLE001 - unpicklable: keep its kind (transient or not) and text
                    kind = ConnectionError if is_transient(exc) else RuntimeError
                    sender.send(kind(f"{type(exc).__name__}: {exc}"))
        except BaseException:  # noqa: BLE001 - whatever happens, the child must not return
            code = 1
        finally:
            os._exit(code)
    sender.close()
    finished = False
    try:
        while True:
            try:
                item = receiver.recv()
            except EOFError:
                raise RuntimeError("the import's parser process ended unexpectedly") from None
            if item is None:
                finished = True
                return
            if isinstance(item, BaseException):
                finished = True
                raise item
            n_rows, next_record, clean, errors = item
            yield (n_rows, next_record, [CleanRow(*r) for r in clean], [RowError(*e) for e in errors])
    finally:
        receiver.close()
        if not finished:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        os.waitpid(pid, 0)


def _prefetch(items: Iterator[Any], *, enabled: bool = True, depth: int = 2) -> Iterator[Any]:
    """Run ``items`` in a background thread, ``depth`` ahead of the consumer. The
    producer must not touch the database (Django connections are per thread)."""
    if not enabled:
        yield from items
        return
    import queue
    import threading

    buffer: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()
    done = object()

    def produce() -> None:
        try:
            for item in items:
                while not stop.is_set():
                    try:
                        buffer.put((item, None), timeout=0.2)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            buffer.put((done, None))
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer, raised there
            buffer.put((None, exc))

    thread = threading.Thread(target=produce, name="import-prefetch", daemon=True)
    thread.start()
    try:
        while True:
            item, exc = buffer.get()
            if exc is not None:
                raise exc
            if item is done:
                return
            yield item
    finally:
        stop.set()
        while thread.is_alive():
            try:
                buffer.get_nowait()
            except queue.Empty:
                thread.join(timeout=0.2)


def _batch_commit(
    *,
    job: ImportJob,
    clean: list[CleanRow],
    errors: list[RowError],
    params: ImportParams,
    attempt: int | None,
    next_record: int,
    n_rows: int,
) -> None:
    locked = ImportJob.objects.select_for_update().filter(id=job.id, status=ImportJob.Status.PROCESSING)
    if attempt is not None:
        locked = locked.filter(attempts=attempt)
    current = locked.values("first_errors", "error_count").first()
    if current is None:
        raise _LostOwnership()
    result = contact_upsert_batch(
        workspace=job.workspace, rows=clean, update_existing=params.update_existing, tags=params.tags, job_id=job.id
    )
    all_errors = sorted(errors + result.errors, key=lambda e: (e.row, e.field))
    if all_errors:
        ImportRowError.objects.bulk_create(
            [
                ImportRowError(job_id=job.id, row=e.row, field=e.field[:100], code=e.code[:50], message=e.message)
                for e in all_errors
            ],
            batch_size=1000,
        )
    first = current["first_errors"] or []
    if len(first) < RESPONSE_ERRORS and all_errors:
        first = first + [e.as_dict() for e in all_errors[: RESPONSE_ERRORS - len(first)]]
    ImportJob.objects.filter(id=job.id).update(
        created_count=F("created_count") + result.created,
        updated_count=F("updated_count") + result.updated,
        skipped_count=F("skipped_count") + result.skipped,
        error_count=F("error_count") + len(all_errors),
        processed_rows=F("processed_rows") + n_rows,
        next_record=next_record,
        first_errors=first,
        heartbeat_at=timezone.now(),
    )
    job.refresh_from_db(
        fields=["processed_rows", "created_count", "updated_count", "skipped_count", "error_count", "next_record"]
    )


def _errors_csv_write(*, job: ImportJob) -> str:
    """The full error list as CSV in storage (written in pieces, never whole in memory)."""
    key = f"imports/{job.id.hex}/errors.csv"
    writer = storage.open_writer(key, storage.ObjectMeta(content_type="text/csv", filename="import-errors.csv"))
    try:
        text = io.StringIO()
        out = csv.writer(text, lineterminator="\r\n")
        out.writerow(["row", "field", "code", "message"])
        for row in (
            ImportRowError.objects.filter(job_id=job.id)
            .order_by("row", "id")
            .values_list("row", "field", "code", "message")
            .iterator(chunk_size=2000)
        ):
            out.writerow(row)
            if text.tell() > 256 * 1024:
                writer.write(text.getvalue().encode())
                text.seek(0)
                text.truncate()
        writer.write(text.getvalue().encode())
        writer.close()
    except BaseException:
        writer.abort()
        raise
    return key


def _job_finish(*, job_id: uuid.UUID, emit_webhook: bool, attempt: int | None = None) -> ImportJob:
    job = ImportJob.objects.select_related("workspace").get(id=job_id)
    errors_key = _errors_csv_write(job=job) if job.error_count else ""  # slow I/O before the transaction
    with transaction.atomic():
        qs = ImportJob.objects.filter(id=job_id, status=ImportJob.Status.PROCESSING)
        if attempt is not None:
            qs = qs.filter(attempts=attempt)
        done = qs.update(
            status=ImportJob.Status.COMPLETED,
            completed_at=timezone.now(),
            errors_key=errors_key,
            heartbeat_at=timezone.now(),
        )
        if done:
            ImportRowError.objects.filter(job_id=job_id).delete()  # the CSV holds them now
            job.refresh_from_db()
            if emit_webhook:
                _emit(job, "import.completed")
    if done and job.payload_key:
        _delete_quietly(job.payload_key)  # the raw rows are personal data: keep them no longer than needed
    job.refresh_from_db()
    return job


def _job_fail(*, job_id: uuid.UUID, exc: BaseException, attempt: int | None = None) -> None:
    kind = "user" if isinstance(exc, ApiError) else "system"
    message = exc.message if isinstance(exc, ApiError) else "The import failed unexpectedly; it can be retried."
    if kind == "system":
        logger.exception("import %s failed", job_id)
    with transaction.atomic():
        qs = ImportJob.objects.filter(id=job_id, status__in=[ImportJob.Status.PROCESSING, ImportJob.Status.QUEUED])
        if attempt is not None:
            qs = qs.filter(attempts=attempt)
        if qs.update(status=ImportJob.Status.FAILED, error=message, error_kind=kind, completed_at=timezone.now()):
            job = ImportJob.objects.get(id=job_id)
            if job.payload_key:
                _emit(job, "import.failed")


def _emit(job: ImportJob, event: str) -> None:
    from leadlex.webhooks import webhook_emit

    webhook_emit(workspace_id=job.workspace_id, event=event, data=import_job_event_data(job=job))


def import_job_event_data(*, job: ImportJob) -> dict[str, Any]:
    return {
        "job_id": job.public_id,
        "status": job.status,
        "total_rows": job.total_rows,
        "created_count": job.created_count,
        "updated_count": job.updated_count,
        "skipped_count": job.skipped_count,
        "error_count": job.error_count,
        "error": job.error or None,
        "request_id": job.request_id or None,
    }


def _delete_quietly(key: str) -> None:
    try:
        storage.delete(key)
    except Exception:  # noqa: BLE001 - a leftover payload is swept later, not worth failing a finished job
        logger.warning("could not delete import payload %s", key)


def import_jobs_sweep(*, stale_after: timedelta = STALE_AFTER, limit: int = 100) -> list[uuid.UUID]:
    """Requeue jobs whose worker died (processing, heartbeat too old) and re-dispatch
    queued jobs whose message was lost; fail jobs that used up their attempts.
    Locks and skips, so two sweepers never handle one job."""
    now = timezone.now()
    cutoff = now - stale_after
    dispatched: list[uuid.UUID] = []
    with transaction.atomic():
        stale = list(
            ImportJob.objects.select_for_update(skip_locked=True)
            .filter(
                Q(status=ImportJob.Status.PROCESSING, heartbeat_at__lt=cutoff)
                | Q(status=ImportJob.Status.QUEUED, updated_at__lt=cutoff)
            )
            .order_by("created_at")[:limit]
        )
        for job in stale:
            if job.status == ImportJob.Status.PROCESSING and (job.attempts >= MAX_ATTEMPTS or not job.payload_key):
                # No payload: a synchronous import whose request died; its client saw an error.
                message = (
                    f"The import was interrupted {job.attempts} times and was given up."
                    if job.payload_key
                    else "The import was interrupted before it finished; the committed rows stay imported."
                )
                ImportJob.objects.filter(id=job.id).update(
                    status=ImportJob.Status.FAILED, error_kind="system", completed_at=now, error=message
                )
                job.refresh_from_db()
                if job.payload_key:  # events are for queued imports; a request answered for itself
                    _emit(job, "import.failed")
                continue
            ImportJob.objects.filter(id=job.id).update(status=ImportJob.Status.QUEUED, heartbeat_at=now)
            import_job_enqueue_on_commit(job_id=job.id)
            dispatched.append(job.id)
    # Idempotency keys live 24 hours; drop the expired ones a slice at a time.
    expired = list(
        ImportIdempotencyKey.objects.filter(created_at__lt=now - IDEMPOTENCY_TTL).values_list("pk", flat=True)[:5000]
    )
    if expired:
        ImportIdempotencyKey.objects.filter(pk__in=expired).delete()
    return dispatched


def import_job_retry(*, job: ImportJob) -> bool:
    """Admin: run a failed job again from its checkpoint (needs its stored payload)."""
    if job.status != ImportJob.Status.FAILED or not job.payload_key or not storage.exists(job.payload_key):
        return False
    with transaction.atomic():
        changed = ImportJob.objects.filter(id=job.id, status=ImportJob.Status.FAILED).update(
            status=ImportJob.Status.QUEUED, error="", error_kind="", completed_at=None
        )
        if changed:
            import_job_enqueue_on_commit(job_id=job.id)
    return bool(changed)


def import_job_errors_url(*, job: ImportJob, base_url: str | None = None) -> str | None:
    if not job.errors_key:
        return None
    return storage.presigned_get(
        job.errors_key,
        meta=storage.ObjectMeta(content_type="text/csv", filename="import-errors.csv"),
        base_url=base_url,
    )


# --- Idempotency-Key ------------------------------------------------------------------------


def request_hash(payload: Any) -> str:
    """A hash of what the request *means* (canonical JSON of its parameters and
    rows), so a re-sent multipart upload with a new boundary still matches."""
    return hashlib.sha256(orjson.dumps(payload, option=orjson.OPT_SORT_KEYS, default=str)).hexdigest()


def import_idempotent(
    *, workspace: Workspace, key: str, body_hash: str, run: Callable[[], tuple[int, dict[str, Any], ImportJob | None]]
) -> tuple[int, dict[str, Any]]:
    """Run ``run`` once per (workspace, key). The key row is inserted first, "in
    progress": of concurrent requests exactly one wins the unique constraint; the
    others wait for its stored response (or see it at once when done)."""
    if not key or len(key) > 255:
        raise ValidationFailed("Idempotency-Key must be 1 to 255 characters.", details={"header": "Idempotency-Key"})
    deadline = time.monotonic() + IDEMPOTENCY_WAIT_SECONDS
    while True:
        ImportIdempotencyKey.objects.filter(
            workspace=workspace, key=key, created_at__lt=timezone.now() - IDEMPOTENCY_TTL
        ).delete()
        try:
            with transaction.atomic():
                record = ImportIdempotencyKey.objects.create(workspace=workspace, key=key, body_hash=body_hash)
            break  # we won: do the work
        except IntegrityError:
            pass
        existing = ImportIdempotencyKey.objects.filter(workspace=workspace, key=key).first()
        if existing is None:
            continue  # expired and deleted between our two statements: try again
        if existing.body_hash != body_hash:
            raise IdempotencyConflict(
                "This Idempotency-Key was used with a different request body.", details={"idempotency_key": key}
            )
        if existing.state == ImportIdempotencyKey.State.DONE:
            return existing.response_status or 200, existing.response_body or {}
        if timezone.now() - existing.created_at > IDEMPOTENCY_ABANDONED_AFTER:
            # The first request died half-way (its process was killed): free the key.
            ImportIdempotencyKey.objects.filter(pk=existing.pk, state=ImportIdempotencyKey.State.IN_PROGRESS).delete()
            continue
        if time.monotonic() > deadline:
            raise IdempotencyConflict(
                "A request with this Idempotency-Key is still being processed; retry shortly.",
                details={"idempotency_key": key, "in_progress": True},
            )
        time.sleep(0.1)
    try:
        status_code, body, job = run()
    except BaseException:
        # A request that failed (bad input, crash) leaves nothing behind: the key can be
        # used again, as if the request had never arrived.
        ImportIdempotencyKey.objects.filter(pk=record.pk).delete()
        raise
    ImportIdempotencyKey.objects.filter(pk=record.pk).update(
        state=ImportIdempotencyKey.State.DONE, response_status=status_code, response_body=body, job=job
    )
    return status_code, body
