"""Reads for exports: the contact export's row query and keyset batches.

Both the generic path (Django ORM + Python rendering, any database) and the
PostgreSQL fast path (the database renders the bytes) start from the one
``contact_export_queryset``, so a filter is defined once.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from django.db.models import Exists, OuterRef, Q, QuerySet, Window
from django.db.models.functions import RowNumber
from django.utils.dateparse import parse_datetime

from contacts.models import CometToken, Contact, ContactEmail, ContactTag, ListMembership
from exports.models import ExportJob
from leadlex.models import Workspace

KeysetCursor = list  # [created_at ISO 8601, id]: JSON-serialisable


def as_utc(value: datetime) -> datetime:
    """A bound as the database compares it. Python allows UTC offsets up to ±23:59,
    PostgreSQL only up to ±15:59 (a query with -17:39 fails), so bounds go in as UTC.
    One that leaves datetime's range in UTC (year 1 at +05:00) becomes the range's
    end: no row lies beyond it on either side."""
    try:
        return value.astimezone(UTC)
    except OverflowError:
        return (datetime.max if value.year > 1 else datetime.min).replace(tzinfo=UTC)


@dataclass(frozen=True)
class ContactFilter:
    """Normalised filters of a contact export (all datetimes aware)."""

    created_after: datetime | None = None  # strictly after
    created_from: datetime | None = None  # at or after
    created_before: datetime | None = None  # strictly before
    list_id: UUID | None = None
    tags: tuple[str, ...] = ()
    contact_ids: tuple[UUID, ...] | None = None
    start_after: KeysetCursor | None = None  # keyset: rows strictly after this one
    until: KeysetCursor | None = None  # keyset: rows up to and including this one

    @classmethod
    def from_parameters(cls, parameters: dict[str, Any]) -> ContactFilter:
        def dt(name: str) -> datetime | None:
            value = parameters.get(name)
            parsed = parse_datetime(value) if value else None
            return as_utc(parsed) if parsed else None

        ids = parameters.get("contact_ids")
        return cls(
            created_after=dt("created_after"),
            created_from=dt("created_from"),
            created_before=dt("created_before"),
            list_id=UUID(parameters["list_id"]) if parameters.get("list_id") else None,
            tags=tuple(parameters.get("tags") or ()),
            contact_ids=tuple(UUID(str(i)) for i in ids) if ids is not None else None,
            start_after=parameters.get("start_after"),
            until=parameters.get("until"),
        )


def cursor_decode(cursor: KeysetCursor) -> tuple[datetime, UUID]:
    created = parse_datetime(cursor[0])
    if created is None or created.tzinfo is None:
        raise ValueError("bad cursor timestamp")
    return as_utc(created), UUID(str(cursor[1]))


def cursor_encode(created_at: datetime, pk: UUID | str) -> KeysetCursor:
    return [created_at.isoformat(), str(pk)]


def keyset_after(created_at: datetime, pk: UUID) -> Q:
    # The redundant created_at >= bound lets the (workspace, created_at, id) index
    # start the scan at the cursor instead of filtering from the beginning.
    return Q(created_at__gte=created_at) & (Q(created_at__gt=created_at) | Q(id__gt=pk))


def keyset_until(created_at: datetime, pk: UUID) -> Q:
    return Q(created_at__lte=created_at) & (Q(created_at__lt=created_at) | Q(id__lte=pk))


def contact_export_queryset(
    *, workspace: Workspace | Any, filters: ContactFilter, after: KeysetCursor | None = None
) -> QuerySet[Contact]:
    """The rows of a contact export, ordered by (created_at, id)."""
    qs = Contact.objects.filter(workspace=workspace)
    if filters.created_after:
        qs = qs.filter(created_at__gt=filters.created_after)
    if filters.created_from:
        qs = qs.filter(created_at__gte=filters.created_from)
    if filters.created_before:
        qs = qs.filter(created_at__lt=filters.created_before)
    if filters.list_id:
        qs = qs.filter(Exists(ListMembership.objects.filter(contact=OuterRef("pk"), contact_list_id=filters.list_id)))
    for tag in filters.tags:  # every tag must be carried
        qs = qs.filter(Exists(ContactTag.objects.filter(contact=OuterRef("pk"), tag__name=tag)))
    if filters.contact_ids is not None:
        qs = qs.filter(pk__in=filters.contact_ids)
    if filters.until:
        qs = qs.filter(keyset_until(*cursor_decode(filters.until)))
    position = after or filters.start_after
    if position:
        qs = qs.filter(keyset_after(*cursor_decode(position)))
    return qs.order_by("created_at", "id")


def contact_export_count(*, workspace: Workspace | Any, filters: ContactFilter) -> int:
    return contact_export_queryset(workspace=workspace, filters=filters).count()


def contact_export_boundary(*, workspace: Workspace | UUID, filters: ContactFilter, limit: int) -> KeysetCursor | None:
    """The cursor of the ``limit``-th row when more than ``limit`` rows match, else
    None: where a page of ``limit`` rows ends and the next page starts."""
    keys = list(
        contact_export_queryset(workspace=workspace, filters=filters).values_list("created_at", "id")[
            limit - 1 : limit + 1
        ]
    )
    if len(keys) < 2:
        return None
    return cursor_encode(*keys[0])


# --- Generic path: one query for the rows, one per related table, per batch --------
@dataclass
class ContactBatch:
    rows: list[dict[str, Any]]
    tags: dict[UUID, list[str]]
    lists: dict[UUID, list[str]]
    emails: dict[UUID, list[str]]
    comet_tokens: dict[UUID, list[tuple[str, datetime]]]


ROW_COLUMNS = (
    "id",
    "full_name",
    "email",
    "phone",
    "job_title",
    "company_name",
    "company__name",
    "company_id",
    "linkedin_url",
    "custom",
    "created_at",
    "updated_at",
)


def contact_export_batches(
    *, job: ExportJob, filters: ContactFilter, after: KeysetCursor | None, batch_size: int, need: frozenset[str]
) -> Iterator[ContactBatch]:
    """Keyset batches of contact rows with the related values each needs, fetched
    per batch (never per row)."""
    while True:
        rows = list(
            contact_export_queryset(workspace=job.workspace_id, filters=filters, after=after).values(*ROW_COLUMNS)[
                :batch_size
            ]
        )
        if not rows:
            return
        ids = [r["id"] for r in rows]
        batch = ContactBatch(rows=rows, tags={}, lists={}, emails={}, comet_tokens={})
        if "tags" in need:
            for cid, name in ContactTag.objects.filter(contact_id__in=ids).values_list("contact_id", "tag__name"):
                batch.tags.setdefault(cid, []).append(name)
            for names in batch.tags.values():
                names.sort()
        if "lists" in need:
            for cid, lid in ListMembership.objects.filter(contact_id__in=ids).values_list(
                "contact_id", "contact_list_id"
            ):
                batch.lists.setdefault(cid, []).append(str(lid))
            for lids in batch.lists.values():
                lids.sort()
        if "emails" in need:
            for cid, email in (
                ContactEmail.objects.filter(contact_id__in=ids)
                .order_by("contact_id", "created_at", "id")
                .values_list("contact_id", "email")
            ):
                batch.emails.setdefault(cid, []).append(email)
        if "comet_tokens" in need:
            recent = (
                CometToken.objects.filter(contact_id__in=ids)
                .annotate(rank=Window(RowNumber(), partition_by="contact_id", order_by=("-seen_at", "-id")))
                .filter(rank__lte=5)
                .order_by("contact_id", "-seen_at", "-id")
                .values_list("contact_id", "token", "seen_at")
            )
            for cid, token, seen_at in recent:
                batch.comet_tokens.setdefault(cid, []).append((token, seen_at))
        yield batch
        last = rows[-1]
        after = cursor_encode(last["created_at"], last["id"])
        if len(rows) < batch_size:
            return
