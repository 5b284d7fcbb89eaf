"""Reads of the contacts app. Every function is scoped by workspace so that
another workspace's id behaves exactly like one that does not exist."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from django.db.models import QuerySet, Value
from django.db.models.functions import Lower

from contacts.models import (
    Activity,
    CometToken,
    Company,
    Contact,
    ContactEmail,
    ContactList,
    ContactTag,
    ListMembership,
    Opportunity,
)
from contacts.pagination import Page, paginate
from leadlex.api import get_in_workspace
from leadlex.models import Workspace


def contact_queryset(*, workspace: Workspace) -> QuerySet[Contact]:
    """Contacts with their company joined; tags, lists and emails come from
    ``contacts_attach_relations`` once the page is known."""
    return Contact.objects.filter(workspace=workspace).select_related("company")


def contacts_attach_relations(contacts: list[Contact]) -> list[Contact]:
    """Set ``tag_names``, ``list_ids`` and ``email_list`` on each contact: three
    queries for the whole page, whatever its size.

    Django's ``prefetch_related`` would cost the same number of queries but clones
    a queryset per row and relation, which made a 500-row page spend most of its
    time in the ORM; these are flat ``values_list`` reads.
    """
    if not contacts:
        return contacts
    ids = [c.pk for c in contacts]
    tags: dict[Any, list[str]] = defaultdict(list)
    for contact_id, name in ContactTag.objects.filter(contact_id__in=ids).values_list("contact_id", "tag__name"):
        tags[contact_id].append(name)
    lists: dict[Any, list[str]] = defaultdict(list)
    for contact_id, list_id in ListMembership.objects.filter(contact_id__in=ids).values_list(
        "contact_id", "contact_list_id"
    ):
        lists[contact_id].append(str(list_id))
    emails: dict[Any, list[str]] = defaultdict(list)
    rows = (
        ContactEmail.objects.filter(contact_id__in=ids)
        .order_by("-is_primary", "created_at", "id")
        .values_list("contact_id", "email")
    )
    for contact_id, email in rows:
        emails[contact_id].append(email)
    # Attached to each instance for the serializer; they are reads of other tables, not model fields.
    for contact in contacts:
        contact.tag_names = sorted(tags.get(contact.pk, ()))  # type: ignore[attr-defined]  # attached per read
        contact.list_ids = sorted(lists.get(contact.pk, ()))  # type: ignore[attr-defined]  # attached per read
        contact.email_list = emails.get(contact.pk, [])  # type: ignore[attr-defined]  # attached per read
    return contacts


@dataclass(frozen=True)
class ContactFilters:
    """Optional narrowing of ``GET /v1/contacts``; values arrive already normalised."""

    email: str | None = None
    phone: str | None = None
    tags: tuple[str, ...] = ()
    list_id: UUID | None = None
    company_id: UUID | None = None


def contact_filter(queryset: QuerySet[Contact], *, filters: ContactFilters) -> QuerySet[Contact]:
    if filters.email:
        # Spelled as the partial unique index (LOWER(email) ... WHERE email IS NOT NULL)
        # so that both databases use it; ``iexact`` compiles to LIKE on SQLite and
        # UPPER() on PostgreSQL, which no index serves.
        queryset = queryset.alias(email_lower=Lower("email")).filter(
            email__isnull=False, email_lower=Lower(Value(filters.email))
        )
    if filters.phone:
        queryset = queryset.filter(phone=filters.phone)
    for name in filters.tags:
        # One join per tag: a contact must carry all of them. (contact, tag) is
        # unique, so no join can repeat a row.
        queryset = queryset.filter(contacttag__tag__name=name)
    if filters.list_id:
        queryset = queryset.filter(listmembership__contact_list_id=filters.list_id)
    if filters.company_id:
        queryset = queryset.filter(company_id=filters.company_id)
    return queryset


def contact_page(
    *, workspace: Workspace, cursor: str | None, limit: int, filters: ContactFilters | None = None
) -> Page[Contact]:
    queryset = contact_queryset(workspace=workspace)
    if filters is not None:
        queryset = contact_filter(queryset, filters=filters)
    result = paginate(queryset, cursor=cursor, limit=limit)
    contacts_attach_relations(result.rows)
    return result


def contact_get(*, workspace: Workspace, contact_id: Any) -> Contact:
    contact = get_in_workspace(contact_queryset(workspace=workspace), workspace=workspace, pk=contact_id)
    contacts_attach_relations([contact])
    return contact


def comet_token_page(*, contact: Contact, cursor: str | None, limit: int) -> Page[CometToken]:
    return paginate(
        CometToken.objects.filter(contact=contact), cursor=cursor, limit=limit, key="seen_at", descending=True
    )


def list_queryset(*, workspace: Workspace) -> QuerySet[ContactList]:
    from django.db.models import Count

    return ContactList.objects.filter(workspace=workspace).annotate(contact_count=Count("listmembership"))


def list_page(*, workspace: Workspace, cursor: str | None, limit: int) -> Page[ContactList]:
    return paginate(list_queryset(workspace=workspace), cursor=cursor, limit=limit)


def list_get(*, workspace: Workspace, list_id: Any) -> ContactList:
    return get_in_workspace(list_queryset(workspace=workspace), workspace=workspace, pk=list_id)


def company_queryset(*, workspace: Workspace) -> QuerySet[Company]:
    return Company.objects.filter(workspace=workspace)


def company_page(*, workspace: Workspace, cursor: str | None, limit: int) -> Page[Company]:
    return paginate(company_queryset(workspace=workspace), cursor=cursor, limit=limit)


def company_get(*, workspace: Workspace, company_id: Any) -> Company:
    return get_in_workspace(company_queryset(workspace=workspace), workspace=workspace, pk=company_id)


def opportunity_queryset(*, workspace: Workspace) -> QuerySet[Opportunity]:
    return Opportunity.objects.filter(workspace=workspace)


def opportunity_page(*, workspace: Workspace, cursor: str | None, limit: int) -> Page[Opportunity]:
    return paginate(opportunity_queryset(workspace=workspace), cursor=cursor, limit=limit)


def opportunity_get(*, workspace: Workspace, opportunity_id: Any) -> Opportunity:
    return get_in_workspace(opportunity_queryset(workspace=workspace), workspace=workspace, pk=opportunity_id)


def activity_queryset(*, workspace: Workspace) -> QuerySet[Activity]:
    return Activity.objects.filter(workspace=workspace)


def activity_page(*, workspace: Workspace, cursor: str | None, limit: int) -> Page[Activity]:
    return paginate(activity_queryset(workspace=workspace), cursor=cursor, limit=limit)


def activity_get(*, workspace: Workspace, activity_id: Any) -> Activity:
    return get_in_workspace(activity_queryset(workspace=workspace), workspace=workspace, pk=activity_id)
