"""contact_upsert_batch: set-based, exact counts, safe against concurrent writers."""

from __future__ import annotations

import threading
import time

import pytest
from django.db import connection, connections, transaction
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from contacts.models import Contact, ContactEmail
from imports.upsert import contact_upsert_batch
from imports.validation import validate_row
from tests.support.imports import import_rows

URL = "/v1/import/contacts"


def clean(rows: list[dict]) -> list:
    import datetime as dt

    out = []
    for n, data in enumerate(rows, start=1):
        row, errors = validate_row(n, data, tz=dt.UTC)
        assert not errors, errors
        out.append(row)
    return out


@pytest.mark.django_db
def test_a_batch_costs_a_fixed_number_of_queries_whatever_its_size(workspace):
    def queries_for(n: int, start: int) -> int:
        rows = clean([{**r, "tags": ["x", f"y{r['email']}"]} for r in import_rows(n, start=start)])
        with CaptureQueriesContext(connection) as ctx, transaction.atomic():
            result = contact_upsert_batch(workspace=workspace, rows=rows, update_existing=True, tags=["all"])
        assert result.created == n
        return len(ctx.captured_queries)

    small, large = queries_for(10, 0), queries_for(400, 1000)
    # bulk statements are split in fixed-size chunks (SQLite: ~75 rows a statement);
    # nothing is issued per row
    assert large <= small + 400 // 50, (small, large)


@pytest.mark.django_db
def test_counts_are_exact_for_a_mix_of_new_existing_and_duplicate_rows(workspace):
    Contact.objects.create(workspace=workspace, email="a@acme.com")
    Contact.objects.create(workspace=workspace, phone="+14155550100")
    rows = clean(
        [
            {"email": "A@acme.com"},
            {"phone": "+14155550100", "full_name": "P"},
            {"email": "new@acme.com"},
            {"email": "new@acme.com", "full_name": "dup"},
        ]
    )
    with transaction.atomic():
        skipped = contact_upsert_batch(workspace=workspace, rows=rows, update_existing=False)
    assert (skipped.created, skipped.updated, skipped.skipped) == (1, 1, 2)
    rows = clean([{"email": "a@acme.com", "full_name": "A"}, {"phone": "4155550100"}])
    with transaction.atomic():
        updated = contact_upsert_batch(workspace=workspace, rows=rows, update_existing=True)
    assert (updated.created, updated.updated, updated.skipped) == (0, 2, 0)
    assert Contact.objects.get(email="a@acme.com").full_name == "A"
    assert list(
        ContactEmail.objects.filter(contact__workspace=workspace, is_primary=True).values_list("email", flat=True)
    ) == ["new@acme.com"]


@pytest.mark.django_db(transaction=True)
def test_an_import_racing_an_api_write_of_the_same_email_neither_fails_nor_duplicates(owner):
    """The other writer inserts the address after the import matched but before it
    inserts; the database constraint refuses the duplicate and the import retries
    its batch, which now finds the contact."""
    results: list = []

    def import_in_thread() -> None:
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {owner.raw_key}")
        try:
            response = client.post(
                URL,
                {
                    "rows": [{"email": "race@acme.com", "full_name": "From import"}, {"email": "other@acme.com"}],
                    "update_existing": True,
                },
                format="json",
            )
            results.append((response.status_code, response.json()))
        finally:
            connections.close_all()

    with transaction.atomic():
        Contact.objects.create(workspace=owner.workspace, email="Race@Acme.com", full_name="From API")
        thread = threading.Thread(target=import_in_thread)
        thread.start()
        time.sleep(1.0)  # the import is now waiting on our uncommitted row (or on SQLite's write lock)
    thread.join(timeout=60)
    assert results and results[0][0] == 200, results
    data = results[0][1]["data"]
    assert (data["created_count"], data["updated_count"], data["skipped_count"]) == (1, 1, 0)
    assert Contact.objects.filter(workspace=owner.workspace, email__iexact="race@acme.com").count() == 1
    assert Contact.objects.get(email__iexact="race@acme.com").full_name == "From import"


@pytest.mark.django_db(transaction=True)
def test_two_concurrent_imports_of_the_same_addresses_create_each_contact_once(owner):
    rows = import_rows(200)
    results: list = []

    def run() -> None:
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {owner.raw_key}")
        try:
            results.append(client.post(URL, {"rows": rows}, format="json").json()["data"])
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert len(results) == 3
    assert sum(r["created_count"] for r in results) == 200
    assert sum(r["skipped_count"] for r in results) == 400
    assert Contact.objects.filter(workspace=owner.workspace).count() == 200
