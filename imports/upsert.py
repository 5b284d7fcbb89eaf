"""The set-based contact upsert of one batch of clean rows: match by email or phone
(duplicates inside the batch fold into one contact), decide create/update/skip,
write. On PostgreSQL the batch goes through a staging table and a few set-based
statements; elsewhere through the ORM's bulk operations."""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson
from django.db import connection
from django.utils import timezone

from contacts.models import Company, Contact, ContactEmail, ContactList, ContactTag, ListMembership, Tag
from imports.parsing import (
    RowError,
)
from imports.validation import CleanRow
from leadlex.models import Workspace

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

    @property
    def contact_id(self) -> uuid.UUID:
        """The contact this entry writes: the one it creates, or the one it matched."""
        contact_id = self.new_id or self.match_id
        if contact_id is None:  # only entries that create or update get written
            raise RuntimeError(f"rows {self.rows}: written with neither a new nor a matched contact")
        return contact_id

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
    result.contact_ids = [e.contact_id for e in written]
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


# The batch's lookups (PostgreSQL) go by the keys they look for, whatever the statistics
# say. A fresh workspace's are stale (absent at the last ANALYZE: "1 row", where there
# are millions), and the planner then preferred the workspace's own index (equally "one
# row" to it) to the address or phone index: every contact of the workspace read, once
# per batch, and a million-row import slowed batch by batch. So the workspace is checked
# with IS NOT DISTINCT FROM, which no index serves, and only the index that leads with
# the key can find the rows: (lower(email), workspace) and (phone, workspace). One array
# parameter, not thousands of placeholders.
def match_by_email_statement(contacts: str) -> str:
    """Params: the lowered addresses, the workspace."""
    return (
        f"SELECT id, email, phone FROM {contacts} "
        "WHERE lower(email) = ANY(%s::text[]) AND workspace_id IS NOT DISTINCT FROM %s"
    )


def match_by_phone_statement(contacts: str) -> str:
    """Params: the phones, the workspace; the oldest contact of a phone first."""
    return (
        f"SELECT id, email, phone FROM {contacts} "
        "WHERE phone = ANY(%s::text[]) AND workspace_id IS NOT DISTINCT FROM %s ORDER BY created_at, id"
    )


# A table small enough to read whole is read whole by the planner's choice; these keep a
# batch's lookups index probes on any table (its real size is what the planner weighs).
def primary_email_statement(emails: str) -> str:
    """Params: the ids of the contacts whose address the batch changed; the current
    address (the stage's) becomes their primary one."""
    return f"""
        UPDATE {emails} e SET is_primary = COALESCE(lower(e.email) = lower(s.email), FALSE)
        FROM leadlex_import_stage s WHERE e.contact_id = ANY(%s::uuid[]) AND s.id = e.contact_id
    """


_KEY_LOOKUP_OFF = ("enable_seqscan", "enable_bitmapscan")


@contextlib.contextmanager
def _by_key(cursor: Any) -> Iterator[None]:
    """Inside the batch's transaction: index probes only, for the statements run here."""
    for name in _KEY_LOOKUP_OFF:
        cursor.execute(f"SET LOCAL {name} TO off")
    try:
        yield
    finally:
        for name in _KEY_LOOKUP_OFF:
            cursor.execute(f"SET LOCAL {name} TO DEFAULT")


