"""Rows come per batch with a bounded number of queries, and a resumed run
continues exactly where its checkpoint says."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from contacts.models import Activity, Company, Contact, ContactEmail, Opportunity
from exports.close import kinds
from exports.close.services import close_lead_export_parameters
from exports.models import ExportJob

pytestmark = pytest.mark.django_db
BASE = datetime(2024, 1, 1, tzinfo=UTC)


def seed(workspace, n: int) -> None:
    companies = [
        Company(workspace=workspace, name=f"Company {i:04d}", created_at=BASE + timedelta(minutes=i), custom={"n": i})
        for i in range(n)
    ]
    Company.objects.bulk_create(companies)
    contacts = [
        Contact(
            workspace=workspace,
            company=c,
            full_name=f"{c.name} person {j}",
            email=f"{c.pk.hex[:8]}{j}@x.example",
            created_at=BASE + timedelta(seconds=j),
        )
        for c in companies
        for j in range(3)
    ]
    Contact.objects.bulk_create(contacts)
    ContactEmail.objects.bulk_create([ContactEmail(contact=c, email=c.email, is_primary=True) for c in contacts])
    Opportunity.objects.bulk_create(
        [Opportunity(workspace=workspace, company=c, value=100 * j) for c in companies for j in range(2)]
    )
    Activity.objects.bulk_create(
        [Activity(workspace=workspace, company=c, type="call", occurred_at=BASE) for c in companies for _ in range(5)]
    )


def make_job(workspace, **body) -> ExportJob:
    params = close_lead_export_parameters(workspace=workspace, data={"format": "json", "type": "leads", **body})
    kind = kinds.LEAD_KINDS[params["type"]]
    return ExportJob.objects.create(
        workspace=workspace, kind=kind, format=body.get("format", "json"), parameters=params
    )


def queries_for_full_run(job: ExportJob) -> tuple[int, bytes]:
    with CaptureQueriesContext(connection) as ctx:
        data = kinds.header(job) + b"".join(b.data for b in kinds.iter_batches(job, None)) + kinds.footer(job)
    return len(ctx.captured_queries), data


@pytest.mark.parametrize("fmt", ["json", "csv"])
def test_queries_grow_with_batches_not_rows(workspace, settings, fmt):
    settings.LEADLEX_CLOSE_EXPORT_BATCH = 20
    seed(workspace, 40)
    body = {"format": fmt, "include_activities": True, "include_smart_fields": True}
    small, data = queries_for_full_run(make_job(workspace, **body))
    seed(workspace, 80)  # three times the companies, contacts, opportunities and activities
    large, _ = queries_for_full_run(make_job(workspace, **body))
    # Per batch: companies (smart fields as subqueries), contacts, e-mails, tags,
    # opportunities, activities = 6; plus the streamed id query's fetches.
    assert large - small <= 4 * 7
    assert large <= 6 * 7 + 10
    if fmt == "json":
        doc = json.loads(data)
        assert len(doc) == 40 and len(doc[0]["contacts"]) == 3 and len(doc[0]["activities"]) == 5


def test_one_batch_costs_at_most_seven_queries(workspace, settings, django_assert_max_num_queries):
    settings.LEADLEX_CLOSE_EXPORT_BATCH = 50
    seed(workspace, 50)
    job = make_job(workspace, include_activities=True, include_smart_fields=True)
    with django_assert_max_num_queries(7):
        batches = list(kinds.iter_batches(job, None))
    assert len(batches) == 1 and batches[0].rows == 50


@pytest.mark.parametrize(("fmt", "export_type"), [("json", "contacts"), ("ndjson", "leads"), ("csv", "lead_opps")])
def test_resuming_from_a_cursor_writes_every_row_exactly_once(workspace, settings, fmt, export_type):
    settings.LEADLEX_CLOSE_EXPORT_BATCH = 7
    seed(workspace, 30)
    job = make_job(
        workspace,
        format=fmt,
        type=export_type,
        sort=[{"direction": "desc", "field": {"type": "regular_field", "field_name": "name"}}],
    )
    whole = kinds.header(job) + b"".join(b.data for b in kinds.iter_batches(job, None)) + kinds.footer(job)
    # A run killed after its second batch: the next one starts from that batch's cursor.
    head = list(kinds.iter_batches(job, None))[:2]
    tail = list(kinds.iter_batches(job, head[-1].cursor))
    resumed = kinds.header(job) + b"".join(b.data for b in head + tail) + kinds.footer(job)
    assert resumed == whole
    assert sum(b.rows for b in head + tail) == kinds.count(job)


def test_without_a_sort_a_resume_is_exact_even_after_deletions(workspace, settings):
    settings.LEADLEX_CLOSE_EXPORT_BATCH = 5
    seed(workspace, 20)
    job = make_job(workspace, format="ndjson", fields=["id"])
    head = list(kinds.iter_batches(job, None))[:2]
    done = {json.loads(line)["id"] for b in head for line in b.data.decode().splitlines()}
    # Rows already written are deleted before the next worker resumes.
    Company.objects.filter(pk__in=list(done)[:3]).delete()
    tail = list(kinds.iter_batches(job, head[-1].cursor))
    rest = [json.loads(line)["id"] for b in tail for line in b.data.decode().splitlines()]
    # An OFFSET would now skip three rows; the keyset loses and repeats none.
    assert len(rest) == 10 and not done & set(rest) and len(done | set(rest)) == 20
    assert rest == sorted(rest, key=lambda i: uuid.UUID(i))
