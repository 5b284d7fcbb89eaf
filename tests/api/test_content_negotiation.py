"""No Accept header turns a documented request into a 406 (issue 10, §1): file
endpoints answer the media types their seeds name, ``*/*``, ``text/*`` and no
Accept at all; JSON endpoints answer JSON to any Accept; an error always comes in
the JSON envelope, whatever the client said it accepts."""

from __future__ import annotations

import pytest

from tests.exports.factories import make_contacts
from tests.leadlex.test_error_envelope import assert_envelope
from tests.support.files import csv_records, streamed

pytestmark = pytest.mark.django_db

BROWSER = "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8"
FILE_ACCEPTS = [None, "text/csv", "*/*", "text/*", "text/csv; charset=utf-8", BROWSER, "application/json"]
JSON_ACCEPTS = [
    None,
    "application/json",
    "*/*",
    "application/json; charset=utf-8",
    BROWSER,
    "text/csv",
    "application/xml",
]


def headers(accept: str | None) -> dict[str, str]:
    return {} if accept is None else {"HTTP_ACCEPT": accept}


@pytest.mark.parametrize("accept", FILE_ACCEPTS)
def test_the_sync_csv_export_answers_csv_to_what_its_seed_sends_and_to_any_accept(owner, accept):
    make_contacts(owner.workspace, 3)
    response = owner.client.get("/v1/contacts/export?limit=5000", **headers(accept))
    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert len(csv_records(streamed(response))) == 4


@pytest.mark.parametrize("accept", FILE_ACCEPTS)
def test_an_error_on_a_file_endpoint_still_comes_as_the_json_envelope(owner, anon, accept):
    assert_envelope(owner.client.get("/v1/contacts/export?limit=60000", **headers(accept)), 400, "validation_error")
    assert_envelope(owner.client.get("/v1/contacts/export?fields=nope", **headers(accept)), 400, "validation_error")
    assert_envelope(anon.get("/v1/contacts/export", **headers(accept)), 401, "invalid_key")


@pytest.mark.parametrize("accept", FILE_ACCEPTS)
def test_a_close_download_that_is_not_ready_answers_its_error_in_json(owner, accept):
    created = owner.client.post("/v1/export/lead/", {"format": "csv", "type": "leads"}, format="json")
    assert created.status_code == 200, created.content
    response = owner.client.get(f"/v1/export/{created.json()['id']}/download", **headers(accept))
    assert response.status_code in (302, 409)
    if response.status_code == 409:
        assert_envelope(response, 409, "export_not_ready")


@pytest.mark.parametrize("accept", JSON_ACCEPTS)
def test_json_endpoints_answer_json_to_any_accept(owner, accept):
    make_contacts(owner.workspace, 2)
    for path in [
        "/v1/contacts",
        "/v1/lists",
        "/v1/companies",
        "/v1/opportunities",
        "/v1/activities",
        "/v1/webhooks",
        "/v1/export/",
    ]:
        response = owner.client.get(path, **headers(accept))
        assert response.status_code == 200, (path, response.content)
        assert response["Content-Type"].startswith("application/json")
    created = owner.client.post(
        "/v1/contacts", {"full_name": "Ann", "email": "ann@example.com"}, format="json", **headers(accept)
    )
    assert created.status_code == 201, created.content
    imported = owner.client.post(
        "/v1/import/contacts",
        {"rows": [{"full_name": "Bo", "email": "bo@example.com"}]},
        format="json",
        **headers(accept),
    )
    assert imported.status_code == 200 and imported.json()["data"]["created_count"] == 1
    assert_envelope(owner.client.get("/v1/contacts?limit=abc", **headers(accept)), 400, "validation_error")


def test_a_format_query_parameter_is_not_a_renderer_switch(owner):
    # DRF would answer 404 for ?format=csv (no such renderer); here it is an ordinary unknown parameter.
    response = owner.client.get("/v1/export/?format=csv")
    assert response.status_code == 200, response.content
