"""Merging duplicate profiles and the comet-token history, through HTTP."""

from __future__ import annotations

import uuid

import pytest

from contacts.models import Activity, CometToken, Contact, ContactEmail, ContactList, ListMembership, Opportunity

pytestmark = pytest.mark.django_db


def create(client, **body):
    response = client.post("/v1/contacts", body, format="json")
    assert response.status_code == 201, response.content
    return response.json()["data"]


def merge(client, primary, duplicates):
    return client.post("/v1/contacts/merge", {"primary_id": primary, "duplicate_ids": duplicates}, format="json")


class TestMerge:
    def test_the_primary_keeps_every_email_token_list_and_tag_and_the_duplicates_go(self, owner):
        ws = owner.workspace
        l1 = ContactList.objects.create(workspace=ws, name="L1")
        l2 = ContactList.objects.create(workspace=ws, name="L2")
        primary = create(owner.client, full_name="Jane", email="jane@work.com", tags=["a"], lists=[str(l1.pk)])
        dup1 = create(
            owner.client,
            email="jane@home.com",
            phone="+14155552671",
            tags=["b"],
            lists=[str(l2.pk)],
            custom={"source": "webinar"},
        )
        dup2 = create(owner.client, email="j@old.com", tags=["a", "c"])
        owner.client.patch(f"/v1/contacts/{dup2['id']}", {"email": "j@older.com"}, format="json")
        owner.client.post(f"/v1/contacts/{dup1['id']}/comet_tokens", {"token": "t-dup1"}, format="json")
        owner.client.post(f"/v1/contacts/{primary['id']}/comet_tokens", {"token": "t-primary"}, format="json")
        opp = Opportunity.objects.create(workspace=ws, contact_id=dup2["id"], value=100)
        act = Activity.objects.create(workspace=ws, contact_id=dup1["id"], type="note")

        response = merge(owner.client, primary["id"], [dup1["id"], dup2["id"]])
        assert response.status_code == 200, response.content
        merged = response.json()["data"]

        assert merged["id"] == primary["id"]
        assert merged["email"] == "jane@work.com"
        assert merged["emails"][0] == "jane@work.com"
        assert set(merged["emails"]) == {"jane@work.com", "jane@home.com", "j@old.com", "j@older.com"}
        assert merged["phone"] == "+14155552671"  # a blank of the primary is filled from a duplicate
        assert merged["custom"] == {"source": "webinar"}
        assert merged["tags"] == ["a", "b", "c"]
        assert set(merged["lists"]) == {str(l1.pk), str(l2.pk)}
        assert not Contact.objects.filter(pk__in=[dup1["id"], dup2["id"]]).exists()
        assert set(CometToken.objects.filter(contact_id=primary["id"]).values_list("token", flat=True)) == {
            "t-dup1",
            "t-primary",
        }
        opp.refresh_from_db()
        act.refresh_from_db()
        assert str(opp.contact_id) == primary["id"] and str(act.contact_id) == primary["id"]
        moved = ContactEmail.objects.get(contact_id=primary["id"], email="jane@home.com")
        assert not moved.is_primary and str(moved.merged_from) == dup1["id"]
        assert ContactEmail.objects.filter(contact_id=primary["id"], is_primary=True).count() == 1

    def test_a_primary_without_email_takes_a_duplicates_address(self, owner):
        primary = create(owner.client, full_name="No Mail")
        dup = create(owner.client, email="x@example.com")
        merged = merge(owner.client, primary["id"], [dup["id"]]).json()["data"]
        assert merged["email"] == "x@example.com"
        assert merged["emails"] == ["x@example.com"]

    def test_a_merged_away_address_is_secondary_and_not_reserved(self, owner):
        primary = create(owner.client, email="p@example.com")
        dup = create(owner.client, email="d@example.com")
        merge(owner.client, primary["id"], [dup["id"]])
        # d@ is now a secondary address of the primary, not a primary address: the
        # workspace's unique constraint covers primary addresses only.
        assert owner.client.post("/v1/contacts", {"email": "d@example.com"}, format="json").status_code == 201

    def test_a_missing_duplicate_fails_the_whole_merge(self, owner):
        primary = create(owner.client, full_name="P")
        dup = create(owner.client, full_name="D")
        response = merge(owner.client, primary["id"], [dup["id"], str(uuid.uuid4())])
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "not_found"
        assert Contact.objects.filter(pk=dup["id"]).exists()

    def test_the_primary_cannot_be_its_own_duplicate(self, owner):
        primary = create(owner.client, full_name="P")
        response = merge(owner.client, primary["id"], [primary["id"]])
        assert response.status_code == 400

    @pytest.mark.parametrize(
        "body",
        [
            {},
            {"primary_id": "x", "duplicate_ids": []},
            {"primary_id": str(uuid.uuid4()), "duplicate_ids": "abc"},
            {"primary_id": str(uuid.uuid4()), "duplicate_ids": [str(uuid.uuid4())], "x": 1},
        ],
    )
    def test_a_malformed_body_is_a_validation_error(self, owner, body):
        response = owner.client.post("/v1/contacts/merge", body, format="json")
        assert response.status_code == 400
        assert response.json()["error"]["code"] == "validation_error"

    def test_a_reader_cannot_merge(self, owner, reader):
        a, b = create(owner.client, full_name="A"), create(owner.client, full_name="B")
        assert merge(reader.client, a["id"], [b["id"]]).status_code == 403

    def test_membership_of_both_in_one_list_is_kept_once(self, owner):
        lst = ContactList.objects.create(workspace=owner.workspace, name="L")
        a = create(owner.client, full_name="A", lists=[str(lst.pk)])
        b = create(owner.client, full_name="B", lists=[str(lst.pk)])
        merge(owner.client, a["id"], [b["id"]])
        assert ListMembership.objects.filter(contact_list=lst).count() == 1


