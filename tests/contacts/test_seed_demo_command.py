"""``manage.py seed_demo`` through call_command."""

from __future__ import annotations

import io

import pytest
from django.core.management import CommandError, call_command

from contacts.models import Activity, CometToken, Company, Contact, ContactEmail, ContactList, Opportunity, Tag
from leadlex.models import Workspace
from tests.conftest import keyed_client

pytestmark = pytest.mark.django_db


def seed(**options) -> str:
    out = io.StringIO()
    call_command("seed_demo", stdout=out, stderr=io.StringIO(), **options)
    return out.getvalue()


def test_it_creates_the_workspace_and_realistic_related_data():
    output = seed(contacts=120, workspace="Demo", batch_size=50, seed=7)
    workspace = Workspace.objects.get(name="Demo")
    assert "120 contacts" in output and "Demo" in output
    contacts = Contact.objects.filter(workspace=workspace)
    assert contacts.count() == 120
    assert Company.objects.filter(workspace=workspace).count() == 24
    assert Tag.objects.filter(workspace=workspace).exists()
    assert ContactList.objects.filter(workspace=workspace).exists()
    assert CometToken.objects.filter(contact__workspace=workspace).exists()
    assert Opportunity.objects.filter(workspace=workspace).exists()
    assert Activity.objects.filter(workspace=workspace).exists()
    # Every contact's address is its one primary ContactEmail; some have a second one.
    assert ContactEmail.objects.filter(contact__workspace=workspace, is_primary=True).count() == 120
    assert ContactEmail.objects.filter(contact__workspace=workspace, is_primary=False).exists()
    sample = contacts.exclude(phone=None).first()
    assert sample.phone.startswith("+1") and len(sample.phone) == 12
    assert sample.custom.keys() >= {"lead_source", "score"}


def test_seeded_contacts_read_back_through_the_api():
    seed(contacts=30, workspace="Demo", batch_size=30)
    client = keyed_client(Workspace.objects.get(name="Demo")).client
    body = client.get("/v1/contacts?limit=500").json()
    assert len(body["data"]) == 30
    with_company = [c for c in body["data"] if c["company_id"]]
    assert with_company and all(c["company_name"] for c in with_company)
    assert all(c["emails"][0] == c["email"] for c in body["data"])
    tokens = [c for c in Contact.objects.filter(comet_tokens__isnull=False).distinct()][:1]
    if tokens:
        listed = client.get(f"/v1/contacts/{tokens[0].pk}/comet_tokens").json()["data"]
        assert [t["seen_at"] for t in listed] == sorted((t["seen_at"] for t in listed), reverse=True)


def test_running_it_again_adds_more_without_colliding_even_with_the_same_seed():
    seed(contacts=40, workspace="Demo", seed=1)
    output = seed(contacts=40, workspace="Demo", seed=1)
    assert "Added to workspace" in output
    assert Contact.objects.filter(workspace__name="Demo").count() == 80
    assert Workspace.objects.filter(name="Demo").count() == 1


def test_bad_arguments_are_command_errors():
    with pytest.raises(CommandError):
        seed(contacts=-1)
    with pytest.raises(CommandError):
        seed(contacts=1, batch_size=0)
