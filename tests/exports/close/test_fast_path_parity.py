"""The PostgreSQL fast path of leads JSON/NDJSON gives the very records of the
generic renderer, awkward values included."""

from __future__ import annotations

import json

import pytest

from contacts.models import Company, Contact, ContactEmail, Opportunity
from exports.close import kinds
from tests.conftest import is_postgres
from tests.exports.close.test_close_export_batches import make_job

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.postgres,
    pytest.mark.skipif(not is_postgres(), reason="the fast path is PostgreSQL's"),
]


def records(job, settings, fast: bool) -> list[dict]:
    settings.LEADLEX_CLOSE_EXPORT_FAST_PATH = fast
    assert kinds.uses_fast_path(job) is fast
    data = kinds.header(job) + b"".join(b.data for b in kinds.iter_batches(job, None)) + kinds.footer(job)
    if job.format == "json":
        return json.loads(data)
    return [json.loads(line) for line in data.decode().splitlines()]


@pytest.mark.parametrize("fmt", ["json", "ndjson"])
@pytest.mark.parametrize(("activities", "smart"), [(False, False), (True, True)])
def test_fast_path_records_equal_the_generic_ones(world, settings, fmt, activities, smart):
    assert is_postgres()
    ws = world.workspace
    odd = Company.objects.create(
        workspace=ws,
        name='Ünïcødé "quoted"\nline',
        status="Hot Lead — Ä!",
        url="",
        custom={"nested": {"b": [1, 2.5, None]}, "a": "x"},
        addresses=[],
    )
    c = Contact.objects.create(
        workspace=ws, company=odd, full_name="Zoë", email="", phone="", linkedin_url="https://z.example"
    )
    ContactEmail.objects.create(contact=c, email="ZOE@x.example")
    Opportunity.objects.create(workspace=ws, company=odd, value=-1_234_567, currency="EUR", contact=None)
    Opportunity.objects.create(workspace=ws, company=odd, value=None, confidence=None)
    settings.LEADLEX_CLOSE_EXPORT_BATCH = 2
    job = make_job(ws, format=fmt, include_activities=activities, include_smart_fields=smart)
    generic = records(job, settings, fast=False)
    fast = records(job, settings, fast=True)
    assert len(fast) == 5
    assert fast == generic
    assert [list(r) for r in fast] == [list(r) for r in generic]  # same keys in the same order
