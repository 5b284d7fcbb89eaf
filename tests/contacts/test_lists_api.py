"""Lists and their memberships through HTTP."""

from __future__ import annotations

import uuid

import pytest

from contacts.models import Contact, ContactList, ListMembership

pytestmark = pytest.mark.django_db


def contacts(workspace, n):
    return Contact.objects.bulk_create([Contact(workspace=workspace, full_name=f"C{i}") for i in range(n)])


def test_a_list_is_created_and_listed(owner):
    response = owner.client.post("/v1/lists", {"name": "Customers"}, format="json")
    assert response.status_code == 201
    data = response.json()["data"]
    assert set(data) == {"id", "name", "contact_count", "created_at"}
    assert data["contact_count"] == 0
    body = owner.client.get("/v1/lists").json()
    assert [row["id"] for row in body["data"]] == [data["id"]] and body["next_cursor"] is None


def test_a_list_name_is_unique_in_a_workspace(owner):
    owner.client.post("/v1/lists", {"name": "Customers"}, format="json")
    response = owner.client.post("/v1/lists", {"name": "Customers"}, format="json")
    assert response.status_code == 400
    assert "name" in response.json()["error"]["details"]["fields"]


@pytest.mark.parametrize("body", [{}, {"name": ""}, {"name": "x" * 201}, {"name": 5, "colour": "red"}, ["Customers"]])
def test_a_bad_list_body_is_a_validation_error(owner, body):
    response = owner.client.post("/v1/lists", body, format="json")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "validation_error"


def test_contacts_are_added_and_removed_in_bulk(owner):
    lst = ContactList.objects.create(workspace=owner.workspace, name="L")
    people = contacts(owner.workspace, 5)
    ids = [str(c.pk) for c in people]
    response = owner.client.post(f"/v1/lists/{lst.pk}/contacts", {"contact_ids": ids}, format="json")
    assert response.status_code == 200
    assert response.json()["data"] == {"list_id": str(lst.pk), "changed": 5}
    again = owner.client.post(f"/v1/lists/{lst.pk}/contacts", {"contact_ids": ids[:2]}, format="json")
    assert again.json()["data"]["changed"] == 0  # adding twice is harmless
    assert owner.client.get("/v1/lists").json()["data"][0]["contact_count"] == 5
    removed = owner.client.delete(f"/v1/lists/{lst.pk}/contacts", {"contact_ids": ids[:3]}, format="json")
    assert removed.status_code == 200 and removed.json()["data"]["changed"] == 3
    assert set(ListMembership.objects.filter(contact_list=lst).values_list("contact_id", flat=True)) == {
        people[3].pk,
        people[4].pk,
    }
    shown = owner.client.get(f"/v1/contacts/{people[4].pk}").json()["data"]
    assert shown["lists"] == [str(lst.pk)]


def test_one_unknown_contact_id_writes_nothing(owner, other_workspace):
    lst = ContactList.objects.create(workspace=owner.workspace, name="L")
    mine = contacts(owner.workspace, 2)
    theirs = contacts(other_workspace, 1)
    for intruder in (theirs[0].pk, uuid.uuid4()):
        response = owner.client.post(
            f"/v1/lists/{lst.pk}/contacts",
            {"contact_ids": [str(mine[0].pk), str(intruder), str(mine[1].pk)]},
            format="json",
        )
        assert response.status_code == 404
        assert response.json()["error"]["details"] == {"missing_ids": [str(intruder)]}
    assert not ListMembership.objects.exists()


@pytest.mark.parametrize("body", [{}, {"contact_ids": []}, {"contact_ids": ["nope"]}, {"contact_ids": "abc"}])
def test_a_bad_membership_body_is_a_validation_error(owner, body):
    lst = ContactList.objects.create(workspace=owner.workspace, name="L")
    response = owner.client.post(f"/v1/lists/{lst.pk}/contacts", body, format="json")
    assert response.status_code == 400


def test_lists_are_isolated_between_workspaces(owner, stranger):
    lst = ContactList.objects.create(workspace=owner.workspace, name="Mine")
    theirs = contacts(stranger.workspace, 1)
    body = {"contact_ids": [str(theirs[0].pk)]}
    for method in ("post", "delete"):
        foreign = getattr(stranger.client, method)(f"/v1/lists/{lst.pk}/contacts", body, format="json")
        missing = getattr(stranger.client, method)(f"/v1/lists/{uuid.uuid4()}/contacts", body, format="json")
        assert foreign.status_code == missing.status_code == 404
        assert foreign.json() == missing.json()
    assert stranger.client.get("/v1/lists").json()["data"] == []
    assert not ListMembership.objects.exists()


def test_a_reader_can_list_but_not_change(reader):
    lst = ContactList.objects.create(workspace=reader.workspace, name="L")
    assert reader.client.get("/v1/lists").status_code == 200
    assert reader.client.post("/v1/lists", {"name": "x"}, format="json").status_code == 403
    assert (
        reader.client.post(
            f"/v1/lists/{lst.pk}/contacts", {"contact_ids": [str(uuid.uuid4())]}, format="json"
        ).status_code
        == 403
    )
