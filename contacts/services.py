"""Writes of the contacts app.

Input arrives already cleaned (``contacts.validation.clean_contact_input`` or a
serializer); services check what needs the database: references inside the
workspace, uniqueness, and they keep the derived rows (``ContactEmail``,
``ContactTag``, ``ListMembership``) in step with the contact in one transaction.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from typing import Any
from uuid import UUID

from django.db import IntegrityError, transaction
from django.utils import timezone

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
    Tag,
)
from leadlex.errors import NotFound, ValidationFailed
from leadlex.models import Workspace

CONTACT_SCALAR_FIELDS = ("full_name", "email", "phone", "job_title", "company_name", "linkedin_url", "custom")


def _field_error(field: str, message: str) -> ValidationFailed:
    return ValidationFailed(f"{field}: {message}", details={"fields": {field: [message]}})


def _email_taken(email: str) -> ValidationFailed:
    return _field_error("email", f"A contact with the email {email!r} already exists in this workspace.")


# --- tags ------------------------------------------------------------------------------


def tags_ensure(*, workspace: Workspace, names: Iterable[str]) -> dict[str, Tag]:
    """Name → Tag for every name, creating the missing ones in one statement.

    ``ignore_conflicts`` makes a concurrent creator of the same tag harmless; the
    re-read returns whichever row won.
    """
    wanted = list(dict.fromkeys(names))
    if not wanted:
        return {}
    Tag.objects.bulk_create([Tag(workspace=workspace, name=name) for name in wanted], ignore_conflicts=True)
    return {tag.name: tag for tag in Tag.objects.filter(workspace=workspace, name__in=wanted)}


def contact_tags_set(*, contact: Contact, names: Sequence[str]) -> None:
    tags = tags_ensure(workspace=contact.workspace, names=names)
    ContactTag.objects.filter(contact=contact).exclude(tag__in=list(tags.values())).delete()
    ContactTag.objects.bulk_create(
        [ContactTag(contact=contact, tag=tag) for tag in tags.values()], ignore_conflicts=True
    )


# --- emails ----------------------------------------------------------------------------


def contact_emails_sync_primary(*, contacts: Sequence[Contact]) -> None:
    """Make each contact's ``ContactEmail`` rows agree with ``Contact.email``.

    The current address is the one primary row; earlier addresses stay as
    non-primary rows (a contact keeps every address it has had). Set-based: one
    read of the existing rows, then one bulk update and one bulk insert.
    """
    if not contacts:
        return
    by_id = {c.pk: c for c in contacts}
    existing = list(ContactEmail.objects.filter(contact_id__in=list(by_id)))
    changed: list[ContactEmail] = []
    present: set[tuple[Any, str]] = set()
    for row in existing:
        spelling = by_id[row.contact_id].email or ""
        current = spelling.lower()
        present.add((row.contact_id, row.email.lower()))
        should_be_primary = bool(current) and row.email.lower() == current
        if row.is_primary != should_be_primary or (should_be_primary and row.email != spelling):
            row.is_primary = should_be_primary
            if should_be_primary:
                row.email = spelling  # the address's current spelling
            changed.append(row)
    if changed:
        ContactEmail.objects.bulk_update(changed, ["is_primary", "email"], batch_size=1000)
    missing = [
        ContactEmail(contact_id=c.pk, email=c.email, is_primary=True)
        for c in contacts
        if c.email and (c.pk, c.email.lower()) not in present
    ]
    if missing:
        ContactEmail.objects.bulk_create(missing, ignore_conflicts=True, batch_size=1000)


# --- references ------------------------------------------------------------------------


def _company_in_workspace(
    *, workspace: Workspace, company_id: UUID | None, field: str = "company_id"
) -> Company | None:
    if company_id is None:
        return None
    company = Company.objects.filter(workspace=workspace, pk=company_id).first()
    if company is None:
        raise _field_error(field, f"No company with id {company_id} in this workspace.")
    return company


def _contact_in_workspace(
    *, workspace: Workspace, contact_id: UUID | None, field: str = "contact_id"
) -> Contact | None:
    if contact_id is None:
        return None
    contact = Contact.objects.filter(workspace=workspace, pk=contact_id).first()
    if contact is None:
        raise _field_error(field, f"No contact with id {contact_id} in this workspace.")
    return contact


def _lists_in_workspace(*, workspace: Workspace, list_ids: Sequence[UUID]) -> list[ContactList]:
    lists = list(ContactList.objects.filter(workspace=workspace, pk__in=list_ids))
    if len(lists) != len(set(list_ids)):
        found = {cl.pk for cl in lists}
        missing = [str(lid) for lid in list_ids if lid not in found]
        raise _field_error("lists", f"No list with id {', '.join(missing)} in this workspace.")
    return lists


# --- contacts --------------------------------------------------------------------------


def contact_create(*, workspace: Workspace, data: dict[str, Any]) -> Contact:
    """Create one contact from cleaned input (see ``clean_contact_input``)."""
    company = _company_in_workspace(workspace=workspace, company_id=data.get("company_id"))
    lists = _lists_in_workspace(workspace=workspace, list_ids=data.get("lists") or [])
    now = timezone.now()
    contact = Contact(workspace=workspace, company=company, created_at=data.get("created_at") or now, updated_at=now)
    for field in CONTACT_SCALAR_FIELDS:
        if field in data:
            setattr(contact, field, data[field])
    try:
        with transaction.atomic():
            contact.save(force_insert=True)
            contact_emails_sync_primary(contacts=[contact])
            if data.get("tags"):
                contact_tags_set(contact=contact, names=data["tags"])
            if lists:
                ListMembership.objects.bulk_create([ListMembership(contact_list=cl, contact=contact) for cl in lists])
    except IntegrityError:
        # The only unique constraint a new contact can hit is the workspace's
        # case-insensitive email: a concurrent writer may have taken it.
        raise _email_taken(contact.email or "") from None
    return contact


def contact_update(*, contact: Contact, data: dict[str, Any]) -> Contact:
    """Apply a partial update from cleaned input; ``tags`` and ``lists`` replace the sets."""
    workspace = contact.workspace
    if "company_id" in data:
        contact.company = _company_in_workspace(workspace=workspace, company_id=data["company_id"])
    lists = _lists_in_workspace(workspace=workspace, list_ids=data["lists"]) if "lists" in data else None
    for field in CONTACT_SCALAR_FIELDS:
        if field in data:
            setattr(contact, field, data[field])
    if data.get("created_at"):
        contact.created_at = data["created_at"]
    try:
        with transaction.atomic():
            contact.save()
            contact_emails_sync_primary(contacts=[contact])
            if "tags" in data:
                contact_tags_set(contact=contact, names=data["tags"] or [])
            if lists is not None:
                ListMembership.objects.filter(contact=contact).exclude(contact_list__in=lists).delete()
                ListMembership.objects.bulk_create(
                    [ListMembership(contact_list=cl, contact=contact) for cl in lists], ignore_conflicts=True
                )
    except IntegrityError:
        raise _email_taken(contact.email or "") from None
    return contact


def contact_delete(*, contact: Contact) -> None:
    contact.delete()


def contact_merge(*, workspace: Workspace, primary_id: UUID, duplicate_ids: Sequence[UUID]) -> Contact:
    """Fold the duplicates into the primary and delete them, all or nothing.

    The primary keeps its own fields, fills its blanks from the duplicates (in the
    order given), keeps the earliest ``created_at`` of them all (the person has been
    known since then), and takes every address (as non-primary ``ContactEmail`` rows
    that remember where they came from), comet token, list membership, tag,
    opportunity and activity of the duplicates.
    """
    duplicate_ids = list(dict.fromkeys(duplicate_ids))
    if not duplicate_ids:
        raise _field_error("duplicate_ids", "Give at least one duplicate id.")
    if primary_id in duplicate_ids:
        raise _field_error("duplicate_ids", "The primary contact cannot also be a duplicate.")
    all_ids = [primary_id, *duplicate_ids]
    with transaction.atomic():
        # Locked in id order so that two merges over overlapping contacts queue
        # instead of deadlocking; the second then sees the duplicates gone (404).
        locked = {
            c.pk: c
            for c in Contact.objects.select_for_update().filter(workspace=workspace, pk__in=all_ids).order_by("pk")
        }
        missing = [str(cid) for cid in all_ids if cid not in locked]
        if missing:
            raise NotFound("Contact not found.", details={"missing_ids": missing})
        primary = locked[primary_id]
        duplicates = [locked[cid] for cid in duplicate_ids]

        emails_to_move: list[tuple[str, UUID]] = []
        for row in ContactEmail.objects.filter(contact_id__in=duplicate_ids).order_by("created_at", "id"):
            emails_to_move.append((row.email, row.merged_from or row.contact_id))
        for dup in duplicates:
            if dup.email:
                emails_to_move.append((dup.email, dup.pk))

        for field in ("full_name", "email", "phone", "job_title", "company_name", "linkedin_url"):
            if not getattr(primary, field):
                donor = next((d for d in duplicates if getattr(d, field)), None)
                if donor is not None:
                    setattr(primary, field, getattr(donor, field))
        if primary.company_id is None:
            primary.company_id = next((d.company_id for d in duplicates if d.company_id), None)
        merged_custom: dict[str, Any] = {}
        for dup in reversed(duplicates):
            merged_custom.update(dup.custom or {})
        primary.custom = {**merged_custom, **(primary.custom or {})}
        primary.created_at = min([primary.created_at, *(d.created_at for d in duplicates)])

        tag_ids = set(ContactTag.objects.filter(contact_id__in=duplicate_ids).values_list("tag_id", flat=True))
        list_ids = set(
            ListMembership.objects.filter(contact_id__in=duplicate_ids).values_list("contact_list_id", flat=True)
        )
        CometToken.objects.filter(contact_id__in=duplicate_ids).update(contact=primary)
        Opportunity.objects.filter(contact_id__in=duplicate_ids).update(contact=primary)
        Activity.objects.filter(contact_id__in=duplicate_ids).update(contact=primary)

        # Deleting first frees the duplicates' addresses under the workspace's
        # unique-email constraint, so the primary may take one of them.
        Contact.objects.filter(pk__in=duplicate_ids).delete()
        primary.save()

        ContactTag.objects.bulk_create([ContactTag(contact=primary, tag_id=t) for t in tag_ids], ignore_conflicts=True)
        ListMembership.objects.bulk_create(
            [ListMembership(contact=primary, contact_list_id=lid) for lid in list_ids], ignore_conflicts=True
        )
        contact_emails_sync_primary(contacts=[primary])
        have = {e.lower() for e in ContactEmail.objects.filter(contact=primary).values_list("email", flat=True)}
        new_rows: list[ContactEmail] = []
        for email, source in emails_to_move:
            if email.lower() not in have:
                have.add(email.lower())
                new_rows.append(ContactEmail(contact=primary, email=email, is_primary=False, merged_from=source))
        ContactEmail.objects.bulk_create(new_rows)
    return primary


def comet_token_record(*, contact: Contact, token: str, seen_at: dt.datetime | None = None) -> CometToken:
    return CometToken.objects.create(contact=contact, token=token, seen_at=seen_at or timezone.now())


# --- lists -----------------------------------------------------------------------------


def list_create(*, workspace: Workspace, name: str) -> ContactList:
    try:
        with transaction.atomic():
            return ContactList.objects.create(workspace=workspace, name=name)
    except IntegrityError:
        raise _field_error("name", f"A list named {name!r} already exists in this workspace.") from None


def _contacts_all_in_workspace(*, workspace: Workspace, contact_ids: Sequence[UUID]) -> list[UUID]:
    ids = list(dict.fromkeys(contact_ids))
    found = set(Contact.objects.filter(workspace=workspace, pk__in=ids).values_list("pk", flat=True))
    missing = [str(cid) for cid in ids if cid not in found]
    if missing:
        # Another workspace's contact is reported exactly like one that does not exist.
        raise NotFound("Contact not found.", details={"missing_ids": missing})
    return ids


def list_add_contacts(*, contact_list: ContactList, contact_ids: Sequence[UUID]) -> int:
    """Add contacts (all of this workspace, or nothing is written); returns how many were new."""
    ids = _contacts_all_in_workspace(workspace=contact_list.workspace, contact_ids=contact_ids)
    with transaction.atomic():
        before = ListMembership.objects.filter(contact_list=contact_list, contact_id__in=ids).count()
        ListMembership.objects.bulk_create(
            [ListMembership(contact_list=contact_list, contact_id=cid) for cid in ids],
            ignore_conflicts=True,
            batch_size=1000,
        )
    return len(ids) - before


def list_remove_contacts(*, contact_list: ContactList, contact_ids: Sequence[UUID]) -> int:
    ids = _contacts_all_in_workspace(workspace=contact_list.workspace, contact_ids=contact_ids)
    deleted, _ = ListMembership.objects.filter(contact_list=contact_list, contact_id__in=ids).delete()
    return deleted


# --- companies, opportunities, activities -----------------------------------------------------


def company_create(*, workspace: Workspace, data: dict[str, Any]) -> Company:
    return Company.objects.create(workspace=workspace, **data)


def company_update(*, company: Company, data: dict[str, Any]) -> Company:
    for field, value in data.items():
        setattr(company, field, value)
    company.save()
    return company


def company_delete(*, company: Company) -> None:
    company.delete()


def _resolve_refs(*, workspace: Workspace, data: dict[str, Any]) -> dict[str, Any]:
    out = dict(data)
    if "company_id" in out:
        out["company"] = _company_in_workspace(workspace=workspace, company_id=out.pop("company_id"))
    if "contact_id" in out:
        out["contact"] = _contact_in_workspace(workspace=workspace, contact_id=out.pop("contact_id"))
    return out


def opportunity_create(*, workspace: Workspace, data: dict[str, Any]) -> Opportunity:
    return Opportunity.objects.create(workspace=workspace, **_resolve_refs(workspace=workspace, data=data))


def opportunity_update(*, opportunity: Opportunity, data: dict[str, Any]) -> Opportunity:
    for field, value in _resolve_refs(workspace=opportunity.workspace, data=data).items():
        setattr(opportunity, field, value)
    opportunity.save()
    return opportunity


def opportunity_delete(*, opportunity: Opportunity) -> None:
    opportunity.delete()


def activity_create(*, workspace: Workspace, data: dict[str, Any]) -> Activity:
    return Activity.objects.create(workspace=workspace, **_resolve_refs(workspace=workspace, data=data))
