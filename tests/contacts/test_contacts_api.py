"""The contacts endpoints through HTTP: create, read, update, delete, pagination."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest
from django.utils import timezone

from contacts.models import Company, Contact, ContactEmail, ContactList, ListMembership, Tag
from tests.conftest import is_postgres

CONTACT_FIELDS = {
    "id",
    "full_name",
    "email",
    "phone",
    "job_title",
    "company_name",
    "company_id",
    "linkedin_url",
    "tags",
    "created_at",
    "updated_at",
    "custom",
    "lists",
    "emails",
}

pytestmark = pytest.mark.django_db


def create(client, **body):
    response = client.post("/v1/contacts", body, format="json")
    assert response.status_code == 201, response.content
    return response.json()["data"]


class TestCreate:
    def test_it_returns_the_contract_object_in_a_data_envelope(self, owner):
        company = Company.objects.create(workspace=owner.workspace, name="Initech")
        lst = ContactList.objects.create(workspace=owner.workspace, name="Leads")
        data = create(
            owner.client,
            full_name="Jane Doe",
            email="Jane@Example.COM",
            phone="(415) 555-2671",
            job_title="CTO",
            company_id=str(company.pk),
            linkedin_url="linkedin.com/in/jane",
            tags=["vip", "lead"],
            custom={"plan": "pro"},
            lists=[str(lst.pk)],
        )
        assert set(data) == CONTACT_FIELDS
        assert data["email"] == "Jane@example.com"
        assert data["phone"] == "+14155552671"
        assert data["company_name"] == "Initech" and data["company_id"] == str(company.pk)
        assert data["linkedin_url"] == "https://linkedin.com/in/jane"
        assert data["tags"] == ["lead", "vip"]
        assert data["lists"] == [str(lst.pk)]
        assert data["emails"] == ["Jane@example.com"]
        assert data["custom"] == {"plan": "pro"}

    def test_created_at_may_be_given_to_keep_history(self, owner):
        data = create(owner.client, email="old@example.com", created_at="2015-03-01T10:00:00Z")
        assert data["created_at"].startswith("2015-03-01T10:00:00")

    def test_a_naive_created_at_is_read_in_the_workspace_time_zone(self, owner):
        owner.workspace.timezone = "America/New_York"
        owner.workspace.save()
        data = create(owner.client, email="ny@example.com", created_at="2020-01-01T09:00:00")
        assert data["created_at"].startswith("2020-01-01T14:00:00")

    def test_created_at_defaults_to_now(self, owner):
        before = timezone.now()
        data = create(owner.client, full_name="Now")
        assert dt.datetime.fromisoformat(data["created_at"]) >= before

    def test_without_name_email_or_phone_it_is_a_validation_error(self, owner):
        response = owner.client.post("/v1/contacts", {"job_title": "CTO"}, format="json")
        assert response.status_code == 400
        assert response.json()["error"]["code"] == "validation_error"

    def test_email_is_unique_per_workspace_case_insensitively(self, owner):
        create(owner.client, email="dup@example.com")
        response = owner.client.post("/v1/contacts", {"email": "DUP@example.com"}, format="json")
        assert response.status_code == 400
        body = response.json()["error"]
        assert body["code"] == "validation_error"
        assert "email" in body["details"]["fields"]
        assert Contact.objects.filter(workspace=owner.workspace).count() == 1

    def test_the_same_email_may_live_in_two_workspaces(self, owner, stranger):
        create(owner.client, email="shared@example.com")
        create(stranger.client, email="shared@example.com")

    def test_the_database_itself_refuses_a_case_variant_duplicate(self, workspace):
        from django.db import IntegrityError, transaction

        Contact.objects.create(workspace=workspace, email="a@example.com")
        with pytest.raises(IntegrityError), transaction.atomic():
            Contact.objects.create(workspace=workspace, email="A@EXAMPLE.COM")

    def test_a_bad_phone_is_a_validation_error_naming_the_field(self, owner):
        response = owner.client.post("/v1/contacts", {"full_name": "X", "phone": "call me"}, format="json")
        assert response.status_code == 400
        assert "phone" in response.json()["error"]["details"]["fields"]

    def test_a_company_of_another_workspace_is_refused(self, owner, other_workspace):
        foreign = Company.objects.create(workspace=other_workspace, name="Globex")
        response = owner.client.post("/v1/contacts", {"full_name": "X", "company_id": str(foreign.pk)}, format="json")
        assert response.status_code == 400
        assert "company_id" in response.json()["error"]["details"]["fields"]

    def test_a_list_of_another_workspace_is_refused(self, owner, other_workspace):
        foreign = ContactList.objects.create(workspace=other_workspace, name="Theirs")
        response = owner.client.post("/v1/contacts", {"full_name": "X", "lists": [str(foreign.pk)]}, format="json")
        assert response.status_code == 400
        assert not ListMembership.objects.exists()

    def test_a_read_only_key_cannot_create(self, reader):
        response = reader.client.post("/v1/contacts", {"full_name": "X"}, format="json")
        assert response.status_code == 403
        assert response.json()["error"]["code"] == "insufficient_permissions"


class TestReadUpdateDelete:
    def test_get_returns_the_contact(self, owner):
        data = create(owner.client, full_name="A", email="a@example.com")
        response = owner.client.get(f"/v1/contacts/{data['id']}")
        assert response.status_code == 200
        assert response.json()["data"] == data

    def test_a_reader_may_get(self, owner, reader):
        data = create(owner.client, full_name="A")
        assert reader.client.get(f"/v1/contacts/{data['id']}").status_code == 200

    def test_patch_changes_only_the_given_fields(self, owner):
        data = create(owner.client, full_name="A", email="a@example.com", job_title="CEO", tags=["x"])
        response = owner.client.patch(f"/v1/contacts/{data['id']}", {"job_title": "CTO"}, format="json")
        assert response.status_code == 200
        updated = response.json()["data"]
        assert updated["job_title"] == "CTO"
        assert updated["full_name"] == "A" and updated["email"] == "a@example.com" and updated["tags"] == ["x"]
        assert updated["updated_at"] > data["updated_at"]

    def test_patch_replaces_tags_and_lists(self, owner):
        lst = ContactList.objects.create(workspace=owner.workspace, name="L")
        data = create(owner.client, full_name="A", tags=["x", "y"])
        updated = owner.client.patch(
            f"/v1/contacts/{data['id']}", {"tags": ["z"], "lists": [str(lst.pk)]}, format="json"
        ).json()["data"]
        assert updated["tags"] == ["z"] and updated["lists"] == [str(lst.pk)]
        assert Tag.objects.filter(workspace=owner.workspace).count() == 3  # tags outlive their last contact

    def test_changing_the_email_keeps_the_old_one_as_a_secondary_address(self, owner):
        data = create(owner.client, email="old@example.com")
        updated = owner.client.patch(f"/v1/contacts/{data['id']}", {"email": "new@example.com"}, format="json").json()[
            "data"
        ]
        assert updated["email"] == "new@example.com"
        assert updated["emails"] == ["new@example.com", "old@example.com"]
        primary = ContactEmail.objects.get(contact_id=data["id"], is_primary=True)
        assert primary.email == "new@example.com"

    def test_switching_back_to_an_old_address_makes_it_primary_again(self, owner):
        data = create(owner.client, email="a@example.com")
        owner.client.patch(f"/v1/contacts/{data['id']}", {"email": "b@example.com"}, format="json")
        updated = owner.client.patch(f"/v1/contacts/{data['id']}", {"email": "A@example.com"}, format="json").json()[
            "data"
        ]
        assert updated["emails"] == ["A@example.com", "b@example.com"]
        assert ContactEmail.objects.filter(contact_id=data["id"]).count() == 2

    def test_patch_to_a_taken_email_is_a_validation_error_and_changes_nothing(self, owner):
        create(owner.client, email="taken@example.com")
        data = create(owner.client, email="mine@example.com")
        response = owner.client.patch(f"/v1/contacts/{data['id']}", {"email": "Taken@Example.com"}, format="json")
        assert response.status_code == 400
        assert response.json()["error"]["code"] == "validation_error"
        assert Contact.objects.get(pk=data["id"]).email == "mine@example.com"

    def test_patch_can_clear_the_phone(self, owner):
        data = create(owner.client, full_name="A", phone="+14155552671")
        updated = owner.client.patch(f"/v1/contacts/{data['id']}", {"phone": None}, format="json").json()["data"]
        assert updated["phone"] is None

    def test_delete_removes_the_contact(self, owner):
        data = create(owner.client, full_name="A")
        assert owner.client.delete(f"/v1/contacts/{data['id']}").status_code == 204
        assert owner.client.get(f"/v1/contacts/{data['id']}").status_code == 404

    def test_a_missing_or_malformed_id_is_not_found(self, owner):
        for path in (f"/v1/contacts/{uuid.uuid4()}", "/v1/contacts/not-a-uuid"):
            response = owner.client.get(path)
            assert response.status_code == 404
            assert response.json()["error"]["code"] == "not_found"


class TestPagination:
    def test_the_list_is_ordered_by_created_at_then_id_and_shaped_as_a_page(self, owner):
        ids = [
            create(owner.client, full_name=f"C{i}", created_at=f"2020-01-0{i + 1}T00:00:00Z")["id"] for i in range(3)
        ]
        body = owner.client.get("/v1/contacts").json()
        assert [c["id"] for c in body["data"]] == ids
        assert body["next_cursor"] is None

    def test_many_equal_created_at_lose_and_repeat_no_row(self, owner):
        same = dt.datetime(2021, 6, 1, tzinfo=dt.UTC)
        Contact.objects.bulk_create(
            [Contact(workspace=owner.workspace, full_name=f"C{i}", created_at=same) for i in range(57)]
        )
        Contact.objects.bulk_create(
            [
                Contact(workspace=owner.workspace, full_name=f"D{i}", created_at=same + dt.timedelta(microseconds=i))
                for i in range(20)
            ]
        )
        seen: list[str] = []
        url = "/v1/contacts?limit=10"
        pages = 0
        while url:
            response = owner.client.get(url)
            assert response.status_code == 200
            body = response.json()
            seen.extend(c["id"] for c in body["data"])
            pages += 1
            if body["next_cursor"]:
                link = response["Link"]
                assert link.endswith('rel="next"') and "limit=10" in link
                url = link[link.index("<") + 1 : link.index(">")].replace("http://testserver", "")
            else:
                assert "Link" not in response
                url = None
        assert pages == 8
        assert len(seen) == len(set(seen)) == 77
        expected = list(
            Contact.objects.filter(workspace=owner.workspace).order_by("created_at", "id").values_list("id", flat=True)
        )
        assert seen == [str(i) for i in expected]

    def test_a_row_inserted_between_pages_does_not_shift_the_next_page(self, owner):
        for i in range(4):
            create(owner.client, full_name=f"C{i}", created_at=f"2020-01-0{i + 1}T00:00:00Z")
        first = owner.client.get("/v1/contacts?limit=2").json()
        create(owner.client, full_name="early", created_at="2019-01-01T00:00:00Z")
        second = owner.client.get(f"/v1/contacts?limit=2&cursor={first['next_cursor']}").json()
        assert [c["full_name"] for c in second["data"]] == ["C2", "C3"]

    @pytest.mark.parametrize("limit", ["0", "501", "abc", "-1"])
    def test_a_bad_limit_is_a_validation_error(self, owner, limit):
        response = owner.client.get(f"/v1/contacts?limit={limit}")
        assert response.status_code == 400
        assert response.json()["error"]["code"] == "validation_error"

    def test_a_tampered_cursor_is_a_validation_error(self, owner):
        response = owner.client.get("/v1/contacts?cursor=eyJmb28iOiJiYXIifQ")
        assert response.status_code == 400
        assert response.json()["error"]["code"] == "validation_error"

    def test_the_default_page_is_50_and_the_maximum_500(self, owner):
        Contact.objects.bulk_create([Contact(workspace=owner.workspace, full_name=f"C{i}") for i in range(501)])
        assert len(owner.client.get("/v1/contacts").json()["data"]) == 50
        assert len(owner.client.get("/v1/contacts?limit=500").json()["data"]) == 500

    def test_the_list_costs_a_fixed_number_of_queries(self, owner, django_assert_max_num_queries):
        ws = owner.workspace
        company = Company.objects.create(workspace=ws, name="Co")
        lst = ContactList.objects.create(workspace=ws, name="L")
        for i in range(30):
            create(
                owner.client,
                full_name=f"C{i}",
                email=f"c{i}@example.com",
                tags=["a", "b"],
                lists=[str(lst.pk)],
                company_id=str(company.pk),
            )
        owner.client.get("/v1/contacts?limit=1")  # let last_used_at settle so both runs cost the same
        with django_assert_max_num_queries(8):
            response = owner.client.get("/v1/contacts?limit=100")
        assert len(response.json()["data"]) == 30
        assert all(c["tags"] == ["a", "b"] and c["company_name"] == "Co" for c in response.json()["data"])


class TestIsolation:
    def test_another_workspaces_contact_answers_like_a_missing_one(self, owner, stranger):
        data = create(owner.client, full_name="Mine", email="mine@example.com")
        missing = uuid.uuid4()
        for method, suffix, body in [
            ("get", "", None),
            ("patch", "", {"full_name": "x"}),
            ("delete", "", None),
            ("get", "/comet_tokens", None),
            ("post", "/comet_tokens", {"token": "t"}),
        ]:
            theirs = getattr(stranger.client, method)(f"/v1/contacts/{data['id']}{suffix}", body, format="json")
            nothing = getattr(stranger.client, method)(f"/v1/contacts/{missing}{suffix}", body, format="json")
            assert theirs.status_code == nothing.status_code == 404, (method, suffix)
            assert theirs.json() == nothing.json()
        assert stranger.client.get("/v1/contacts").json()["data"] == []
        assert Contact.objects.get(pk=data["id"]).full_name == "Mine"

    def test_merge_with_another_workspaces_ids_answers_like_missing_ones(self, owner, stranger):
        a = create(owner.client, full_name="A")
        b = create(owner.client, full_name="B")
        response = stranger.client.post(
            "/v1/contacts/merge", {"primary_id": a["id"], "duplicate_ids": [b["id"]]}, format="json"
        )
        assert response.status_code == 404
        assert Contact.objects.filter(pk__in=[a["id"], b["id"]]).count() == 2


@pytest.mark.skipif(not is_postgres(), reason="PostgreSQL only")
def test_postgres_keeps_the_case_insensitive_constraint_under_concurrent_inserts(owner):
    """The expression index is what holds, not a check in Python."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT indexdef FROM pg_indexes WHERE indexname = 'contact_email_ci_unique'")
        (indexdef,) = cursor.fetchone()
    assert "lower" in indexdef.lower() and "UNIQUE" in indexdef


