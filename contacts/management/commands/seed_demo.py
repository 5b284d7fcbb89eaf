"""``manage.py seed_demo --contacts N [--workspace NAME]``: realistic demo data.

Companies, contacts (with extra emails from "merged" profiles, tags, lists,
custom fields, comet tokens), opportunities and activities, bulk-inserted in
batches of one transaction each. Faker is slow per call, so names, titles and
addresses are drawn from pools generated once; addresses carry a UUID fragment
so re-running never collides with the workspace's unique-email constraint.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import random
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import connection, models, transaction
from django.utils import timezone
from faker import Faker
from tqdm import tqdm

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
from contacts.services import tags_ensure
from leadlex.models import Workspace

TAG_NAMES = [
    "customer",
    "prospect",
    "vip",
    "newsletter",
    "webinar",
    "trial",
    "churned",
    "partner",
    "investor",
    "press",
    "event-2024",
    "inbound",
    "outbound",
    "decision-maker",
    "champion",
]
LIST_NAMES = [
    "Newsletter subscribers",
    "Q3 campaign",
    "Conference leads",
    "Enterprise accounts",
    "Beta testers",
    "Re-engagement",
    "Partners",
    "Hot leads",
]
COMPANY_STATUSES = ["Potential", "Bad Fit", "Qualified", "Customer", "Cancelled"]
LEAD_SOURCES = ["website", "referral", "linkedin", "conference", "cold outreach", "webinar", "partner"]
PERSONAL_DOMAINS = ["gmail.com", "yahoo.com", "outlook.com", "icloud.com", "proton.me", "fastmail.com"]
CONTACTS_PER_COMPANY = 5


@dataclass
class Pools:
    """Faker output generated once and sampled: a Faker call costs tens of
    microseconds, which at a million values is most of the run."""

    first: list[str]
    last: list[str]
    jobs: list[str]
    company_words: list[str]
    sentences: list[str]
    addresses: list[dict[str, str]]
    catch_phrases: list[str] = field(default_factory=list)

    @classmethod
    def build(cls, fake: Faker) -> Pools:
        return cls(
            first=[fake.first_name() for _ in range(600)],
            last=[fake.last_name() for _ in range(1000)],
            jobs=[fake.job() for _ in range(300)],
            company_words=[fake.last_name() for _ in range(800)],
            sentences=[fake.sentence(nb_words=12) for _ in range(300)],
            addresses=[
                {
                    "label": "business",
                    "address_1": fake.street_address(),
                    "city": fake.city(),
                    "state": fake.state_abbr(),
                    "zipcode": fake.postcode(),
                    "country": "US",
                }
                for _ in range(400)
            ],
            catch_phrases=[fake.catch_phrase() for _ in range(300)],
        )


@functools.lru_cache(maxsize=8192)  # pool values repeat: slug each once
def _slug(text: str) -> str:
    return "".join(ch for ch in text.lower() if ch.isalnum()) or "x"


class Command(BaseCommand):
    help = "Seed a workspace with realistic fake companies, contacts, lists, tags, opportunities and activities."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--contacts", type=int, required=True, help="How many contacts to add.")
        parser.add_argument("--workspace", default="Demo", help="Workspace name (created if missing).")
        parser.add_argument("--batch-size", type=int, default=10000)
        parser.add_argument("--seed", type=int, default=None, help="Random seed, for repeatable data.")
        parser.add_argument("--no-progress", action="store_true", help="Hide the progress bar.")

    def handle(self, *args: Any, **options: Any) -> None:
        total: int = options["contacts"]
        batch_size: int = options["batch_size"]
        if total < 0:
            raise CommandError("--contacts must be zero or more.")
        if batch_size < 1:
            raise CommandError("--batch-size must be at least 1.")
        rng = random.Random(options["seed"])
        fake = Faker("en_US")
        if options["seed"] is not None:
            fake.seed_instance(options["seed"])

        started = time.monotonic()
        workspace, created = Workspace.objects.get_or_create(name=options["workspace"])
        pools = Pools.build(fake)
        tags = list(tags_ensure(workspace=workspace, names=TAG_NAMES).values())
        ContactList.objects.bulk_create(
            [ContactList(workspace=workspace, name=name) for name in LIST_NAMES], ignore_conflicts=True
        )
        lists = list(ContactList.objects.filter(workspace=workspace, name__in=LIST_NAMES))

        counts = {"contacts": 0, "companies": 0, "emails": 0, "comet_tokens": 0, "opportunities": 0, "activities": 0}
        progress = tqdm(
            total=total,
            unit="contacts",
            file=sys.stderr,
            disable=options["no_progress"] or None,
            desc=f"Seeding {workspace.name}",
        )
        done = 0
        restore = _fast_bulk_load()
        try:
            while done < total:
                n = min(batch_size, total - done)
                with transaction.atomic():
                    batch_counts = self._seed_batch(
                        workspace=workspace, n=n, rng=rng, pools=pools, tags=tags, lists=lists
                    )
                for key, value in batch_counts.items():
                    counts[key] += value
                done += n
                progress.update(n)
        finally:
            restore()
        progress.close()

        elapsed = time.monotonic() - started
        summary = ", ".join(f"{value} {key.replace('_', ' ')}" for key, value in counts.items())
        verb = "Created" if created else "Added to"
        self.stdout.write(f"{verb} workspace {workspace.name!r}: {summary} in {elapsed:.1f}s")

    def _seed_batch(
        self, *, workspace: Workspace, n: int, rng: random.Random, pools: Pools, tags: list, lists: list[ContactList]
    ) -> dict[str, int]:
        now = timezone.now()
        two_years = 2 * 365 * 24 * 3600
        ws_id = workspace.pk

        def past(max_seconds: int = two_years) -> dt.datetime:
            return now - dt.timedelta(seconds=rng.randrange(max_seconds), microseconds=rng.randrange(1_000_000))

        companies: list[dict[str, Any]] = []
        for _ in range(max(1, n // CONTACTS_PER_COMPANY)):
            words = rng.sample(pools.company_words, 2)
            style = rng.randrange(4)
            name = (
                f"{words[0]} {rng.choice(['Inc', 'LLC', 'Group', 'Ltd', 'and Sons', 'PLC'])}"
                if style == 0
                else f"{words[0]}-{words[1]}"
                if style == 1
                else f"{words[0]}, {words[1]} and Co"
                if style == 2
                else f"{words[0]} {rng.choice(['Labs', 'Systems', 'Analytics', 'Logistics', 'Health', 'Capital'])}"
            )
            created_at = past()
            companies.append(
                dict(
                    id=uuid.uuid4(),
                    workspace_id=ws_id,
                    name=name,
                    url=f"https://www.{_slug(words[0])}{_slug(words[1])}.example",
                    description=rng.choice(pools.catch_phrases),
                    status=rng.choice(COMPANY_STATUSES),
                    addresses=[rng.choice(pools.addresses)],
                    custom={
                        "industry": rng.choice(["software", "retail", "finance", "healthcare", "manufacturing"]),
                        "employees": rng.choice([5, 20, 50, 200, 1000, 5000]),
                    },
                    created_at=created_at,
                    updated_at=created_at,
                )
            )
        companies.sort(key=lambda row: row["id"])
        bulk_insert(Company, companies)

        contacts: list[dict[str, Any]] = []
        for _ in range(n):
            first, last = rng.choice(pools.first), rng.choice(pools.last)
            company = rng.choice(companies) if rng.random() < 0.75 else None
            domain = f"{_slug(company['name'])[:30]}.example" if company else rng.choice(PERSONAL_DOMAINS)
            created_at = past()
            contacts.append(
                dict(
                    id=uuid.uuid4(),
                    workspace_id=ws_id,
                    full_name=f"{first} {last}",
                    # A UUID fragment keeps re-runs clear of the unique-email constraint.
                    email=f"{_slug(first)}.{_slug(last)}.{uuid.uuid4().hex[:10]}@{domain}",
                    phone=f"+1{rng.randrange(201, 990)}555{rng.randrange(10000):04d}" if rng.random() < 0.8 else None,
                    job_title=rng.choice(pools.jobs),
                    company_id=company["id"] if company else None,
                    company_name=company["name"] if company else "",
                    linkedin_url=f"https://www.linkedin.com/in/{_slug(first)}-{_slug(last)}-{rng.randrange(10**6)}"
                    if rng.random() < 0.6
                    else "",
                    custom={
                        "lead_source": rng.choice(LEAD_SOURCES),
                        "score": rng.randrange(101),
                        "newsletter": rng.random() < 0.4,
                    },
                    created_at=created_at,
                    updated_at=created_at + dt.timedelta(days=rng.randrange(30)),
                )
            )
        # Inserting in key order turns random B-tree inserts into appends for the
        # primary key and for every index that leads with contact_id below.
        contacts.sort(key=lambda row: row["id"])
        bulk_insert(Contact, contacts)

        emails: list[dict[str, Any]] = []
        contact_tags: list[dict[str, Any]] = []
        memberships: list[dict[str, Any]] = []
        tokens: list[dict[str, Any]] = []
        for contact in contacts:
            cid, created_at = contact["id"], contact["created_at"]
            emails.append(
                dict(contact_id=cid, email=contact["email"], is_primary=True, merged_from=None, created_at=created_at)
            )
            if rng.random() < 0.2:  # a profile merged in earlier brought a second address
                local = contact["email"].split("@", 1)[0].rsplit(".", 1)[0]
                emails.append(
                    dict(
                        contact_id=cid,
                        email=f"{local}.{uuid.uuid4().hex[:6]}@{rng.choice(PERSONAL_DOMAINS)}",
                        is_primary=False,
                        merged_from=uuid.uuid4(),
                        created_at=created_at,
                    )
                )
            for tag in rng.sample(tags, rng.choice((0, 1, 1, 2, 2, 3))):
                contact_tags.append(dict(contact_id=cid, tag_id=tag.pk))
            if rng.random() < 0.3:
                for contact_list in rng.sample(lists, rng.choice((1, 1, 2))):
                    memberships.append(dict(contact_list_id=contact_list.pk, contact_id=cid, added_at=created_at))
            if rng.random() < 0.5:
                age = max(1, int((now - created_at).total_seconds()))
                for _ in range(rng.randrange(1, 7)):
                    tokens.append(
                        dict(
                            contact_id=cid,
                            token=f"{rng.getrandbits(128):032x}",
                            seen_at=created_at + dt.timedelta(seconds=rng.randrange(age)),
                            created_at=now,
                        )
                    )
        bulk_insert(ContactEmail, emails)
        bulk_insert(ContactTag, contact_tags)
        bulk_insert(ListMembership, memberships)
        bulk_insert(CometToken, tokens)

        by_company: dict[Any, list[Any]] = {}
        for contact in contacts:
            if contact["company_id"]:
                by_company.setdefault(contact["company_id"], []).append(contact["id"])
        opportunities: list[dict[str, Any]] = []
        activities: list[dict[str, Any]] = []
        for company in companies:
            people = by_company.get(company["id"], [])
            for _ in range(rng.choice((0, 1, 1, 2))):
                status = rng.choice(["active", "active", "won", "lost"])
                opportunities.append(
                    dict(
                        id=uuid.uuid4(),
                        workspace_id=ws_id,
                        company_id=company["id"],
                        contact_id=rng.choice(people) if people else None,
                        status=status,
                        value=rng.randrange(10, 5000) * 100,
                        currency=rng.choice(["USD", "USD", "EUR"]),
                        confidence=100 if status == "won" else rng.randrange(0, 100, 10),
                        note=rng.choice(pools.sentences),
                        date_won=(now - dt.timedelta(days=rng.randrange(365))).date() if status == "won" else None,
                        created_at=company["created_at"],
                        updated_at=company["created_at"],
                    )
                )
            for _ in range(rng.randrange(0, 4)):
                activities.append(
                    dict(
                        id=uuid.uuid4(),
                        workspace_id=ws_id,
                        type=rng.choice(["note", "call", "email", "meeting"]),
                        company_id=company["id"],
                        contact_id=rng.choice(people) if people else None,
                        body=rng.choice(pools.sentences),
                        occurred_at=past(),
                        created_at=now,
                    )
                )
        bulk_insert(Opportunity, opportunities)
        bulk_insert(Activity, activities)
        return {
            "contacts": len(contacts),
            "companies": len(companies),
            "emails": len(emails),
            "comet_tokens": len(tokens),
            "opportunities": len(opportunities),
            "activities": len(activities),
        }


def _fast_bulk_load() -> Callable[[], None]:
    """On SQLite, trade durability for speed while seeding: a crash mid-seed
    loses fake data only. A big page cache keeps the random-UUID indexes in memory.
    Returns the function that restores the connection's settings."""
    if connection.vendor != "sqlite" or connection.in_atomic_block:  # SQLite refuses it inside a transaction
        return lambda: None
    with connection.cursor() as cursor:
        cursor.execute("PRAGMA synchronous")
        (synchronous,) = cursor.fetchone()
        cursor.execute("PRAGMA cache_size")
        (cache_size,) = cursor.fetchone()
        cursor.execute("PRAGMA synchronous=OFF")
        cursor.execute("PRAGMA cache_size=-262144")  # 256 MiB

    def restore() -> None:
        with connection.cursor() as cursor:
            cursor.execute(f"PRAGMA synchronous={int(synchronous)}")
            cursor.execute(f"PRAGMA cache_size={int(cache_size)}")

    return restore


