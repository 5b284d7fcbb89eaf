"""An export file imports back unchanged: NDJSON (the async export's format) and CSV
(the sync export with every field), created_at, tags, lists and custom fields included."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import uuid

import pytest
from django.core.management import call_command

from contacts.models import Contact, ContactList, ContactTag, ListMembership, Tag
from leadlex.models import Workspace
from tests.conftest import keyed_client

pytestmark = pytest.mark.django_db

CSV_FIELDS = "full_name,email,phone,job_title,company_name,linkedin_url,tags,lists,custom,created_at"


def seed(workspace: Workspace) -> None:
    customers = ContactList.objects.create(workspace=workspace, name="Customers")
    vips = ContactList.objects.create(workspace=workspace, name="VIPs")
    tags = {n: Tag.objects.create(workspace=workspace, name=n) for n in ("alpha", "beta", "Ünïcode")}
    base = dt.datetime(2021, 3, 4, 5, 6, 7, 123456, tzinfo=dt.UTC)
    specs = [
        dict(
            full_name="Jane Doe",
            email="jane@acme.com",
            phone="+14155550100",
            job_title="CEO",
            company_name="Acme, Inc.",
            linkedin_url="https://www.linkedin.com/in/jane",
            custom={"plan": "gold", "seats": 12, "nested": {"a": [1, 2]}},
        ),
        dict(full_name='Bob "the builder"\nSmith', email="Bob.Smith@example.org", custom={}),
        dict(full_name="Phone Only", phone="+442071838750", custom={"note": "no email"}),
        dict(full_name="Zoë Ünïcode", email="zoë@example.com", job_title="Ingénieure", custom={"é": "ü"}),
    ]
    # Stored as the API stores them (domain lower-cased, phone E.164): the data an export holds.
    for i, spec in enumerate(specs):
        contact = Contact.objects.create(workspace=workspace, created_at=base + dt.timedelta(days=i, seconds=i), **spec)
        if i % 2 == 0:
            ListMembership.objects.create(contact_list=customers, contact=contact)
        if i < 2:
            ListMembership.objects.create(contact_list=vips, contact=contact)
            ContactTag.objects.create(contact=contact, tag=tags["alpha"])
        ContactTag.objects.create(contact=contact, tag=tags["Ünïcode" if i == 3 else "beta"])


def ndjson_export(workspace: Workspace, tmp_path) -> list[dict]:
    out = tmp_path / f"{workspace.pk}.ndjson"
    call_command(
        "export_contacts",
        "--workspace",
        workspace.name,
        "--format",
        "ndjson",
        "--out",
        str(out),
        "--no-progress",
        stdout=io.StringIO(),
        stderr=io.StringIO(),
    )
    return [json.loads(line) for line in out.read_text().splitlines() if line.strip()]


def csv_export(keyed) -> str:
    response = keyed.client.get(f"/v1/contacts/export?fields={CSV_FIELDS}")
    assert response.status_code == 200, response.content
    return (
        b"".join(response.streaming_content).decode()
        if hasattr(response, "streaming_content")
        else response.content.decode()
    )


def comparable(rows: list[dict], drop: tuple[str, ...] = ("id", "updated_at")) -> list[dict]:
    return [{k: v for k, v in row.items() if k not in drop} for row in rows]


def test_an_ndjson_export_imports_back_into_the_emptied_workspace_unchanged(owner, tmp_path):
    seed(owner.workspace)
    before = ndjson_export(owner.workspace, tmp_path)
    assert len(before) == 4 and any(row["lists"] for row in before)
    Contact.objects.filter(workspace=owner.workspace).delete()
    body = b"".join(json.dumps(row).encode() + b"\n" for row in before)
    response = owner.client.post("/v1/import/contacts", data=body, content_type="application/x-ndjson")
    assert response.status_code == 200, response.content
    assert response.json()["data"]["created_count"] == 4, response.json()
    after = ndjson_export(owner.workspace, tmp_path)
    assert comparable(after) == comparable(before)


def test_a_csv_export_imports_back_into_the_emptied_workspace_unchanged(owner):
    seed(owner.workspace)
    before = csv_export(owner)
    assert "Customers" not in before and "gold" in before  # lists by id, custom as JSON
    Contact.objects.filter(workspace=owner.workspace).delete()
    response = owner.client.post("/v1/import/contacts", data=before.encode(), content_type="text/csv")
    assert response.status_code == 200, response.content
    assert response.json()["data"]["created_count"] == 4, response.json()
    assert csv_export(owner) == before


def test_an_export_imports_into_a_new_workspace_with_lists_matched_by_name(owner, tmp_path):
    """List ids belong to their workspace; in another workspace lists are given by
    name (created on demand), so the file's list ids are swapped for names."""
    seed(owner.workspace)
    rows = ndjson_export(owner.workspace, tmp_path)
    names = dict(ContactList.objects.filter(workspace=owner.workspace).values_list("id", "name"))
    fresh = Workspace.objects.create(name="Fresh")
    other = keyed_client(fresh)
    for row in rows:
        row["lists"] = [names[uuid.UUID(i)] for i in row["lists"]]
    response = other.client.post("/v1/import/contacts", {"rows": rows}, format="json")
    assert response.status_code == 200 and response.json()["data"]["created_count"] == 4, response.content
    after = ndjson_export(fresh, tmp_path)
    new_names = dict(ContactList.objects.filter(workspace=fresh).values_list("id", "name"))
    for row in after:
        row["lists"] = sorted(new_names[uuid.UUID(i)] for i in row["lists"])
    for row in rows:
        row["lists"] = sorted(row["lists"])
    assert comparable(after) == comparable(rows)


def test_csv_export_rows_are_valid_csv_for_the_importer(owner):
    seed(owner.workspace)
    records = list(csv.DictReader(io.StringIO(csv_export(owner))))
    assert {r["email"] for r in records} >= {"jane@acme.com", "Bob.Smith@example.org"}
