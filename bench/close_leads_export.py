"""Benchmark: a Close-style ``leads`` JSON export with ``include_activities``.

Seeds N companies × 3 contacts (each with its e-mail row) × 2 opportunities ×
5 activities in a fresh workspace, then runs the export job on the real engine
(gzip, storage, checkpoints) in a *separate process*, so that the peak RSS
reported is the export's own and not the seeding's. Prints rows/s (companies,
and all nested objects) and peak RSS; ``--sizes 10000,100000`` runs several sizes
in one go to show that memory stays flat.

Uses whatever the environment configures (embedded SQLite by default;
``DATABASE_URL`` / ``AWS_*`` for PostgreSQL and S3). Run from the project root:

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/lx_bench DJANGO_SECRET_KEY=x \\
        .venv/bin/python bench/close_leads_export.py --sizes 10000,100000
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")


def setup() -> None:
    import django

    django.setup()


_PG_SEED = [
    """INSERT INTO contacts_company (id, workspace_id, name, url, description, status, addresses, custom, created_at,
                                     updated_at)
       SELECT gen_random_uuid(), %(ws)s, 'Company ' || i || ' Ltd', 'https://c' || i || '.example',
              'Anvils and rockets',
              CASE WHEN i %% 3 = 0 THEN 'Potential' ELSE 'Customer' END, '[{"city": "Paris", "country": "FR"}]',
              jsonb_build_object('tier', 'gold', 'seats', i %% 500), timestamptz '2024-01-01' + i * interval '1 second',
              timestamptz '2024-01-01' + i * interval '1 second'
         FROM generate_series(0, %(n)s - 1) i""",
    """INSERT INTO contacts_contact (id, workspace_id, company_id, full_name, email, phone, job_title, company_name,
                                     linkedin_url, custom, created_at, updated_at)
       SELECT gen_random_uuid(), %(ws)s, c.id, 'Person ' || j || ' of ' || c.name,
              'p' || j || '-' || replace(c.id::text, '-', '') || '@example.com', '+1555' || lpad(j::text, 7, '0'),
              'CEO', '', '', '{}', c.created_at, c.created_at
         FROM contacts_company c, generate_series(0, 2) j WHERE c.workspace_id = %(ws)s""",
    """INSERT INTO contacts_contactemail (contact_id, email, is_primary, created_at)
       SELECT id, email, true, created_at FROM contacts_contact WHERE workspace_id = %(ws)s""",
    """INSERT INTO contacts_opportunity (id, workspace_id, company_id, status, value, currency, confidence, note,
                                         created_at, updated_at)
       SELECT gen_random_uuid(), %(ws)s, c.id, CASE WHEN j = 1 THEN 'won' ELSE 'active' END, 10000 * (j + 1), 'USD',
              50, '', c.created_at, c.created_at
         FROM contacts_company c, generate_series(0, 1) j WHERE c.workspace_id = %(ws)s""",
    """INSERT INTO contacts_activity (id, workspace_id, type, company_id, body, occurred_at, created_at)
       SELECT gen_random_uuid(), %(ws)s, (ARRAY['call', 'email', 'note'])[j %% 3 + 1], c.id, 'Talked about anvils',
              c.created_at + j * interval '1 day', c.created_at
         FROM contacts_company c, generate_series(0, 4) j WHERE c.workspace_id = %(ws)s""",
]


def seed(n: int) -> str:
    """Bulk-insert the data set; returns the workspace id. PostgreSQL generates the
    rows itself (generate_series); SQLite goes through bulk_create."""
    from django.db import connection

    from contacts.models import Activity, Company, Contact, ContactEmail, Opportunity
    from leadlex.models import Workspace

    ws = Workspace.objects.create(name=f"bench-close-{uuid.uuid4().hex[:8]}")
    base = datetime(2024, 1, 1, tzinfo=UTC)
    chunk = 5_000
    started = time.monotonic()
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            for sql in _PG_SEED:
                cursor.execute(sql, {"ws": ws.pk, "n": n})
            cursor.execute(
                "ANALYZE contacts_company; ANALYZE contacts_contact; ANALYZE contacts_contactemail; "
                "ANALYZE contacts_opportunity; ANALYZE contacts_activity"
            )
        n = 0  # nothing left for the ORM loop below
    for start in range(0, n, chunk):
        companies = [
            Company(
                workspace=ws,
                name=f"Company {i} Ltd",
                description="Anvils and rockets",
                url=f"https://c{i}.example",
                status="Customer" if i % 3 else "Potential",
                addresses=[{"city": "Paris", "country": "FR"}],
                custom={"tier": "gold", "seats": i % 500},
                created_at=base + timedelta(seconds=i),
            )
            for i in range(start, min(n, start + chunk))
        ]
        Company.objects.bulk_create(companies)
        contacts = [
            Contact(
                workspace=ws,
                company=c,
                full_name=f"Person {j} of {c.name}",
                job_title="CEO",
                email=f"p{j}-{c.pk.hex[:12]}@example.com",
                phone=f"+1555{j:07d}",
                created_at=c.created_at,
            )
            for c in companies
            for j in range(3)
        ]
        Contact.objects.bulk_create(contacts)
        ContactEmail.objects.bulk_create([ContactEmail(contact=p, email=p.email, is_primary=True) for p in contacts])
        Opportunity.objects.bulk_create(
            [
                Opportunity(
                    workspace=ws,
                    company=c,
                    contact=contacts[k * 3],
                    status="won" if j else "active",
                    value=10_000 * (j + 1),
                    confidence=50,
                    created_at=c.created_at,
                )
                for k, c in enumerate(companies)
                for j in range(2)
            ]
        )
        Activity.objects.bulk_create(
            [
                Activity(
                    workspace=ws,
                    company=c,
                    type=("call", "email", "note")[j % 3],
                    body="Talked about anvils",
                    occurred_at=c.created_at + timedelta(days=j),
                )
                for c in companies
                for j in range(5)
            ]
        )
    total = Company.objects.filter(workspace=ws).count()
    print(
        f"  seeded {total} companies (+{total * 3} contacts, {total * 2} opportunities, {total * 5} activities) "
        f"in {time.monotonic() - started:.1f}s",
        flush=True,
    )
    return str(ws.pk)


def run_export(workspace_id: str) -> dict:
    """In this (fresh) process: create and run the job, measure it."""
    from django.db import connection

    from exports.close.services import close_lead_export_parameters
    from exports.engine import export_job_create, export_job_run
    from exports.models import ExportJob
    from leadlex.models import Workspace

    ws = Workspace.objects.get(pk=workspace_id)
    params = close_lead_export_parameters(
        workspace=ws, data={"type": "leads", "format": "json", "include_activities": True, "send_done_email": False}
    )
    job = export_job_create(workspace=ws, kind="close_leads", format="json", parameters=params, enqueue=False)
    queries_before = len(connection.queries) if connection.queries_log else 0
    started = time.monotonic()
    status = export_job_run(job_id=job.pk)
    elapsed = time.monotonic() - started
    job = ExportJob.objects.get(pk=job.pk)
    return {
        "status": status,
        "rows": job.row_count,
        "seconds": round(elapsed, 2),
        "bytes_gzip": job.byte_size,
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "queries": (len(connection.queries) - queries_before) if connection.queries_log else None,
        "storage_key": job.storage_key,
    }


def cleanup(workspace_id: str) -> None:
    from django.db import connection

    from leadlex.models import Workspace

    # Raw deletes: the ORM cascade would load every row id into memory first.
    with connection.cursor() as cursor:
        for table in ("contacts_activity", "contacts_opportunity"):
            cursor.execute(
                f"DELETE FROM {table} WHERE workspace_id = %s",
                [uuid.UUID(workspace_id).hex if connection.vendor == "sqlite" else workspace_id],
            )
        wid = uuid.UUID(workspace_id).hex if connection.vendor == "sqlite" else workspace_id
        cursor.execute(
            "DELETE FROM contacts_contactemail WHERE contact_id IN "
            "(SELECT id FROM contacts_contact WHERE workspace_id = %s)",
            [wid],
        )
        cursor.execute("DELETE FROM contacts_contact WHERE workspace_id = %s", [wid])
        cursor.execute("DELETE FROM contacts_company WHERE workspace_id = %s", [wid])
    Workspace.objects.filter(pk=workspace_id).delete()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="100000", help="comma-separated company counts (default 100000)")
    parser.add_argument("--keep", action="store_true", help="keep the seeded workspaces")
    parser.add_argument("--_run", help=argparse.SUPPRESS)
    args = parser.parse_args()
    setup()
    if args._run:  # the measured child process
        print(json.dumps(run_export(args._run)))
        return

    from django.core.management import call_command
    from django.db import connection

    call_command("migrate", verbosity=0)
    print(f"database: {connection.vendor}; storage: {(os.environ.get('AWS_STORAGE_BUCKET_NAME') and 's3') or 'local'}")
    results = []
    for n in [int(s) for s in args.sizes.split(",")]:
        workspace_id = seed(n)
        connection.close()
        child = subprocess.run(
            [sys.executable, __file__, "--_run", workspace_id],
            capture_output=True,
            text=True,
            cwd=ROOT,
            env=os.environ.copy(),
        )
        if child.returncode != 0:
            print(child.stderr[-4000:], file=sys.stderr)
            raise SystemExit(child.returncode)
        result = json.loads(child.stdout.strip().splitlines()[-1])
        nested = n * (1 + 3 + 2 + 5)
        result.update(
            {
                "companies": n,
                "companies_per_s": round(n / result["seconds"]),
                "objects_per_s": round(nested / result["seconds"]),
            }
        )
        results.append(result)
        print(
            f"  {n:>8} companies: {result['seconds']:>7.1f}s  {result['companies_per_s']:>7} companies/s  "
            f"{result['objects_per_s']:>8} objects/s (company+contacts+opps+activities)  "
            f"peak RSS {result['peak_rss_mb']} MB  file {result['bytes_gzip'] / 1e6:.1f} MB gz  [{result['status']}]",
            flush=True,
        )
        if not args.keep:
            cleanup(workspace_id)
            from leadlex import storage

            storage.delete(result["storage_key"])
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