def _adapter(field: Any) -> Callable[[Any], Any]:
    """How one column's Python value goes to the driver, decided once per column
    rather than through Django's per-value field machinery."""
    target = field.target_field if field.is_relation else field
    kind = target.get_internal_type()
    if connection.vendor == "postgresql":
        if kind == "JSONField":
            from psycopg.types.json import Jsonb

            return Jsonb
        return lambda value: value
    if kind == "UUIDField":
        return lambda value: value.hex if value is not None else None
    if kind == "DateTimeField":
        # Django's own format for SQLite: naive UTC, "YYYY-MM-DD HH:MM:SS[.ffffff]".
        utc = dt.UTC
        return lambda value: str(value.astimezone(utc).replace(tzinfo=None)) if value is not None else None
    if kind == "DateField":
        return lambda value: value.isoformat() if value is not None else None
    if kind == "JSONField":
        return json.dumps
    return lambda value: value


def _column(field: models.Field | models.ForeignObjectRel) -> str:
    if not isinstance(field, models.Field) or field.column is None:  # a reverse relation has no column
        raise CommandError(f"{field.name} is not a column")
    return field.column


def bulk_insert(model: type[models.Model], rows: list[dict[str, Any]]) -> None:
    """Insert plain rows: ``COPY`` on PostgreSQL, one ``executemany`` on SQLite.

    ``bulk_create`` builds a model instance and renders SQL per row, which is most
    of the time at 100,000 contacts (~650,000 rows with their relations). Rows
    here are already complete (ids, defaults), so none of that is needed.
    """
    if not rows:
        return
    columns = list(rows[0])
    fields = [model._meta.get_field(name) for name in columns]
    adapters = [_adapter(f) for f in fields]
    quote = connection.ops.quote_name
    table = quote(model._meta.db_table)
    column_sql = ", ".join(quote(_column(f)) for f in fields)
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            with cursor.cursor.copy(f"COPY {table} ({column_sql}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row([adapt(row[name]) for adapt, name in zip(adapters, columns, strict=True)])
        else:
            placeholders = ", ".join(["%s"] * len(columns))
            cursor.executemany(
                f"INSERT INTO {table} ({column_sql}) VALUES ({placeholders})",
                [tuple(adapt(row[name]) for adapt, name in zip(adapters, columns, strict=True)) for row in rows],
            )
