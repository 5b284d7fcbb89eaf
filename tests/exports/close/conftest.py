"""A small Close-style world: companies ("leads") with contacts, opportunities,
activities and custom fields, in the test workspace and in another one."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime

import pytest

from contacts.models import Activity, Company, Contact, ContactEmail, ContactTag, Opportunity, Tag
from leadlex.models import Workspace


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


@dataclass
class World:
    workspace: Workspace
    companies: dict[str, Company] = field(default_factory=dict)
    contacts: dict[str, Contact] = field(default_factory=dict)
    opps: dict[str, Opportunity] = field(default_factory=dict)
    activities: dict[str, Activity] = field(default_factory=dict)


def build_world(workspace: Workspace) -> World:
    w = World(workspace)

    def company(key: str, name: str, created: str, **extra) -> Company:
        w.companies[key] = Company.objects.create(workspace=workspace, name=name, created_at=at(created), **extra)
        return w.companies[key]

    acme = company(
        "acme",
        "ACME Inc.",
        "2024-01-10T12:00:00+00:00",
        status="Customer",
        description="Makers of anvils",
        url="https://acme.example",
        custom={"tier": "gold", "seats": 12, "vip": True, "region": "EMEA"},
        addresses=[{"city": "Paris", "country": "FR"}],
    )
    cafe = company(
        "cafe",
        "Café Crème Ltd",
        "2024-02-01T08:30:00+00:00",
        status="Potential",
        custom={"tier": "silver", "seats": "many", "vip": False, "note": ""},
    )
    globex = company(
        "globex",
        "Globex Corporation",
        "2024-03-05T23:30:00+00:00",
        status="Customer",
        custom={"tier": "gold", "seats": 250, "region": None},
    )
    company("empty", "Initech", "2023-12-31T23:59:59+00:00", custom={})

    def contact(key: str, comp: Company | None, name: str, email: str | None, title: str = "", **extra) -> Contact:
        created = at(f"2024-01-15T10:{len(w.contacts):02d}:00+00:00")  # distinct: a predictable order
        c = Contact.objects.create(
            workspace=workspace, company=comp, full_name=name, email=email, job_title=title, created_at=created, **extra
        )
        if email:
            ContactEmail.objects.create(contact=c, email=email, is_primary=True)
        w.contacts[key] = c
        return c

    wile = contact(
        "wile",
        acme,
        "Wile E. Coyote",
        "wile@acme.example",
        "Chief Executive Officer",
        phone="+15550100",
        custom={"score": 7},
    )
    ContactEmail.objects.create(contact=wile, email="genius@desert.example")
    contact("road", acme, "Road Runner", "beep@acme.example", "CTO")
    contact("amelie", cafe, "Amélie Poulain", "amelie@cafe.example", "Serveuse")
    contact("hank", globex, "Hank Scorpio", None, "CEO")
    tag = Tag.objects.create(workspace=workspace, name="vip")
    ContactTag.objects.create(contact=wile, tag=tag)

    def opp(key: str, comp: Company, status: str, value: int | None, **extra) -> None:
        created = at(f"2024-02-10T10:{len(w.opps):02d}:00+00:00")
        w.opps[key] = Opportunity.objects.create(
            workspace=workspace, company=comp, status=status, value=value, created_at=created, **extra
        )

    opp("acme_big", acme, "won", 500_000, confidence=100, date_won=date(2024, 3, 1), contact=wile, note="Anvils")
    opp("acme_small", acme, "active", 1_000, confidence=20)
    opp("globex_lost", globex, "lost", 90_000, confidence=0)

    def activity(key: str, comp: Company, kind: str, when: str, body: str = "") -> None:
        w.activities[key] = Activity.objects.create(
            workspace=workspace, company=comp, type=kind, occurred_at=at(when), body=body
        )

    activity("acme_call", acme, "call", "2024-03-10T09:00:00+00:00", "Discussed anvils")
    activity("acme_note", acme, "note", "2024-03-12T09:00:00+00:00", "Follow up")
    activity("globex_mail", globex, "email", "2024-03-20T09:00:00+00:00", "Proposal")
    return w


@pytest.fixture
def world(workspace: Workspace) -> World:
    return build_world(workspace)


@pytest.fixture
def other_world(other_workspace: Workspace) -> World:
    return build_world(other_workspace)