class TestCometTokens:
    def test_they_are_listed_most_recent_first(self, owner):
        contact = create(owner.client, full_name="A")
        url = f"/v1/contacts/{contact['id']}/comet_tokens"
        for token, seen in [
            ("t1", "2024-01-01T00:00:00Z"),
            ("t3", "2024-03-01T00:00:00Z"),
            ("t2", "2024-02-01T00:00:00Z"),
        ]:
            response = owner.client.post(url, {"token": token, "seen_at": seen}, format="json")
            assert response.status_code == 201
            assert set(response.json()["data"]) == {"id", "token", "seen_at", "created_at"}
        body = owner.client.get(url).json()
        assert [t["token"] for t in body["data"]] == ["t3", "t2", "t1"]

    def test_seen_at_defaults_to_now_and_ties_go_to_the_latest_recorded(self, owner):
        contact = create(owner.client, full_name="A")
        url = f"/v1/contacts/{contact['id']}/comet_tokens"
        owner.client.post(url, {"token": "a", "seen_at": "2024-01-01T00:00:00Z"}, format="json")
        owner.client.post(url, {"token": "b", "seen_at": "2024-01-01T00:00:00Z"}, format="json")
        owner.client.post(url, {"token": "now"}, format="json")
        assert [t["token"] for t in owner.client.get(url).json()["data"]] == ["now", "b", "a"]

    @pytest.mark.parametrize(
        "body",
        [
            {},
            {"token": ""},
            {"token": "x" * 501},
            {"token": "t", "seen_at": "soon"},
            {"token": "t", "extra": 1},
            {"token": ["t"]},
        ],
    )
    def test_a_bad_token_is_a_validation_error(self, owner, body):
        contact = create(owner.client, full_name="A")
        response = owner.client.post(f"/v1/contacts/{contact['id']}/comet_tokens", body, format="json")
        assert response.status_code == 400
        assert response.json()["error"]["code"] == "validation_error"

    def test_another_workspaces_contact_has_no_tokens_to_show(self, owner, stranger):
        contact = create(owner.client, full_name="A")
        owner.client.post(f"/v1/contacts/{contact['id']}/comet_tokens", {"token": "secret"}, format="json")
        response = stranger.client.get(f"/v1/contacts/{contact['id']}/comet_tokens")
        assert response.status_code == 404


def test_comet_tokens_page_newest_first_without_losing_ties(owner):
    contact = create(owner.client, full_name="A")
    url = f"/v1/contacts/{contact['id']}/comet_tokens"
    for i in range(7):
        seen = "2024-01-01T00:00:00Z" if i < 5 else f"2024-01-0{i}T00:00:00Z"
        owner.client.post(url, {"token": f"t{i}", "seen_at": seen}, format="json")
    seen_tokens: list[str] = []
    cursor = None
    while True:
        body = owner.client.get(url, {"limit": 2, **({"cursor": cursor} if cursor else {})}).json()
        seen_tokens += [t["token"] for t in body["data"]]
        cursor = body["next_cursor"]
        if not cursor:
            break
    assert seen_tokens == ["t6", "t5", "t4", "t3", "t2", "t1", "t0"]
