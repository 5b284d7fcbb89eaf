"""The Close "lead" world through HTTP: companies, opportunities, activities."""

from __future__ import annotations

import uuid

import pytest
import yaml

from contacts.models import Activity, Company, Contact, Opportunity

pytestmark = pytest.mark.django_db


class TestCompanies:
    def test_crud(self, owner):
        response = owner.client.post(
            "/v1/companies",
            {
                "name": "Initech",
                "url": "https://initech.example",
                "description": "TPS reports",
                "status": "Potential",
                "addresses": [{"city": "Austin", "country": "US"}],
                "custom": {"industry": "software"},
            },
            format="json",
        )
        assert response.status_code == 201
        data = response.json()["data"]
        assert set(data) == {
            "id",
            "name",
            "url",
            "description",
            "status",
            "addresses",
            "custom",
            "created_at",
            "updated_at",
        }
        assert owner.client.get(f"/v1/companies/{data['id']}").json()["data"] == data
        patched = owner.client.patch(f"/v1/companies/{data['id']}", {"status": "Customer"}, format="json")
        assert patched.status_code == 200
        assert patched.json()["data"]["status"] == "Customer" and patched.json()["data"]["name"] == "Initech"
        listed = owner.client.get("/v1/companies").json()
        assert [c["id"] for c in listed["data"]] == [data["id"]]
        assert owner.client.delete(f"/v1/companies/{data['id']}").status_code == 204
        assert owner.client.get(f"/v1/companies/{data['id']}").status_code == 404

    def test_a_contacts_company_name_is_the_companys(self, owner):
        company = owner.client.post("/v1/companies", {"name": "Initech"}, format="json").json()["data"]
        contact = owner.client.post(
            "/v1/contacts", {"full_name": "Peter", "company_name": "Own Co", "company_id": company["id"]}, format="json"
        ).json()["data"]
        assert contact["company_name"] == "Initech"
        owner.client.patch(f"/v1/companies/{company['id']}", {"name": "Initrode"}, format="json")
        assert owner.client.get(f"/v1/contacts/{contact['id']}").json()["data"]["company_name"] == "Initrode"
        owner.client.delete(f"/v1/companies/{company['id']}")
        shown = owner.client.get(f"/v1/contacts/{contact['id']}").json()["data"]
        assert shown["company_id"] is None and shown["company_name"] == "Own Co"

    @pytest.mark.parametrize(
        "body",
        [
            {},
            {"name": ""},
            {"name": "x" * 301},
            {"name": "A", "url": "not a url"},
            {"name": "A", "addresses": "Main St"},
            {"name": "A", "custom": [1]},
            {"name": "A", "owner": "me"},
            {"name": ["A"]},
        ],
    )
    def test_bad_bodies_are_validation_errors(self, owner, body):
        response = owner.client.post("/v1/companies", body, format="json")
        assert response.status_code == 400
        assert response.json()["error"]["code"] == "validation_error"


class TestOpportunities:
    def test_crud_with_references(self, owner):
        company = Company.objects.create(workspace=owner.workspace, name="Initech")
        contact = Contact.objects.create(workspace=owner.workspace, full_name="Peter")
        response = owner.client.post(
            "/v1/opportunities",
            {
                "company_id": str(company.pk),
                "contact_id": str(contact.pk),
                "status": "active",
                "value": 150000,
                "currency": "EUR",
                "confidence": 60,
                "note": "Big one",
            },
            format="json",
        )
        assert response.status_code == 201, response.content
        data = response.json()["data"]
        assert data["company_id"] == str(company.pk) and data["contact_id"] == str(contact.pk)
        assert data["value"] == 150000 and data["currency"] == "EUR"
        won = owner.client.patch(
            f"/v1/opportunities/{data['id']}", {"status": "won", "date_won": "2024-05-01"}, format="json"
        ).json()["data"]
        assert won["status"] == "won" and won["date_won"] == "2024-05-01" and won["value"] == 150000
        assert [o["id"] for o in owner.client.get("/v1/opportunities").json()["data"]] == [data["id"]]
        assert owner.client.delete(f"/v1/opportunities/{data['id']}").status_code == 204
        assert not Opportunity.objects.exists()

    @pytest.mark.parametrize(
        "body",
        [
            {"status": "maybe"},
            {"value": "lots"},
            {"value": 2**64},
            {"value": -5},
            {"currency": "euro"},
            {"confidence": 101},
            {"date_won": "May 1st"},
            {"company_id": "nope"},
            {"probability": 5},
        ],
    )
    def test_bad_bodies_are_validation_errors(self, owner, body):
        response = owner.client.post("/v1/opportunities", body, format="json")
        assert response.status_code == 400
        assert response.json()["error"]["code"] == "validation_error"

    def test_references_to_another_workspace_are_refused(self, owner, other_workspace):
        company = Company.objects.create(workspace=other_workspace, name="Globex")
        contact = Contact.objects.create(workspace=other_workspace, full_name="Hank")
        for body in ({"company_id": str(company.pk)}, {"contact_id": str(contact.pk)}):
            response = owner.client.post("/v1/opportunities", body, format="json")
            assert response.status_code == 400
        assert not Opportunity.objects.exists()


