"""Reads for Close-style exports.

Rows are produced per batch of *root* objects (companies for ``POST
/export/lead/``, opportunities for ``POST /export/opportunity/``): the root ids
stream from one ordered query (a server-side cursor on PostgreSQL), and each
batch of ids costs a fixed number of queries whatever its size: the roots (with
smart fields as correlated subqueries, computed by the database), their
contacts, the contacts' e-mail addresses and tags, opportunities and, on
request, activities.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID
from zoneinfo import ZoneInfo

from django.core.exceptions import EmptyResultSet
from django.db import connection
from django.db.models import Count, IntegerField, Model, OuterRef, Q, QuerySet, Subquery, Value
from django.db.models.functions import Coalesce
from django.utils.dateparse import parse_date, parse_datetime

from contacts.models import Activity, Company, Contact, ContactEmail, ContactTag, Opportunity
from exports.close.query import compile_query, compile_sort
from leadlex.models import Workspace

COMPANY_COLUMNS = ("id", "name", "description", "url", "status", "addresses", "custom", "created_at", "updated_at")
CONTACT_COLUMNS = (
    "id",
    "company_id",
    "full_name",
    "job_title",
    "email",
    "phone",
    "linkedin_url",
    "custom",
    "created_at",
    "updated_at",
)
OPP_COLUMNS = (
    "id",
    "company_id",
    "contact_id",
    "contact__full_name",
    "status",
    "value",
    "currency",
    "confidence",
    "note",
    "date_won",
    "created_at",
    "updated_at",
)
ACTIVITY_COLUMNS = ("id", "company_id", "contact_id", "type", "body", "occurred_at", "created_at")


def _now(params: dict[str, Any]) -> datetime:
    # Frozen at request time: a resumed run compiles "last 30 days" exactly as the first.
    value = parse_datetime(params["now"]) if params.get("now") else None
    if value is None:
        raise ValueError("parameters.now missing")
    return value


def close_lead_queryset(*, workspace: Workspace | Any, params: dict[str, Any]) -> QuerySet[Company]:
    """The companies an ``/export/lead/`` job covers, in its sort order (limit not applied)."""
    q = compile_query(
        params.get("s_query"), object_type="lead", now=_now(params), tz=ZoneInfo(params.get("tz") or "UTC")
    )
    return Company.objects.filter(workspace=workspace).filter(q).order_by(*compile_sort(params.get("sort")))


# --- Opportunity filters (POST /export/opportunity/) -----------------------------------------
def close_opportunity_queryset(*, workspace: Workspace | Any, params: dict[str, Any]) -> QuerySet[Opportunity]:
    """Opportunities matching the normalised filters of ``services.opportunity_filters_parse``."""
    filters: dict[str, Any] = params.get("filters") or {}
    q = Q()
    if filters.get("status"):
        q &= Q(status__in=filters["status"])
    for name in ("value", "confidence"):
        for op in ("gt", "gte", "lt", "lte"):
            key = f"{name}__{op}"
            if filters.get(key) is not None:
                q &= Q(**{key: filters[key]})
    for name, column in (("date_created", "created_at"), ("date_updated", "updated_at")):
        for op in ("gt", "gte", "lt", "lte"):
            if filters.get(f"{name}__{op}"):
                q &= Q(**{f"{column}__{op}": parse_datetime(filters[f"{name}__{op}"])})
    for op in ("gt", "gte", "lt", "lte"):
        if filters.get(f"date_won__{op}"):
            q &= Q(**{f"date_won__{op}": parse_date(filters[f"date_won__{op}"])})
    if filters.get("lead_id"):
        q &= Q(company_id__in=[UUID(i) for i in filters["lead_id"]])
    if filters.get("contact_id"):
        q &= Q(contact_id__in=[UUID(i) for i in filters["contact_id"]])
    if filters.get("lead_query"):
        # Opportunities of leads matching an s_query (the opportunity's own filters still apply).
        leads = compile_query(
            filters["lead_query"], object_type="lead", now=_now(params), tz=ZoneInfo(params.get("tz") or "UTC")
        )
        q &= Q(company__in=Company.objects.filter(workspace_id=_workspace_id(workspace)).filter(leads))
    return Opportunity.objects.filter(workspace=workspace).filter(q).order_by("created_at", "id")


def _workspace_id(workspace: Workspace | Any) -> Any:
    return getattr(workspace, "pk", workspace)


# --- Streaming root ids ----------------------------------------------------------------------
def root_id_batches(
    queryset: QuerySet, *, offset: int, limit: int | None, batch_size: int, after_id: Any = None
) -> Iterator[list[UUID]]:
    """The ids of ``queryset`` from position ``offset`` (up to ``limit`` in all), in
    lists of ``batch_size``. One streamed query: a server-side cursor on PostgreSQL,
    chunked fetches on SQLite; memory holds one batch.

    ``after_id`` (only for a queryset ordered by id alone) resumes by keyset
    instead of OFFSET: exact even when rows before it were deleted meanwhile."""
    if limit is not None and offset >= limit:
        return
    ids = queryset.values_list("id", flat=True)
    if after_id is not None:
        ids = ids.filter(id__gt=after_id)
        ids = ids[: limit - offset] if limit is not None else ids
    else:
        ids = ids[offset:limit] if limit is not None else ids[offset:]
    batch: list[UUID] = []
    for pk in ids.iterator(chunk_size=batch_size):
        batch.append(pk)
        if len(batch) >= batch_size:
            yield batch
            batch = []
    if batch:
        yield batch


def lead_count(*, queryset: QuerySet, limit: int | None) -> int:
    total = queryset.order_by().count()
    return min(total, limit) if limit is not None else total


def limited_ids(queryset: QuerySet, limit: int | None) -> QuerySet:
    """The ids as a subquery (the limit kept, in the sort order)."""
    ids = queryset.values("id")
    return ids[:limit] if limit is not None else ids.order_by()


# --- Batches ---------------------------------------------------------------------------------
def _smart_annotations() -> dict[str, Any]:
    def count(model: type[Model], **extra: Any) -> Coalesce:
        sub = (
            model._default_manager.filter(company=OuterRef("pk"), **extra)
            .order_by()
            .values("company")
            .annotate(n=Count("*"))
            .values("n")
        )
        return Coalesce(Subquery(sub, output_field=IntegerField()), Value(0))

    last = Activity.objects.filter(company=OuterRef("pk")).order_by("-occurred_at").values("occurred_at")[:1]
    return {
        "num_contacts": count(Contact),
        "num_opportunities": count(Opportunity),
        "num_activities": count(Activity),
        "num_emails": count(Activity, type=Activity.Type.EMAIL),
        "last_activity_date": Subquery(last),
    }


@dataclass
class LeadBatch:
    leads: list[dict[str, Any]]  # in the requested order, each with "contacts", "opportunities"[, "activities"]
    by_id: dict[Any, dict[str, Any]] = field(default_factory=dict)


def lead_batch(
    *,
    company_ids: Sequence[Any],
    contacts: bool = True,
    opportunities: bool = True,
    activities: bool = False,
    smart: bool = False,
) -> LeadBatch:
    """Companies of ``company_ids`` (in that order) with their related rows: a fixed
    number of queries (at most 6) for any batch size."""
    qs = Company.objects.filter(pk__in=company_ids)
    if smart:
        qs = qs.annotate(**_smart_annotations())
        rows = qs.values(*COMPANY_COLUMNS, *_smart_annotations().keys())
    else:
        rows = qs.values(*COMPANY_COLUMNS)
    by_id = {row["id"]: row for row in rows}
    for row in by_id.values():
        row["contacts"] = []
        row["opportunities"] = []
        if activities:
            row["activities"] = []
    if contacts:
        contact_rows = list(
            Contact.objects.filter(company_id__in=company_ids)
            .order_by("company_id", "created_at", "id")
            .values(*CONTACT_COLUMNS)
        )
        _attach_contact_details(contact_rows)
        for c in contact_rows:
            by_id[c["company_id"]]["contacts"].append(c)
    if opportunities:
        for o in (
            Opportunity.objects.filter(company_id__in=company_ids).order_by("created_at", "id").values(*OPP_COLUMNS)
        ):
            by_id[o["company_id"]]["opportunities"].append(o)
    if activities:
        for a in (
            Activity.objects.filter(company_id__in=company_ids).order_by("occurred_at", "id").values(*ACTIVITY_COLUMNS)
        ):
            by_id[a["company_id"]]["activities"].append(a)
    leads = [by_id[pk] for pk in company_ids if pk in by_id]  # a company deleted meanwhile is skipped
    return LeadBatch(leads=leads, by_id=by_id)


def _attach_contact_details(contact_rows: list[dict[str, Any]]) -> None:
    """All e-mail addresses (primary first, then merged ones) and tag names: two queries."""
    ids = [c["id"] for c in contact_rows]
    if not ids:
        return
    emails: dict[Any, list[str]] = defaultdict(list)
    for contact_id, email in (
        ContactEmail.objects.filter(contact_id__in=ids)
        .order_by("contact_id", "created_at", "id")
        .values_list("contact_id", "email")
    ):
        emails[contact_id].append(email)
    tags: dict[Any, list[str]] = defaultdict(list)
    for contact_id, name in (
        ContactTag.objects.filter(contact_id__in=ids)
        .order_by("contact_id", "tag__name")
        .values_list("contact_id", "tag__name")
    ):
        tags[contact_id].append(name)
    for c in contact_rows:
        primary = c["email"]
        others = [e for e in emails.get(c["id"], []) if primary is None or e.lower() != primary.lower()]
        c["all_emails"] = ([primary] if primary else []) + others
        c["tag_names"] = tags.get(c["id"], [])


def opportunity_batch(*, opportunity_ids: Sequence[Any], smart: bool = False) -> tuple[list[dict], dict[Any, dict]]:
    """Opportunities (in the given order) and their companies: two queries."""
    by_id = {o["id"]: o for o in Opportunity.objects.filter(pk__in=opportunity_ids).values(*OPP_COLUMNS)}
    opps = [by_id[pk] for pk in opportunity_ids if pk in by_id]
    company_ids = {o["company_id"] for o in opps if o["company_id"]}
    leads = (
        lead_batch(company_ids=list(company_ids), contacts=False, opportunities=False, smart=smart).by_id
        if company_ids
        else {}
    )
    return opps, leads


def custom_keys(
    *, company_ids_subquery: QuerySet | None = None, contact_ids_subquery: QuerySet | None = None
) -> list[str]:
    """Every key used in ``custom`` by the given companies (or contacts), sorted:
    the CSV header needs them before the first row. Done by the database
    (``jsonb_object_keys`` / ``json_each``), not by reading every row."""
    model, subquery = (
        (Company, company_ids_subquery) if company_ids_subquery is not None else (Contact, contact_ids_subquery)
    )
    assert subquery is not None
    table = model._meta.db_table
    try:
        inner_sql, params = subquery.query.sql_with_params()
    except EmptyResultSet:  # the query matches nothing by construction (e.g. an empty "or")
        return []
    if connection.vendor == "postgresql":
        sql = (
            f"SELECT DISTINCT k FROM {table} t, jsonb_object_keys(t.custom) k "
            f"WHERE t.id IN ({inner_sql}) AND jsonb_typeof(t.custom) = 'object'"
        )
    else:
        sql = (
            f"SELECT DISTINCT je.key FROM {table} t, json_each(t.custom) je "
            f"WHERE t.id IN ({inner_sql}) AND json_type(t.custom) = 'object'"
        )
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return sorted(row[0] for row in cursor.fetchall())
