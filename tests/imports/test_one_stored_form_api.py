"""One mailbox or phone has one stored form, whether it came in by an import or by
POST /v1/contacts: imported, then read back and searched through the API."""

from __future__ import annotations

import pytest

from contacts.models import Contact

URL = "/v1/import/contacts"

pytestmark = pytest.mark.django_db


def import_rows(keyed, rows, **params):
    response = keyed.client.post(URL, {"rows": rows, **params}, format="json")
    assert response.status_code == 200, response.content
    return response.json()["data"]


def import_csv(keyed, text):
    response = keyed.client.post(URL, {"csv": text}, format="json")
    assert response.status_code == 200, response.content
    return response.json()["data"]


def find(keyed, **query):
    response = keyed.client.get("/v1/contacts", query)
    assert response.status_code == 200, response.content
    return response.json()["data"]


# --- special-use domains: refused by every door ---------------------------------------------


@pytest.mark.parametrize(
    "address",
    ["someone@foo.local", "someone@foo.test", "someone@foo.invalid", "someone@mail.localhost", "someone@x.onion"],
)
def test_an_import_refuses_what_post_contacts_refuses(owner, address):
    refused = owner.client.post("/v1/contacts", {"email": address}, format="json")
    assert refused.status_code == 400

    data = import_rows(owner, [{"full_name": "Someone", "email": address}])
    assert data["created_count"] == 0
    assert [(e["row"], e["field"], e["code"]) for e in data["errors"]] == [(1, "email", "invalid_email")]
    # The row error says what the API says.
    assert refused.json()["error"]["details"]["fields"]["email"] == [data["errors"][0]["message"]]

    data = import_csv(owner, f"full_name,email\nSomeone,{address}\n")
    assert data["created_count"] == 0
    assert [(e["row"], e["code"]) for e in data["errors"]] == [(2, "invalid_email")]
    assert not Contact.objects.filter(workspace=owner.workspace).exists()


# --- IDN: one spelling, found by either ----------------------------------------------------------


@pytest.mark.parametrize(
    "spelling", ["someone@xn--bcher-kva.de", "someone@bücher.de", "someone@BÜCHER.de", "someone@XN--BCHER-KVA.DE"]
)
def test_an_imported_idn_address_is_stored_in_unicode_and_found_by_either_spelling(owner, spelling):
    data = import_rows(owner, [{"full_name": "Jürgen", "email": spelling}])
    assert data["created_count"] == 1, data

    (contact,) = find(owner)
    assert contact["email"] == "someone@bücher.de"
    assert contact["emails"] == ["someone@bücher.de"]
    for query in ("someone@xn--bcher-kva.de", "someone@bücher.de", "SOMEONE@XN--BCHER-KVA.DE"):
        assert [c["id"] for c in find(owner, email=query)] == [contact["id"]], query


def test_the_api_and_an_import_see_one_mailbox_in_two_spellings_of_an_idn_domain(owner):
    import_rows(owner, [{"full_name": "Jürgen", "email": "jurgen@xn--bcher-kva.de"}])

    taken = owner.client.post("/v1/contacts", {"email": "jurgen@bücher.de"}, format="json")
    assert taken.status_code == 400, taken.content
    assert "already exists" in taken.json()["error"]["message"]

    # The other spelling in a later import (a CSV this time) matches the same contact.
    data = import_csv(owner, "full_name,email\nJürgen B,jurgen@bücher.de\n")
    assert (data["created_count"], data["skipped_count"]) == (0, 1)
    assert Contact.objects.filter(workspace=owner.workspace).count() == 1


def test_an_import_matches_a_contact_the_api_created_with_the_unicode_spelling(owner):
    created = owner.client.post("/v1/contacts", {"email": "jürgen@bücher.de", "full_name": "J"}, format="json")
    assert created.status_code == 201, created.content
    data = import_rows(owner, [{"email": "jürgen@xn--bcher-kva.de", "job_title": "CEO"}], update_existing=True)
    assert (data["created_count"], data["updated_count"]) == (0, 1), data
    (contact,) = find(owner, email="jürgen@xn--bcher-kva.de")
    assert contact["job_title"] == "CEO"


# --- role addresses: the same letters by either door ------------------------------------------


def test_a_role_address_is_stored_lowercased_by_an_import_as_by_the_api(owner):
    # RFC 2142 mailboxes (info@, sales@, …) are case-insensitive: the validator lowercases them.
    api = owner.client.post("/v1/contacts", {"email": "SALES@Acme.com"}, format="json").json()["data"]
    import_rows(owner, [{"email": "INFO@Acme.com"}])
    stored = set(Contact.objects.filter(workspace=owner.workspace).values_list("email", flat=True))
    assert api["email"] == "sales@acme.com"
    assert stored == {"sales@acme.com", "info@acme.com"}


# --- phones that E.164 alone does not settle ---------------------------------------------------


# Written in E.164 yet not in their stored form: the national number needs a prefix
# that libphonenumber adds when it parses (San Marino fixed lines 0549, Madagascar 20).
PHONES = [("+378973722", "+3780549973722"), ("+2614734775", "+261204734775")]


@pytest.mark.parametrize(("raw", "stored"), PHONES)
def test_an_imported_phone_is_stored_as_the_api_stores_it(owner, raw, stored):
    api = owner.client.post("/v1/contacts", {"full_name": "Via API", "phone": raw}, format="json")
    assert api.status_code == 201, api.content
    assert api.json()["data"]["phone"] == stored

    # The import matches the API's contact by phone instead of creating a second one.
    data = import_rows(owner, [{"full_name": "Via import", "phone": raw}], update_existing=True)
    assert (data["created_count"], data["updated_count"]) == (0, 1), data
    (contact,) = find(owner, phone=raw)
    assert (contact["phone"], contact["full_name"]) == (stored, "Via import")


@pytest.mark.parametrize(("raw", "stored"), PHONES)
def test_a_phone_imported_first_is_found_by_the_api_filter(owner, raw, stored):
    data = import_csv(owner, f"full_name,phone\nVia import,{raw}\n")
    assert data["created_count"] == 1, data
    (contact,) = find(owner, phone=raw)
    assert contact["phone"] == stored
    assert find(owner, phone=stored) == [contact]