class TestActivities:
    def test_create_and_list(self, owner):
        company = Company.objects.create(workspace=owner.workspace, name="Initech")
        response = owner.client.post(
            "/v1/activities",
            {
                "type": "call",
                "company_id": str(company.pk),
                "body": "Left a voicemail",
                "occurred_at": "2024-05-01T10:00:00Z",
            },
            format="json",
        )
        assert response.status_code == 201
        data = response.json()["data"]
        assert set(data) == {"id", "type", "company_id", "contact_id", "body", "occurred_at", "created_at"}
        assert owner.client.get(f"/v1/activities/{data['id']}").json()["data"] == data
        assert [a["id"] for a in owner.client.get("/v1/activities").json()["data"]] == [data["id"]]

    @pytest.mark.parametrize(
        "body", [{}, {"type": "fax"}, {"type": "note", "occurred_at": "later"}, {"type": "note", "subject": "x"}]
    )
    def test_bad_bodies_are_validation_errors(self, owner, body):
        response = owner.client.post("/v1/activities", body, format="json")
        assert response.status_code == 400
        assert not Activity.objects.exists()


def test_every_endpoint_hides_another_workspaces_rows_like_missing_ones(owner, stranger):
    ws = owner.workspace
    company = Company.objects.create(workspace=ws, name="Mine")
    opp = Opportunity.objects.create(workspace=ws, company=company)
    activity = Activity.objects.create(workspace=ws, type="note", company=company)
    cases = [
        ("companies", company.pk, ("get", "patch", "delete")),
        ("opportunities", opp.pk, ("get", "patch", "delete")),
        ("activities", activity.pk, ("get",)),
    ]
    for resource, pk, methods in cases:
        for method in methods:
            theirs = getattr(stranger.client, method)(f"/v1/{resource}/{pk}", {"note": "x"}, format="json")
            missing = getattr(stranger.client, method)(f"/v1/{resource}/{uuid.uuid4()}", {"note": "x"}, format="json")
            assert theirs.status_code == missing.status_code == 404, (resource, method)
            assert theirs.json() == missing.json()
        assert stranger.client.get(f"/v1/{resource}").json()["data"] == []
    assert Company.objects.filter(pk=company.pk, name="Mine").exists()
    assert Opportunity.objects.filter(pk=opp.pk).exists()


def test_the_openapi_document_lists_every_contacts_endpoint(anon):
    response = anon.get("/v1/openapi.json")
    assert response.status_code == 200
    # The document may be served as JSON or YAML; YAML is a superset of JSON.
    document = yaml.safe_load(response.content)
    paths = document["paths"]
    for path, methods in {
        "/v1/contacts": {"get", "post"},
        "/v1/contacts/{contact_id}": {"get", "patch", "delete"},
        "/v1/contacts/merge": {"post"},
        "/v1/contacts/{contact_id}/comet_tokens": {"get", "post"},
        "/v1/lists": {"get", "post"},
        "/v1/lists/{list_id}/contacts": {"post", "delete"},
        "/v1/companies": {"get", "post"},
        "/v1/companies/{company_id}": {"get", "patch", "delete"},
        "/v1/opportunities": {"get", "post"},
        "/v1/opportunities/{opportunity_id}": {"get", "patch", "delete"},
        "/v1/activities": {"get", "post"},
    }.items():
        assert methods <= set(paths[path]), path
    contact_schema = document["components"]["schemas"]["Contact"]
    assert {"id", "email", "tags", "lists", "emails", "company_name", "custom"} <= set(contact_schema["properties"])


@pytest.mark.parametrize("path", ["/v1/companies", "/v1/opportunities", "/v1/activities", "/v1/lists"])
def test_every_list_endpoint_costs_the_same_queries_for_few_or_many_rows(owner, path):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from contacts.models import ContactList

    def add(n: int, offset: int) -> None:
        ws = owner.workspace
        companies = Company.objects.bulk_create([Company(workspace=ws, name=f"C{offset + i}") for i in range(n)])
        people = Contact.objects.bulk_create([Contact(workspace=ws, full_name=f"P{offset + i}") for i in range(n)])
        Opportunity.objects.bulk_create(
            [Opportunity(workspace=ws, company=c, contact=p) for c, p in zip(companies, people, strict=True)]
        )
        Activity.objects.bulk_create(
            [Activity(workspace=ws, type="note", company=c, contact=p) for c, p in zip(companies, people, strict=True)]
        )
        ContactList.objects.bulk_create([ContactList(workspace=ws, name=f"L{offset + i}") for i in range(n)])

    def cost() -> int:
        owner.client.get(path)  # the first request of a key also records last_used_at
        with CaptureQueriesContext(connection) as ctx:
            assert owner.client.get(f"{path}?limit=500").status_code == 200
        return len(ctx.captured_queries)

    add(2, 0)
    few = cost()
    add(40, 2)
    assert cost() == few <= 3
