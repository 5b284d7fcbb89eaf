"""API-key authentication and authorisation through the real interface (/v1/contacts)."""

from __future__ import annotations

import base64
from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from leadlex.models import SCOPE_READ_CONTACTS, SCOPE_WRITE_CONTACTS, ApiKey
from tests.conftest import basic_auth, make_key

pytestmark = pytest.mark.django_db


def client_with(header: str | None) -> APIClient:
    client = APIClient()
    if header is not None:
        client.credentials(HTTP_AUTHORIZATION=header)
    return client


def assert_error(response, status: int, code: str) -> None:
    assert response.status_code == status, response.content
    body = response.json()
    assert body["error"]["code"] == code
    assert body["error"]["message"]


def test_a_bearer_key_reads_its_workspace(workspace):
    _, raw = make_key(workspace)
    assert client_with(f"Bearer {raw}").get("/v1/contacts").status_code == 200


def test_basic_auth_with_the_key_as_user_and_an_empty_password_works(workspace):
    _, raw = make_key(workspace)
    client = client_with(basic_auth(raw))
    assert client.get("/v1/contacts").status_code == 200
    assert client.post("/v1/contacts", {"full_name": "Via Basic"}, format="json").status_code == 201


def test_the_scheme_name_is_case_insensitive(workspace):
    _, raw = make_key(workspace)
    assert client_with(f"bearer {raw}").get("/v1/contacts").status_code == 200


@pytest.mark.parametrize(
    "header",
    [
        None,
        "Bearer ",
        "Bearer wbk_" + "x" * 43,  # well-formed, unknown
        "Bearer not-a-key",
        "Token wbk_" + "x" * 43,
        "Basic !!!not-base64!!!",
        "Basic " + base64.b64encode(b":").decode(),
    ],
)
def test_a_missing_or_bad_key_is_401_invalid_key(workspace, header):
    response = client_with(header).get("/v1/contacts")
    assert_error(response, 401, "invalid_key")
    assert response["WWW-Authenticate"] == 'Bearer realm="api"'  # RFC 9110: a 401 names its scheme


def test_a_key_with_a_wrong_secret_part_is_refused(workspace):
    _, raw = make_key(workspace)
    tampered = raw[:-4] + ("AAAA" if not raw.endswith("AAAA") else "BBBB")
    assert_error(client_with(f"Bearer {tampered}").get("/v1/contacts"), 401, "invalid_key")


def test_an_expired_key_is_refused(workspace):
    _, raw = make_key(workspace, expires_at=timezone.now() - timedelta(seconds=1))
    assert_error(client_with(f"Bearer {raw}").get("/v1/contacts"), 401, "invalid_key")


def test_a_key_that_expires_later_still_works(workspace):
    _, raw = make_key(workspace, expires_at=timezone.now() + timedelta(days=1))
    assert client_with(f"Bearer {raw}").get("/v1/contacts").status_code == 200


def test_a_revoked_key_is_refused_on_both_schemes(workspace):
    key, raw = make_key(workspace)
    key.revoked_at = timezone.now()
    key.save()
    assert_error(client_with(f"Bearer {raw}").get("/v1/contacts"), 401, "invalid_key")
    assert_error(client_with(basic_auth(raw)).get("/v1/contacts"), 401, "invalid_key")


def test_a_read_only_key_cannot_write(workspace):
    _, raw = make_key(workspace, (SCOPE_READ_CONTACTS,))
    client = client_with(f"Bearer {raw}")
    assert client.get("/v1/contacts").status_code == 200
    response = client.post("/v1/contacts", {"full_name": "X"}, format="json")
    assert_error(response, 403, "insufficient_permissions")
    assert response.json()["error"]["details"] == {"required_scope": SCOPE_WRITE_CONTACTS}


def test_a_write_only_key_cannot_read(workspace):
    _, raw = make_key(workspace, (SCOPE_WRITE_CONTACTS,))
    assert_error(client_with(f"Bearer {raw}").get("/v1/contacts"), 403, "insufficient_permissions")


def test_a_key_without_scopes_can_do_nothing(workspace):
    _, raw = make_key(workspace, ())
    client = client_with(f"Bearer {raw}")
    assert_error(client.get("/v1/companies"), 403, "insufficient_permissions")
    assert_error(client.post("/v1/lists", {"name": "x"}, format="json"), 403, "insufficient_permissions")


def test_an_inactive_workspace_is_403_subscription_inactive_for_reads_and_writes(owner):
    owner.workspace.is_active = False
    owner.workspace.save()
    assert_error(owner.client.get("/v1/contacts"), 403, "subscription_inactive")
    assert_error(owner.client.post("/v1/contacts", {"full_name": "X"}, format="json"), 403, "subscription_inactive")


def test_authentication_comes_before_not_found(anon, owner):
    """Without a key even a missing id says 401, so ids cannot be probed anonymously."""
    import uuid

    assert_error(anon.get(f"/v1/contacts/{uuid.uuid4()}"), 401, "invalid_key")


def test_using_a_key_records_when_it_was_last_used(owner):
    assert owner.api_key.last_used_at is None
    owner.client.get("/v1/contacts")
    assert ApiKey.objects.get(pk=owner.api_key.pk).last_used_at is not None


def test_a_key_sees_only_its_own_workspace(owner, stranger):
    owner.client.post("/v1/contacts", {"full_name": "Mine"}, format="json")
    assert stranger.client.get("/v1/contacts").json()["data"] == []
    assert len(owner.client.get("/v1/contacts").json()["data"]) == 1
