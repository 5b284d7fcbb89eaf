"""The paths of published client examples (the hosted gateway's, Close's /api/v1/) are the API itself."""

from __future__ import annotations

import pytest

from tests.leadlex.test_error_envelope import assert_envelope

pytestmark = pytest.mark.django_db

ALIASES = ["/functions/v1/api-gateway/v1/", "/api/v1/"]


@pytest.mark.parametrize("alias", ALIASES)
def test_an_alias_serves_the_same_operation_as_v1(owner, alias):
    created = owner.client.post(alias + "contacts", {"full_name": "Ann", "email": "ann@example.com"}, format="json")
    assert created.status_code == 201, created.content
    listed = owner.client.get(alias + "contacts")
    assert [c["email"] for c in listed.json()["data"]] == ["ann@example.com"]


@pytest.mark.parametrize("alias", ALIASES)
def test_an_alias_keeps_the_api_guards_and_envelope(owner, anon, alias, settings):
    assert_envelope(anon.get(alias + "contacts"), 401, "invalid_key")
    assert_envelope(owner.client.get(alias + "nothing-here"), 404, "not_found")
    settings.LEADLEX_MAX_BODY_BYTES = 100
    assert_envelope(
        owner.client.generic("POST", alias + "contacts", "x" * 200, content_type="application/json"),
        413,
        "payload_too_large",
    )


def test_the_next_page_link_of_an_alias_request_is_a_v1_url(owner):
    from tests.exports.factories import make_contacts

    make_contacts(owner.workspace, 3)
    response = owner.client.get(ALIASES[0] + "contacts/export?limit=2")
    assert response.status_code == 200
    assert response["Link"].startswith("<http://testserver/v1/contacts/export?")


def test_the_schema_lists_each_operation_once(anon):
    paths = anon.get("/v1/openapi.json").json()["paths"]
    # The aliases are servers of the document, not copies of its paths; the health probes sit at the root.
    assert not [p for p in paths if not p.startswith("/v1/") and p not in ("/healthz", "/readyz")]
    assert not [p for p in paths if p.startswith(("/api/", "/functions/"))]
