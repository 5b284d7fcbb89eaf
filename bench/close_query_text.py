"""Benchmark: s_query text conditions over many contacts on PostgreSQL.

Seeds N contacts (default 1,000,000; names from small word lists, so a common
last name matches ~2% of rows, plus a few rare accented names) with
generate_series, then times compiled s_query filters (``count()`` and the first
page of 100 in export order) and prints the plan's access path, showing the
trigram indexes on ``lx_fold(...)`` (exports migration 0004) at work.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/lx_bench DJANGO_SECRET_KEY=x \\
        .venv/bin/python bench/close_query_text.py --contacts 1000000
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

FIRST = [
    "Jean",
    "Marie",
    "Pierre",
    "Anne",
    "Louis",
    "Claire",
    "Paul",
    "Julie",
    "Marc",
    "Sophie",
    "Luc",
    "Emma",
    "Hugo",
    "Léa",
    "Noah",
    "Chloé",
    "Adam",
    "Inès",
    "Lucas",
    "Zoé",
    "John",
    "Mary",
    "James",
    "Linda",
    "Robert",
    "Susan",
    "David",
    "Karen",
    "Peter",
    "Laura",
    "Oskar",
    "Ingrid",
    "Sven",
    "Åsa",
    "Jörg",
    "Björn",
    "Ana",
    "José",
    "María",
    "Luís",
]
LAST = [
    "Martin",
    "Bernard",
    "Dubois",
    "Thomas",
    "Robert",
    "Richard",
    "Petit",
    "Durand",
    "Leroy",
    "Moreau",
    "Simon",
    "Laurent",
    "Lefèbvre",
    "Michel",
    "Garcia",
    "David",
    "Bertrand",
    "Roux",
    "Vincent",
    "Fournier",
    "Smith",
    "Johnson",
    "Williams",
    "Brown",
    "Jones",
    "Miller",
    "Davis",
    "Wilson",
    "Anderson",
    "Taylor",
    "Müller",
    "Schmidt",
    "Schneider",
    "Fischer",
    "Weber",
    "Meyer",
    "Wagner",
    "Becker",
    "Schulz",
    "Hoffmann",
    "Novák",
    "Svoboda",
    "Dvořák",
    "Černý",
    "Procházka",
    "Kučera",
    "Veselý",
    "Horák",
    "Němec",
    "Pokorný",
]
TITLES = [
    "Chief Executive Officer",
    "Chief Technology Officer",
    "Head of Sales",
    "Sales Manager",
    "Engineer",
    "Senior Software Engineer",
    "Account Executive",
    "Marketing Director",
    "Product Manager",
    "Office Manager",
]


def sql_array(values: list[str]) -> str:
    return "ARRAY[" + ", ".join("'" + v.replace("'", "''") + "'" for v in values) + "]"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--contacts", type=int, default=1_000_000)
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection

    from contacts.models import Contact
    from exports.close.query import compile_query, compile_sort
    from leadlex.models import Workspace

    if connection.vendor != "postgresql":
        raise SystemExit("PostgreSQL only (set DATABASE_URL)")
    call_command("migrate", verbosity=0)
    ws = Workspace.objects.create(name=f"bench-text-{uuid.uuid4().hex[:8]}")
    started = time.monotonic()
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            INSERT INTO contacts_contact (id, workspace_id, full_name, email, phone, job_title, company_name,
                                          linkedin_url, custom, created_at, updated_at)
            SELECT gen_random_uuid(), %s,
                   ({sql_array(FIRST)})[1 + ((i::bigint * 7919) %% {len(FIRST)})::int]
                     || ' ' || ({sql_array(LAST)})[1 + ((i::bigint * 104729) %% {len(LAST)})::int],
                   'c' || i || '@example.com', NULL, ({sql_array(TITLES)})[1 + i %% {len(TITLES)}],
                   '', '', '{{}}',
                   timestamptz '2024-01-01' + i * interval '1 second',
                   timestamptz '2024-01-01' + i * interval '1 second'
              FROM generate_series(1, %s) i""",
            [ws.pk, args.contacts],
        )
        for k in range(10):  # a handful of rare, accented names
            cursor.execute(
                "INSERT INTO contacts_contact (id, workspace_id, full_name, email, job_title, company_name, "
                "linkedin_url, custom, created_at, updated_at) VALUES (gen_random_uuid(), %s, %s, %s, "
                "'Founder', '', '', '{}', now(), now())",
                [ws.pk, f"Amélie Zyxwvüt {k}", f"rare{k}@example.com"],
            )
        cursor.execute("ANALYZE contacts_contact")
    print(f"database: postgresql; {args.contacts + 10:,} contacts seeded in {time.monotonic() - started:.1f}s")

    def fc(field: str, mode: str, value: str) -> dict:
        return {
            "type": "field_condition",
            "field": {"type": "regular_field", "object_type": "contact", "field_name": field},
            "condition": {"type": "text", "mode": mode, "value": value},
        }

    cases = [
        ("rare name, full_words 'amelie zyxwvut'", fc("name", "full_words", "amelie zyxwvut")),
        ("common last name, full_words 'muller'", fc("name", "full_words", "muller")),
        ("phrase 'jean martin'", fc("name", "phrase", "jean martin")),
        ("beginning_of_words 'dvo'", fc("name", "beginning_of_words", "dvo")),
        (
            "title phrase 'product manager' AND name 'lefebvre'",
            {
                "type": "and",
                "queries": [fc("title", "phrase", "product manager"), fc("name", "full_words", "lefebvre")],
            },
        ),
    ]
    now = datetime.now(UTC)
    order = compile_sort([{"field": {"type": "regular_field", "field_name": "date_created"}}], object_type="contact")
    print(f"{'query':<52} {'rows':>8} {'count() ms':>11} {'first 100 ms':>13}  access path")
    for label, tree in cases:
        qs = Contact.objects.filter(workspace=ws).filter(compile_query(tree, object_type="contact", now=now, tz=UTC))
        timings_count, timings_page = [], []
        for _ in range(3):
            t = time.monotonic()
            n = qs.count()
            timings_count.append((time.monotonic() - t) * 1000)
            t = time.monotonic()
            list(qs.order_by(*order).values_list("id", flat=True)[:100])
            timings_page.append((time.monotonic() - t) * 1000)
        plan = qs.explain()
        path = "trigram index" if "lx_close_contact" in plan else ("seq scan" if "Seq Scan" in plan else "other")
        print(
            f"{label:<52} {n:>8} {statistics.median(timings_count):>11.0f} {statistics.median(timings_page):>13.0f}"
            f"  {path}",
            flush=True,
        )
    if not args.keep:
        with connection.cursor() as cursor:
            cursor.execute("DELETE FROM contacts_contact WHERE workspace_id = %s", [ws.pk])
        ws.delete()


if __name__ == "__main__":
    main()
