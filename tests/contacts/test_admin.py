"""The contacts admin, through the Django test client as a staff user."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from contacts.models import (
    Activity,
    CometToken,
    Company,
    Contact,
    ContactEmail,
    ContactList,
    ContactTag,
    ListMembership,
    Opportunity,
    Tag,
)
from contacts.services import contact_emails_sync_primary

pytestmark = pytest.mark.django_db

MODELS = ["contact", "company", "tag", "contactlist", "contactemail", "comettoken", "opportunity", "activity"]


@pytest.fixture
def staff_client() -> Client:
    user = User.objects.create_superuser("admin", "admin@example.com", "pw-for-tests-only")
    client = Client()
    client.force_login(user)
    return client


def populate(workspace, n: int, offset: int = 0) -> list[Contact]:
    company = Company.objects.create(workspace=workspace, name=f"Co{offset}")
    tag, _ = Tag.objects.get_or_create(workspace=workspace, name="vip")
    lst, _ = ContactList.objects.get_or_create(workspace=workspace, name="Leads")
    people = Contact.objects.bulk_create(
        [
            Contact(
                workspace=workspace, full_name=f"P{offset + i}", email=f"p{offset + i}@example.com", company=company
            )
            for i in range(n)
        ]
    )
    contact_emails_sync_primary(contacts=people)
    ContactTag.objects.bulk_create([ContactTag(contact=p, tag=tag) for p in people])
    ListMembership.objects.bulk_create([ListMembership(contact=p, contact_list=lst) for p in people])
    CometToken.objects.bulk_create([CometToken(contact=p, token=f"tok{offset + i}") for i, p in enumerate(people)])
    Opportunity.objects.bulk_create(
        [Opportunity(workspace=workspace, company=company, contact=p, value=100) for p in people]
    )
    Activity.objects.bulk_create(
        [Activity(workspace=workspace, company=company, contact=p, type="note") for p in people]
    )
    return people


def changelist_queries(client: Client, model: str) -> int:
    with CaptureQueriesContext(connection) as ctx:
        response = client.get(reverse(f"admin:contacts_{model}_changelist"))
    assert response.status_code == 200
    return len(ctx.captured_queries)


@pytest.mark.parametrize("model", MODELS)
def test_every_changelist_costs_the_same_queries_for_3_or_30_rows(staff_client, workspace, model):
    populate(workspace, 3)
    few = changelist_queries(staff_client, model)
    populate(workspace, 27, offset=3)
    assert changelist_queries(staff_client, model) == few


@pytest.mark.parametrize("model", MODELS)
def test_every_change_and_add_page_renders(staff_client, workspace, model):
    populate(workspace, 2)
    model_class = {
        "contact": Contact,
        "company": Company,
        "tag": Tag,
        "contactlist": ContactList,
        "contactemail": ContactEmail,
        "comettoken": CometToken,
        "opportunity": Opportunity,
        "activity": Activity,
    }[model]
    obj = model_class.objects.first()
    assert staff_client.get(reverse(f"admin:contacts_{model}_change", args=[obj.pk])).status_code == 200
    assert staff_client.get(reverse(f"admin:contacts_{model}_add")).status_code == 200


def test_contacts_can_be_searched_and_filtered_by_tag_list_and_company(staff_client, workspace, other_workspace):
    people = populate(workspace, 3)
    populate(other_workspace, 2, offset=10)
    url = reverse("admin:contacts_contact_changelist")
    tag = Tag.objects.get(workspace=workspace, name="vip")
    lst = ContactList.objects.get(workspace=workspace)
    company = people[0].company

    def shown(**params) -> set[str]:
        response = staff_client.get(url, params)
        assert response.status_code == 200
        return {c.full_name for c in response.context["cl"].result_list}

    assert shown(q="p1@example.com") == {"P1"}
    assert shown(tag=tag.pk) == {"P0", "P1", "P2"}
    assert shown(list=lst.pk) == {"P0", "P1", "P2"}
    assert shown(company=company.pk) == {"P0", "P1", "P2"}
    assert shown(workspace__id__exact=other_workspace.pk) == {"P10", "P11"}


def test_the_change_page_shows_the_emails_and_comet_token_inlines(staff_client, workspace):
    person = populate(workspace, 1)[0]
    response = staff_client.get(reverse("admin:contacts_contact_change", args=[person.pk]))
    body = response.content.decode()
    assert "p0@example.com" in body and "tok0" in body


def test_saving_a_duplicate_email_in_the_admin_is_a_form_error(staff_client, workspace):
    populate(workspace, 1)
    response = staff_client.post(
        reverse("admin:contacts_contact_add"),
        {
            "workspace": workspace.pk,
            "full_name": "Dup",
            "email": "P0@EXAMPLE.com",
            "custom": "{}",
            "created_at_0": "2024-01-01",
            "created_at_1": "00:00:00",
            **{
                f"{prefix}-{k}": v
                for prefix in ("emails", "comet_tokens", "contacttag_set", "listmembership_set")
                for k, v in {"TOTAL_FORMS": "0", "INITIAL_FORMS": "0"}.items()
            },
        },
    )
    assert response.status_code == 200  # the form again, with an error
    assert "already exists" in response.content.decode()
    assert Contact.objects.filter(workspace=workspace).count() == 1


def test_the_contact_admin_actions_are_a_plain_list(workspace):
    from django.contrib import admin

    assert isinstance(admin.site._registry[Contact].actions, list)
