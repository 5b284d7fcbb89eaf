"""POST /v1/import/contacts and GET /v1/import/contacts/{job_id} through HTTP."""

from __future__ import annotations

import pytest

from contacts.models import Contact, ContactEmail, Tag
from imports.models import ImportJob

URL = "/v1/import/contacts"

pytestmark = pytest.mark.django_db


def post(keyed, body, **extra):
    return keyed.client.post(URL, body, format="json", **extra)


def test_it_imports_rows_synchronously_and_answers_the_contract_shape(owner):
    response = post(owner, {"rows": [{"full_name": "Jane Doe", "email": "jane@acme.com"},
                                     {"full_name": "Bob Smith", "email": "bob@beta.com"}]})
    assert response.status_code == 200, response.content
    body = response.json()
    assert set(body) == {"data"}
    data = body["data"]
    assert set(data) == {"job_id", "status", "created_count", "updated_count", "skipped_count", "errors"}
    assert data["status"] == "completed"
    assert data["job_id"].startswith("imp_")
    assert (data["created_count"], data["updated_count"], data["skipped_count"], data["errors"]) == (2, 0, 0, [])
    assert set(Contact.objects.filter(workspace=owner.workspace).values_list("email", flat=True)) == {
        "jane@acme.com", "bob@beta.com"}
    assert ContactEmail.objects.filter(contact__workspace=owner.workspace, is_primary=True).count() == 2
    assert response["X-RateLimit-Limit"] == "60"
