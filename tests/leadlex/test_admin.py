"""The platform's admin pages, driven as a staff user through the Django test client."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.utils import timezone
from rest_framework.test import APIClient

from leadlex.models import ApiKey, WebhookDelivery, WebhookEndpoint, Workspace
from leadlex.webhooks import webhook_emit
from tests.conftest import make_key

KEY_IN_PAGE = re.compile(r"wbk_[A-Za-z0-9_-]{32,}")


@pytest.fixture
def staff(db) -> Client:
    user = User.objects.create_superuser("admin", "admin@example.com", "pw-123456789")
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def delivery(workspace, settings):
    settings.LEADLEX_WEBHOOKS_ALLOW_PRIVATE = True
    WebhookEndpoint.objects.create(
        workspace=workspace, url="http://127.0.0.1:9/h", events=["export.failed"], secret="whsec_s"
    )
    (pk,) = webhook_emit(workspace_id=workspace.pk, event="export.failed", data={"error": "boom"})
    return WebhookDelivery.objects.get(pk=pk)


def test_every_platform_admin_page_renders_for_staff(staff, workspace, delivery):
    key, _ = make_key(workspace)
    endpoint = delivery.endpoint
    pages = [
        "/admin/",
        "/admin/leadlex/workspace/",
        "/admin/leadlex/workspace/add/",
        f"/admin/leadlex/workspace/{workspace.pk}/change/",
        "/admin/leadlex/workspace/?is_active__exact=1&q=Ac",
        "/admin/leadlex/apikey/",
        "/admin/leadlex/apikey/add/",
        f"/admin/leadlex/apikey/{key.pk}/change/",
        "/admin/leadlex/apikey/?status=usable",
        "/admin/leadlex/apikey/?status=revoked",
        "/admin/leadlex/apikey/?status=expired",
        "/admin/leadlex/apikey/?q=owner",
        "/admin/leadlex/webhookendpoint/",
        "/admin/leadlex/webhookendpoint/add/",
        f"/admin/leadlex/webhookendpoint/{endpoint.pk}/change/",
        "/admin/leadlex/webhookdelivery/",
        "/admin/leadlex/webhookdelivery/?status__exact=pending",
        "/admin/leadlex/webhookdelivery/?event=export.failed",
        f"/admin/leadlex/webhookdelivery/{delivery.pk}/change/",
    ]
    for page in pages:
        response = staff.get(page)
        assert response.status_code == 200, page


def test_the_admin_needs_a_staff_login(client, workspace):
    response = client.get("/admin/leadlex/workspace/")
    assert response.status_code == 302 and "/admin/login/" in response["Location"]


def test_the_workspace_list_shows_counts_in_a_fixed_number_of_queries(staff, django_assert_max_num_queries):
    from contacts.models import Contact

    for i in range(6):
        ws = Workspace.objects.create(name=f"W{i}")
        make_key(ws)
        make_key(ws)
        Contact.objects.bulk_create([Contact(workspace=ws, full_name=f"C{j}") for j in range(i)])
    with django_assert_max_num_queries(12):
        response = staff.get("/admin/leadlex/workspace/?o=1")
    assert response.status_code == 200
    html = response.content.decode()
    row = re.search(r"W5</a></th>(.*?)</tr>", html, re.S).group(1)
    assert '<td class="field-contact_count">5</td>' in row
    assert '<td class="field-api_key_count">2</td>' in row


def test_creating_a_key_shows_it_once_and_it_authenticates(staff, workspace):
    response = staff.post(
        "/admin/leadlex/apikey/add/",
        {
            "workspace": workspace.pk,
            "name": "CI",
            "owner_email": "ops@example.com",
            "scopes": ["read:contacts"],
            "expires_at_0": "",
            "expires_at_1": "",
        },
        follow=True,
    )
    assert response.status_code == 200
    html = response.content.decode()
    keys = KEY_IN_PAGE.findall(html)
    assert len(set(keys)) == 1, html[:2000]
    raw = keys[0]
    api_key = ApiKey.objects.get()
    assert api_key.matches(raw) and api_key.scopes == ["read:contacts"] and api_key.lookup == raw[:12]
    assert raw not in str(api_key.__dict__)  # only a hash is stored

    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert api.get("/v1/webhooks").status_code == 200

    # Never again: not on the change page, not in the list.
    for page in (f"/admin/leadlex/apikey/{api_key.pk}/change/", "/admin/leadlex/apikey/"):
        html = staff.get(page).content.decode()
        assert raw not in html
        assert api_key.lookup in html


def test_the_revoke_action_revokes_and_the_key_stops_working(staff, workspace):
    key, raw = make_key(workspace)
    response = staff.post("/admin/leadlex/apikey/", {"action": "revoke", "_selected_action": [key.pk]}, follow=True)
    assert "Revoked 1 key(s)." in response.content.decode()
    key.refresh_from_db()
    assert key.revoked_at is not None
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert api.get("/v1/webhooks").status_code == 401


def test_a_workspace_with_a_bad_timezone_is_refused(staff):
    response = staff.post("/admin/leadlex/workspace/add/", {"name": "New", "timezone": "Mars/Olympus"})
    assert response.status_code == 200
    assert "IANA" in response.content.decode()
    assert not Workspace.objects.filter(name="New").exists()


def test_the_deactivate_action_blocks_the_api(staff, workspace):
    _, raw = make_key(workspace)
    staff.post("/admin/leadlex/workspace/", {"action": "deactivate", "_selected_action": [workspace.pk]})
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    response = api.get("/v1/webhooks")
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "subscription_inactive"


def test_the_delivery_log_is_read_only_and_retry_now_makes_it_due(staff, delivery, django_capture_on_commit_callbacks):
    WebhookDelivery.objects.filter(pk=delivery.pk).update(status="failed", attempts=12, next_attempt_at=None)
    assert staff.get("/admin/leadlex/webhookdelivery/add/").status_code == 403
    page = staff.get(f"/admin/leadlex/webhookdelivery/{delivery.pk}/change/").content.decode()
    assert 'name="_save"' not in page
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = staff.post(
            "/admin/leadlex/webhookdelivery/", {"action": "retry_now", "_selected_action": [delivery.pk]}, follow=True
        )
    assert "Queued 1 delivery(ies)" in response.content.decode()
    assert len(callbacks) == 1
    delivery.refresh_from_db()
    assert delivery.status == "pending" and delivery.attempts == 0 and delivery.next_attempt_at is not None


def test_retry_now_says_which_deliveries_it_left_alone_because_they_are_in_flight(staff, delivery):
    from leadlex.webhooks import _claim

    assert _claim(delivery.pk, timezone.now())  # a worker holds it: its POST may be on the wire
    response = staff.post(
        "/admin/leadlex/webhookdelivery/", {"action": "retry_now", "_selected_action": [delivery.pk]}, follow=True
    )
    page = response.content.decode()
    assert "Queued 0 delivery(ies)" in page
    assert "1 delivery(ies) are being attempted right now and were left alone" in page
    before = delivery.next_attempt_at
    delivery.refresh_from_db()
    assert delivery.leased_until is not None and delivery.next_attempt_at > before


def test_adding_a_webhook_endpoint_checks_the_url_and_shows_the_secret_once(staff, workspace, settings):
    settings.LEADLEX_WEBHOOKS_ALLOW_PRIVATE = False
    response = staff.post(
        "/admin/leadlex/webhookendpoint/add/",
        {"workspace": workspace.pk, "url": "http://127.0.0.1/x", "events": ["export.failed"], "is_active": "on"},
    )
    assert response.status_code == 200 and "private" in response.content.decode()
    response = staff.post(
        "/admin/leadlex/webhookendpoint/add/",
        {
            "workspace": workspace.pk,
            "url": "http://93.184.215.14/x",
            "events": ["export.failed"],
            "is_active": "on",
        },
        follow=True,
    )
    endpoint = WebhookEndpoint.objects.get()
    assert endpoint.secret.startswith("whsec_") and endpoint.secret in response.content.decode()
    assert endpoint.secret not in staff.get(f"/admin/leadlex/webhookendpoint/{endpoint.pk}/change/").content.decode()


def test_the_admins_static_files_are_served_after_collectstatic(settings, tmp_path, db):
    from django.core.management import call_command

    settings.STATIC_ROOT = tmp_path / "static"
    call_command("collectstatic", "--noinput", verbosity=0)
    response = Client().get("/static/admin/css/base.css")  # a new handler: WhiteNoise scans STATIC_ROOT
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/css")
