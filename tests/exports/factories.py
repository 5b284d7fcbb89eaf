"""Bulk test data for export tests: set-based inserts, explicit timestamps."""

from __future__ import annotations

import base64
import random
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from contacts.models import CometToken, Company, Contact, ContactEmail, ContactList, ContactTag, ListMembership, Tag
from leadlex.models import Workspace

BASE = datetime(2026, 4, 15, 9, 0, tzinfo=UTC)


def make_contacts(
    workspace: Workspace,
    n: int,
    *,
    start: datetime = BASE,
    step: timedelta = timedelta(seconds=1),
    same_time: bool = False,
    custom_for: Any = None,
    **fields: Any,
) -> list[Contact]:
    contacts = []
    for i in range(n):
        created = start if same_time else start + step * i
        contacts.append(
            Contact(
                workspace=workspace,
                full_name=fields.get("full_name", f"Person {i}"),
                email=fields.get("email", f"p{i}-{uuid.uuid4().hex[:6]}@example.com"),
                phone=fields.get("phone", f"+1555{i:07d}"),
                job_title=fields.get("job_title", "Engineer"),
                company_name=fields.get("company_name", "Acme Corp"),
                linkedin_url=fields.get("linkedin_url", ""),
                custom=custom_for(i) if custom_for else fields.get("custom", {}),
                created_at=created,
                updated_at=created,
            )
        )
    Contact.objects.bulk_create(contacts, batch_size=2000)
    return contacts


def tag(contacts: Iterable[Contact], name: str) -> Tag:
    contacts = list(contacts)
    t, _ = Tag.objects.get_or_create(workspace=contacts[0].workspace, name=name)
    ContactTag.objects.bulk_create([ContactTag(contact=c, tag=t) for c in contacts], ignore_conflicts=True)
    return t


def add_to_list(contacts: Iterable[Contact], name: str) -> ContactList:
    contacts = list(contacts)
    lst, _ = ContactList.objects.get_or_create(workspace=contacts[0].workspace, name=name)
    ListMembership.objects.bulk_create([ListMembership(contact_list=lst, contact=c) for c in contacts])
    return lst


def add_tokens(contact: Contact, n: int, *, start: datetime = BASE) -> list[CometToken]:
    tokens = [CometToken(contact=contact, token=f"tok-{i}", seen_at=start + timedelta(minutes=i)) for i in range(n)]
    CometToken.objects.bulk_create(tokens)
    return tokens


def add_emails(contact: Contact, emails: list[str]) -> None:
    ContactEmail.objects.bulk_create(
        [
            ContactEmail(contact=contact, email=e, merged_from=uuid.uuid4(), created_at=BASE + timedelta(seconds=i))
            for i, e in enumerate(emails)
        ]
    )


def random_blob(n: int, seed: int) -> str:
    """About ``n`` characters that gzip barely shrinks (to reach S3's 5 MiB parts with few rows)."""
    return base64.b64encode(random.Random(seed).randbytes(n * 3 // 4)).decode()


def company(workspace: Workspace, name: str) -> Company:
    return Company.objects.create(workspace=workspace, name=name)
