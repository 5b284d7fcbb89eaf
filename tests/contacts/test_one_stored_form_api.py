"""POST/PATCH /v1/contacts, the email filter and merge agree on one stored form per
mailbox with the import engine (see also tests/imports/test_one_stored_form_api.py)."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.django_db


def create(keyed, **fields):
    response = keyed.client.post("/v1/contacts", fields, format="json")
    assert response.status_code == 201, response.content
    return response.json()["data"]


def import_rows(keyed, rows):
    response = keyed.client.post("/v1/import/contacts", {"rows": rows}, format="json")
    assert response.status_code == 200, response.content
    return response.json()["data"]


def test_post_and_patch_store_an_idn_domain_in_unicode(owner):
    contact = create(owner, email="ada@XN--BCHER-KVA.de")
    assert contact["email"] == "ada@bücher.de"
    patched = owner.client.patch(f"/v1/contacts/{contact['id']}", {"email": "ada2@xn--bcher-kva.de"}, format="json")
    assert patched.status_code == 200, patched.content
    assert patched.json()["data"]["email"] == "ada2@bücher.de"
    assert set(patched.json()["data"]["emails"]) == {"ada@bücher.de", "ada2@bücher.de"}


def test_the_email_filter_finds_an_idn_address_by_either_spelling(owner):
    contact = create(owner, email="ada@bücher.de")
    for query in ("ada@bücher.de", "ada@xn--bcher-kva.de", "Ada@BÜCHER.DE"):
        response = owner.client.get("/v1/contacts", {"email": query})
        assert response.status_code == 200, response.content
        assert [c["id"] for c in response.json()["data"]] == [contact["id"]], query


def test_the_email_filter_refuses_a_special_use_domain_as_every_write_does(owner):
    response = owner.client.get("/v1/contacts", {"email": "someone@foo.local"})
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "validation_error"
    # …and no door lets such an address in, so there is nothing the 400 hides.
    assert import_rows(owner, [{"email": "someone@foo.local"}])["created_count"] == 0


def test_patch_cannot_give_a_second_contact_an_imported_mailbox_in_its_other_spelling(owner):
    import_rows(owner, [{"full_name": "Imported", "email": "jurgen@xn--bcher-kva.de"}])
    other = create(owner, full_name="Other", email="other@example.com")
    response = owner.client.patch(f"/v1/contacts/{other['id']}", {"email": "jurgen@bücher.de"}, format="json")
    assert response.status_code == 400, response.content
    assert "already exists" in response.json()["error"]["message"]


def test_a_merge_of_an_imported_and_an_api_contact_keeps_one_spelling_per_mailbox(owner):
    import_rows(owner, [{"full_name": "Imported", "email": "jurgen@xn--bcher-kva.de", "phone": "+378973722"}])
    imported = owner.client.get("/v1/contacts", {"email": "jurgen@bücher.de"}).json()["data"][0]
    api = create(owner, full_name="API", email="j.b@example.com", phone="+378 0549 973722")
    response = owner.client.post(
        "/v1/contacts/merge", {"primary_id": api["id"], "duplicate_ids": [imported["id"]]}, format="json"
    )
    assert response.status_code == 200, response.content
    merged = response.json()["data"]
    assert merged["phone"] == "+3780549973722"
    assert set(merged["emails"]) == {"j.b@example.com", "jurgen@bücher.de"}