def _match(*, workspace: Workspace, entries: list[_Entry], use_pg: bool) -> None:
    """Two queries a batch: existing contacts by lower(email), then by phone for the
    rows the email did not match (email wins when both would match)."""
    emails = list(dict.fromkeys(e.email_key for e in entries if e.email_key))
    by_email: dict[str, Any] = {}
    if emails:
        if use_pg:
            with connection.cursor() as cursor, _by_key(cursor):
                cursor.execute(match_by_email_statement(Contact._meta.db_table), [emails, workspace.pk])
                for pk, email, phone in cursor.fetchall():
                    by_email[email.lower()] = _Existing(pk, email, phone)
        else:
            from django.db.models.functions import Lower

            for contact in (
                Contact.objects.filter(workspace=workspace)
                .annotate(email_lower=Lower("email"))
                .filter(email_lower__in=emails)
            ):
                by_email[contact.email_lower] = contact
    for entry in entries:
        if entry.email_key and entry.email_key in by_email:
            entry.match = by_email[entry.email_key]
    phones = list(dict.fromkeys(e.phone for e in entries if e.match is None and e.phone))
    if phones:
        by_phone: dict[str, Any] = {}
        if use_pg:
            with connection.cursor() as cursor, _by_key(cursor):
                cursor.execute(match_by_phone_statement(Contact._meta.db_table), [phones, workspace.pk])
                for pk, email, phone in cursor.fetchall():
                    by_phone.setdefault(phone, _Existing(pk, email, phone))  # oldest wins
        else:
            for found in Contact.objects.filter(workspace=workspace, phone__in=phones).order_by("created_at", "id"):
                by_phone.setdefault(found.phone, found)  # type: ignore[arg-type]  # phone__in: never NULL; oldest wins
        for entry in entries:
            if entry.match is None and entry.phone in by_phone:
                entry.match = by_phone[entry.phone]
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


def update_statement(contacts: str) -> str:
    """The batch's UPDATE of the contacts it matched (params: now, their ids, the
    workspace), from the stage's values, field by field as the row carried them."""

    def bit(name: str) -> str:
        return f"(s.present & {_BIT[name]}) <> 0"

    # The workspace is checked with IS NOT DISTINCT FROM, which no index serves: the ids
    # (primary key) are the only way in (see _write_postgres).
    return f"""
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
        WHERE c.id = ANY(%s::uuid[]) AND s.id = c.id AND s.action = 'u'
          AND c.workspace_id IS NOT DISTINCT FROM %s
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
        email_changed: list[uuid.UUID] = []
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
                if changed and e.match_id is not None:
                    email_changed.append(e.match_id)
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

        updated_ids = [e.match_id for e in writes if e.action == "u"]
        if updated_ids:
            # No plan may depend on statistics: a fresh import's workspace has stale ones
            # (empty at the last ANALYZE: "1 row"), and a nested loop driven by the
            # workspace's index compared every contact of it with the stage, in every
            # batch. The ids are known exactly: the contacts side is their primary-key
            # lookups, joined to the stage by hash or merge, never a nested loop.
            cursor.execute("SET LOCAL enable_nestloop TO off")
            cursor.execute(update_statement(contacts), [now, updated_ids, workspace.pk])
            cursor.execute("SET LOCAL enable_nestloop TO DEFAULT")
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
        if email_changed:
            # By the contacts' ids, as the UPDATE of the contacts: joined on the stage's rows,
            # the planner read every address of the table once per batch.
            with _by_key(cursor):
                cursor.execute(primary_email_statement(emails), [email_changed])
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
            rows.append(ContactEmail(contact_id=e.contact_id, email=email, is_primary=True))
        elif e.action == "u" and "email" in e.values:
            old = (e.old_email or "").lower()
            if (email or "").lower() != old:
                changed.append(e.contact_id)
                if email:
                    rows.append(ContactEmail(contact_id=e.contact_id, email=email, is_primary=False))
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
        for name in set(global_tags) | e.tags:
            links.append(ContactTag(contact_id=e.contact_id, tag_id=tag_ids[name]))
    ContactTag.objects.bulk_create(links, batch_size=2000, ignore_conflicts=True)


def _add_lists(*, entries: list[_Entry]) -> None:
    links = [
        ListMembership(contact_list_id=list_id, contact_id=e.contact_id) for e in entries for list_id in e.list_ids
    ]
    if links:
        ListMembership.objects.bulk_create(links, batch_size=2000, ignore_conflicts=True)