class TestFilters:
    def test_contacts_filter_by_email_phone_tags_list_and_company(self, owner):
        company = Company.objects.create(workspace=owner.workspace, name="Co")
        lst = ContactList.objects.create(workspace=owner.workspace, name="L")
        create(
            owner.client,
            full_name="A",
            email="Ann@Example.com",
            phone="415 555 2671",
            tags=["x", "y"],
            lists=[str(lst.pk)],
            company_id=str(company.pk),
        )
        create(owner.client, full_name="B", email="b@example.com", tags=["x"])

        def names(query: str) -> list[str]:
            response = owner.client.get(f"/v1/contacts?{query}")
            assert response.status_code == 200, response.content
            return [c["full_name"] for c in response.json()["data"]]

        assert names("email=ann@EXAMPLE.com") == ["A"]
        assert names("phone=%2B1 (415) 555-2671") == ["A"]
        assert names("tag=x") == ["A", "B"]
        assert names("tag=x&tag=y") == ["A"]
        assert names("tag=x&tag=nope") == []
        assert names(f"list_id={lst.pk}") == ["A"]
        assert names(f"company_id={company.pk}") == ["A"]
        assert names("") == ["A", "B"]

    @pytest.mark.parametrize("query", ["email=nope", "phone=abc", "list_id=12", "company_id=x"])
    def test_a_malformed_filter_is_a_validation_error(self, owner, query):
        response = owner.client.get(f"/v1/contacts?{query}")
        assert response.status_code == 400
        assert response.json()["error"]["code"] == "validation_error"

    def test_the_next_link_keeps_the_filters(self, owner):
        for i in range(3):
            create(owner.client, full_name=f"C{i}", tags=["t"])
        response = owner.client.get("/v1/contacts?tag=t&limit=2")
        assert "tag=t" in response["Link"] and "limit=2" in response["Link"]
